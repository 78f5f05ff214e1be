/**
 * @tensorpress/export-onnx: tensorpress graphs to and from ONNX (protobufjs + onnx-proto), FP32,
 * QDQ and QOperator, with parity checks and latency measurements in onnxruntime-node.
 */
export { toOnnx } from './writer.js';
export type { ToOnnxOptions } from './writer.js';
export { writeOnnx } from './io.js';
export { fromOnnx, readOnnx } from './reader.js';
export type { FromOnnxOptions } from './reader.js';
export { OnnxError } from './errors.js';
export type { OnnxErrorDetails } from './errors.js';
export type { OnnxWarning } from './warnings.js';
export { DEFAULT_READ_LIMITS } from './limits.js';
export type { ReadLimits } from './limits.js';
export { checkParity } from './parity.js';
export type { ParityOptions, ParityReport, OutputParity } from './parity.js';
export { toIntegerOps, clampFoldsIntoQuantizer, INTEGER_OPS } from './integer-ops.js';
export type { IntegerOpsResult, IntegerSkip } from './integer-ops.js';
export { registerIntegerOps } from './integer-kernels.js';
export { ortLatency } from './latency.js';
export type { LatencyOptions, LatencyResult } from './latency.js';
export { quantizeOnnx, scaleZeroPoint, roundHalfEven, ORT_PTQ_OPS } from './ort-ptq.js';
export { graphInputs } from './ort-inputs.js';
export type { GraphInput } from './ort-inputs.js';
export type { OrtPtqOptions, OrtPtqResult, QuantizedTensor, RangeObserver, RangeObserverFactory, CalibrationBatch } from './ort-ptq.js';
export { ortCompare } from './ort-compare.js';
export type { OrtCompareOptions, OrtCompareReport } from './ort-compare.js';
export { registerOnnxOps, ONNX_OPS } from './ops/index.js';
