import type { onnx } from 'onnx-proto';
import { OnnxError } from '../errors.js';

/** What part of a node an error is about, and where the node is in the file. */
export interface NodeErrorWhere {
  attribute?: string;
  input?: number;
  output?: number;
  /** Byte offset of the node's NodeProto, when the reader knows it. */
  offset?: number | undefined;
}

/** The name a message gives a node: its name, or its op type when it has none. */
export function nodeLabel(n: onnx.INodeProto): string {
  return n.name || `(unnamed ${n.opType || 'node'})`;
}

/**
 * Throws the `ONNX_INVALID` error of a node that breaks the ONNX spec: `node "conv1" (Conv),
 * attribute strides: must be INTS, got a STRING ("2") (node at byte offset 1234)`.
 */
export function nodeInvalid(n: onnx.INodeProto, message: string, where: NodeErrorWhere = {}): never {
  const node = nodeLabel(n);
  const op = n.opType ?? '';
  const part = where.attribute !== undefined ? `, attribute ${where.attribute}` : '';
  const at = where.offset !== undefined ? ` (node at byte offset ${where.offset})` : '';
  throw new OnnxError('ONNX_INVALID', `malformed ONNX model: node "${node}" (${op})${part}: ${message}${at}`, {
    field: `node "${node}"${part}`,
    node,
    op,
    ...(where.attribute !== undefined ? { attribute: where.attribute } : {}),
    ...(where.input !== undefined ? { input: where.input } : {}),
    ...(where.output !== undefined ? { output: where.output } : {}),
    ...(where.offset !== undefined ? { offset: where.offset } : {}),
  });
}
