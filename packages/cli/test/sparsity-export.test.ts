import { gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, arrayDataset, checkCompression, compress, createBuilders, fit, parsePipelineConfig, useBackend, type CompressionBuilder, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { checkParity, toOnnx } from '@tensorpress/export-onnx';
import { pruningAlgorithms } from '@tensorpress/pruning';
import { quantAlgorithms } from '@tensorpress/quant';
import { l0Sparsity, magnitudeSparsity, nmSparsity, sparseSize, sparsityAlgorithms } from '@tensorpress/sparsity';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const N = 32;
const SHAPE = [28, 28, 1];
const PER = 28 * 28;
const x = Float32Array.from({ length: N * PER }, (_, i) => ((i * 7919) % 97) / 97);
const y = Int32Array.from({ length: N }, (_, i) => i % 10);
const data = arrayDataset({ x, y, exampleShape: SHAPE, numClasses: 10 });

function weightZeros(g: Graph, node: string): { zeros: number; size: number } {
  const w = g.param(g.node(node)!.inputs[1]!)!;
  const d = w.data;
  let zeros = 0;
  for (let i = 0; i < d.length; i++) if (Number(d[i]) === 0) zeros++;
  return { zeros, size: d.length };
}

// Sparsity and export-onnx (and quant) are separate technique packages; the CLI stacks them, so the
// strip → ONNX → onnxruntime round trip is tested here.
describe('sparsity strip → ONNX → onnxruntime', () => {
  // The first convolution has one input channel: N:M leaves it out.
  const first = { plainCnn: 'conv1', residualCnn: 'stem.conv' };
  const cases: [string, (model: keyof typeof first) => CompressionBuilder, number][] = [
    ['magnitude 75%', () => magnitudeSparsity({ level: 0.75, schedule: { type: 'constant' } }), 1],
    ['2:4', (m) => nmSparsity({ n: 2, m: 4, ignoredScopes: [first[m]] }), 1],
    // Gates start just open (deterministic gate 0.04), so a few steps of the penalty close many.
    ['L0', () => l0Sparsity({ lambda: 5, gateScale: 20, initLogAlpha: -2 }), 1],
  ];
  for (const model of ['plainCnn', 'residualCnn'] as const) {
    for (const [name, make, epochs] of cases) {
      it(`${model}, ${name}: zeros in the file, FP32 parity within 1e-4, smaller gzip`, async () => {
        const g = referenceModels[model]({ seed: 0 });
        const ctrl = compress(g, [make(model)]);
        await fit(ctrl.model.executor, data, { epochs, batchSize: 16, optimizer: { type: 'adam', learningRate: 0.02 }, controller: ctrl, progress: false });
        const stats = ctrl.statistics().algorithms[0]!;
        const stripped = ctrl.strip();
        ctrl.dispose();
        const zeros = stats.layers.reduce((a, l) => a + weightZeros(stripped, String(l.node)).zeros, 0);
        expect(zeros).toBeGreaterThanOrEqual(Number(stats.total['zeros']));
        expect(Number(stats.total['sparsity'])).toBeGreaterThan(name === 'L0' ? 0.1 : 0.49);
        const bytes = toOnnx(stripped);
        const xb = tf.tensor(x.slice(0, 8 * PER), [8, ...SHAPE]);
        const r = await checkParity(stripped, bytes, xb);
        xb.dispose();
        expect(r.maxAbsDiff).toBeLessThanOrEqual(1e-4);
        expect(gzipSync(bytes).length).toBeLessThan(gzipSync(toOnnx(g)).length);
        const size = sparseSize(stripped);
        expect(size.bitmaskBytes).toBeLessThan(size.denseBytes);
      });
    }
  }
});

describe('one config: magnitude_sparsity 75% + quantization (INT8 QAT)', () => {
  it('trains, strips to int8 codes that keep the zeros, and exports with onnxruntime parity', async () => {
    const defs = [...sparsityAlgorithms, ...quantAlgorithms];
    const cfg = parsePipelineConfig(
      {
        compression: [
          { algorithm: 'magnitude_sparsity', params: { level: 0.75, schedule: { type: 'polynomial', initialLevel: 0.5, targetEpoch: 1, power: 3 } } },
          { algorithm: 'quantization', params: { quantizeBias: false } },
        ],
      },
      defs,
    );
    const g = referenceModels.residualCnn({ seed: 0 });
    const ctrl = compress(g, createBuilders(cfg, defs));
    await ctrl.initialize(data, { samples: N });
    await fit(ctrl.model.executor, data, { epochs: 2, batchSize: 16, optimizer: { type: 'adam', learningRate: 0.005 }, controller: ctrl, progress: false });
    const sparsity = ctrl.statistics().algorithms.find((a) => a.algorithm === 'magnitude_sparsity')!;
    expect(sparsity.total['level']).toBe(0.75);
    const xb = tf.tensor(x.slice(0, 8 * PER), [8, ...SHAPE]);
    const [yq] = ctrl.model.executor.run(xb);
    const stripped = ctrl.strip();
    ctrl.dispose();
    // Every sparsified weight is an int8 code tensor now, with (at least) its masked zeros.
    for (const l of sparsity.layers) {
      const w = stripped.param(`${String(l.node)}.w_q`)!;
      expect(w.dtype, String(l.node)).toBe('int8');
      const codes = w.data;
      let z = 0;
      for (let i = 0; i < codes.length; i++) if (codes[i] === 0) z++;
      expect(z, String(l.node)).toBeGreaterThanOrEqual(Number(l['zeros']));
    }
    const bytes = toOnnx(stripped);
    const r = await checkParity(stripped, bytes, xb);
    // The logits come from the float fc over the last quantized activation (GAP): onnxruntime's and
    // the emulated integer kernels may differ by one step there, so a logit by at most
    // step · max over outputs of Σ|fc weight| (dequantized).
    const step = stripped.param('q:gap.scale')!.data[0]!;
    const codes = stripped.param('fc.w_q')!.data;
    const scales = stripped.param(stripped.nodes.find((n) => n.op === 'DequantizeLinear' && n.inputs[0] === 'fc.w_q')!.inputs[1]!)!.data;
    const cols = scales.length;
    const colSum = Array.from({ length: cols }, (_, c) => {
      let a = 0;
      for (let i = c; i < codes.length; i += cols) a += Math.abs(Number(codes[i]));
      return a * Number(scales[c]);
    });
    expect(r.top1Agreement).toBe(1);
    expect(r.maxAbsDiff).toBeLessThanOrEqual(step * Math.max(...colSum));
    expect(gzipSync(bytes).length).toBeLessThan(0.2 * gzipSync(toOnnx(g)).length);
    tf.dispose([xb, yq!]);
  });
});

describe('one config: filter_pruning → magnitude_sparsity → quantization', () => {
  it('stacks in that order (the reverse is a config error), trains, strips and exports with parity', async () => {
    const defs = [...pruningAlgorithms, ...sparsityAlgorithms, ...quantAlgorithms];
    const entries = [
      { algorithm: 'filter_pruning', params: { criterion: 'l1', ratio: 0.25 } },
      { algorithm: 'magnitude_sparsity', params: { level: 0.5, ranking: 'layer', schedule: { type: 'constant' } } },
      { algorithm: 'quantization', params: { quantizeBias: false } },
    ];
    expect(() => parsePipelineConfig({ compression: [entries[0], entries[2], entries[1]] }, defs)).toThrow(/"quantization" must come after "magnitude_sparsity"/);
    expect(() => parsePipelineConfig({ compression: [entries[1], entries[0]] }, defs)).toThrow(/"magnitude_sparsity" must come after "filter_pruning"/);
    const cfg = parsePipelineConfig({ compression: entries }, defs);
    const g = referenceModels.plainCnn({ seed: 0 });
    const ctrl = compress(g, createBuilders(cfg, defs));
    await ctrl.initialize(data, { samples: N });
    await fit(ctrl.model.executor, data, { epochs: 1, batchSize: 16, optimizer: { type: 'adam', learningRate: 0.005 }, controller: ctrl, progress: false });
    const stripped = ctrl.strip();
    ctrl.dispose();
    // conv2 lost a quarter of its filters (and of its input channels); the zeros of the masked weights
    // that survive the cut are still there (the cut removes low-L1 filters, which held a little more
    // than their share of the zeros, so about, not exactly, half).
    const w = stripped.param('conv2.w_q')!;
    expect(w.shape[3]).toBe(24);
    let z = 0;
    for (let i = 0; i < w.data.length; i++) if (w.data[i] === 0) z++;
    expect(z / w.data.length).toBeGreaterThan(0.45);
    const xb = tf.tensor(x.slice(0, 8 * PER), [8, ...SHAPE]);
    const r = await checkParity(stripped, toOnnx(stripped), xb);
    expect(r.top1Agreement).toBe(1);
    xb.dispose();
  });
});

describe('filter_pruning with nm_sparsity, l0_sparsity or rb_sparsity', () => {
  it('is refused before training, naming the sparsifier’s entry', () => {
    const defs = [...pruningAlgorithms, ...sparsityAlgorithms];
    for (const algorithm of ['nm_sparsity', 'l0_sparsity', 'rb_sparsity']) {
      const cfg = parsePipelineConfig({ compression: [{ algorithm: 'filter_pruning', params: { ratio: 0.25 } }, { algorithm, params: algorithm === 'nm_sparsity' ? { skipIndivisible: true } : {} }] }, defs);
      const before = tf.memory().numTensors;
      let err: unknown;
      try {
        checkCompression(referenceModels.residualCnn({ seed: 0 }), createBuilders(cfg, defs));
      } catch (e) {
        err = e;
      }
      expect(err, algorithm).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).path).toBe('$.compression[1]');
      expect((err as Error).message).toMatch(new RegExp(`^\\$\\.compression\\[1\\]: ${algorithm} cannot be stacked with "filter_pruning": `));
      expect(tf.memory().numTensors).toBe(before);
    }
  });
});
