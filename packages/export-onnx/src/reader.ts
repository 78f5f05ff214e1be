import { readFile, stat } from 'node:fs/promises';
import {
  TensorpressError,
  createGraph,
  getOp,
  type AttrValue,
  type Dim,
  type DType,
  type Graph,
  type Node,
  type Param,
  type ParamData,
  type TensorInfo,
} from '@tensorpress/core-tensor';
import { checkDims, decodeModel, decodeTensor, invalid, type Konst, type TensorContext } from './internal/decode.js';
import { expandQOperator } from './internal/qoperator-read.js';
import type { onnx } from 'onnx-proto';
import { AT, DT, toNum } from './internal/proto.js';
import {
  NCHW_TO_NHWC,
  NHWC_TO_NCHW,
  OIHW_TO_HWIO,
  chwRowsFromHwc,
  gatherRows,
  invertIndex,
  nchwAxisToNhwc,
  permuteShape,
  transposeData,
} from './layout.js';
import { DEFAULT_READ_LIMITS, type ReadLimits } from './limits.js';

/** Options of {@link fromOnnx} and {@link readOnnx}. */
export interface FromOnnxOptions {
  /** Bounds on the untrusted bytes (merged over {@link DEFAULT_READ_LIMITS}). */
  limits?: Partial<ReadLimits>;
  /**
   * Allow tensors stored as external data, read only from files inside this folder. Default:
   * external data is refused.
   */
  externalDataDir?: string;
}

type Layout = 'nhwc' | 'file';
interface Val {
  name: string;
  layout: Layout;
  info: TensorInfo;
  /** Set on a 2-D value made by flattening an NHWC map whose consumers read rows in H,W,C order. */
  flat?: { h: number; w: number; c: number };
}
type Transform = 'none' | 'conv' | 'gemmT' | 'bcast4';

interface Unsupported {
  node: string;
  op: string;
  why: string;
}

const UNARY = new Set(['Relu', 'Sigmoid', 'Tanh', 'LeakyRelu', 'HardSigmoid', 'HardSwish', 'Identity']);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div']);
/** Every op type the reader converts (some only in the forms their error messages name). */
const SUPPORTED = new Set([
  ...UNARY,
  ...BINARY,
  'Constant',
  'Conv',
  'Gemm',
  'MatMul',
  'BatchNormalization',
  'Dropout',
  'Clip',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'ReduceMean',
  'Flatten',
  'Reshape',
  'Transpose',
  'Concat',
  'Split',
  'Slice',
  'Softmax',
  'Pad',
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'Shape',
  'Gather',
  'Unsqueeze',
  'Squeeze',
  'Cast',
]);

class Skip extends Error {
  constructor(readonly why: string) {
    super(why);
  }
}

function skip(why: string): never {
  throw new Skip(why);
}

function attrValue(a: onnx.IAttributeProto, field: string): AttrValue | Konst | undefined {
  switch (a.type) {
    case AT.FLOAT:
      return a.f ?? 0;
    case AT.INT:
      return toNum(a.i ?? 0, field);
    case AT.STRING:
      return new TextDecoder().decode(a.s ?? new Uint8Array());
    case AT.FLOATS:
      return [...(a.floats ?? [])];
    case AT.INTS:
      return (a.ints ?? []).map((v, i) => toNum(v, `${field}[${i}]`));
    case AT.STRINGS:
      return (a.strings ?? []).map((s) => new TextDecoder().decode(s));
    default:
      return undefined;
  }
}

/**
 * Reads ONNX bytes into a validated core graph (NCHW in the file becomes NHWC inside: conv weights
 * are transposed, channel axes remapped). Untrusted input is safe: sizes, dims and dtypes are
 * checked before allocation, external data is refused unless `externalDataDir` allows it, and any
 * malformed input raises `ONNX_INVALID` naming the field (and byte offset for protobuf errors).
 * Ops without a core equivalent raise one `ONNX_UNSUPPORTED` error that lists every such node.
 */
export function fromOnnx(bytes: Uint8Array, options: FromOnnxOptions = {}): Graph {
  const limits: ReadLimits = { ...DEFAULT_READ_LIMITS, ...options.limits };
  const model = decodeModel(bytes, limits);
  return new Reader(model, { limits, total: { n: 0 }, externalDataDir: options.externalDataDir }).read();
}

/** Reads an ONNX file (size-checked before it is read) into a core graph; see {@link fromOnnx}. */
export async function readOnnx(file: string, options: FromOnnxOptions = {}): Promise<Graph> {
  const limits: ReadLimits = { ...DEFAULT_READ_LIMITS, ...options.limits };
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (e) {
    throw new TensorpressError('IO_ERROR', `cannot read ${file}: ${(e as Error).message}`, { file });
  }
  if (size > limits.maxBytes) {
    throw new TensorpressError('ONNX_INVALID', `${file} is ${size} bytes, above the limit of ${limits.maxBytes} (limits.maxBytes)`, { file, size });
  }
  return fromOnnx(new Uint8Array(await readFile(file)), options);
}

class Reader {
  private readonly vals = new Map<string, Val>();
  private readonly konsts = new Map<string, Konst>();
  /** DequantizeLinear nodes of constants, materialised by their consumer. */
  private readonly deferredDq = new Map<string, onnx.INodeProto>();
  private readonly consumers = new Map<string, { node: onnx.INodeProto; input: number }[]>();
  private readonly nodes: Node[] = [];
  private readonly params = new Map<string, Param>();
  private readonly infos = new Map<string, TensorInfo>();
  private readonly names = new Set<string>();
  private readonly unsupported: Unsupported[] = [];
  private readonly poisoned = new Set<string>();
  private readonly layoutCache = new Map<string, Val>();
  private opset = 0;
  /** The node that writes each value (QOperator nodes expanded to QDQ). */
  private readonly producers = new Map<string, onnx.INodeProto>();

  constructor(
    private readonly model: onnx.ModelProto,
    private readonly ctx: TensorContext,
  ) {}

  private unique(base: string): string {
    let name = base || 'node';
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.add(name);
    return name;
  }

  read(): Graph {
    const g = this.model.graph;
    if (!g) invalid('ModelProto.graph', 'the model has no graph');
    const imports = this.model.opsetImport ?? [];
    const main = imports.find((o) => !o.domain || o.domain === 'ai.onnx');
    if (!main) invalid('ModelProto.opset_import', 'no opset for the default (ai.onnx) domain');
    this.opset = toNum(main.version ?? 0, 'ModelProto.opset_import.version');
    if (this.opset < 11 || this.opset > 21) {
      throw new TensorpressError('ONNX_UNSUPPORTED', `opset ${this.opset} is not supported (11 to 21)`, { field: 'opset_import', opset: this.opset });
    }
    const gnodes = g.node ?? [];
    if (gnodes.length > this.ctx.limits.maxNodes) invalid('GraphProto.node', `${gnodes.length} nodes, above limits.maxNodes ${this.ctx.limits.maxNodes}`);
    (g.initializer ?? []).forEach((t, i) => {
      const name = t.name ?? '';
      if (!name) invalid(`GraphProto.initializer[${i}]`, 'has no name');
      this.konsts.set(name, decodeTensor(t, `initializer "${name}"`, this.ctx));
      this.names.add(name);
    });
    // QOperator nodes (QLinearConv, MatMulInteger, …) are read in their QDQ form.
    const taken = new Set([...this.konsts.keys(), ...(g.input ?? []).map((i) => i.name ?? ''), ...gnodes.flatMap((n) => [...(n.output ?? []), n.name ?? ''])]);
    const expanded = expandQOperator(gnodes, this.konsts, taken);
    this.unsupported.push(...expanded.skipped);
    const order = this.topo(expanded.nodes);
    for (const n of order) {
      (n.input ?? []).forEach((v, i) => {
        if (!v) return;
        const cs = this.consumers.get(v);
        if (cs) cs.push({ node: n, input: i });
        else this.consumers.set(v, [{ node: n, input: i }]);
      });
      for (const o of n.output ?? []) if (o) this.producers.set(o, n);
    }
    // Every node of an unknown op is reported at once, before conversion stops at the first.
    const explained = new Set(expanded.skipped.map((u) => u.node));
    for (const n of order) {
      const op = n.opType ?? '';
      if (explained.has(n.name || op)) continue;
      if (n.domain && n.domain !== 'ai.onnx') this.unsupported.push({ node: n.name || op, op, why: `domain "${n.domain}" is not supported` });
      else if (!SUPPORTED.has(op)) this.unsupported.push({ node: n.name || op, op, why: 'no core equivalent' });
    }
    this.throwUnsupported();
    const inputs: TensorInfo[] = [];
    (g.input ?? []).forEach((vi, i) => {
      const name = vi.name ?? '';
      if (!name) invalid(`GraphProto.input[${i}]`, 'has no name');
      if (this.konsts.has(name)) return;
      const info = this.graphInput(vi, i);
      this.infos.set(info.name, info);
      inputs.push(info);
    });
    for (const n of order) {
      const op = n.opType ?? '';
      const name = n.name || op;
      if ((n.input ?? []).some((v) => this.poisoned.has(v))) {
        for (const o of n.output ?? []) this.poisoned.add(o);
        continue;
      }
      try {
        if (n.domain && n.domain !== 'ai.onnx') skip(`domain "${n.domain}" is not supported`);
        this.convert(n);
      } catch (e) {
        if (!(e instanceof Skip)) throw e;
        this.unsupported.push({ node: name, op, why: e.why });
        for (const o of n.output ?? []) this.poisoned.add(o);
      }
    }
    this.throwUnsupported();
    const outputs = (g.output ?? []).map((vi, i) => {
      const name = vi.name ?? '';
      const v = this.vals.get(name);
      if (!v) {
        if (this.konsts.has(name)) throw new TensorpressError('ONNX_UNSUPPORTED', `graph output "${name}" is a constant`, { field: `GraphProto.output[${i}]` });
        invalid(`GraphProto.output[${i}]`, `"${name}" is not produced by any node`);
      }
      return v.info.shape.length === 4 ? this.asNhwc(v).name : v.name;
    });
    if (outputs.length === 0) invalid('GraphProto.output', 'the graph has no outputs');
    return createGraph({ inputs, outputs, nodes: this.nodes, params: [...this.params.values()] });
  }

  private throwUnsupported(): void {
    if (this.unsupported.length === 0) return;
    const list = this.unsupported.map((u) => `"${u.node}" (${u.op}: ${u.why})`).join('; ');
    throw new TensorpressError('ONNX_UNSUPPORTED', `the model has ${this.unsupported.length} node(s) tensorpress cannot read: ${list}`, {
      nodes: this.unsupported,
    });
  }

  private topo(nodes: onnx.INodeProto[]): onnx.INodeProto[] {
    const producer = new Map<string, number>();
    nodes.forEach((n, i) => {
      for (const o of n.output ?? []) {
        if (!o) continue;
        if (producer.has(o) || this.konsts.has(o)) invalid(`node "${n.name ?? i}"`, `value "${o}" is produced twice`);
        producer.set(o, i);
      }
    });
    const state = new Uint8Array(nodes.length);
    const out: onnx.INodeProto[] = [];
    for (let r = 0; r < nodes.length; r++) {
      if (state[r]) continue;
      const stack: [number, number][] = [[r, 0]];
      state[r] = 1;
      while (stack.length > 0) {
        const top = stack[stack.length - 1]!;
        const ins = nodes[top[0]]!.input ?? [];
        if (top[1] < ins.length) {
          const p = producer.get(ins[top[1]++]!);
          if (p === undefined || state[p] === 2) continue;
          if (state[p] === 1) invalid(`node "${nodes[p]!.name ?? p}"`, 'the graph has a cycle');
          state[p] = 1;
          stack.push([p, 0]);
        } else {
          state[top[0]] = 2;
          out.push(nodes[top[0]]!);
          stack.pop();
        }
      }
    }
    return out;
  }

  private graphInput(vi: onnx.IValueInfoProto, i: number): TensorInfo {
    const field = `GraphProto.input[${i}] "${vi.name}"`;
    const tt = vi.type?.tensorType;
    if (!tt) invalid(field, 'is not a tensor');
    const dtype = this.dtypeOf(tt.elemType ?? 0, field);
    const dimsRaw = tt.shape?.dim ?? [];
    if (dimsRaw.length > this.ctx.limits.maxRank) invalid(field, `rank ${dimsRaw.length} is above limits.maxRank`);
    const dims: Dim[] = dimsRaw.map((d, k) => {
      if (d.dimValue === undefined || d.dimValue === null || (d.dimParam && !d.dimValue)) {
        if (k !== 0) throw new TensorpressError('ONNX_UNSUPPORTED', `${field}: only the first (batch) dimension may be dynamic`, { field });
        return null;
      }
      return checkDims([d.dimValue], field, this.ctx.limits)[0]!;
    });
    const name = vi.name!;
    this.names.add(name);
    if (dims.length === 4) {
      const cs = this.consumers.get(name) ?? [];
      const t = cs[0]?.node;
      const perm = t?.opType === 'Transpose' ? this.attrs(t)['perm'] : undefined;
      if (cs.length === 1 && Array.isArray(perm) && perm.join() === NHWC_TO_NCHW.join()) {
        // A file written with nhwcInput: the input already is NHWC; its Transpose becomes a no-op.
        const info = { name, shape: dims, dtype };
        this.vals.set(name, { name, layout: 'file', info });
        this.vals.set(t!.output![0]!, { name, layout: 'nhwc', info });
        this.skipNodes.add(t!);
        return info;
      }
      const info = { name, shape: permuteShape(dims, NCHW_TO_NHWC), dtype };
      this.vals.set(name, { name, layout: 'nhwc', info });
      return info;
    }
    const info = { name, shape: dims, dtype };
    this.vals.set(name, { name, layout: 'file', info });
    return info;
  }

  private readonly skipNodes = new Set<onnx.INodeProto>();

  private dtypeOf(elem: number, field: string): DType {
    switch (elem) {
      case DT.FLOAT:
        return 'float32';
      case DT.INT8:
        return 'int8';
      case DT.UINT8:
        return 'uint8';
      case DT.INT32:
        return 'int32';
      default:
        throw new TensorpressError('ONNX_UNSUPPORTED', `${field}: element type ${elem} is not supported`, { field });
    }
  }

  private attrs(n: onnx.INodeProto): Record<string, AttrValue | Konst> {
    const out: Record<string, AttrValue | Konst> = {};
    (n.attribute ?? []).forEach((a, i) => {
      const field = `node "${n.name}" attribute ${a.name ?? i}`;
      if (a.type === AT.TENSOR && a.t) out[a.name ?? ''] = decodeTensor(a.t, field, this.ctx);
      else {
        const v = attrValue(a, field);
        if (v !== undefined) out[a.name ?? ''] = v;
      }
    });
    return out;
  }

  // ------------------------------------------------------------ values

  private val(v: string): Val {
    const x = this.vals.get(v);
    if (x) return x;
    const k = this.konsts.get(v);
    if (k) {
      // A constant used as data: a plain parameter.
      const p = this.param(v, k, 'none');
      const val: Val = { name: p, layout: 'file', info: this.infos.get(p)! };
      this.vals.set(v, val);
      return val;
    }
    if (this.deferredDq.has(v)) return this.dqWeight(v, 'none');
    invalid(`value "${v}"`, 'is read but never defined');
  }

  private asNhwc(v: Val): Val {
    if (v.layout === 'nhwc' || v.info.shape.length !== 4) return v;
    return this.relayout(v, [...NCHW_TO_NHWC], 'nhwc');
  }

  private asFile(v: Val): Val {
    if (v.layout === 'file' || v.info.shape.length !== 4) return v;
    return this.relayout(v, [...NHWC_TO_NCHW], 'file');
  }

  private relayout(v: Val, perm: number[], layout: Layout): Val {
    const key = `${v.name}|${layout}`;
    const hit = this.layoutCache.get(key);
    if (hit) return hit;
    const out = this.unique(`${v.name}.${layout}`);
    this.emitCore({ name: this.unique(`${out}/transpose`), op: 'Transpose', inputs: [v.name], outputs: [out], attrs: { perm } });
    const r: Val = { name: out, layout, info: this.infos.get(out)! };
    this.layoutCache.set(key, r);
    return r;
  }

  private emitCore(n: Node): TensorInfo[] {
    const spec = getOp(n.op)!;
    const ins = n.inputs.map((v) => (v === '' ? undefined : this.infos.get(v)));
    const outs = spec.infer(ins, n, undefined as never).map((o, i) => ({ ...o, name: n.outputs[i]! }));
    outs.forEach((o) => this.infos.set(o.name, o));
    this.nodes.push(n);
    return outs;
  }

  /** Emits a core node whose outputs keep the file's value names. */
  private emit(n: onnx.INodeProto, op: string, inputs: string[], attrs: Record<string, AttrValue>, layout: Layout, outputs?: string[]): void {
    const outs = outputs ?? (n.output ?? []).map((o) => o);
    for (const o of outs) this.names.add(o);
    const infos = this.emitCore({ name: this.unique(n.name || `${op}_${this.nodes.length}`), op, inputs, outputs: outs, attrs });
    infos.forEach((info, i) => this.vals.set(outs[i]!, { name: info.name, layout, info }));
  }

  private param(base: string, k: Konst, t: Transform, extra?: (data: ParamData, shape: number[]) => { data: ParamData; shape: number[] }): string {
    const name = t === 'none' && !extra ? base : this.unique(`${base}.${t}`);
    if (this.params.has(name)) return name;
    this.names.add(name);
    let data: ParamData;
    let dtype: DType;
    if (k.dtype === 'int64') {
      const vals = k.data as (number | null)[];
      if (vals.some((v) => v === null || v < -(2 ** 31) || v >= 2 ** 31)) skip(`constant "${base}" holds int64 values out of the int32 range`);
      data = Int32Array.from(vals as number[]);
      dtype = 'int32';
    } else {
      data = k.data as ParamData;
      dtype = k.dtype;
    }
    let shape = [...k.dims];
    switch (t) {
      case 'conv':
        if (shape.length !== 4) skip(`weight "${base}" must be rank 4`);
        data = transposeData(data, shape, OIHW_TO_HWIO);
        shape = permuteShape(shape, OIHW_TO_HWIO);
        break;
      case 'gemmT':
        if (shape.length !== 2) skip(`weight "${base}" must be rank 2`);
        data = transposeData(data, shape, [1, 0]);
        shape = [shape[1]!, shape[0]!];
        break;
      case 'bcast4':
        if (shape.length > 4) skip(`constant "${base}" has rank above 4`);
        if (shape.length > 0) {
          const s4 = [...Array<number>(4 - shape.length).fill(1), ...shape];
          data = transposeData(data, s4, NCHW_TO_NHWC);
          shape = permuteShape(s4, NCHW_TO_NHWC);
        }
        break;
      case 'none':
        break;
    }
    if (extra) ({ data, shape } = extra(data, shape));
    const p: Param = { name, shape, dtype, data, trainable: dtype === 'float32' };
    this.params.set(name, p);
    this.infos.set(name, { name, shape, dtype });
    return name;
  }

  private konst(v: string): Konst | undefined {
    return v ? this.konsts.get(v) : undefined;
  }

  /** Known int values of a constant (shape folding); null entries are run-time sizes. */
  private ints(v: string, what: string): (number | null)[] {
    const k = this.konst(v);
    if (!k) skip(`${what} must be a constant`);
    return k.dtype === 'int64' ? (k.data as (number | null)[]) : Array.from(k.data as ArrayLike<number>);
  }

  private knownInts(v: string, what: string): number[] {
    const xs = this.ints(v, what);
    if (xs.some((x) => x === null)) skip(`${what} depends on the run-time batch size`);
    return xs as number[];
  }

  private scalar(v: string | undefined, what: string): number | undefined {
    if (!v) return undefined;
    const k = this.konst(v);
    if (!k) skip(`${what} must be a constant`);
    const x = (k.data as ArrayLike<number | null>)[0];
    if (x === null || x === undefined) skip(`${what} is empty or not constant`);
    return x;
  }

  /** A weight input: a constant (transformed) or a DequantizeLinear of one. */
  private weight(v: string, t: Transform, extra?: (data: ParamData, shape: number[]) => { data: ParamData; shape: number[] }): string {
    const k = this.konst(v);
    if (k) return this.param(v, k, t, extra);
    if (this.deferredDq.has(v)) return this.dqWeight(v, t, extra).name;
    skip('the weight must be a constant (initializer, Constant node or DequantizeLinear of one)');
  }

  private dqWeight(v: string, t: Transform, extra?: (data: ParamData, shape: number[]) => { data: ParamData; shape: number[] }): Val {
    const dq = this.deferredDq.get(v)!;
    const [x, s, z] = dq.input ?? [];
    const kx = this.konst(x!)!;
    const rank = kx.dims.length;
    const a = this.attrs(dq);
    let axis = typeof a['axis'] === 'number' ? a['axis'] : 1;
    if (axis < 0) axis += rank;
    if (t === 'conv') axis = OIHW_TO_HWIO.indexOf(axis as 0 | 1 | 2 | 3);
    else if (t === 'gemmT') axis = 1 - axis;
    else if (t === 'bcast4' && rank === 4) axis = nchwAxisToNhwc(axis);
    const inputs = [this.param(x!, kx, t, extra), this.param(s!, this.konst(s!) ?? skip('scale must be constant'), 'none')];
    if (z) inputs.push(this.param(z, this.konst(z) ?? skip('zero point must be constant'), 'none'));
    const out = this.unique(t === 'none' && !extra ? v : `${v}.${t}`);
    const scaleN = this.infos.get(inputs[1]!)!.shape.reduce<number>((p, d) => p * (d ?? 1), 1);
    this.emitCore({ name: this.unique(`${dq.name || 'dq'}.${t}`), op: 'DequantizeLinear', inputs, outputs: [out], attrs: scaleN > 1 ? { axis } : {} });
    const val: Val = { name: out, layout: 'file', info: this.infos.get(out)! };
    if (t === 'none' && !extra) this.vals.set(v, val);
    return val;
  }

  /** True when every consumer of `v` (through activation Q/DQ) is a Gemm/MatMul reading it at port 0 with a constant weight. */
  private feedsOnlyWeights(v: string): boolean {
    const cs = this.consumers.get(v) ?? [];
    if (cs.length === 0) return false;
    return cs.every(({ node, input }) => {
      const op = node.opType;
      if ((op === 'QuantizeLinear' || op === 'DequantizeLinear') && input === 0) return this.feedsOnlyWeights(node.output![0]!);
      if (input !== 0 || (op !== 'Gemm' && op !== 'MatMul')) return false;
      if (op === 'Gemm' && this.attrs(node)['transA']) return false;
      const w = node.input![1]!;
      if (this.konsts.has(w)) return this.konsts.get(w)!.dims.length === 2;
      const p = this.producers.get(w);
      return p?.opType === 'DequantizeLinear' && this.konsts.has(p.input![0]!);
    });
  }

  // ------------------------------------------------------------ ops

  private convert(n: onnx.INodeProto): void {
    if (this.skipNodes.has(n)) return;
    const op = n.opType ?? '';
    const ins = n.input ?? [];
    const outs = n.output ?? [];
    const a = this.attrs(n);
    const num = (k: string, d: number): number => (typeof a[k] === 'number' ? (a[k] as number) : d);
    const intList = (k: string): number[] | undefined => (Array.isArray(a[k]) ? (a[k] as number[]) : undefined);
    if (UNARY.has(op)) {
      if (op === 'Identity' && this.konsts.has(ins[0]!)) {
        this.konsts.set(outs[0]!, this.konsts.get(ins[0]!)!);
        return;
      }
      const x = this.val(ins[0]!);
      const attrs: Record<string, AttrValue> = {};
      if (op === 'LeakyRelu') attrs['alpha'] = num('alpha', 0.01);
      if (op === 'HardSigmoid') {
        attrs['alpha'] = num('alpha', 0.2);
        attrs['beta'] = num('beta', 0.5);
      }
      return this.emit(n, op, [x.name], attrs, x.layout);
    }
    if (BINARY.has(op)) return this.binary(n, op);
    switch (op) {
      case 'Constant':
        return this.constant(n, a);
      case 'Conv': {
        const x = this.asNhwc(this.val(ins[0]!));
        if (x.info.shape.length !== 4) skip('only 2-D convolutions are supported');
        const w = this.weight(ins[1]!, 'conv');
        const b = ins[2] ? this.bias(ins[2]) : undefined;
        const attrs: Record<string, AttrValue> = { group: num('group', 1) };
        for (const k of ['strides', 'dilations', 'pads', 'kernel_shape']) if (intList(k)) attrs[k] = intList(k)!;
        if (typeof a['auto_pad'] === 'string' && a['auto_pad'] !== 'NOTSET') attrs['auto_pad'] = a['auto_pad'];
        return this.emit(n, 'Conv', [x.name, w, ...(b ? [b] : [])], attrs, 'nhwc');
      }
      case 'Gemm':
      case 'MatMul':
        return this.gemm(n, op, a);
      case 'BatchNormalization': {
        if (outs.filter(Boolean).length > 1) skip('training-mode outputs are not supported');
        const x = this.asNhwc(this.val(ins[0]!));
        if (x.info.shape.length !== 4 && x.info.shape.length !== 2) skip('BatchNormalization needs a rank-2 or rank-4 input');
        const ps = [1, 2, 3, 4].map((i) => this.param(ins[i]!, this.konst(ins[i]!) ?? skip('BN parameters must be constants'), 'none'));
        for (const i of [2, 3]) {
          const p = this.params.get(ps[i]!)!;
          this.params.set(p.name, { ...p, trainable: false });
        }
        return this.emit(n, 'BatchNormalization', [x.name, ...ps], { epsilon: num('epsilon', 1e-5), momentum: num('momentum', 0.9) }, x.layout);
      }
      case 'Dropout': {
        if (outs.length > 1 && outs[1] && (this.consumers.get(outs[1]) ?? []).length > 0) skip('the dropout mask output is not supported');
        const x = this.val(ins[0]!);
        return this.emit(n, 'Identity', [x.name], {}, x.layout, [outs[0]!]);
      }
      case 'Clip': {
        const x = this.val(ins[0]!);
        const lo = this.opset >= 11 ? this.scalar(ins[1], 'Clip min') : num('min', -Infinity);
        const hi = this.opset >= 11 ? this.scalar(ins[2], 'Clip max') : num('max', Infinity);
        const attrs: Record<string, AttrValue> = {};
        if (lo !== undefined && Number.isFinite(lo)) attrs['min'] = lo;
        if (hi !== undefined && Number.isFinite(hi)) attrs['max'] = hi;
        return this.emit(n, 'Clip', [x.name], attrs, x.layout);
      }
      case 'MaxPool':
      case 'AveragePool': {
        if (outs.length > 1 && outs[1]) skip('the indices output is not supported');
        const x = this.asNhwc(this.val(ins[0]!));
        if (x.info.shape.length !== 4) skip('only 2-D pooling is supported');
        const attrs: Record<string, AttrValue> = {};
        for (const k of ['strides', 'dilations', 'pads', 'kernel_shape']) if (intList(k)) attrs[k] = intList(k)!;
        if (typeof a['auto_pad'] === 'string' && a['auto_pad'] !== 'NOTSET') attrs['auto_pad'] = a['auto_pad'];
        if (op === 'AveragePool') attrs['count_include_pad'] = num('count_include_pad', 0);
        if (num('ceil_mode', 0) !== 0 && !this.ceilIsFloor(x, attrs)) skip('ceil_mode=1 changes the output size here; re-export with ceil_mode=0');
        return this.emit(n, op, [x.name], attrs, 'nhwc');
      }
      case 'GlobalAveragePool':
      case 'GlobalMaxPool': {
        const x = this.asNhwc(this.val(ins[0]!));
        if (x.info.shape.length !== 4) skip('only rank-4 inputs are supported');
        return this.emit(n, op, [x.name], {}, 'nhwc');
      }
      case 'ReduceMean': {
        const x = this.val(ins[0]!);
        const axes = (intList('axes') ?? (ins[1] ? this.knownInts(ins[1], 'axes') : [])).map((d) => (d < 0 ? d + 4 : d)).sort();
        if (x.info.shape.length !== 4 || axes.join() !== '2,3') skip('only ReduceMean over the spatial axes [2, 3] of an NCHW map is supported');
        const keep = num('keepdims', 1) !== 0;
        const xn = this.asNhwc(x);
        if (keep) return this.emit(n, 'GlobalAveragePool', [xn.name], {}, 'nhwc');
        const mid = this.unique(`${outs[0]!}.gap`);
        this.emitCore({ name: this.unique(`${n.name || 'reducemean'}/gap`), op: 'GlobalAveragePool', inputs: [xn.name], outputs: [mid], attrs: {} });
        return this.emit(n, 'Flatten', [mid], { axis: 1 }, 'file');
      }
      case 'Flatten':
        return this.flatten(n, num('axis', 1));
      case 'Reshape':
        return this.reshape(n);
      case 'Transpose': {
        const k = this.konst(ins[0]!);
        const perm = intList('perm');
        if (k) {
          const p = perm ?? [...k.dims.keys()].reverse();
          if (k.dtype === 'int64') skip('transposing an int64 constant is not supported');
          this.konsts.set(outs[0]!, { dims: permuteShape(k.dims, p), dtype: k.dtype, data: transposeData(k.data as ParamData, k.dims, p) });
          return;
        }
        const x = this.val(ins[0]!);
        const p = perm ?? [...x.info.shape.keys()].reverse();
        const q = x.layout === 'nhwc' && x.info.shape.length === 4 ? p.map((i) => nchwAxisToNhwc(i)) : p;
        return this.emit(n, 'Transpose', [x.name], { perm: q }, 'file');
      }
      case 'Concat':
        return this.concat(n, num('axis', 0));
      case 'Split': {
        const x = this.val(ins[0]!);
        const rank = x.info.shape.length;
        let axis = num('axis', 0);
        if (axis < 0) axis += rank;
        const split = ins[1] ? this.knownInts(ins[1], 'split') : intList('split');
        const attrs: Record<string, AttrValue> = { axis: x.layout === 'nhwc' && rank === 4 ? nchwAxisToNhwc(axis) : axis };
        if (split) attrs['split'] = split;
        return this.emit(n, 'Split', [x.name], attrs, x.layout);
      }
      case 'Slice':
        return this.slice(n);
      case 'Softmax': {
        const x = this.val(ins[0]!);
        let axis = num('axis', this.opset >= 13 ? -1 : 1);
        const rank = x.info.shape.length;
        if (this.opset < 13 && axis !== rank - 1 && axis !== -1) skip('opset < 13 Softmax flattens; only the last axis is supported');
        if (x.layout === 'nhwc' && rank === 4) axis = nchwAxisToNhwc(axis);
        return this.emit(n, 'Softmax', [x.name], { axis }, x.layout);
      }
      case 'Pad': {
        const x = this.val(ins[0]!);
        const mode = typeof a['mode'] === 'string' ? a['mode'] : 'constant';
        let pads = ins[1] ? this.knownInts(ins[1], 'pads') : (intList('pads') ?? []);
        const value = ins[2] ? (this.scalar(ins[2], 'constant_value') ?? 0) : num('value', 0);
        if (ins[3]) skip('Pad with axes is not supported');
        if (x.layout === 'nhwc' && x.info.shape.length === 4) {
          pads = [...permuteShape(pads.slice(0, 4), NCHW_TO_NHWC), ...permuteShape(pads.slice(4), NCHW_TO_NHWC)];
        }
        return this.emit(n, 'Pad', [x.name], { pads, mode, value }, x.layout);
      }
      case 'QuantizeLinear':
      case 'DequantizeLinear':
        return this.qdq(n, op, a);
      case 'DynamicQuantizeLinear': {
        const x = this.val(ins[0]!);
        return this.emit(n, 'DynamicQuantizeLinear', [x.name], {}, x.layout);
      }
      case 'Shape':
      case 'Gather':
      case 'Unsqueeze':
      case 'Squeeze':
      case 'Cast':
        return this.shapeOp(n, op, a);
      default:
        skip('no core equivalent');
    }
  }

  private ceilIsFloor(x: Val, attrs: Record<string, AttrValue>): boolean {
    const k = (attrs['kernel_shape'] as number[] | undefined) ?? [1, 1];
    const s = (attrs['strides'] as number[] | undefined) ?? [1, 1];
    const p = (attrs['pads'] as number[] | undefined) ?? [0, 0, 0, 0];
    const sizes = [x.info.shape[1], x.info.shape[2]];
    return sizes.every((d, i) => {
      if (d === null || d === undefined) return false;
      const span = d + p[i]! + p[i + 2]! - k[i]!;
      return span % s[i]! === 0;
    });
  }

  private constant(n: onnx.INodeProto, a: Record<string, AttrValue | Konst>): void {
    const out = n.output?.[0] ?? '';
    const v = a['value'];
    let k: Konst;
    if (v && typeof v === 'object' && 'dims' in v) k = v;
    else if (typeof a['value_float'] === 'number') k = { dims: [], dtype: 'float32', data: Float32Array.of(a['value_float']) };
    else if (Array.isArray(a['value_floats'])) k = { dims: [a['value_floats'].length], dtype: 'float32', data: Float32Array.from(a['value_floats'] as number[]) };
    else if (typeof a['value_int'] === 'number') k = { dims: [], dtype: 'int64', data: [a['value_int']] };
    else if (Array.isArray(a['value_ints'])) k = { dims: [a['value_ints'].length], dtype: 'int64', data: [...(a['value_ints'] as number[])] };
    else skip('only tensor, float(s) and int(s) constants are supported');
    this.konsts.set(out, k);
  }

  private bias(v: string): string {
    const k = this.konst(v);
    if (k) {
      return this.param(v, k, 'none', (data, shape) => {
        const n = shape.reduce((p, d) => p * d, 1);
        if (shape.length > 1 && n === shape[shape.length - 1]) return { data, shape: [n] };
        return { data, shape };
      });
    }
    if (this.deferredDq.has(v)) return this.dqWeight(v, 'none').name;
    return this.val(v).name;
  }

  private gemm(n: onnx.INodeProto, op: string, a: Record<string, AttrValue | Konst>): void {
    const ins = n.input ?? [];
    const num = (k: string, d: number): number => (typeof a[k] === 'number' ? (a[k] as number) : d);
    if (num('transA', 0) !== 0) skip('transA=1 is not supported');
    const x = this.val(ins[0]!);
    const constW = this.konsts.has(ins[1]!) || this.deferredDq.has(ins[1]!);
    if (op === 'MatMul' && !constW) {
      const y = this.val(ins[1]!);
      return this.emit(n, 'MatMul', [this.asFile(x).name, this.asFile(y).name], {}, 'file');
    }
    if (x.info.shape.length !== 2) skip(`${op} with a constant weight needs a rank-2 input`);
    const flat = x.flat;
    const extra = flat
      ? (data: ParamData, shape: number[]): { data: ParamData; shape: number[] } => ({
          // The file's rows follow C,H,W order; the core Flatten yields H,W,C.
          data: gatherRows(data, shape[1]!, invertIndex(chwRowsFromHwc(flat.h, flat.w, flat.c))),
          shape,
        })
      : undefined;
    const w = this.weight(ins[1]!, op === 'Gemm' && num('transB', 0) !== 0 ? 'gemmT' : 'none', extra);
    const inputs = [x.name, w];
    if (op === 'Gemm' && ins[2]) {
      let c = this.bias(ins[2]);
      const out = this.infos.get(w)!.shape[1]!;
      const ci = this.infos.get(c)!;
      if (ci.shape.length === 0 || (ci.shape.length === 1 && ci.shape[0] === 1 && out !== 1)) {
        const p = this.params.get(c);
        if (!p || p.dtype !== 'float32') skip('a broadcast Gemm bias must be a float constant');
        c = this.param(`${c}.broadcast`, { dims: [out], dtype: 'float32', data: new Float32Array(out).fill(p.data[0]!) }, 'none');
      }
      inputs.push(c);
    }
    const attrs: Record<string, AttrValue> = op === 'Gemm' ? { alpha: num('alpha', 1), beta: num('beta', 1) } : {};
    return this.emit(n, op, inputs, attrs, 'file');
  }

  private binary(n: onnx.INodeProto, op: string): void {
    const [ia, ib] = (n.input ?? []) as [string, string];
    const out = n.output![0]!;
    const ka = this.konst(ia);
    const kb = this.konst(ib);
    if (ka && kb && (ka.dtype === 'int64' || kb.dtype === 'int64')) {
      const xa = ka.data as ArrayLike<number | null>;
      const xb = kb.data as ArrayLike<number | null>;
      const len = Math.max(xa.length, xb.length);
      const f = (p: number, q: number): number => (op === 'Add' ? p + q : op === 'Sub' ? p - q : op === 'Mul' ? p * q : Math.trunc(p / q));
      const data = Array.from({ length: len }, (_, i) => {
        const p = xa[xa.length === 1 ? 0 : i];
        const q = xb[xb.length === 1 ? 0 : i];
        return p === null || q === null || p === undefined || q === undefined ? null : f(p, q);
      });
      this.konsts.set(out, { dims: ka.dims.length >= kb.dims.length ? ka.dims : kb.dims, dtype: 'int64', data });
      return;
    }
    const va = ka ? undefined : this.val(ia);
    const vb = kb ? undefined : this.val(ib);
    const map = [va, vb].find((v) => v && v.info.shape.length === 4 && v.layout === 'nhwc');
    const side = (v: Val | undefined, k: Konst | undefined, name: string): string => {
      if (v) {
        if (map && v.info.shape.length === 4) return this.asNhwc(v).name;
        return v.name;
      }
      return this.param(name, k!, map ? 'bcast4' : 'none');
    };
    // A map mixed with non-constant data of a lower (non-scalar) rank broadcasts in NCHW terms.
    const lower = [va, vb].some((v) => v && v.info.shape.length > 0 && v.info.shape.length < 4);
    if (map && lower) {
      const fa = va ? this.asFile(va).name : this.param(ia, ka!, 'none');
      const fb = vb ? this.asFile(vb).name : this.param(ib, kb!, 'none');
      return this.emit(n, op, [fa, fb], {}, 'file');
    }
    return this.emit(n, op, [side(va, ka, ia), side(vb, kb, ib)], {}, map ? 'nhwc' : 'file');
  }

  private concat(n: onnx.INodeProto, axis: number): void {
    const ins = n.input ?? [];
    if (ins.every((v) => this.konsts.get(v)?.dtype === 'int64')) {
      const data = ins.flatMap((v) => [...(this.konsts.get(v)!.data as (number | null)[])]);
      this.konsts.set(n.output![0]!, { dims: [data.length], dtype: 'int64', data });
      return;
    }
    const vals = ins.map((v) => this.val(v));
    const rank = vals[0]!.info.shape.length;
    if (axis < 0) axis += rank;
    if (rank === 4 && vals.some((v) => v.layout === 'nhwc')) {
      return this.emit(n, 'Concat', vals.map((v) => this.asNhwc(v).name), { axis: nchwAxisToNhwc(axis) }, 'nhwc');
    }
    return this.emit(n, 'Concat', vals.map((v) => this.asFile(v).name), { axis }, 'file');
  }

  /** File-order dims of a value. */
  private fileDims(v: Val): Dim[] {
    return v.layout === 'nhwc' && v.info.shape.length === 4 ? permuteShape(v.info.shape, NHWC_TO_NCHW) : [...v.info.shape];
  }

  private flatten(n: onnx.INodeProto, axis: number): void {
    const x = this.val(n.input![0]!);
    const out = n.output![0]!;
    const s = x.info.shape;
    if (x.layout === 'nhwc' && s.length === 4 && (axis === 1 || axis === -3)) {
      if (s[1] === 1 && s[2] === 1) return this.emit(n, 'Flatten', [x.name], { axis: 1 }, 'file');
      if (this.feedsOnlyWeights(out)) {
        this.emit(n, 'Flatten', [x.name], { axis: 1 }, 'file');
        this.vals.get(out)!.flat = { h: s[1]!, w: s[2]!, c: s[3]! };
        return;
      }
    }
    return this.emit(n, 'Flatten', [this.asFile(x).name], { axis }, 'file');
  }

  private reshape(n: onnx.INodeProto): void {
    const [ix, is] = (n.input ?? []) as [string, string];
    const out = n.output![0]!;
    const target = this.ints(is, 'Reshape shape');
    const k = this.konst(ix);
    if (k) {
      const size = k.data.length;
      const known = target.map((d, i) => (d === 0 ? k.dims[i]! : d));
      if (known.some((d) => d === null)) skip('reshaping a constant to a run-time shape');
      const rest = (known as number[]).filter((d) => d !== -1).reduce((p, d) => p * d, 1);
      this.konsts.set(out, { dims: (known as number[]).map((d) => (d === -1 ? size / rest : d)), dtype: k.dtype, data: k.data });
      return;
    }
    const x = this.val(ix);
    const dims = this.fileDims(x);
    const shape = target.map((d, i) => {
      if (d !== null) return d;
      if (i < dims.length && dims[i] === null) return 0;
      return skip('the target shape depends on a run-time size other than the batch');
    });
    if (x.layout === 'nhwc' && x.info.shape.length === 4 && shape.length === 2) {
      const [h, w, c] = [x.info.shape[1]!, x.info.shape[2]!, x.info.shape[3]!];
      const per = h * w * c;
      const batchOk = shape[0] === 0 || shape[0] === -1 || (x.info.shape[0] !== null && shape[0] === x.info.shape[0]);
      const restOk = shape[1] === -1 || shape[1] === per;
      if (batchOk && restOk && shape[0] !== -1) {
        if (h * w === 1 || this.feedsOnlyWeights(out)) {
          this.emit(n, 'Flatten', [x.name], { axis: 1 }, 'file');
          if (h * w > 1) this.vals.get(out)!.flat = { h, w, c };
          return;
        }
      }
    }
    return this.emit(n, 'Reshape', [this.asFile(x).name], { shape }, 'file');
  }

  private slice(n: onnx.INodeProto): void {
    const ins = n.input ?? [];
    const starts = this.ints(ins[1]!, 'Slice starts');
    const ends = this.ints(ins[2]!, 'Slice ends');
    const k = this.konst(ins[0]!);
    const axesIn = ins[3] ? this.knownInts(ins[3], 'Slice axes') : undefined;
    const steps = ins[4] ? this.knownInts(ins[4], 'Slice steps') : undefined;
    if (steps && steps.some((s) => s !== 1)) skip('only step 1 is supported');
    if (k) {
      if (k.dims.length !== 1 || (axesIn && axesIn.some((x) => x !== 0 && x !== -1))) skip('only 1-D constant slices are folded');
      const d = k.data.length;
      const [s, e] = [starts[0], ends[0]];
      if (s === null || e === null || s === undefined || e === undefined) skip('slice bounds depend on run-time sizes');
      const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
      const data = Array.from(k.data as ArrayLike<number | null>).slice(clamp(s), clamp(e));
      this.konsts.set(n.output![0]!, { dims: [data.length], dtype: k.dtype, data: k.dtype === 'int64' ? data : (Float32Array.from(data as number[]) as never) });
      return;
    }
    let x = this.val(ins[0]!);
    const rank = x.info.shape.length;
    const axes = axesIn ?? starts.map((_, i) => i);
    axes.forEach((axisRaw, j) => {
      const s0 = starts[j];
      const e0 = ends[j];
      if (s0 === null || e0 === null || s0 === undefined || e0 === undefined) skip('slice bounds depend on run-time sizes');
      const fileAxis = axisRaw < 0 ? axisRaw + rank : axisRaw;
      const axis = x.layout === 'nhwc' && rank === 4 ? nchwAxisToNhwc(fileAxis) : fileAxis;
      const d = x.info.shape[axis];
      if (d === null || d === undefined) skip('slicing a dynamic axis');
      const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
      const [s, e] = [clamp(s0), Math.max(clamp(s0), clamp(e0))];
      if (s === e) skip('an empty slice');
      if (s === 0 && e === d) return;
      const sizes = [s, e - s, d - e].filter((z) => z > 0);
      const pick = s > 0 ? 1 : 0;
      const isLast = j === axes.length - 1;
      const outs = sizes.map((_, i) => (i === pick && isLast ? n.output![0]! : this.unique(`${n.output![0]!}.part${j}_${i}`)));
      const infos = this.emitCore({ name: this.unique(`${n.name || 'slice'}.${j}`), op: 'Split', inputs: [x.name], outputs: outs, attrs: { axis, split: sizes } });
      x = { name: outs[pick]!, layout: x.layout, info: infos[pick]! };
    });
    this.vals.set(n.output![0]!, x);
  }

  private qdq(n: onnx.INodeProto, op: string, a: Record<string, AttrValue | Konst>): void {
    const ins = n.input ?? [];
    if (op === 'DequantizeLinear' && this.konsts.has(ins[0]!)) {
      this.deferredDq.set(n.output![0]!, n);
      return;
    }
    const x = this.val(ins[0]!);
    const rank = x.info.shape.length;
    let axis = typeof a['axis'] === 'number' ? a['axis'] : 1;
    if (axis < 0) axis += rank;
    if (x.layout === 'nhwc' && rank === 4) axis = nchwAxisToNhwc(axis);
    // Scale and zero point: constants, or the run-time outputs of a DynamicQuantizeLinear.
    const params = ins.slice(1).filter(Boolean).map((v) => {
      const k = this.konst(v);
      if (k) return this.param(v, k, 'none');
      if (this.producers.get(v)?.opType !== 'DynamicQuantizeLinear') skip('scale and zero point must be constants or DynamicQuantizeLinear outputs');
      return this.val(v).name;
    });
    const scaleN = (this.infos.get(params[0]!) ?? this.val(ins[1]!).info).shape.reduce<number>((p, d) => p * (d ?? 1), 1);
    const out = this.emit(n, op, [x.name, ...params], scaleN > 1 ? { axis } : {}, x.layout);
    if (x.flat) this.vals.get(n.output![0]!)!.flat = x.flat;
    return out;
  }

  private shapeOp(n: onnx.INodeProto, op: string, a: Record<string, AttrValue | Konst>): void {
    const ins = n.input ?? [];
    const out = n.output![0]!;
    const list = (k: string): number[] | undefined => (Array.isArray(a[k]) ? (a[k] as number[]) : undefined);
    if (op === 'Shape') {
      const x = this.val(ins[0]!);
      let dims = this.fileDims(x);
      const r = dims.length;
      const norm = (v: number): number => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
      dims = dims.slice(norm(typeof a['start'] === 'number' ? a['start'] : 0), norm(typeof a['end'] === 'number' ? a['end'] : r));
      this.konsts.set(out, { dims: [dims.length], dtype: 'int64', data: dims });
      return;
    }
    const k = this.konst(ins[0]!);
    if (!k) {
      if (op === 'Cast' && a['to'] === DT.FLOAT) {
        const x = this.val(ins[0]!);
        if (x.info.dtype !== 'float32') skip('casting run-time integer tensors is not supported');
        this.vals.set(out, x);
        return;
      }
      if (op === 'Unsqueeze' || op === 'Squeeze') return this.squeezeData(n, op, list('axes'));
      skip(`${op} of a run-time tensor is not supported`);
    }
    const data = Array.from(k.data as ArrayLike<number | null>);
    switch (op) {
      case 'Gather': {
        const idx = this.knownInts(ins[1]!, 'Gather indices');
        const axis = typeof a['axis'] === 'number' ? a['axis'] : 0;
        if (k.dims.length > 1 || axis !== 0) skip('only 1-D constant Gather is folded');
        const picked = idx.map((i) => {
          const j = i < 0 ? i + data.length : i;
          if (j < 0 || j >= data.length) skip('Gather index out of range');
          return data[j]!;
        });
        const kind = k.dtype === 'int64' ? 'int64' : 'float32';
        const dims = this.konst(ins[1]!)!.dims.length === 0 ? [] : [picked.length];
        this.konsts.set(out, { dims, dtype: kind, data: kind === 'int64' ? picked : (Float32Array.from(picked as number[]) as never) });
        return;
      }
      case 'Unsqueeze':
      case 'Squeeze': {
        const axes = list('axes') ?? (ins[1] ? this.knownInts(ins[1], 'axes') : []);
        let dims = [...k.dims];
        if (op === 'Unsqueeze') {
          const r = dims.length + axes.length;
          for (const ax of axes.map((x) => (x < 0 ? x + r : x)).sort((p, q) => p - q)) dims.splice(ax, 0, 1);
        } else {
          const r = dims.length;
          const drop = new Set(axes.length > 0 ? axes.map((x) => (x < 0 ? x + r : x)) : dims.flatMap((d, i) => (d === 1 ? [i] : [])));
          dims = dims.filter((_, i) => !drop.has(i));
        }
        this.konsts.set(out, { ...k, dims });
        return;
      }
      case 'Cast': {
        const to = a['to'];
        if (to === DT.INT64 || to === DT.INT32) this.konsts.set(out, { dims: k.dims, dtype: 'int64', data: data.map((v) => (v === null ? null : Math.trunc(v))) });
        else if (to === DT.FLOAT) {
          if (data.some((v) => v === null)) skip('casting a run-time size to float');
          this.konsts.set(out, { dims: k.dims, dtype: 'float32', data: Float32Array.from(data as number[]) });
        } else skip(`Cast to type ${String(to)} is not supported`);
        return;
      }
      default:
        skip('no core equivalent');
    }
  }

  private squeezeData(n: onnx.INodeProto, op: string, axesAttr: number[] | undefined): void {
    const ins = n.input ?? [];
    const x = this.asFile(this.val(ins[0]!));
    const axes = axesAttr ?? (ins[1] ? this.knownInts(ins[1], 'axes') : []);
    let dims = [...x.info.shape];
    if (op === 'Unsqueeze') {
      const r = dims.length + axes.length;
      for (const ax of axes.map((v) => (v < 0 ? v + r : v)).sort((p, q) => p - q)) dims.splice(ax, 0, 1);
    } else {
      const r = dims.length;
      const drop = new Set(axes.length > 0 ? axes.map((v) => (v < 0 ? v + r : v)) : dims.flatMap((d, i) => (d === 1 ? [i] : [])));
      dims = dims.filter((_, i) => !drop.has(i));
    }
    const batchAt = x.info.shape[0] === null ? dims.indexOf(null) : -1;
    if (dims.some((d, i) => d === null && i !== batchAt) || (batchAt > 0)) skip('the batch axis would move');
    const shape = dims.map((d) => (d === null ? 0 : d));
    return this.emit(n, 'Reshape', [x.name], { shape }, 'file');
  }
}

