/**
 * Folds the weight side of a stripped quantized graph into float parameters: a DequantizeLinear
 * whose inputs are all parameters (integer weights, scales, zero points, per tensor or per axis)
 * becomes a float32 parameter holding what the executor computes from them, bit for bit. tfjs-layers
 * has no integer weights, so this is how quantized weights reach a layers model.
 */
import { Graph, type Node, type Param, type ParamData } from '@tensorpress/core-tensor';

/**
 * `(float32(q) − zp) · scale` in the executor's order (cast, subtract, multiply), each step rounded
 * to float32 as tfjs does, broadcasting a per-axis scale and zero point along `axis`.
 */
function dequantize(q: ParamData, shape: readonly number[], scale: ParamData, zp: ParamData | undefined, axis: number): Float32Array {
  const out = new Float32Array(q.length);
  const perAxis = scale.length > 1;
  const dim = perAxis ? shape[axis]! : 1;
  let inner = 1;
  if (perAxis) for (let d = axis + 1; d < shape.length; d++) inner *= shape[d]!;
  for (let i = 0; i < q.length; i++) {
    const c = perAxis ? Math.floor(i / inner) % dim : 0;
    const shifted = Math.fround(Math.fround(q[i]!) - Math.fround(zp?.[c] ?? 0));
    out[i] = Math.fround(shifted * scale[c]!);
  }
  return out;
}

/** True for a DequantizeLinear of parameters only: the weight (or bias) side of a QDQ graph. */
function isWeightDequantize(graph: Graph, n: Node): boolean {
  return n.op === 'DequantizeLinear' && n.inputs.every((v, i) => (v === '' && i === 2) || graph.isParam(v));
}

/**
 * The graph with every weight DequantizeLinear replaced by a float32 parameter named after its
 * output (so consumers need no rewiring), and the integer weights, scales and zero points that
 * nothing else reads dropped. Other nodes, activation Q/DQ pairs included, are unchanged.
 */
export function foldWeightDequantize(graph: Graph): Graph {
  const folded = graph.nodes.filter((n) => isWeightDequantize(graph, n));
  if (folded.length === 0) return graph;
  const gone = new Set(folded.map((n) => n.name));
  const added: Param[] = folded.map((n) => {
    const q = graph.param(n.inputs[0]!)!;
    const scale = graph.param(n.inputs[1]!)!;
    const zp = n.inputs[2] ? graph.param(n.inputs[2]) : undefined;
    const rawAxis = typeof n.attrs['axis'] === 'number' ? n.attrs['axis'] : 1;
    const axis = rawAxis < 0 ? rawAxis + q.shape.length : rawAxis;
    return {
      name: n.outputs[0]!,
      shape: [...q.shape],
      dtype: 'float32',
      data: dequantize(q.data, q.shape, scale.data, zp?.data, axis),
      trainable: false,
    };
  });
  const nodes = graph.nodes.filter((n) => !gone.has(n.name));
  const read = new Set(nodes.flatMap((n) => n.inputs));
  for (const o of graph.outputs) read.add(o);
  const params = graph.params.filter((p) => read.has(p.name));
  return new Graph({ inputs: graph.inputs, outputs: graph.outputs, nodes, params: [...params, ...added] });
}
