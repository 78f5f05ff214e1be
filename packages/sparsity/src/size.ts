import { dtypeBytes, type Graph } from '@tensorpress/core-tensor';

/** What {@link sparseSize} measures. */
export interface SparseSize {
  /** Every parameter stored densely: Σ n·bytes(dtype). */
  readonly denseBytes: number;
  /**
   * Every parameter in the cheaper of dense and bitmask + non-zeros: ⌈n/8⌉ bytes of presence bits
   * plus the non-zero values at their dtype's width (a tensor with few zeros stays dense).
   */
  readonly bitmaskBytes: number;
  /** Zero values over every parameter. */
  readonly zeros: number;
  /** Values over every parameter. */
  readonly values: number;
}

/**
 * The storage a graph's parameters need dense and as bitmask + non-zero values (the format of
 * sparse weight files: one presence bit per value, then the non-zeros in order). Integer weights
 * (int8 codes after quantization) count one byte per value, so stacking shows in both numbers.
 */
export function sparseSize(graph: Graph): SparseSize {
  let denseBytes = 0;
  let bitmaskBytes = 0;
  let zeros = 0;
  let values = 0;
  for (const p of graph.params) {
    const n = p.data.length;
    const b = dtypeBytes(p.dtype);
    let z = 0;
    for (let i = 0; i < n; i++) if (Number(p.data[i]) === 0) z++;
    const dense = n * b;
    denseBytes += dense;
    bitmaskBytes += Math.min(dense, Math.ceil(n / 8) + (n - z) * b);
    zeros += z;
    values += n;
  }
  return { denseBytes, bitmaskBytes, zeros, values };
}
