import * as tf from '@tensorflow/tfjs-core';
import { Executor, arrayDataset, compress, createGraph, useBackend, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { binarization, bnSignThreshold, scalingMap, type BinarizationOptions } from '@tensorpress/binary';
import { maxAbsDiff } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const C = 5;
// Dyadic BN parameters (ε = 0, var a power of 4): BN and the threshold are exact in float32.
// γ covers > 0, < 0 and = 0.
const BN = { gamma: [2, -2, 0.5, 0, -0.25], beta: [1, 0.5, -1, 0.25, -0.75], mean: [0.5, -1, 0, 0, 2], variance: [4, 1, 0.25, 1, 16], epsilon: 0 };

/** input [N, 1, 1, C] → BatchNormalization → Conv 1×1 with the identity weight: the output is the conv's (binarized) input. */
function bnConvGraph(): Graph {
  const eye = new Float32Array(C * C);
  for (let i = 0; i < C; i++) eye[i * C + i] = 1;
  const f = (a: number[]): Float32Array => Float32Array.from(a);
  return createGraph({
    inputs: [{ name: 'x', shape: [null, 1, 1, C], dtype: 'float32' }],
    outputs: ['y'],
    nodes: [
      { name: 'bn', op: 'BatchNormalization', inputs: ['x', 'g', 'b', 'm', 'v'], outputs: ['z'], attrs: { epsilon: 0 } },
      { name: 'conv', op: 'Conv', inputs: ['z', 'w'], outputs: ['y'], attrs: {} },
    ],
    params: [
      { name: 'g', shape: [C], dtype: 'float32', data: f(BN.gamma), trainable: true },
      { name: 'b', shape: [C], dtype: 'float32', data: f(BN.beta), trainable: true },
      { name: 'm', shape: [C], dtype: 'float32', data: f(BN.mean), trainable: false },
      { name: 'v', shape: [C], dtype: 'float32', data: f(BN.variance), trainable: false },
      { name: 'w', shape: [1, 1, C, C], dtype: 'float32', data: eye, trainable: true },
    ],
  });
}

/** Every multiple of 1/8 in [−12, 12] on every channel: each channel's threshold and both sides of it. */
function grid(): tf.Tensor {
  const vals: number[] = [];
  for (let k = -96; k <= 96; k++) vals.push(k / 8);
  const x = new Float32Array(vals.length * C);
  vals.forEach((v, i) => x.fill(v, i * C, (i + 1) * C));
  return tf.tensor4d(x, [vals.length, 1, 1, C]);
}

const activationsOnly: BinarizationOptions = { weights: { method: 'none' }, fullPrecision: { first: false, last: false } };

describe('bnSignThreshold', () => {
  it('θ = μ + (c − β)·σ/γ with the comparison flipped where γ < 0 and a constant where γ = 0', () => {
    const th = bnSignThreshold(BN, 0);
    expect(Array.from(th.flip)).toEqual([1, -1, 1, 0, -1]);
    // θ: 0.5 − 1·2/2 = −0.5; −1 − 0.5·1/(−2) = −0.75; 0 + 1·0.5/0.5 = 1; (γ = 0: offset −β); 2 + 0.75·4/(−0.25) = −10.
    expect(Array.from(th.offset)).toEqual([-0.5, 0.75, 1, -0.25, 10]);
  });
});

describe('strip: BatchNormalization → binary activation', () => {
  for (const learned of [false, true]) {
    it(`${learned ? 'learned s, t' : 'plain sign'}: the fused threshold equals BN → sign on every input, including γ < 0 and ties`, async () => {
      const g = bnConvGraph();
      const ctrl = compress(g, [binarization({ ...activationsOnly, activations: { method: 'binary', learned } })]);
      if (learned) {
        // Dyadic s and t so that s·t and the thresholds stay exact.
        ctrl.controllers[0]!.loadState({ epoch: 0, globalStep: 0, activations: { z: { initialized: true, scale: 0.5, threshold: [1, -1, 2, 0, 0.5] } } });
      }
      const x = grid();
      const [ref] = ctrl.model.executor.run(x);
      const stripped = ctrl.strip();
      expect(stripped.nodes.map((n) => n.op)).not.toContain('BatchNormalization');
      expect(stripped.nodes.map((n) => n.op)).toContain('Sign');
      const ex = new Executor(stripped);
      const [got] = ex.run(x);
      const r = ref!.dataSync();
      const o = got!.dataSync();
      expect(Array.from(o)).toEqual(Array.from(r));
      // Both signs occur on every channel with γ ≠ 0 (the threshold lies inside the grid).
      for (const c of [0, 1, 2]) {
        const col = Array.from(r).filter((_, i) => i % C === c);
        expect(new Set(col).size, `channel ${c}`).toBe(2);
      }
      // The ties: BN(x) = c exactly gives +1.
      const tie = learned ? undefined : [-0.5, -0.75, 1];
      if (tie) tie.forEach((t, c) => expect(r[(t * 8 + 96) * C + c]).toBe(1));
      tf.dispose([x, ref!, got!]);
      ex.dispose();
      ctrl.dispose();
    });
  }
});

describe('strip: reference models', () => {
  const cases: [string, BinarizationOptions][] = [
    ['xnor W1A1', {}],
    ['xnor W1A32', { activations: { method: 'none' } }],
    ['twn W2A32', { weights: { method: 'twn' }, activations: { method: 'none' } }],
    ['ternary W2A1', { weights: { method: 'ternary' } }],
    ['bnn W1A1', { weights: { method: 'bnn' } }],
  ];
  for (const name of ['plainCnn', 'residualCnn'] as const) {
    for (const [label, options] of cases) {
      it(`${name} ${label}: the stripped graph (int8 codes + DequantizeLinear, Sign) computes what the binarized model does`, async () => {
        const before = tf.memory().numTensors;
        const g = referenceModels[name]({ seed: 0 });
        const n = 8;
        const per = 28 * 28;
        const x = Float32Array.from({ length: n * per }, (_, i) => ((i * 7919) % 97) / 97);
        const data = arrayDataset({ x, y: new Int32Array(n), exampleShape: [28, 28, 1], numClasses: 10 });
        const ctrl = compress(g, [binarization(options)]);
        await ctrl.initialize(data, { samples: n, batchSize: n });
        const xb = tf.tensor4d(x, [n, 28, 28, 1]);
        const [ref] = ctrl.model.executor.run(xb);
        const stripped = ctrl.strip();
        const ex = new Executor(stripped);
        const [got] = ex.run(xb);
        const peak = tf.tidy(() => tf.max(tf.abs(ref!)).dataSync()[0]!);
        expect(maxAbsDiff(got!, ref!)).toBeLessThanOrEqual(1e-4 * Math.max(1, peak));
        const codes = stripped.params.filter((p) => p.dtype === 'int8' && p.name.endsWith('.w_codes'));
        expect(codes.length).toBeGreaterThan(0);
        for (const p of codes) expect(p.data.every((v) => v === -1 || v === 0 || v === 1)).toBe(true);
        expect(stripped.nodes.some((nd) => nd.op === 'BatchNormalization')).toBe(false);
        tf.dispose([xb, ref!, got!]);
        ex.dispose();
        ctrl.dispose();
        expect(tf.memory().numTensors).toBe(before);
      });
    }
  }
});

describe('scalingMap (XNOR-Net K)', () => {
  it('K = mean |A| over channels, box-filtered with the conv window (same padding: mean over the valid positions)', () => {
    // |A| channel means [[1, 2, 3], [4, 5, 6], [7, 8, 9]] (channels ±m).
    const m = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    const a = tf.tensor4d(m.flatMap((v) => [v, -v]), [1, 3, 3, 2]);
    const conv = { name: 'c', op: 'Conv', inputs: ['a', 'w'], outputs: ['y'], attrs: { auto_pad: 'SAME_UPPER' } };
    const k = tf.tidy(() => Array.from(scalingMap(a, conv, [3, 3]).dataSync()));
    expect(k).toEqual([3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7]);
    const valid = tf.tidy(() => Array.from(scalingMap(a, { ...conv, attrs: {} }, [3, 3]).dataSync()));
    expect(valid).toEqual([5]);
    const gemm = tf.tidy(() => Array.from(scalingMap(tf.tensor2d([[1, -3], [2, 2]]), { ...conv, op: 'Gemm' }, []).dataSync()));
    expect(gemm).toEqual([2, 2]);
    a.dispose();
  });

  for (const name of ['plainCnn', 'residualCnn'] as const) {
    it(`${name} xnor W1A1 with K: the stripped graph (K as Relu/Conv/AveragePool/Mul) computes what the model does`, async () => {
      const g = referenceModels[name]({ seed: 0 });
      const n = 8;
      const x = Float32Array.from({ length: n * 784 }, (_, i) => ((i * 7919) % 97) / 97);
      const data = arrayDataset({ x, y: new Int32Array(n), exampleShape: [28, 28, 1], numClasses: 10 });
      const plain = compress(g, [binarization()]);
      const ctrl = compress(g, [binarization({ activations: { scalingMap: true } })]);
      await plain.initialize(data, { samples: n, batchSize: n });
      await ctrl.initialize(data, { samples: n, batchSize: n });
      const xb = tf.tensor4d(x, [n, 28, 28, 1]);
      const [withoutK] = plain.model.executor.run(xb);
      const [ref] = ctrl.model.executor.run(xb);
      expect(maxAbsDiff(ref!, withoutK!)).toBeGreaterThan(1e-3);
      const stripped = ctrl.strip();
      expect(stripped.nodes.filter((nd) => nd.name.endsWith('/scale') && nd.name.startsWith('k:')).length).toBeGreaterThan(0);
      const ex = new Executor(stripped);
      const [got] = ex.run(xb);
      const peak = tf.tidy(() => tf.max(tf.abs(ref!)).dataSync()[0]!);
      expect(maxAbsDiff(got!, ref!)).toBeLessThanOrEqual(1e-4 * Math.max(1, peak));
      tf.dispose([xb, ref!, got!, withoutK!]);
      ex.dispose();
      ctrl.dispose();
      plain.dispose();
    });
  }
});
