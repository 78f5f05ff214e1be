/**
 * `OnnxNode`: a node of an ONNX op the executor cannot run, kept verbatim in an imported graph
 * (its NodeProto, the constants it reads and its output shapes in attributes). The graph
 * validates, can be written back unchanged (toOnnx) and post-training quantized through
 * onnxruntime; running or training it in tensorpress raises a typed error naming the node.
 */
import { GraphError, strAttr, type DType, type Dim, type OpSpec } from '@tensorpress/core-tensor';
import { fail } from './helpers.js';

/** The op name of a kept ONNX node. */
export const ONNX_NODE_OP = 'OnnxNode';

/** Output infos of a kept node, as the reader stored them (`null` dims are unknown; `known` false: rank unknown too). */
export interface KeptOutput {
  shape: Dim[];
  dtype: DType;
  known: boolean;
}

/** The OnnxNode op. */
export const ONNX_NODE: OpSpec = {
  op: ONNX_NODE_OP,
  arity: [0, 1024],
  weightInputs: [],
  infer: (_ins, node) => {
    let outs: KeptOutput[];
    try {
      outs = JSON.parse(strAttr(node, 'outputs', '[]')) as KeptOutput[];
    } catch {
      fail(node, 'attribute outputs is not JSON', 'GRAPH_INVALID');
    }
    if (!Array.isArray(outs) || outs.length !== node.outputs.length) fail(node, `describes ${Array.isArray(outs) ? outs.length : 0} outputs for ${node.outputs.length}`, 'GRAPH_INVALID');
    return outs.map((o) => ({ name: '', shape: o.shape, dtype: o.dtype }));
  },
  forward: (_ins, node) => {
    const op = strAttr(node, 'onnxOp', '?');
    throw new GraphError(
      'UNSUPPORTED_OP',
      `node "${node.name}" (ONNX ${op}) cannot run in tensorpress: the op is kept from the ONNX file only to be written back. ` +
        'The way around: write the graph with toOnnx (the node is kept verbatim) and run it, or quantize it post-training, in onnxruntime ' +
        '(`tensorpress quantize model.onnx`), or replace the op in the model before exporting it',
      { node: node.name, op: node.op, onnxOp: op },
    );
  },
};
