import { AT, DT, proto } from './proto.js';

/** An ONNX attribute, tagged with its wire type. */
export type OAttr =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: readonly number[] }
  | { floats: readonly number[] }
  | { t: OTensor }
  /** An attribute copied as it was read (a kept node's own attributes). */
  | { proto: Record<string, unknown> };

/** An initializer or constant: dims, ONNX data type, little-endian raw bytes. */
export interface OTensor {
  name: string;
  dims: number[];
  dataType: number;
  raw: Uint8Array;
}

/** One ONNX node in the writer's working form. */
export interface ONode {
  name: string;
  opType: string;
  domain?: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, OAttr>;
}

/** A graph input or output. */
export interface OValueInfo {
  name: string;
  elemType: number;
  dims: (number | string)[];
}

/** A model in the writer's working form, before protobuf encoding. */
export interface OModel {
  opset: number;
  inputs: OValueInfo[];
  outputs: OValueInfo[];
  nodes: ONode[];
  initializers: Map<string, OTensor>;
  producer: string;
  /** Shapes of intermediate values the file declares (value_info): the outputs of kept nodes. */
  valueInfo?: OValueInfo[];
  /** Write float initializers as SparseTensorProto where that is smaller (ToOnnxOptions.sparseInitializers). */
  sparseInitializers?: boolean;
}

/** The IR version that goes with an opset (onnx/helper.py's table). */
export function irVersionFor(opset: number): number {
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

function attrProto(name: string, a: OAttr): Record<string, unknown> {
  if ('i' in a) return { name, type: AT.INT, i: a.i };
  if ('f' in a) return { name, type: AT.FLOAT, f: a.f };
  if ('s' in a) return { name, type: AT.STRING, s: new TextEncoder().encode(a.s) };
  if ('ints' in a) return { name, type: AT.INTS, ints: [...a.ints] };
  if ('floats' in a) return { name, type: AT.FLOATS, floats: [...a.floats] };
  if ('proto' in a) return { ...a.proto, name };
  return { name, type: AT.TENSOR, t: tensorProto(a.t) };
}

function tensorProto(t: OTensor): Record<string, unknown> {
  return { name: t.name, dims: t.dims, dataType: t.dataType, rawData: t.raw };
}

/**
 * A float initializer as a SparseTensorProto (non-zero values + their int64 linear indices, which
 * onnxruntime densifies on load), or undefined where that is not smaller than the dense tensor:
 * 12 bytes per non-zero against 4 per value, so above two thirds of zeros.
 */
function sparseProto(t: OTensor): Record<string, unknown> | undefined {
  if (t.dataType !== DT.FLOAT || t.raw.length % 4 !== 0) return undefined;
  const own = new Uint8Array(t.raw.length);
  own.set(t.raw);
  const v = new Float32Array(own.buffer);
  let nnz = 0;
  for (let i = 0; i < v.length; i++) if (v[i] !== 0 || Object.is(v[i], -0)) nnz++;
  if (nnz * 12 >= v.length * 4) return undefined;
  const values = new Float32Array(nnz);
  const indices = new BigInt64Array(nnz);
  let k = 0;
  for (let i = 0; i < v.length; i++) {
    if (v[i] === 0 && !Object.is(v[i], -0)) continue;
    values[k] = v[i]!;
    indices[k++] = BigInt(i);
  }
  return {
    values: { name: t.name, dims: [nnz], dataType: DT.FLOAT, rawData: new Uint8Array(values.buffer) },
    indices: { name: `${t.name}:indices`, dims: [nnz], dataType: DT.INT64, rawData: new Uint8Array(indices.buffer) },
    dims: t.dims,
  };
}

function valueInfo(v: OValueInfo): Record<string, unknown> {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: v.elemType,
        shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Serialises a working model with the generated protobufjs code. */
export function encodeModel(m: OModel): Uint8Array {
  const sparse = new Map<string, Record<string, unknown>>();
  if (m.sparseInitializers) {
    for (const t of m.initializers.values()) {
      const sp = sparseProto(t);
      if (sp) sparse.set(t.name, sp);
    }
  }
  const model = proto.ModelProto.create({
    irVersion: irVersionFor(m.opset),
    producerName: m.producer,
    producerVersion: '0.1.0',
    // onnxruntime's contrib ops (QLinearAdd, …) need their domain imported.
    opsetImport: [{ domain: '', version: m.opset }, ...(m.nodes.some((n) => n.domain === 'com.microsoft') ? [{ domain: 'com.microsoft', version: 1 }] : [])],
    graph: {
      name: 'tensorpress',
      node: m.nodes.map((n) => ({
        name: n.name,
        opType: n.opType,
        domain: n.domain ?? '',
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, a]) => attrProto(k, a)),
      })),
      initializer: [...m.initializers.values()].filter((t) => !sparse.has(t.name)).map(tensorProto),
      ...(sparse.size > 0 ? { sparseInitializer: [...sparse.values()] } : {}),
      input: m.inputs.map(valueInfo),
      output: m.outputs.map(valueInfo),
      ...(m.valueInfo && m.valueInfo.length > 0 ? { valueInfo: m.valueInfo.map(valueInfo) } : {}),
    } as never,
  });
  return proto.ModelProto.encode(model).finish();
}

/** Ops whose window attributes default to 1s (strides, dilations), 0s (pads) and 1 (group). */
const WINDOW_OPS = new Set(['Conv', 'ConvInteger', 'QLinearConv', 'MaxPool', 'AveragePool', 'QLinearAveragePool']);

const CONV_OPS = new Set(['Conv', 'ConvInteger', 'QLinearConv']);

/** The attributes of a window op without those that equal their ONNX default. */
function withoutDefaults(op: string, attrs: Readonly<Record<string, OAttr>>): Record<string, OAttr> {
  if (!WINDOW_OPS.has(op)) return { ...attrs };
  const out: Record<string, OAttr> = {};
  for (const [k, a] of Object.entries(attrs)) {
    const ints = 'ints' in a ? a.ints : undefined;
    if ((k === 'strides' || k === 'dilations') && ints?.every((v) => v === 1)) continue;
    if (k === 'pads' && ints?.every((v) => v === 0)) continue;
    if (k === 'group' && 'i' in a && a.i === 1) continue;
    // A convolution's kernel_shape is optional: it is the weight's spatial shape.
    if (k === 'kernel_shape' && CONV_OPS.has(op)) continue;
    out[k] = a;
  }
  return out;
}

/**
 * Renames every internal value, initializer and node to a short id, and leaves out what equals an
 * ONNX default (window strides and dilations of 1, zero pads, group 1, a convolution's kernel_shape):
 * on a
 * small model these are a noticeable share of the file (graph inputs and outputs keep their names). Node names stay
 * unique and non-empty: onnxruntime derives the names of fused nodes from them.
 */
export function compactNames(m: OModel): OModel {
  const keep = new Set([...m.inputs.map((v) => v.name), ...m.outputs.map((v) => v.name)]);
  const map = new Map<string, string>();
  const rename = (v: string): string => {
    if (v === '' || keep.has(v)) return v;
    let r = map.get(v);
    if (r === undefined) {
      r = map.size.toString(36);
      while (keep.has(r)) r = `_${r}`;
      map.set(v, r);
    }
    return r;
  };
  // (Leaving out uint8 zero points of 0, the default, would save a few more bytes, but
  // onnxruntime 1.30's QDQ fusion then fails with "two nodes with same node name".)
  const nodes = m.nodes.map((n, i) => ({ ...n, name: i.toString(36), inputs: n.inputs.map(rename), outputs: n.outputs.map(rename), attrs: withoutDefaults(n.opType, n.attrs) }));
  const initializers = new Map<string, OTensor>();
  for (const t of m.initializers.values()) {
    const name = rename(t.name);
    initializers.set(name, { ...t, name });
  }
  return { ...m, nodes, initializers, ...(m.valueInfo ? { valueInfo: m.valueInfo.map((v) => ({ ...v, name: rename(v.name) })) } : {}) };
}
