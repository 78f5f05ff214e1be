import * as tf from '@tensorflow/tfjs-core';
import { arrayDataset, compress, createBuilders, fit, graphStatistics, parsePipelineConfig, useBackend, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { binarization, binaryAlgorithms, packedBytes, type BinarizationOptions } from '@tensorpress/binary';
import { checkParity, toOnnx } from '@tensorpress/export-onnx';
import { pruningAlgorithms } from '@tensorpress/pruning';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';

const { onnx } = onnxProto;

beforeAll(async () => {
  await useBackend('cpu');
});

const N = 32;
const per = 28 * 28;
const x = Float32Array.from({ length: N * per }, (_, i) => ((i * 7919) % 97) / 97 + ((Math.floor(i / per) * 31) % 7) / 14);
const data = arrayDataset({ x, y: Int32Array.from({ length: N }, (_, i) => i % 10), exampleShape: [28, 28, 1], numClasses: 10 });

function opTypes(bytes: Uint8Array): string[] {
  return onnx.ModelProto.decode(bytes).graph!.node!.map((n) => n.opType!);
}

async function exportAndCheck(stripped: Graph): Promise<{ top1: number; maxAbsDiff: number; ops: string[] }> {
  const bytes = toOnnx(stripped);
  const xb = tf.tensor4d(x, [N, 28, 28, 1]);
  const report = await checkParity(stripped, bytes, xb, { arithmetic: 'float' });
  xb.dispose();
  return { top1: report.top1Agreement!, maxAbsDiff: report.maxAbsDiff, ops: opTypes(bytes) };
}

// Binary is a technique package and export-onnx another: the CLI joins them, so the export of a
// binarized graph is tested here.
describe('binarization → ONNX', () => {
  const cases: [string, BinarizationOptions][] = [
    ['xnor W1A1', {}],
    ['xnor W1A1 with K', { activations: { scalingMap: true } }],
    ['twn W2A32', { weights: { method: 'twn' }, activations: { method: 'none' } }],
    ['ternary W2A1', { weights: { method: 'ternary' } }],
  ];
  for (const name of ['plainCnn', 'residualCnn'] as const) {
    for (const [label, options] of cases) {
      it(`${name} ${label}: int8 {−1, 0, +1} codes with DequantizeLinear (and Sign) agree with onnxruntime`, async () => {
        const ctrl = compress(referenceModels[name]({ seed: 0 }), [binarization(options)]);
        await ctrl.initialize(data, { samples: N, batchSize: N });
        const stripped = ctrl.strip();
        ctrl.dispose();
        const r = await exportAndCheck(stripped);
        // A binary activation within rounding of its threshold may flip between runtimes (different
        // accumulation orders): the logits then differ, the top-1 class must not.
        expect(r.top1).toBe(1);
        expect(r.ops).toContain('DequantizeLinear');
        // With K the BN after a layer stays (K varies per position); otherwise every BN is folded.
        if (!options.activations?.scalingMap) expect(r.ops).not.toContain('BatchNormalization');
        else expect(r.ops).toContain('AveragePool');
        if (options.activations?.method !== 'none') expect(r.ops).toContain('Sign');
        const packed = packedBytes(stripped);
        expect(packed.layers.length).toBeGreaterThan(0);
        expect(packed.packed1Bytes).toBeLessThan(packed.storedBytes);
        if (label.startsWith('xnor')) {
          // Every W1 layer: 1-bit codes + float32 scales against FP32, over all W1 layers together.
          const fp32 = packed.layers.reduce((a, l) => a + l.fp32Bytes, 0);
          const bin = packed.layers.reduce((a, l) => a + l.packedBytes, 0);
          expect(packed.layers.every((l) => l.binary)).toBe(true);
          expect(fp32 / bin).toBeGreaterThanOrEqual(28);
        }
      });
    }
  }
});

describe('compress (filter_pruning + binarization)', () => {
  it('residualCnn, one pipeline config: trains, strips (channels cut, binary codes) and exports with onnxruntime parity', async () => {
    const g = referenceModels.residualCnn({ seed: 0 });
    const config = parsePipelineConfig(
      {
        compression: [
          { algorithm: 'filter_pruning', params: { criterion: 'l1', ratio: 0.25 } },
          { algorithm: 'binarization', params: { weights: { method: 'xnor' }, activations: { method: 'binary' } } },
        ],
      },
      [...pruningAlgorithms, ...binaryAlgorithms],
    );
    const ctrl = compress(g, createBuilders(config, [...pruningAlgorithms, ...binaryAlgorithms]));
    expect(ctrl.controllers.map((c) => c.algorithm)).toEqual(['filter_pruning', 'binarization']);
    await fit(ctrl.model.executor, data, { epochs: 1, batchSize: 8, controller: ctrl, progress: false, optimizer: { type: 'adam', learningRate: 1e-3 } });
    const stripped = ctrl.strip();
    ctrl.dispose();
    expect(graphStatistics(stripped).total.params).toBeLessThan(graphStatistics(g).total.params);
    expect(stripped.params.some((p) => p.dtype === 'int8' && p.data.every((v) => v === 1 || v === -1))).toBe(true);
    const r = await exportAndCheck(stripped);
    expect(r.top1).toBe(1);
  });
});
