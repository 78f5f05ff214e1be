/**
 * `BatchMatMul` for wasm and cpu, one kernel for both. Every dense-layer gradient is a product
 * with a transpose (dW = xᵀ·dy, dx = dy·Wᵀ), which both backends' own kernels do slowly: wasm runs
 * XNNPACK only for a single untransposed product and falls back to a scalar loop (20x slower) with
 * `transposeA`, `transposeB` or a batch; cpu indexes through variable strides.
 *
 * So every call becomes untransposed products `[rows, k] · [k, n]`: with `b` shared by every batch,
 * one product with a's batches stacked as rows; otherwise one per output batch (`a` broadcast
 * where it has one batch). Those run on the backend's fast path: on wasm its own kernel (XNNPACK),
 * operands transposed by its Transpose kernel; on cpu a register-blocked loop (dot-lanes.ts, 5-10x
 * tfjs'), operands transposed while they are copied to float64.
 */
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import { dotLanes } from './dot-lanes.js';
import type { DotWalk } from './dot-lanes.js';
import type { Scope } from './scope.js';
import { need } from './scope.js';

/** The untransposed products a call is split into. */
interface Plan extends MatMulArgs {
  /** How many products; each writes `rows` rows of the output, in order. */
  products: number;
  /** Rows of `a` (and of the output) per product. */
  rows: number;
}

/** `BatchMatMul` replacement; anything unusual (other dtypes, partial broadcasting) keeps `original`. */
export function batchMatMul(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const args = matMulArgs(inputs, attrs);
  if (args == null) return s.call(original, inputs, attrs);
  // b shared by every batch: one product with a's batches stacked as rows.
  const folded = args.batchB === 1;
  const plan: Plan = { ...args, products: folded ? 1 : Math.max(args.batchA, args.batchB), rows: folded ? args.batchA * args.m : args.m };
  return s.view(s.backendName === 'cpu' ? loopProducts(s, plan) : kernelProducts(s, plan, original), args.outShape);
}

/** The products on the backend's own kernel, fed only untransposed single products. */
function kernelProducts(s: Scope, p: Plan, original: KernelFunc): TensorInfo {
  const { a, b, ta, tb, batchA, batchB, a0, a1, b0, b1, m, k, n } = p;
  const plain = { transposeA: false, transposeB: false };
  let a3 = s.view(a, [batchA, a0, a1]);
  if (ta) a3 = s.run('Transpose', { x: a3 }, { perm: [0, 2, 1] });
  let b3 = s.view(b, [batchB, b0, b1]);
  if (tb) b3 = s.run('Transpose', { x: b3 }, { perm: [0, 2, 1] });
  if (p.products === 1) return s.call(original, { a: s.view(a3, [1, p.rows, k]), b: b3 }, plain);
  const parts: TensorInfo[] = [];
  for (let i = 0; i < p.products; i++) {
    const ai = batchA === 1 ? a3 : s.run('Slice', { x: a3 }, { begin: [i, 0, 0], size: [1, m, k] });
    const bi = s.run('Slice', { x: b3 }, { begin: [i, 0, 0], size: [1, k, n] });
    parts.push(s.call(original, { a: ai, b: bi }, plain));
  }
  return parts.length === 1 ? parts[0]! : s.run('Concat', parts, { axis: 0 });
}

/** The products as typed-array loops over float64 copies of the operands' rows. */
function loopProducts(s: Scope, p: Plan): TensorInfo {
  const { a, b, ta, tb, batchA, batchB, m, k, n, products, rows } = p;
  const { info, values } = s.output([products * rows, n], 'float32');
  const out = values as Float32Array;
  const av = s.values(a);
  const bv = s.values(b);
  const A = new Float64Array(rows * k);
  const B = new Float64Array(k * n);
  // Row i of A times B: one run of k steps down B's column block.
  const walk: DotWalk = { a: A, aStarts: new Int32Array(1), aStep: 1, aLane: 0, b: B, bStarts: new Int32Array(1), bStep: n, runs: 1, length: k };
  for (let t = 0; t < products; t++) {
    if (t === 0 || batchA > 1) {
      // a's batches for this product: all of them stacked when folded, else batch t (or the one).
      const first = products === 1 || batchA === 1 ? 0 : t;
      const stacked = products === 1 ? batchA : 1;
      for (let c = 0; c < stacked; c++) {
        const off = (first + c) * m * k;
        const to = c * m * k;
        if (ta) {
          for (let q = 0; q < k; q++) for (let i = 0; i < m; i++) A[to + i * k + q] = av[off + q * m + i]!;
        } else {
          A.set(av.subarray(off, off + m * k), to);
        }
      }
    }
    if (t === 0 || batchB > 1) {
      const off = (batchB === 1 ? 0 : t) * k * n;
      if (tb) {
        for (let j = 0; j < n; j++) for (let q = 0; q < k; q++) B[q * n + j] = bv[off + j * k + q]!;
      } else {
        B.set(bv.subarray(off, off + k * n));
      }
    }
    for (let i = 0; i < rows; i++) {
      walk.aStarts[0] = i * k;
      dotLanes(out, (t * rows + i) * n, n, walk);
    }
  }
  return info;
}

/** Operands and geometry of a float32 `BatchMatMul` that the replacement kernels handle. */
interface MatMulArgs {
  a: TensorInfo;
  b: TensorInfo;
  ta: boolean;
  tb: boolean;
  batchA: number;
  batchB: number;
  a0: number;
  a1: number;
  b0: number;
  b1: number;
  m: number;
  k: number;
  n: number;
  outShape: number[];
}

/**
 * Parses a `BatchMatMul` call; null where tfjs' own kernel should run (other dtypes, rank < 2,
 * partial broadcasting like [2,1] x [1,3]). Throws when the inner dimensions differ.
 */
function matMulArgs(inputs: NamedTensorInfoMap, attrs: NamedAttrMap): MatMulArgs | null {
  const prod = (v: readonly number[]) => v.reduce((x, y) => x * y, 1);
  const a = need(inputs, 'a');
  const b = need(inputs, 'b');
  const ta = attrs['transposeA'] === true;
  const tb = attrs['transposeB'] === true;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = prod(outerA);
  const batchB = prod(outerB);
  const sameOuter = outerA.length === outerB.length && outerA.every((d, i) => d === outerB[i]);
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2 || !(sameOuter || batchA === 1 || batchB === 1)) {
    return null;
  }
  const [a0, a1] = a.shape.slice(-2) as [number, number];
  const [b0, b1] = b.shape.slice(-2) as [number, number];
  const m = ta ? a1 : a0;
  const k = ta ? a0 : a1;
  const n = tb ? b0 : b1;
  if ((tb ? b1 : b0) !== k) throw new Error(`BatchMatMul: inner dimensions ${k} and ${tb ? b1 : b0} differ`);
  const outShape = [...(outerA.length >= outerB.length ? outerA : outerB), m, n];
  return { a, b, ta, tb, batchA, batchB, a0, a1, b0, b1, m, k, n, outShape };
}
