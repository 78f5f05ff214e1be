/**
 * `BatchMatMul` for wasm, routed onto the backend's fast path. The wasm kernel runs XNNPACK only
 * for a single untransposed product; with `transposeA`, `transposeB` or a batch it falls back to a
 * scalar loop (20x slower). Every dense-layer gradient is such a product (dW = xᵀ·dy, dx = dy·Wᵀ),
 * so we transpose operands explicitly, fold a batch into the rows when `b` is shared, and run
 * batches one by one otherwise, each through the original kernel's fast path.
 */
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { Scope } from './kernels-scope.js';
import { need } from './kernels-scope.js';
import type { NamedAttrMap, NamedTensorInfoMap } from '@tensorflow/tfjs-core';

const prod = (a: readonly number[]) => a.reduce((x, y) => x * y, 1);

export function batchMatMul(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const a = need(inputs, 'a');
  const b = need(inputs, 'b');
  const ta = attrs['transposeA'] === true;
  const tb = attrs['transposeB'] === true;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = prod(outerA);
  const batchB = prod(outerB);
  const sameOuter = outerA.length === outerB.length && outerA.every((d, i) => d === outerB[i]);
  // Anything unusual (other dtypes, partial broadcasting like [2,1] x [1,3]) keeps tfjs' kernel.
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2 || !(sameOuter || batchA === 1 || batchB === 1)) {
    return s.call(original, inputs, attrs);
  }
  const [a0, a1] = a.shape.slice(-2) as [number, number];
  const [b0, b1] = b.shape.slice(-2) as [number, number];
  const m = ta ? a1 : a0;
  const k = ta ? a0 : a1;
  const n = tb ? b0 : b1;
  if ((tb ? b1 : b0) !== k) throw new Error(`BatchMatMul: inner dimensions ${k} and ${tb ? b1 : b0} differ`);
  const outShape = [...(outerA.length >= outerB.length ? outerA : outerB), m, n];
  const plain = { transposeA: false, transposeB: false };

  let a3 = s.view(a, [batchA, a0, a1]);
  if (ta) a3 = s.run('Transpose', { x: a3 }, { perm: [0, 2, 1] });
  let b3 = s.view(b, [batchB, b0, b1]);
  if (tb) b3 = s.run('Transpose', { x: b3 }, { perm: [0, 2, 1] });

  if (batchB === 1) {
    // One product with the batch folded into the rows of a.
    const r = s.call(original, { a: s.view(a3, [1, batchA * m, k]), b: b3 }, plain);
    return s.view(r, outShape);
  }
  const batch = Math.max(batchA, batchB);
  const parts: TensorInfo[] = [];
  for (let i = 0; i < batch; i++) {
    const ai = batchA === 1 ? a3 : s.run('Slice', { x: a3 }, { begin: [i, 0, 0], size: [1, m, k] });
    const bi = s.run('Slice', { x: b3 }, { begin: [i, 0, 0], size: [1, k, n] });
    parts.push(s.call(original, { a: ai, b: bi }, plain));
  }
  const r = parts.length === 1 ? parts[0]! : s.run('Concat', parts, { axis: 0 });
  return s.view(r, outShape);
}
