/**
 * `BatchMatMul` for wasm, routed onto the backend's fast path. The wasm kernel runs XNNPACK only
 * for a single untransposed product; with `transposeA`, `transposeB` or a batch it falls back to a
 * scalar loop (20x slower). Every dense-layer gradient is such a product (dW = xᵀ·dy, dx = dy·Wᵀ),
 * so we transpose operands explicitly, fold a batch into the rows when `b` is shared, and run
 * batches one by one otherwise, each through the original kernel's fast path.
 */
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { Scope } from './scope.js';
import { matMulArgs } from './scope.js';
import type { NamedAttrMap, NamedTensorInfoMap } from '@tensorflow/tfjs-core';

export function batchMatMul(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  // Anything unusual (other dtypes, partial broadcasting like [2,1] x [1,3]) keeps tfjs' kernel.
  const args = matMulArgs(inputs, attrs);
  if (args == null) return s.call(original, inputs, attrs);
  const { a, b, ta, tb, batchA, batchB, a0, a1, b0, b1, m, k, n, outShape } = args;
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
