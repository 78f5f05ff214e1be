/** Options of the ONNX writer, toOnnx. */
export interface ToOnnxOptions {
  /** ONNX opset, 13 to 21. Default 13, or the highest opset of the ONNX nodes kept verbatim in the graph (OnnxNode). */
  opset?: number;
  /**
   * How a quantized graph is written: `'qdq'` (default) keeps QuantizeLinear/DequantizeLinear pairs
   * around float ops, `'qoperator'` fuses them into QLinearConv, QLinearMatMul and
   * MatMulInteger/ConvInteger. Float graphs are the same either way.
   */
  format?: 'qdq' | 'qoperator';
  /** Declare a rank-4 graph input NHWC and add one leading Transpose to NCHW. Default false. */
  nhwcInput?: boolean;
  /**
   * Store int8 weight codes that fit in [-8, 7] as INT4 (opset 21 only). Default false: codes of
   * weights under 8 bits stay int8 with their scale (what onnxruntime runs everywhere).
   */
  int4?: boolean;
  /** producer_name of the model. Default `'tensorpress'`. */
  producer?: string;
  /**
   * Replace internal value, initializer and node names with short ids (graph inputs and outputs
   * keep theirs) and leave out window attributes equal to their ONNX default. Saves a few
   * kilobytes, which matters only for very small models. Default false.
   */
  compactNames?: boolean;
  /**
   * Write float initializers that are mostly zeros (sparse weights) as ONNX sparse initializers:
   * the non-zero values and their int64 linear indices, which onnxruntime densifies when it loads
   * the model. Only where that is smaller (above two thirds of zeros); the rest stay dense.
   * Default false.
   */
  sparseInitializers?: boolean;
}
