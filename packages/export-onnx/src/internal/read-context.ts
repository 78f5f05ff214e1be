/**
 * The reader's working state and the value helpers every op conversion uses: file values and
 * constants, the NCHW ↔ NHWC relayout of rank-4 maps, parameters with their layout transforms,
 * weights behind a DequantizeLinear, and the emission of core nodes with their inferred shapes.
 */
import {
  GraphError,
  TensorpressError,
  getOp,
  sizeOf,
  type AttrValue,
  type DType,
  type Node,
  type Param,
  type ParamData,
  type TensorInfo,
} from '@tensorpress/core-tensor';
import type { onnx } from 'onnx-proto';
import { NCHW_TO_NHWC, NHWC_TO_NCHW, OIHW_TO_HWIO, nchwAxisToNhwc, permuteShape, transposeData } from '../layout.js';
import type { OnnxWarning } from '../warnings.js';
import { decodeAttrs, invalid, type Konst, type TensorContext } from './decode.js';
import { nodeInvalid, nodeLabel, type NodeErrorWhere } from './node-error.js';

/** Where a value's axes are: NHWC (what core runs) or the file's own order (NCHW for maps). */
export type Layout = 'nhwc' | 'file';

/** A file value as converted: the core value that holds it, and its layout. */
export interface Val {
  name: string;
  layout: Layout;
  info: TensorInfo;
  /** Set on a 2-D value made by flattening an NHWC map whose consumers read rows in H,W,C order. */
  flat?: { h: number; w: number; c: number };
}

/** How a constant's data is laid out for its consumer (see {@link ReadContext.param}). */
export type Transform = 'none' | 'conv' | 'gemmT' | 'bcast4';

/** A rewrite of a parameter's data and shape after its transform (a Gemm weight's row order). */
export type ParamRewrite = (data: ParamData, shape: number[]) => { data: ParamData; shape: number[] };

/** A node the reader cannot convert, and why. */
export interface Unsupported {
  node: string;
  op: string;
  why: string;
}

/** Raised inside a conversion: the node is reported as unsupported (with the others), not fatal at once. */
export class Skip extends Error {
  constructor(readonly why: string) {
    super(why);
  }
}

/** Stops converting the current node, recording `why`. */
export function skip(why: string): never {
  throw new Skip(why);
}

/** A file node's attributes, tensors decoded (see {@link ReadContext.attrs}). */
export type NodeAttrs = Record<string, AttrValue | Konst>;

/** A numeric attribute, with a default. */
export function numAttrOf(a: NodeAttrs, k: string, d: number): number {
  return typeof a[k] === 'number' ? (a[k] as number) : d;
}

/** An integer-list attribute, if present. */
export function intListOf(a: NodeAttrs, k: string): number[] | undefined {
  return Array.isArray(a[k]) ? (a[k] as number[]) : undefined;
}

/** What a read needs besides the decoded model: limits and counters, node offsets, the warning sink. */
export interface ReadOptions extends TensorContext {
  /** Byte offsets of the file's nodes, in file order (see offsets.ts). */
  nodeOffsets?: readonly number[];
  onWarning: (w: OnnxWarning) => void;
  /** Sizes of named dynamic dimensions (FromOnnxOptions.dims). */
  dims?: Readonly<Record<string, number>> | undefined;
  /** What to do with nodes of ops the executor cannot run (FromOnnxOptions.unsupportedOps). */
  unsupportedOps?: 'keep' | 'error' | undefined;
  /** Shapes of graph inputs (FromOnnxOptions.inputShapes). */
  inputShapes?: Readonly<Record<string, readonly (number | null)[]>> | undefined;
}

/** The state of one `fromOnnx` call. */
export class ReadContext {
  readonly vals = new Map<string, Val>();
  readonly konsts = new Map<string, Konst>();
  /** DequantizeLinear nodes of constants, materialised by their consumer. */
  readonly deferredDq = new Map<string, onnx.INodeProto>();
  readonly consumers = new Map<string, { node: onnx.INodeProto; input: number }[]>();
  readonly nodes: Node[] = [];
  readonly params = new Map<string, Param>();
  readonly infos = new Map<string, TensorInfo>();
  readonly names = new Set<string>();
  readonly unsupported: Unsupported[] = [];
  /** Outputs of nodes that could not be converted: their readers are skipped silently. */
  readonly poisoned = new Set<string>();
  /** Outputs of kept (OnnxNode) nodes whose shape the file does not declare: their readers are kept too. */
  readonly unknownShapes = new Set<string>();
  private readonly layoutCache = new Map<string, Val>();
  opset = 0;
  /** The node that writes each value (QOperator nodes expanded to QDQ). */
  readonly producers = new Map<string, onnx.INodeProto>();
  /** File nodes that became no-ops (the Transpose after an NHWC graph input). */
  readonly skipNodes = new Set<onnx.INodeProto>();
  /** Byte offset of each node's NodeProto (QOperator expansions inherit their node's). */
  readonly offsets = new Map<onnx.INodeProto, number>();
  /** The node being converted: what {@link ReadContext.fail} names. */
  node: onnx.INodeProto | undefined;
  private readonly warned = new Set<string>();

  constructor(readonly ctx: ReadOptions) {}

  /** Throws the `ONNX_INVALID` error of node `n` (default: the node being converted). */
  fail(message: string, where: Omit<NodeErrorWhere, 'offset'> = {}, n: onnx.INodeProto | undefined = this.node): never {
    if (!n) invalid('graph', message);
    return nodeInvalid(n, message, { ...where, offset: this.offsets.get(n) });
  }

  /** Reports a warning once per tensor and code. */
  warn(w: OnnxWarning): void {
    const key = `${w.code}|${w.tensor}`;
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.ctx.onWarning(w);
  }

  /** Checks an axis against the rank of the value it applies to: [-rank, rank - 1] (`extra` 1 for Flatten's [-rank, rank]). */
  checkAxis(axis: number, rank: number, extra = 0, attribute = 'axis'): void {
    if (axis < -rank || axis >= rank + extra) this.fail(`${axis} is out of range for a rank-${rank} input ([${-rank}, ${rank - 1 + extra}])`, { attribute });
  }

  /** Warns when a float constant holds NaN or ±Inf (reading goes on: computing with it is the error). */
  warnNonFinite(what: string, name: string, k: Konst): void {
    if (k.dtype !== 'float32') return;
    const d = k.data as Float32Array;
    let nan = 0;
    let inf = 0;
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (Number.isNaN(v)) nan++;
      else if (v === Infinity || v === -Infinity) inf++;
    }
    if (nan + inf === 0) return;
    this.warn({ code: 'NONFINITE_VALUES', tensor: name, message: `${what} holds ${nan} NaN and ${inf} infinite value(s) of ${d.length}` });
  }

  /** Warns when a scale constant of a Q/DQ node holds zero, negative or non-finite values. */
  checkScale(name: string, k: Konst, n: onnx.INodeProto): void {
    if (k.dtype !== 'float32') return;
    const d = k.data as Float32Array;
    let bad = 0;
    let first = 0;
    for (let i = 0; i < d.length; i++) {
      if (!(d[i]! > 0 && d[i]! < Infinity)) {
        if (bad === 0) first = d[i]!;
        bad++;
      }
    }
    if (bad === 0) return;
    this.warn({
      code: 'INVALID_SCALE',
      tensor: name,
      node: nodeLabel(n),
      message: `quantization scale "${name}" of node "${nodeLabel(n)}" (${n.opType}) holds ${bad} value(s) that are not finite and positive (e.g. ${first}): quantizing or dequantizing with it gives no usable numbers`,
    });
  }

  /** `base`, or `base_1`, `base_2`, … : the first name no value, parameter or node has taken. */
  unique(base: string): string {
    let name = base || 'node';
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.add(name);
    return name;
  }

  /** A node's attributes (tensor attributes decoded and size-checked). */
  attrs(n: onnx.INodeProto): NodeAttrs {
    return decodeAttrs(n, this.ctx);
  }

  /** The value `v` as the graph sees it: a converted node output, or a constant (or a deferred DequantizeLinear of one) read as data. */
  val(v: string): Val {
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

  /** `v` in NHWC order (a rank-4 value in file order gets one Transpose, shared by every reader). */
  asNhwc(v: Val): Val {
    if (v.layout === 'nhwc' || v.info.shape.length !== 4) return v;
    return this.relayout(v, [...NCHW_TO_NHWC], 'nhwc');
  }

  /** `v` in the file's order (NCHW for a rank-4 map; one shared Transpose when it is NHWC). */
  asFile(v: Val): Val {
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

  /**
   * Appends a core node, inferring its outputs' shapes now (later nodes need them). Every output
   * is bounded by limits.maxTensorElements (a run-time batch counted as 1), so that a file whose
   * sizes multiply past what can be allocated is refused here, not when it runs.
   */
  emitCore(n: Node): TensorInfo[] {
    const spec = getOp(n.op)!;
    const ins = n.inputs.map((v) => (v === '' ? undefined : this.infos.get(v)));
    let inferred: { shape: readonly (number | null)[]; dtype: DType }[];
    try {
      inferred = spec.infer(ins, n, undefined as never);
    } catch (e) {
      if (!this.node) throw e;
      if (!(e instanceof TensorpressError)) this.fail(`its shapes cannot be inferred: ${(e as Error).message}`);
      // Core names its own node (a file node may become several): add the file node and where it is.
      const at = this.offsets.get(this.node);
      const where = `ONNX node "${nodeLabel(this.node)}" (${this.node.opType ?? ''})${at !== undefined ? ` at byte offset ${at}` : ''}`;
      throw new GraphError(e.code, `${e.message} (${where})`, { ...e.details, onnxNode: nodeLabel(this.node), ...(at !== undefined ? { offset: at } : {}) });
    }
    const outs = inferred.map((o, i) => ({ ...o, name: n.outputs[i]! }));
    for (const o of outs) {
      const volume = sizeOf(o.shape);
      if (volume > this.ctx.limits.maxTensorElements) {
        this.fail(`its output would hold ${volume} elements per example (shape [${o.shape.map((d) => d ?? '?').join(', ')}]), above limits.maxTensorElements ${this.ctx.limits.maxTensorElements}`);
      }
    }
    outs.forEach((o) => this.infos.set(o.name, o));
    this.nodes.push(n);
    return outs;
  }

  /** Emits a core node whose outputs keep the file's value names. */
  emit(n: onnx.INodeProto, op: string, inputs: string[], attrs: Record<string, AttrValue>, layout: Layout, outputs?: string[]): void {
    const outs = outputs ?? (n.output ?? []).map((o) => o);
    for (const o of outs) this.names.add(o);
    const infos = this.emitCore({ name: this.unique(n.name || `${op}_${this.nodes.length}`), op, inputs, outputs: outs, attrs });
    infos.forEach((info, i) => this.vals.set(outs[i]!, { name: info.name, layout, info }));
  }

  /** A parameter from a constant, with its layout transform applied (`conv`: OIHW to HWIO, `gemmT`: transposed, `bcast4`: a broadcast operand of an NHWC map); returns its name. */
  param(base: string, k: Konst, t: Transform, extra?: ParamRewrite): string {
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

  /** The constant called `v`, if it is one. */
  konst(v: string): Konst | undefined {
    return v ? this.konsts.get(v) : undefined;
  }

  /** Known int values of a constant integer tensor (shape folding); null entries are run-time sizes. */
  ints(v: string, what: string): (number | null)[] {
    const k = this.konst(v);
    if (!k) skip(`${what} must be a constant`);
    if (k.dtype === 'int64') return k.data as (number | null)[];
    if (k.dtype !== 'int32') this.fail(`${what} must be an int64 tensor, got ${k.dtype}`);
    return Array.from(k.data as Int32Array);
  }

  /** {@link ReadContext.ints} without run-time sizes. */
  knownInts(v: string, what: string): number[] {
    const xs = this.ints(v, what);
    if (xs.some((x) => x === null)) skip(`${what} depends on the run-time batch size`);
    return xs as number[];
  }

  /** The first value of a constant (Clip bounds, Pad value); undefined when the input is absent. */
  scalar(v: string | undefined, what: string): number | undefined {
    if (!v) return undefined;
    const k = this.konst(v);
    if (!k) skip(`${what} must be a constant`);
    if (k.data.length !== 1) this.fail(`${what} must be a scalar, got ${k.data.length} values (shape [${k.dims.join(', ')}])`);
    const x = (k.data as ArrayLike<number | null>)[0];
    if (x === null || x === undefined) skip(`${what} is not constant`);
    return x;
  }

  /** A weight input: a constant (transformed) or a DequantizeLinear of one. */
  weight(v: string, t: Transform, extra?: ParamRewrite): string {
    const k = this.konst(v);
    if (k) return this.param(v, k, t, extra);
    if (this.deferredDq.has(v)) return this.dqWeight(v, t, extra).name;
    skip('the weight must be a constant (initializer, Constant node or DequantizeLinear of one)');
  }

  /** Materialises the deferred DequantizeLinear of a constant behind `v`, its codes transformed like the weight they stand for. */
  dqWeight(v: string, t: Transform, extra?: ParamRewrite): Val {
    const dq = this.deferredDq.get(v)!;
    const [x, s, z] = dq.input ?? [];
    const kx = this.konst(x!)!;
    const rank = kx.dims.length;
    const a = this.attrs(dq);
    let axis = typeof a['axis'] === 'number' ? a['axis'] : 1;
    const ks = this.konst(s!);
    if (ks) this.checkScale(s!, ks, dq);
    const perAxis = (ks?.data.length ?? 1) > 1;
    if (perAxis && (axis < -rank || axis >= rank)) this.fail(`axis ${axis} is out of range for its rank-${rank} input`, { attribute: 'axis' }, dq);
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
  feedsOnlyWeights(v: string): boolean {
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
}
