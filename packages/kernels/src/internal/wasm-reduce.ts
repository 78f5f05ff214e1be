/**
 * `Sum` / `Mean` over leading axes for the wasm backend: the per-channel statistics of NHWC
 * tensors that batch norm computes twice forward and twice backward per layer.
 *
 * tfjs' wasm kernels first transpose the tensor so the reduced axes come last (~3 ms for
 * 64×28×28×16 on a 2-core x86). Here XNNPACK's average pooling reduces a `[1, R, 1, C]` view with
 * `R1 × 1` windows, R1 the largest power of two dividing R (at most 2^16), at memory speed
 * (~0.4 ms); the R/R1 partial results are summed in float64. Because R1 is a power of two the
 * pooled averages are exact block sums scaled by 2^-k, so integer data (masks, counts) sums as
 * exactly as tfjs' float32 loop does.
 *
 * XNNPACK clamps its outputs with pseudo-min/max, which turns NaN into -Infinity: any non-finite
 * partial result sends the whole reduction to tfjs' kernel instead.
 */
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { Scope } from './scope.js';
import { leadingReduceArgs } from './scope.js';

/** Below this many elements the kernel-call overhead outweighs the saved transpose. */
const MIN_SIZE = 16384;
/** Fewer rows per window than this leaves too many partial sums for the float64 pass. */
const MIN_WINDOW = 16;
const MAX_WINDOW = 1 << 16;

export function wasmLeadingReduce(mean: boolean) {
  return (s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo => {
    const args = leadingReduceArgs(inputs, attrs);
    if (args == null) return s.call(original, inputs, attrs);
    const { x, rows, cols, outShape } = args;
    // Largest power of two dividing rows, capped.
    const window = Math.min(MAX_WINDOW, rows & -rows);
    if (rows * cols < MIN_SIZE || window < MIN_WINDOW || cols < 1) return s.call(original, inputs, attrs);
    const blocks = rows / window;
    const pooled = s.run(
      'AvgPool',
      { x: s.view(x, [1, rows, 1, cols]) },
      { filterSize: [window, 1], strides: [window, 1], pad: 'valid' },
    );
    const { info, values: out } = s.output(outShape, 'float32');
    const part = s.values(pooled);
    const acc = new Float64Array(cols);
    for (let b = 0; b < blocks; b++) {
      const base = b * cols;
      for (let c = 0; c < cols; c++) acc[c] = acc[c]! + part[base + c]!;
    }
    const scale = mean ? window / rows : window;
    for (let c = 0; c < cols; c++) {
      const v = acc[c]!;
      // NaN inputs come back as -Infinity: let tfjs' kernel give the right answer.
      if (!Number.isFinite(v)) return s.call(original, inputs, attrs);
      out[c] = v * scale;
    }
    return info;
  };
}
