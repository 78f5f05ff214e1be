import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig } from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerFastGradients, unregisterFastGradients } from '@tensorpress/kernels';
import { useKernels } from './backends.js';

// tfjs' own kernels, captured on import (the backend packages register them when loaded), before
// useKernels installs tensorpress' replacements: the reference for cpu, the "was it replaced" test.
const TFJS_KERNELS = new Map<string, KernelConfig | undefined>();
for (const backend of ['cpu', 'wasm']) {
  for (const config of tf.getKernelsForBackend(backend)) TFJS_KERNELS.set(`${backend}/${config.kernelName}`, config);
}
const originalKernel = (name: string, backend: string) => TFJS_KERNELS.get(`${backend}/${name}`);
/** True when `backend` serves `name` with something other than tfjs' own kernel. */
const replaced = (name: string, backend: string) => {
  const k = tf.getKernel(name, backend);
  return k != null && k !== originalKernel(name, backend);
};

// ---------------------------------------------------------------------------------------------
// Independent reference: plain loops over the definition of a (depthwise) convolution, in float64.
// Padding and output sizes are derived here from TensorFlow's documented rules, not from tfjs.

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

interface Geometry {
  outH: number;
  outW: number;
  top: number;
  left: number;
}

function axisGeometry(size: number, k: number, stride: number, dil: number, pad: Pad, axis: 1 | 2): [number, number] {
  const eff = (k - 1) * dil + 1;
  if (pad === 'valid') return [Math.ceil((size - eff + 1) / stride), 0];
  if (pad === 'same') {
    const out = Math.ceil(size / stride);
    const total = Math.max(0, (out - 1) * stride + eff - size);
    return [out, Math.floor(total / 2)];
  }
  const [before, after] = typeof pad === 'number' ? [pad, pad] : pad[axis];
  return [Math.floor((size + before + after - eff) / stride) + 1, before];
}

function geometry(h: number, w: number, kh: number, kw: number, s: [number, number], d: [number, number], pad: Pad): Geometry {
  const [outH, top] = axisGeometry(h, kh, s[0], d[0], pad, 1);
  const [outW, left] = axisGeometry(w, kw, s[1], d[1], pad, 2);
  // tfjs sizes both axes of a numeric padding with the filter height and stride height
  // (computeOutputShape2D); the forward conv produces that many columns, so the gradient sums those.
  if (typeof pad === 'number') return { outH, outW: axisGeometry(w, kh, s[0], d[0], pad, 2)[0], top, left };
  return { outH, outW, top, left };
}

interface Case {
  label: string;
  x: number[]; // NHWC shape
  k: [number, number];
  outC: number; // conv: C_out; depthwise: multiplier
  s: [number, number];
  d: [number, number];
  pad: Pad;
}

/** dX and dW of y = conv(x, f) for a given dy, by the definition. */
function referenceGrads(c: Case, depthwise: boolean, x: Float32Array, f: Float32Array, dy: Float32Array, g: Geometry) {
  const [n, h, w, ci] = c.x as [number, number, number, number];
  const [kh, kw] = c.k;
  const m = c.outC;
  const co = depthwise ? ci * m : m;
  const dx = new Float64Array(n * h * w * ci);
  const dw = new Float64Array(kh * kw * ci * m);
  for (let b = 0; b < n; b++)
    for (let oh = 0; oh < g.outH; oh++)
      for (let ow = 0; ow < g.outW; ow++)
        for (let i = 0; i < kh; i++) {
          const r = oh * c.s[0] - g.top + i * c.d[0];
          if (r < 0 || r >= h) continue;
          for (let j = 0; j < kw; j++) {
            const col = ow * c.s[1] - g.left + j * c.d[1];
            if (col < 0 || col >= w) continue;
            const xo = ((b * h + r) * w + col) * ci;
            const yo = ((b * g.outH + oh) * g.outW + ow) * co;
            const fo = (i * kw + j) * ci * m;
            if (depthwise) {
              for (let ch = 0; ch < ci; ch++)
                for (let q = 0; q < m; q++) {
                  const gy = dy[yo + ch * m + q]!;
                  dx[xo + ch] = dx[xo + ch]! + gy * f[fo + ch * m + q]!;
                  dw[fo + ch * m + q] = dw[fo + ch * m + q]! + gy * x[xo + ch]!;
                }
            } else {
              for (let a = 0; a < ci; a++)
                for (let o = 0; o < co; o++) {
                  const gy = dy[yo + o]!;
                  dx[xo + a] = dx[xo + a]! + gy * f[fo + a * co + o]!;
                  dw[fo + a * co + o] = dw[fo + a * co + o]! + gy * x[xo + a]!;
                }
            }
          }
        }
  return { dx, dw };
}

// ---------------------------------------------------------------------------------------------

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function randomData(size: number, seed: number): Float32Array {
  const r = seeded(seed);
  return Float32Array.from({ length: size }, () => r() * 2);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string, rtol = 1e-3, atol = 1e-4): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) - rtol * Math.abs(expected[i]!);
    if (err > worstErr) {
      worstErr = err;
      worst = i;
    }
  }
  if (worstErr > atol) {
    expect.fail(`${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]}`);
  }
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function cases(depthwise: boolean): Case[] {
  const out: Case[] = [];
  const kernels: [number, number][] = [
    [1, 1],
    [3, 3],
    [5, 5],
    [3, 2],
  ];
  const pads: Pad[] = [
    'same',
    'valid',
    1,
    [
      [0, 0],
      [2, 1],
      [0, 3],
      [0, 0],
    ],
  ];
  const sd: [[number, number], [number, number]][] = [
    [
      [1, 1],
      [1, 1],
    ],
    [
      [2, 2],
      [1, 1],
    ],
    [
      [2, 1],
      [1, 1],
    ],
    [
      [1, 1],
      [2, 2],
    ],
    [
      [1, 1],
      [1, 2],
    ],
  ];
  for (const k of kernels)
    for (const pad of pads)
      for (const [s, d] of sd)
        for (const outC of depthwise ? [1, 2] : [4]) {
          const c: Case = { label: '', x: [2, 7, 9, 3], k, outC, s, d, pad };
          const g = geometry(7, 9, k[0], k[1], s, d, pad);
          if (g.outH <= 0 || g.outW <= 0) continue;
          c.label = `k${k.join('x')} s${s.join(',')} d${d.join(',')} pad ${JSON.stringify(pad)}${depthwise ? ` m${outC}` : ''}`;
          out.push(c);
        }
  return out;
}

/** Runs `kernel` through the engine on the active backend and returns its output's values. */
function runKernel(kernel: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): { values: Float32Array; shape: number[] } {
  const out = tf.engine().runKernel(kernel, inputs as never, attrs as never) as tf.Tensor;
  const values = out.dataSync() as Float32Array;
  const shape = out.shape;
  out.dispose();
  return { values, shape };
}

/** Counts data held by the active backend (catches leaked kernel intermediates, not just tensors). */
const dataIds = () => tf.engine().backend.numDataIds();

function checkCase(c: Case, depthwise: boolean, compareOriginal: boolean): void {
  const [kh, kw] = c.k;
  const ci = c.x[3]!;
  const fShape = [kh, kw, ci, c.outC];
  const g = geometry(c.x[1]!, c.x[2]!, kh, kw, c.s, c.d, c.pad);
  const dyShape = [c.x[0]!, g.outH, g.outW, depthwise ? ci * c.outC : c.outC];
  const xv = randomData(sizeOf(c.x), 1);
  const fv = randomData(sizeOf(fShape), 2);
  const dyv = randomData(sizeOf(dyShape), 3);
  const ref = referenceGrads(c, depthwise, xv, fv, dyv, g);

  const tensorsBefore = tf.memory().numTensors;
  const dataBefore = dataIds();
  const x = tf.tensor4d(xv, c.x as [number, number, number, number]);
  const f = tf.tensor4d(fv, fShape as [number, number, number, number]);
  const dy = tf.tensor4d(dyv, dyShape as [number, number, number, number]);
  const common = depthwise
    ? { strides: c.s, dilations: c.d, pad: c.pad }
    : { strides: c.s, dilations: c.d, pad: c.pad, dataFormat: 'NHWC' };
  const filterKernel = depthwise ? 'DepthwiseConv2dNativeBackpropFilter' : 'Conv2DBackpropFilter';
  const inputKernel = depthwise ? 'DepthwiseConv2dNativeBackpropInput' : 'Conv2DBackpropInput';
  const dw = runKernel(filterKernel, { x, dy }, { ...common, filterShape: fShape });
  const dx = runKernel(inputKernel, { dy, filter: f }, { ...common, inputShape: c.x });
  expect(dw.shape).toEqual(fShape);
  expect(dx.shape).toEqual(c.x);
  expectClose(dw.values, ref.dw, `${c.label} dW`);
  expectClose(dx.values, ref.dx, `${c.label} dX`);

  // tfjs' own cpu kernels know no dilation for Conv2DBackprop*, and ignore it for depthwise.
  if (compareOriginal && c.d[0] === 1 && c.d[1] === 1) {
    const backend = tf.engine().backend;
    for (const [name, inputs, attrs, ours] of [
      [filterKernel, { x, dy }, { ...common, filterShape: fShape }, dw.values],
      [inputKernel, { dy, filter: f }, { ...common, inputShape: c.x }, dx.values],
    ] as const) {
      const original = originalKernel(name, 'cpu');
      expect(original, `original cpu ${name}`).toBeDefined();
      const info = original!.kernelFunc({
        inputs: Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, t])) as never,
        backend,
        attrs: attrs as never,
      }) as tf.TensorInfo;
      const values = backend.readSync(info.dataId) as Float32Array;
      backend.disposeData(info.dataId);
      expectClose(ours, values, `${c.label} ${name} vs tfjs cpu`);
    }
  }
  tf.dispose([x, f, dy]);
  expect(tf.memory().numTensors).toBe(tensorsBefore);
  expect(dataIds()).toBe(dataBefore);
}

for (const backendName of ['cpu', 'wasm'] as const) {
  describe(`registerFastGradients (${backendName})`, () => {
    beforeAll(async () => {
      await useKernels(backendName);
      // Exercise every rewrite, including those a backend keeps tfjs' kernel for by default.
      registerFastGradients(backendName, ['DepthwiseConv2dNativeBackpropInput', 'BatchMatMul']);
    });
    afterAll(() => {
      unregisterFastGradients(backendName);
      registerFastGradients(backendName);
    });

    it('serves every convolution gradient kernel', () => {
      const names = ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput'];
      for (const name of [...names, 'MaxPoolGrad', 'Tile', 'BatchMatMul', 'Sum', 'Mean']) {
        expect(replaced(name, backendName), name).toBe(true);
      }
      // wasm keeps XNNPACK's forward conv; cpu gets the register-blocked loop.
      expect(replaced('Conv2D', backendName)).toBe(backendName === 'cpu');
    });

    it('Conv2D forward matches the definition', () => {
      for (const c of cases(false)) {
        // tfjs sizes a numeric padding from the filter height and stride height only; wasm's
        // XNNPACK then writes the true width past the end of the buffer. Not ours to fix.
        const skewed = c.k[0] !== c.k[1] || c.s[0] !== c.s[1] || c.d[0] !== c.d[1];
        if (backendName === 'wasm' && typeof c.pad === 'number' && skewed) continue;
        const [n, h, w, ci] = c.x as [number, number, number, number];
        const [kh, kw] = c.k;
        const g = geometry(h, w, kh, kw, c.s, c.d, c.pad);
        const xv = randomData(sizeOf(c.x), 21);
        const fv = randomData(kh * kw * ci * c.outC, 22);
        const want = new Float64Array(n * g.outH * g.outW * c.outC);
        for (let b = 0; b < n; b++)
          for (let r = 0; r < g.outH; r++)
            for (let q = 0; q < g.outW; q++)
              for (let o = 0; o < c.outC; o++) {
                let sum = 0;
                for (let i = 0; i < kh; i++)
                  for (let j = 0; j < kw; j++) {
                    const row = r * c.s[0] - g.top + i * c.d[0];
                    const col = q * c.s[1] - g.left + j * c.d[1];
                    if (row < 0 || row >= h || col < 0 || col >= w) continue;
                    for (let a = 0; a < ci; a++) sum += xv[((b * h + row) * w + col) * ci + a]! * fv[((i * kw + j) * ci + a) * c.outC + o]!;
                  }
                want[((b * g.outH + r) * g.outW + q) * c.outC + o] = sum;
              }
        const before = tf.memory().numTensors;
        const x = tf.tensor4d(xv, c.x as [number, number, number, number]);
        const f = tf.tensor4d(fv, [kh, kw, ci, c.outC]);
        const got = runKernel('Conv2D', { x, filter: f }, { strides: c.s, dilations: c.d, pad: c.pad, dataFormat: 'NHWC' });
        expect(got.shape).toEqual([n, g.outH, g.outW, c.outC]);
        expectClose(got.values, want, `conv2d ${c.label}`);
        tf.dispose([x, f]);
        expect(tf.memory().numTensors).toBe(before);
      }
    });

    it('Sum and Mean over leading axes, and broadcasting binary ops', () => {
      const xv = randomData(4 * 3 * 5 * 6, 23);
      const before = tf.memory().numTensors;
      const x = tf.tensor4d(xv, [4, 3, 5, 6]);
      for (const [axes, keepDims] of [
        [[0, 1, 2], false],
        [[0, 1, 2], true],
        [[0], false],
        [[1, 0], false],
        [[3], false],
        [[0, 1, 2, 3], false],
        [[1, 2], false],
      ] as [number[], boolean][]) {
        const kept = [4, 3, 5, 6].map((d, i) => (axes.includes(i) ? 1 : d));
        const size = sizeOf(kept);
        const sum = new Float64Array(size);
        const count = sizeOf(axes.map((a) => [4, 3, 5, 6][a]!));
        for (let i = 0; i < xv.length; i++) {
          const loc = [Math.floor(i / 90), Math.floor(i / 30) % 3, Math.floor(i / 6) % 5, i % 6];
          let idx = 0;
          for (let d = 0; d < 4; d++) idx = idx * kept[d]! + (axes.includes(d) ? 0 : loc[d]!);
          sum[idx] = sum[idx]! + xv[i]!;
        }
        const shape = keepDims ? kept : [4, 3, 5, 6].filter((_, i) => !axes.includes(i));
        for (const [kernel, want] of [
          ['Sum', sum],
          ['Mean', sum.map((v) => v / count)],
        ] as const) {
          const got = runKernel(kernel, { x }, { axis: axes, keepDims });
          expect(got.shape, `${kernel} ${axes}`).toEqual(shape);
          expectClose(got.values, want, `${kernel} ${axes} keepDims=${keepDims}`);
        }
      }
      const y = tf.tensor4d(randomData(6, 24), [1, 1, 1, 6]);
      const z = tf.tensor2d(randomData(5 * 6, 25), [5, 6]);
      const yv = y.dataSync();
      const zv = z.dataSync();
      for (const [kernel, op] of [
        ['Multiply', (p: number, q: number) => p * q],
        ['Add', (p: number, q: number) => p + q],
        ['Sub', (p: number, q: number) => p - q],
        ['RealDiv', (p: number, q: number) => p / q],
        ['Maximum', (p: number, q: number) => Math.max(p, q)],
        ['Greater', (p: number, q: number) => (p > q ? 1 : 0)],
      ] as const) {
        for (const [a, b, av, bv, shape] of [
          [x, y, xv, yv, [4, 3, 5, 6]],
          [y, x, yv, xv, [4, 3, 5, 6]],
          [z, y, zv, yv, [1, 1, 5, 6]],
          [y, y, yv, yv, [1, 1, 1, 6]],
        ] as const) {
          const got = runKernel(kernel, { a, b }, {});
          expect(got.shape).toEqual(shape);
          const want = Array.from({ length: got.values.length }, (_, i) => op(av[i % av.length]!, bv[i % bv.length]!));
          expectClose(got.values, want, `${kernel} ${a.shape} ${b.shape}`);
        }
      }
      tf.dispose([x, y, z]);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('Sum and Mean over leading axes of large tensors (pooled on wasm), NaN and integers included', () => {
      for (const [shape, axes, keepDims] of [
        [[64, 14, 14, 6], [0, 1, 2], false],
        [[64, 14, 14, 6], [0, 1], true],
        [[16, 1024, 3], [0, 1], false],
        [[4096, 5], [0], false],
        // 3·5·7·... rows: no power-of-two window, tfjs' kernel.
        [[105, 3, 3, 20], [0, 1, 2], false],
      ] as [number[], number[], boolean][]) {
        const size = sizeOf(shape);
        const cols = sizeOf(shape.slice(axes.length));
        const rows = size / cols;
        for (const data of ['random', 'ones', 'nan'] as const) {
          const xv = data === 'ones' ? new Float32Array(size).fill(1) : randomData(size, 26);
          if (data === 'nan') xv[cols + 1] = NaN;
          const sum = new Float64Array(cols);
          for (let i = 0; i < size; i++) sum[i % cols] = sum[i % cols]! + xv[i]!;
          const before = tf.memory().numTensors;
          const dataBefore = dataIds();
          const x = tf.tensor(xv, shape);
          const outShape = keepDims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.slice(axes.length);
          for (const [kernel, want] of [
            ['Sum', sum],
            ['Mean', sum.map((v) => v / rows)],
          ] as const) {
            const got = runKernel(kernel, { x }, { axis: axes, keepDims });
            const label = `${kernel} ${JSON.stringify(shape)} ${data}`;
            expect(got.shape, label).toEqual(outShape);
            if (data === 'ones') expect(Array.from(got.values), label).toEqual(Array.from(want, (v) => Math.fround(v)));
            else if (data === 'nan') expect(Number.isNaN(got.values[1]!) && got.values.filter(Number.isNaN).length === 1, label).toBe(true);
            else expectClose(got.values, want, label);
          }
          x.dispose();
          expect(tf.memory().numTensors).toBe(before);
          expect(dataIds()).toBe(dataBefore);
        }
      }
    });

    it('Conv2DBackpropFilter / Conv2DBackpropInput match the definition', () => {
      for (const c of cases(false)) checkCase(c, false, backendName === 'cpu');
    });

    it('DepthwiseConv2dNativeBackpropFilter / Input match the definition', () => {
      for (const c of cases(true)) checkCase(c, true, backendName === 'cpu');
    });

    it('Conv2DBackpropFilter matches the definition for few input channels (im2col path)', () => {
      for (const c of cases(false)) checkCase({ ...c, label: `${c.label} ci1`, x: [2, 7, 9, 1], outC: 32 }, false, false);
    });

    it('handles larger channel counts and batch 1', () => {
      checkCase({ label: 'wide', x: [1, 6, 5, 16], k: [3, 3], outC: 8, s: [1, 1], d: [1, 1], pad: 'same' }, false, false);
      checkCase({ label: 'wide dw', x: [1, 6, 5, 16], k: [3, 3], outC: 1, s: [2, 2], d: [1, 1], pad: 'same' }, true, false);
    });

    it('MaxPoolGrad routes dy to the first maximum of each window', () => {
      const pools: { x: [number, number, number, number]; f: [number, number]; s: [number, number]; pad: 'same' | 'valid' | number }[] = [
        { x: [2, 7, 9, 3], f: [2, 2], s: [2, 2], pad: 'valid' },
        { x: [2, 7, 9, 3], f: [2, 2], s: [2, 2], pad: 'same' },
        // Even sizes: windows tile the image (the unrolled 2×2 path).
        { x: [2, 8, 6, 5], f: [2, 2], s: [2, 2], pad: 'valid' },
        { x: [1, 4, 10, 17], f: [2, 2], s: [2, 2], pad: 'same' },
        { x: [2, 7, 9, 3], f: [3, 3], s: [2, 2], pad: 'same' },
        { x: [1, 8, 6, 5], f: [3, 2], s: [1, 2], pad: 'same' },
        // Numeric padding only with square windows: tfjs sizes it from the window height alone.
        { x: [1, 8, 7, 5], f: [3, 3], s: [2, 2], pad: 1 },
      ];
      for (const p of pools) {
        for (const ties of [false, true]) {
          // Few distinct values make ties common, as after quantization or relu.
          const xv = randomData(sizeOf(p.x), 11).map((v) => (ties ? Math.round(v * 2) : v));
          const before = tf.memory().numTensors;
          const dataBefore = dataIds();
          const x = tf.tensor4d(xv, p.x);
          const y = tf.maxPool(x, p.f, p.s, p.pad);
          const dy = tf.tensor4d(randomData(y.size, 12), y.shape as [number, number, number, number]);
          const got = runKernel('MaxPoolGrad', { dy, input: x, output: y }, { filterSize: p.f, strides: p.s, pad: p.pad });
          const pooled = y.dataSync();
          const [n, h, w, c] = p.x;
          const [, oh, ow] = y.shape;
          const top = p.pad === 'valid' ? 0 : p.pad === 'same' ? Math.floor(Math.max(0, (oh! - 1) * p.s[0] + p.f[0] - h) / 2) : p.pad;
          const left = p.pad === 'valid' ? 0 : p.pad === 'same' ? Math.floor(Math.max(0, (ow! - 1) * p.s[1] + p.f[1] - w) / 2) : p.pad;
          const dyv = dy.dataSync();
          const want = new Float64Array(sizeOf(p.x));
          for (let b = 0; b < n; b++)
            for (let r = 0; r < oh!; r++)
              for (let q = 0; q < ow!; q++)
                for (let k = 0; k < c; k++) {
                  let best = -Infinity;
                  let at = -1;
                  for (let i = 0; i < p.f[0]; i++)
                    for (let j = 0; j < p.f[1]; j++) {
                      const row = r * p.s[0] - top + i;
                      const col = q * p.s[1] - left + j;
                      if (row < 0 || row >= h || col < 0 || col >= w) continue;
                      const idx = ((b * h + row) * w + col) * c + k;
                      if (xv[idx]! > best) {
                        best = xv[idx]!;
                        at = idx;
                      }
                    }
                  if (at >= 0) want[at] = want[at]! + dyv[((b * oh! + r) * ow! + q) * c + k]!;
                  expect(pooled[((b * oh! + r) * ow! + q) * c + k]! + 0, 'maxPool forward').toBe(Math.fround(best) + 0);
                }
          expectClose(got.values, want, `maxPoolGrad ${JSON.stringify(p)} ties=${ties}`);
          if (backendName === 'cpu') {
            // The reference above encodes tfjs' tie rule; check it against tfjs' own kernel too.
            const backend = tf.engine().backend;
            const info = originalKernel('MaxPoolGrad', 'cpu')!.kernelFunc({
              inputs: { dy, input: x, output: y } as never,
              backend,
              attrs: { filterSize: p.f, strides: p.s, pad: p.pad } as never,
            }) as tf.TensorInfo;
            expectClose(got.values, backend.readSync(info.dataId) as Float32Array, `maxPoolGrad vs tfjs cpu ${JSON.stringify(p)}`);
            backend.disposeData(info.dataId);
          }
          tf.dispose([x, y, dy]);
          expect(tf.memory().numTensors).toBe(before);
          expect(dataIds()).toBe(dataBefore);
        }
      }
    });

    it('Relu and Step follow tfjs, NaN included', () => {
      const xv = Float32Array.from([-2, -0.5, 0, 0.25, 3, NaN, -Infinity, Infinity]);
      const before = tf.memory().numTensors;
      const x = tf.tensor1d(xv);
      expect(Array.from(runKernel('Relu', { x }, {}).values)).toEqual([0, 0, 0, 0.25, 3, NaN, 0, Infinity]);
      expect(Array.from(runKernel('Step', { x }, { alpha: 0.1 }).values)).toEqual([0.1, 0.1, 0.1, 1, 1, NaN, 0.1, 1].map(Math.fround));
      x.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });

    it('Tile repeats blocks for every rank and dtype', () => {
      const cases: { shape: number[]; reps: number[]; dtype: 'float32' | 'int32' | 'bool' }[] = [
        { shape: [1, 1, 1, 5], reps: [3, 4, 2, 1], dtype: 'float32' },
        { shape: [2, 3], reps: [2, 3], dtype: 'float32' },
        { shape: [4], reps: [3], dtype: 'int32' },
        { shape: [2, 1, 3], reps: [1, 5, 2], dtype: 'bool' },
        { shape: [2, 3, 1, 2, 2], reps: [2, 1, 3, 1, 2], dtype: 'int32' },
        { shape: [3, 2], reps: [0, 2], dtype: 'float32' },
      ];
      for (const c of cases) {
        const src = randomData(sizeOf(c.shape), 13).map((v) => (c.dtype === 'float32' ? v : c.dtype === 'int32' ? Math.round(v * 10) : v > 0 ? 1 : 0));
        const outShape = c.shape.map((d, i) => d * c.reps[i]!);
        const want = new Float64Array(sizeOf(outShape));
        for (let o = 0; o < want.length; o++) {
          let rest = o;
          let idx = 0;
          let stride = 1;
          for (let d = outShape.length - 1; d >= 0; d--) {
            const coord = rest % outShape[d]!;
            rest = Math.floor(rest / outShape[d]!);
            idx += (coord % c.shape[d]!) * stride;
            stride *= c.shape[d]!;
          }
          want[o] = src[idx]!;
        }
        const before = tf.memory().numTensors;
        const x = tf.tensor(src, c.shape, c.dtype);
        const got = runKernel('Tile', { x }, { reps: c.reps });
        expect(got.shape).toEqual(outShape);
        expect(Array.from(got.values)).toEqual(Array.from(want));
        x.dispose();
        expect(tf.memory().numTensors).toBe(before);
      }
    });

    it('BatchMatMul matches the definition for transposes, batches and broadcasting', () => {
      const cases: { a: number[]; b: number[]; ta: boolean; tb: boolean }[] = [];
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          cases.push({ a: ta ? [7, 5] : [5, 7], b: tb ? [3, 7] : [7, 3], ta, tb });
          cases.push({ a: ta ? [4, 7, 5] : [4, 5, 7], b: tb ? [4, 3, 7] : [4, 7, 3], ta, tb });
          cases.push({ a: ta ? [4, 7, 5] : [4, 5, 7], b: tb ? [3, 7] : [7, 3], ta, tb });
          cases.push({ a: ta ? [1, 7, 5] : [1, 5, 7], b: tb ? [2, 3, 3, 7] : [2, 3, 7, 3], ta, tb });
        }
      for (const c of cases) {
        const av = randomData(sizeOf(c.a), 14);
        const bv = randomData(sizeOf(c.b), 15);
        const [m, k] = c.ta ? [c.a.at(-1)!, c.a.at(-2)!] : [c.a.at(-2)!, c.a.at(-1)!];
        const n = c.tb ? c.b.at(-2)! : c.b.at(-1)!;
        const batchA = sizeOf(c.a.slice(0, -2));
        const batchB = sizeOf(c.b.slice(0, -2));
        const batch = Math.max(batchA, batchB);
        const want = new Float64Array(batch * m * n);
        for (let t = 0; t < batch; t++)
          for (let i = 0; i < m; i++)
            for (let j = 0; j < n; j++) {
              let sum = 0;
              for (let q = 0; q < k; q++) {
                const ai = (batchA === 1 ? 0 : t) * m * k + (c.ta ? q * m + i : i * k + q);
                const bi = (batchB === 1 ? 0 : t) * k * n + (c.tb ? j * k + q : q * n + j);
                sum += av[ai]! * bv[bi]!;
              }
              want[(t * m + i) * n + j] = sum;
            }
        const before = tf.memory().numTensors;
        const dataBefore = dataIds();
        const a = tf.tensor(av, c.a);
        const b = tf.tensor(bv, c.b);
        const got = runKernel('BatchMatMul', { a, b }, { transposeA: c.ta, transposeB: c.tb });
        const outer = c.a.length >= c.b.length ? c.a.slice(0, -2) : c.b.slice(0, -2);
        expect(got.shape).toEqual([...outer, m, n]);
        expectClose(got.values, want, `matmul ${JSON.stringify(c)}`);
        tf.dispose([a, b]);
        expect(tf.memory().numTensors).toBe(before);
        expect(dataIds()).toBe(dataBefore);
      }
    });

    it('supports NCHW for Conv2DBackprop*', () => {
      const c: Case = { label: 'nchw', x: [2, 7, 9, 3], k: [3, 2], outC: 4, s: [2, 1], d: [1, 1], pad: 'same' };
      const g = geometry(7, 9, 3, 2, c.s, c.d, c.pad);
      const xv = randomData(2 * 7 * 9 * 3, 4);
      const fv = randomData(3 * 2 * 3 * 4, 5);
      const dyv = randomData(2 * g.outH * g.outW * 4, 6);
      const ref = referenceGrads(c, false, xv, fv, dyv, g);
      const before = tf.memory().numTensors;
      const xNhwc = tf.tensor4d(xv, [2, 7, 9, 3]);
      const dyNhwc = tf.tensor4d(dyv, [2, g.outH, g.outW, 4]);
      const x = tf.transpose(xNhwc, [0, 3, 1, 2]);
      const f = tf.tensor4d(fv, [3, 2, 3, 4]);
      const dy = tf.transpose(dyNhwc, [0, 3, 1, 2]);
      const common = { strides: c.s, pad: c.pad, dataFormat: 'NCHW' };
      const dw = runKernel('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: [3, 2, 3, 4] });
      const dxNchw = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f }, { ...common, inputShape: [2, 3, 7, 9] }) as tf.Tensor;
      const dx = tf.transpose(dxNchw, [0, 2, 3, 1]);
      expectClose(dw.values, ref.dw, 'nchw dW');
      expectClose(dx.dataSync(), ref.dx, 'nchw dX');
      tf.dispose([xNhwc, dyNhwc, x, f, dy, dxNchw, dx]);
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}

describe('registerFastGradients', () => {
  it('is idempotent and restorable', async () => {
    await useKernels('cpu');
    // cpu keeps tfjs' depthwise input gradient by default.
    const original = tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'cpu');
    expect(original).toBe(originalKernel('DepthwiseConv2dNativeBackpropInput', 'cpu'));
    expect(registerFastGradients('cpu', ['DepthwiseConv2dNativeBackpropInput'])).toEqual(['DepthwiseConv2dNativeBackpropInput']);
    const ours = tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'cpu');
    expect(replaced('DepthwiseConv2dNativeBackpropInput', 'cpu')).toBe(true);
    registerFastGradients('cpu', ['DepthwiseConv2dNativeBackpropInput']);
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'cpu')).toBe(ours);
    unregisterFastGradients('cpu');
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'cpu')).toBe(original);
    expect(replaced('Conv2DBackpropFilter', 'cpu')).toBe(false);
    expect(replaced('Conv2D', 'cpu')).toBe(false);
    registerFastGradients('cpu');
    expect(replaced('Conv2DBackpropFilter', 'cpu')).toBe(true);
  });

  it('leaves backends it does not know alone', () => {
    expect(registerFastGradients('webgl')).toEqual([]);
  });
});

describe('conv gradients through tf.grad', () => {
  interface GradCase {
    label: string;
    depthwise: boolean;
    x: [number, number, number, number];
    f: [number, number, number, number];
    s: [number, number];
    d: [number, number];
    pad: 'same' | 'valid' | number;
  }
  const gradCases: GradCase[] = [
    { label: 'conv same s1', depthwise: false, x: [2, 7, 9, 3], f: [3, 3, 3, 5], s: [1, 1], d: [1, 1], pad: 'same' },
    { label: 'conv same s2', depthwise: false, x: [2, 7, 9, 3], f: [3, 3, 3, 5], s: [2, 2], d: [1, 1], pad: 'same' },
    { label: 'conv valid 5x5', depthwise: false, x: [2, 9, 8, 2], f: [5, 5, 2, 4], s: [1, 1], d: [1, 1], pad: 'valid' },
    { label: 'conv dilated', depthwise: false, x: [2, 9, 8, 3], f: [3, 3, 3, 4], s: [1, 1], d: [2, 2], pad: 'same' },
    { label: 'depthwise same s2 m2', depthwise: true, x: [2, 7, 9, 3], f: [3, 3, 3, 2], s: [2, 2], d: [1, 1], pad: 'same' },
    { label: 'depthwise dilated', depthwise: true, x: [2, 9, 8, 3], f: [3, 3, 3, 1], s: [1, 1], d: [2, 2], pad: 'valid' },
  ];

  /** Gradients of sum(conv(x, f) * w) with respect to x and f; w makes dy non-uniform. */
  function grads(c: GradCase): { dx: Float32Array; df: Float32Array } {
    return tf.tidy(() => {
      const x = tf.tensor4d(randomData(sizeOf(c.x), 7), c.x);
      const f = tf.tensor4d(randomData(sizeOf(c.f), 8), c.f);
      const forward = (a: tf.Tensor4D, b: tf.Tensor4D) =>
        c.depthwise ? tf.depthwiseConv2d(a, b, c.s, c.pad, 'NHWC', c.d) : tf.conv2d(a, b, c.s, c.pad, 'NHWC', c.d);
      const yShape = forward(x, f).shape;
      const w = tf.tensor(randomData(sizeOf(yShape), 9), yShape);
      const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(forward(a as tf.Tensor4D, b as tf.Tensor4D), w)))([x, f]);
      return { dx: dx!.dataSync() as Float32Array, df: df!.dataSync() as Float32Array };
    });
  }

  it('wasm matches cpu and the definition, dilations included', async () => {
    for (const c of gradCases) {
      await useKernels('cpu');
      const cpu = grads(c);
      await useKernels('wasm');
      const before = tf.memory().numTensors;
      const wasm = grads(c);
      expect(tf.memory().numTensors).toBe(before);
      expectClose(wasm.dx, cpu.dx, `${c.label} dx`);
      expectClose(wasm.df, cpu.df, `${c.label} df`);
      const g = geometry(c.x[1], c.x[2], c.f[0], c.f[1], c.s, c.d, c.pad);
      const yShape = [c.x[0], g.outH, g.outW, c.depthwise ? c.f[2] * c.f[3] : c.f[3]];
      const ref = referenceGrads(
        { label: c.label, x: c.x, k: [c.f[0], c.f[1]], outC: c.f[3], s: c.s, d: c.d, pad: c.pad },
        c.depthwise,
        randomData(sizeOf(c.x), 7),
        randomData(sizeOf(c.f), 8),
        randomData(sizeOf(yShape), 9),
        g,
      );
      expectClose(wasm.dx, ref.dx, `${c.label} dx vs definition`);
      expectClose(wasm.df, ref.dw, `${c.label} df vs definition`);
    }
  });

  it('dilated gradients also work where tfjs kernels serve them (zero-inserted filter)', async () => {
    await useKernels('cpu');
    // tfjs' own cpu kernels: the gradient functions must fall back to a zero-inserted filter.
    unregisterFastGradients('cpu');
    expect(replaced('Conv2DBackpropInput', 'cpu')).toBe(false);
    for (const c of gradCases.filter((g) => g.d[0] > 1)) {
      const before = tf.memory().numTensors;
      const got = grads(c);
      expect(tf.memory().numTensors).toBe(before);
      const g = geometry(c.x[1], c.x[2], c.f[0], c.f[1], c.s, c.d, c.pad);
      const yShape = [c.x[0], g.outH, g.outW, c.depthwise ? c.f[2] * c.f[3] : c.f[3]];
      const ref = referenceGrads(
        { label: c.label, x: c.x, k: [c.f[0], c.f[1]], outC: c.f[3], s: c.s, d: c.d, pad: c.pad },
        c.depthwise,
        randomData(sizeOf(c.x), 7),
        randomData(sizeOf(c.f), 8),
        randomData(sizeOf(yShape), 9),
        g,
      );
      expectClose(got.dx, ref.dx, `${c.label} dx`);
      expectClose(got.df, ref.dw, `${c.label} df`);
    }
    registerFastGradients('cpu');
  });
});
