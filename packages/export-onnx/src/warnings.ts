/**
 * A problem of an ONNX file that does not stop it being read, reported by `fromOnnx`'s
 * `onWarning` (by default printed with `console.warn`). Computing with such a tensor later is an
 * error (`NUMERIC_INVALID` from the executor, `toIntegerOps` and `checkParity`).
 */
export interface OnnxWarning {
  /**
   * `NONFINITE_VALUES`: a float initializer or Constant holds NaN or ±Inf.
   * `INVALID_SCALE`: a QuantizeLinear/DequantizeLinear scale holds zero, negative or non-finite values.
   */
  code: 'NONFINITE_VALUES' | 'INVALID_SCALE';
  /** What is wrong, naming the tensor (and node). */
  message: string;
  /** The tensor's name in the file. */
  tensor: string;
  /** The node that reads it, where one is known. */
  node?: string;
}
