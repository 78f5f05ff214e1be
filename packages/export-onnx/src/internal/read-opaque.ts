/**
 * Nodes of ONNX ops the executor cannot run, kept verbatim (FromOnnxOptions.unsupportedOps
 * 'keep'): each becomes one core `OnnxNode` holding its NodeProto, the constants it reads (as
 * TensorProtos, so int64 and other types stay exact) and its output shapes from the file's
 * value_info. A value whose shape the file does not give makes its readers kept nodes too.
 */
import type { DType, Dim } from '@tensorpress/core-tensor';
import type { onnx } from 'onnx-proto';
import type { KeptOutput } from '../ops/opaque.js';
import { ONNX_NODE_OP } from '../ops/opaque.js';
import type { Konst } from './decode.js';
import { DT, proto } from './proto.js';
import type { ReadContext } from './read-context.js';

const DTYPES: Record<number, DType> = { [DT.FLOAT]: 'float32', [DT.INT8]: 'int8', [DT.UINT8]: 'uint8', [DT.INT32]: 'int32' };

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/** A constant as an encoded TensorProto (raw little-endian data). */
export function konstProto(name: string, k: Konst): Uint8Array {
  let dataType: number;
  let raw: Uint8Array;
  switch (k.dtype) {
    case 'int64': {
      const v = BigInt64Array.from(k.data as (number | null)[], (x) => BigInt(x ?? -1));
      dataType = DT.INT64;
      raw = new Uint8Array(v.buffer);
      break;
    }
    default: {
      const d = k.data as Float32Array | Int32Array | Int8Array | Uint8Array;
      dataType = { float32: DT.FLOAT, int32: DT.INT32, int8: DT.INT8, uint8: DT.UINT8 }[k.dtype];
      raw = new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
    }
  }
  return proto.TensorProto.encode({ name, dims: k.dims, dataType, rawData: raw }).finish();
}

/** Shapes and dtypes the file declares (value_info and graph outputs), by value name. */
export function declaredInfos(g: onnx.IGraphProto): Map<string, KeptOutput> {
  const out = new Map<string, KeptOutput>();
  for (const vi of [...(g.valueInfo ?? []), ...(g.output ?? [])]) {
    const tt = vi.type?.tensorType;
    const dtype = DTYPES[tt?.elemType ?? 0];
    if (!vi.name || !tt || !dtype || !tt.shape) continue;
    const shape: Dim[] = (tt.shape.dim ?? []).map((d) => (d.dimValue !== undefined && d.dimValue !== null && !(d.dimParam && !d.dimValue) ? Number(d.dimValue) : null));
    out.set(vi.name, { shape, dtype, known: true });
  }
  return out;
}

/** Emits file node `n` as a kept `OnnxNode`; its inputs are taken in the file's layout. */
export function keepNode(r: ReadContext, n: onnx.INodeProto, declared: ReadonlyMap<string, KeptOutput>, opset: number): void {
  const consts: Record<string, string> = {};
  const inputs = (n.input ?? []).map((v, i) => {
    if (!v) return '';
    const k = r.konst(v);
    if (k) {
      consts[String(i)] = base64(konstProto(v, k));
      return '';
    }
    if (r.deferredDq.has(v)) return r.dqWeight(v, 'none').name;
    return r.asFile(r.val(v)).name;
  });
  const outs = (n.output ?? []).map((o) => declared.get(o) ?? { shape: [], dtype: 'float32' as const, known: false });
  const outputs = (n.output ?? []).map((o, i) => o || r.unique(`${n.name || n.opType}.unused${i}`));
  for (const o of outputs) r.names.add(o);
  const node = base64(proto.NodeProto.encode(n).finish());
  const infos = r.emitCore({
    name: r.unique(n.name || `${n.opType}_${r.nodes.length}`),
    op: ONNX_NODE_OP,
    inputs,
    outputs,
    attrs: { onnxOp: n.opType ?? '', node, consts: JSON.stringify(consts), outputs: JSON.stringify(outs), opset },
  });
  infos.forEach((info, i) => {
    r.vals.set(outputs[i]!, { name: info.name, layout: 'file', info });
    if (!outs[i]!.known) r.unknownShapes.add(outputs[i]!);
  });
}
