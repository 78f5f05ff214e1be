/** Bounds on untrusted ONNX bytes, checked before anything is allocated for them. */
export interface ReadLimits {
  /** Largest accepted file, in bytes. Default 512 MiB. */
  maxBytes: number;
  /** Most nodes in the graph. Default 100,000. */
  maxNodes: number;
  /**
   * Most elements in one tensor: an initializer or constant, a graph input, and every value the
   * reader infers (a run-time batch counted as 1). Default 2^28.
   */
  maxTensorElements: number;
  /** Most elements over all initializers and constants together. Default 2^29. */
  maxTotalElements: number;
  /** Largest single dimension. Default 2^24. */
  maxDim: number;
  /** Highest tensor rank. Default 8. */
  maxRank: number;
}

/** The default {@link ReadLimits}. */
export const DEFAULT_READ_LIMITS: Readonly<ReadLimits> = Object.freeze({
  maxBytes: 512 * 1024 * 1024,
  maxNodes: 100_000,
  maxTensorElements: 2 ** 28,
  maxTotalElements: 2 ** 29,
  maxDim: 2 ** 24,
  maxRank: 8,
});
