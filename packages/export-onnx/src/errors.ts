import { TensorpressError, type ErrorCode } from '@tensorpress/core-tensor';

/** Where in an ONNX file an {@link OnnxError} is: every field is set where the reader knows it. */
export interface OnnxErrorDetails {
  /** The protobuf field or value at fault, as the message names it (`initializer "w"`, `GraphProto.output[0]`). */
  field?: string;
  /** The node's name (or its op type when it has none). */
  node?: string;
  /** The node's op type. */
  op?: string;
  /** The attribute at fault. */
  attribute?: string;
  /** The input port at fault. */
  input?: number;
  /** Byte offset in the file: of a protobuf decoding error, or of the node's NodeProto. */
  offset?: number;
  [key: string]: unknown;
}

/**
 * An error of the ONNX reader: `ONNX_INVALID` (the file breaks the ONNX spec: onnxruntime refuses
 * it too) or `ONNX_UNSUPPORTED` (valid ONNX that tensorpress cannot read). The node, op, attribute
 * and byte offset are in the message and, for programs, in these fields and `details`.
 */
export class OnnxError extends TensorpressError {
  readonly node: string | undefined;
  readonly op: string | undefined;
  readonly attribute: string | undefined;
  readonly offset: number | undefined;

  constructor(code: Extract<ErrorCode, 'ONNX_INVALID' | 'ONNX_UNSUPPORTED'>, message: string, details: OnnxErrorDetails = {}) {
    super(code, message, details);
    this.name = 'OnnxError';
    this.node = details.node;
    this.op = details.op;
    this.attribute = details.attribute;
    this.offset = details.offset;
  }
}
