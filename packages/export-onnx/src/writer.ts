import {
  TensorpressError,
  intsAttr,
  numAttr,
  strAttr,
  window2d,
  type Graph,
  type Node,
  type Param,
  type ParamData,
} from '@tensorpress/core-tensor';
import { compactNames, encodeModel, type OAttr, type OModel, type ONode, type OTensor, type OValueInfo } from './internal/ir.js';
import { checkUniqueNames } from './internal/unique-names.js';
import { BROADCAST_OPS, CONV_WEIGHT_OPS, writeInCoreLayout, writeOnnxOp, type WriterApi } from './internal/write-onnx-ops.js';
import { DT, onnxDType, packInt4, rawBytes } from './internal/proto.js';
import {
  HWIO_TO_OIHW,
  NCHW_TO_NHWC,
  NHWC_TO_NCHW,
  chwRowsFromHwc,
  gatherRows,
  nhwcAxisToNchw,
  permuteShape,
  transposeData,
} from './layout.js';
import { INTEGER_OPS } from './integer-ops.js';
import type { ToOnnxOptions } from './writer-options.js';
import { ONNX_NODE_OP } from './ops/opaque.js';
import { toQOperator } from './qoperator.js';

export type { ToOnnxOptions } from './writer-options.js';

type Role = { kind: 'conv' } | { kind: 'rows'; h: number; w: number; c: number } | { kind: 'bcast' } | { kind: 'plain' };

const FLOAT_BINARY = new Set(['Add', 'Sub', 'Mul', 'Div']);
const PASS_THROUGH = new Set(['Relu', 'Sigmoid', 'Tanh', 'Sign', 'Identity', 'GlobalAveragePool', 'GlobalMaxPool', 'DynamicQuantizeLinear', 'MatMul']);

function unsupported(node: Node, why: string): never {
  throw new TensorpressError('ONNX_UNSUPPORTED', `cannot write node "${node.name}" (${node.op}) to ONNX: ${why}`, {
    node: node.name,
    op: node.op,
  });
}

/**
 * Writes a core graph as an ONNX model (protobuf bytes). NHWC inside becomes NCHW in the file:
 * conv weights are transposed once, the rows of a Gemm weight behind a Flatten of a feature map are
 * permuted from H,W,C to C,H,W order, and no Transpose is added inside the graph (only with
 * `nhwcInput`, one at the input). A quantized graph (QuantizeLinear/DequantizeLinear with integer
 * initializers, see notes/QUANT-CONTRACT.md) is written as QDQ or, with `format: 'qoperator'`, as
 * QLinearConv/QLinearMatMul/MatMulInteger. Throws `ONNX_UNSUPPORTED` naming the node it cannot write.
 */
export function toOnnx(graph: Graph, options: ToOnnxOptions = {}): Uint8Array {
  return encodeModel(buildModel(graph, options));
}

/** The working model of {@link toOnnx} (for the QOperator pass and tests). */
export function buildModel(graph: Graph, options: ToOnnxOptions = {}): OModel {
  // Nodes kept verbatim from a file need at least that file's opset.
  const keptOpset = Math.max(0, ...graph.nodes.filter((n) => n.op === ONNX_NODE_OP).map((n) => numAttr(n, 'opset', 13)));
  if (options.opset !== undefined && keptOpset > options.opset) {
    throw new TensorpressError('CONFIG_INVALID', `opset ${options.opset} is below ${keptOpset}, the opset of the ONNX nodes kept verbatim in the graph`, { path: '$.opset' });
  }
  const opset = options.opset ?? Math.max(13, keptOpset);
  if (!Number.isInteger(opset) || opset < 13 || opset > 21) {
    throw new TensorpressError('CONFIG_INVALID', `opset must be an integer from 13 to 21, got ${opset}`, { path: '$.opset' });
  }
  const format = options.format ?? 'qdq';
  if (format !== 'qdq' && format !== 'qoperator') {
    throw new TensorpressError('CONFIG_INVALID', `format must be 'qdq' or 'qoperator', got ${String(format)}`, { path: '$.format' });
  }
  if (options.int4 && opset < 21) {
    throw new TensorpressError('CONFIG_INVALID', `int4 weights need opset 21, got opset ${opset}`, { path: '$.int4' });
  }
  const w = new Writer(graph, opset, options);
  let model = w.build();
  if (format === 'qoperator') model = toQOperator(model);
  if (options.compactNames) model = compactNames(model);
  if (options.sparseInitializers) model = { ...model, sparseInitializers: true };
  checkUniqueNames(model);
  return model;
}

class Writer implements WriterApi {
  private readonly roles = new Map<string, Role>();
  private readonly nodes: ONode[] = [];
  private readonly inits = new Map<string, OTensor>();
  private readonly rename = new Map<string, string>();
  private readonly int4Params = new Set<string>();
  /** Every value, parameter and node name of the graph, and each name the writer has made up. */
  private readonly taken = new Set<string>();

  constructor(
    readonly g: Graph,
    readonly opset: number,
    private readonly options: ToOnnxOptions,
  ) {
    for (const t of g.inputs) this.taken.add(t.name);
    for (const p of g.params) this.taken.add(p.name);
    for (const n of g.nodes) {
      this.taken.add(n.name);
      for (const o of n.outputs) this.taken.add(o);
    }
  }

  /**
   * `base`, or `base_1`, `base_2`, …: a name for a value, initializer or node the writer adds,
   * unlike every name of the graph (a read graph may already hold `x.nhwc`) and every one made before.
   */
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.taken.has(name); i++) name = `${base}_${i}`;
    this.taken.add(name);
    return name;
  }

  rank(v: string): number {
    return this.g.info(v).shape.length;
  }

  /** Rank-4 values that are not parameters are NHWC activations. */
  isMap(v: string): boolean {
    return v !== '' && !this.g.isParam(v) && this.rank(v) === 4;
  }

  private setRole(param: string, role: Role, node: Node): void {
    const old = this.roles.get(param);
    if (old && old.kind !== role.kind) {
      unsupported(node, `parameter "${param}" is used both as a ${old.kind} and a ${role.kind} weight; give each use its own parameter`);
    }
    this.roles.set(param, role);
  }

  /** The parameter behind a weight port: the value itself, or the integer input of its DequantizeLinear. */
  private weightParam(v: string): { param: string; dq?: Node } | undefined {
    if (this.g.isParam(v)) return { param: v };
    const p = this.g.producer(v);
    if (p && p.node.op === 'DequantizeLinear' && this.g.isParam(p.node.inputs[0]!)) return { param: p.node.inputs[0]!, dq: p.node };
    return undefined;
  }

  /** Terminal consumers of `v`, looking through activation Q→DQ pairs. */
  private consumersThroughQdq(v: string): { node: Node; input: number }[] {
    const out: { node: Node; input: number }[] = [];
    for (const c of this.g.consumers(v)) {
      if (c.node.op === 'QuantizeLinear' && c.input === 0) {
        for (const d of this.g.consumers(c.node.outputs[0]!)) {
          if (d.node.op === 'DequantizeLinear' && d.input === 0) out.push(...this.consumersThroughQdq(d.node.outputs[0]!));
          else out.push(d);
        }
      } else out.push(c);
    }
    return out;
  }

  /** True when a Flatten/Reshape of a feature map can stay a plain Flatten by permuting its Gemm weights. */
  private flattenFeedsOnlyWeights(out: string): boolean {
    const cs = this.consumersThroughQdq(out);
    return cs.length > 0 && cs.every((c) => (c.node.op === 'Gemm' || c.node.op === 'MatMul') && c.input === 0 && this.weightParam(c.node.inputs[1]!) !== undefined);
  }

  private assignRoles(): void {
    for (const n of this.g.nodes) {
      if (n.op === 'Conv') {
        const wp = this.weightParam(n.inputs[1]!);
        if (!wp) unsupported(n, 'the weight must be a parameter or a DequantizeLinear of one');
        this.setRole(wp.param, { kind: 'conv' }, n);
      } else if ((n.op === 'Gemm' || n.op === 'MatMul') && this.rank(n.inputs[0]!) === 2) {
        const wp = this.weightParam(n.inputs[1]!);
        const src = this.flattenSource(n.inputs[0]!);
        if (wp && src) {
          const [, h, ww, c] = this.g.info(src).shape as number[];
          if (h! * ww! > 1) this.setRole(wp.param, { kind: 'rows', h: h!, w: ww!, c: c! }, n);
        } else if (wp) this.setRole(wp.param, { kind: 'plain' }, n);
      } else if (CONV_WEIGHT_OPS.has(n.op)) {
        const wp = this.weightParam(n.inputs[1]!);
        if (!wp) unsupported(n, 'the weight must be a parameter or a DequantizeLinear of one');
        this.setRole(wp.param, { kind: 'conv' }, n);
      } else if (FLOAT_BINARY.has(n.op) || BROADCAST_OPS.has(n.op)) {
        const [a, b] = n.inputs as [string, string];
        if (this.g.isParam(a) && this.isMap(b)) this.setRole(a, { kind: 'bcast' }, n);
        if (this.g.isParam(b) && this.isMap(a)) this.setRole(b, { kind: 'bcast' }, n);
      }
    }
  }

  /** The rank-4 map behind a 2-D value made by Flatten/Reshape (through activation Q/DQ), if any. */
  private flattenSource(v: string): string | undefined {
    let cur = v;
    for (let i = 0; i < 4; i++) {
      const p = this.g.producer(cur);
      if (!p) return undefined;
      if (p.node.op === 'Flatten' || p.node.op === 'Reshape') {
        const src = p.node.inputs[0]!;
        return this.isMap(src) && this.flattenFeedsOnlyWeights(p.node.outputs[0]!) ? src : undefined;
      }
      if (p.node.op !== 'DequantizeLinear' && p.node.op !== 'QuantizeLinear') return undefined;
      cur = p.node.inputs[0]!;
    }
    return undefined;
  }

  name(v: string): string {
    return this.rename.get(v) ?? v;
  }

  emit(n: ONode): void {
    this.nodes.push(n);
  }

  constInit(base: string, dataType: number, dims: number[], data: ParamData | BigInt64Array): string {
    const name = this.fresh(base);
    this.inits.set(name, { name, dims, dataType, raw: rawBytes(data) });
    return name;
  }

  private readonly declared: OValueInfo[] = [];

  declare(info: OValueInfo): void {
    this.declared.push(info);
  }

  rawInit(base: string, dataType: number, dims: number[], raw: Uint8Array): string {
    const name = this.fresh(base);
    this.inits.set(name, { name, dims, dataType, raw });
    return name;
  }

  int64(name: string, values: readonly number[]): string {
    return this.constInit(name, DT.INT64, [values.length], BigInt64Array.from(values.map((v) => BigInt(v))));
  }

  private paramInit(p: Param): void {
    if (this.inits.has(p.name)) return;
    const role = this.roles.get(p.name) ?? { kind: 'plain' };
    let data: ParamData = p.data;
    let dims = [...p.shape];
    switch (role.kind) {
      case 'conv':
        data = transposeData(p.data, p.shape, HWIO_TO_OIHW);
        dims = permuteShape(p.shape, HWIO_TO_OIHW);
        break;
      case 'rows': {
        // Row i of the file's weight multiplies element i of the C,H,W-ordered flatten.
        data = gatherRows(p.data, p.shape[1]!, chwRowsFromHwc(role.h, role.w, role.c));
        break;
      }
      case 'bcast': {
        if (p.shape.length >= 1) {
          const s4 = [...Array<number>(4 - p.shape.length).fill(1), ...p.shape];
          data = transposeData(p.data, s4, NHWC_TO_NCHW);
          dims = permuteShape(s4, NHWC_TO_NCHW);
        }
        break;
      }
      case 'plain':
        break;
    }
    if (this.int4Params.has(p.name)) {
      this.inits.set(p.name, { name: p.name, dims, dataType: DT.INT4, raw: packInt4(data) });
      return;
    }
    this.inits.set(p.name, { name: p.name, dims, dataType: onnxDType(p.dtype), raw: rawBytes(data) });
  }

  private markInt4(): void {
    if (!this.options.int4) return;
    for (const n of this.g.nodes) {
      if (n.op !== 'DequantizeLinear') continue;
      const [x, , zp] = n.inputs;
      const px = this.g.param(x!);
      if (!px || px.dtype !== 'int8' || !this.roles.has(px.name)) continue;
      const fits = (d: ParamData): boolean => d.every((v) => v >= -8 && v <= 7);
      const pz = zp ? this.g.param(zp) : undefined;
      if (!fits(px.data) || (pz && (pz.dtype !== 'int8' || !fits(pz.data)))) continue;
      this.int4Params.add(px.name);
      if (pz) this.int4Params.add(pz.name);
    }
  }

  build(): OModel {
    this.assignRoles();
    this.markInt4();
    const inputs = this.g.inputs.map((t) => {
      const dims = t.shape.map((d, i) => d ?? (i === 0 ? 'N' : `d${i}`));
      if (t.shape.length !== 4) return { name: t.name, elemType: onnxDType(t.dtype), dims };
      if (this.options.nhwcInput) {
        const inner = this.fresh(`${t.name}.nchw`);
        this.emit({ name: this.fresh(`${t.name}/to_nchw`), opType: 'Transpose', inputs: [t.name], outputs: [inner], attrs: { perm: { ints: NHWC_TO_NCHW } } });
        this.rename.set(t.name, inner);
        return { name: t.name, elemType: onnxDType(t.dtype), dims };
      }
      return { name: t.name, elemType: onnxDType(t.dtype), dims: permuteShape(dims, NHWC_TO_NCHW) };
    });
    for (const n of this.g.nodes) this.node(n);
    for (const n of this.nodes) {
      for (const v of n.inputs) {
        const p = v ? this.g.param(v) : undefined;
        if (p) this.paramInit(p);
      }
    }
    const outputs = this.g.outputs.map((o) => {
      const t = this.g.info(o);
      const dims = t.shape.map((d, i) => d ?? (i === 0 ? 'N' : `d${i}`));
      return { name: this.name(o), elemType: onnxDType(t.dtype), dims: t.shape.length === 4 ? permuteShape(dims, NHWC_TO_NCHW) : dims };
    });
    const valueInfo = this.declared.filter((v) => !outputs.some((o) => o.name === v.name));
    return { opset: this.opset, inputs, outputs, nodes: this.nodes, initializers: this.inits, producer: this.options.producer ?? 'tensorpress', ...(valueInfo.length > 0 ? { valueInfo } : {}) };
  }

  private simple(n: Node, opType: string, attrs: Record<string, OAttr> = {}, inputs?: string[]): void {
    this.emit({ name: n.name, opType, inputs: (inputs ?? [...n.inputs]).map((v) => (v === '' ? '' : this.name(v))), outputs: [...n.outputs], attrs });
  }

  private window(n: Node, kernel: [number, number]): Record<string, OAttr> {
    const x = this.g.info(n.inputs[0]!).shape;
    const win = window2d(n, x[1]!, x[2]!, kernel);
    return { kernel_shape: { ints: kernel }, strides: { ints: win.strides }, pads: { ints: win.pads } };
  }

  private node(n: Node): void {
    if (writeOnnxOp(this, n)) return;
    if (PASS_THROUGH.has(n.op)) return this.simple(n, n.op);
    switch (n.op) {
      case 'Conv': {
        const wShape = this.g.info(n.inputs[1]!).shape as number[];
        const x = this.g.info(n.inputs[0]!).shape;
        const win = window2d(n, x[1]!, x[2]!, [wShape[0]!, wShape[1]!]);
        return this.simple(n, 'Conv', {
          kernel_shape: { ints: [wShape[0]!, wShape[1]!] },
          strides: { ints: win.strides },
          dilations: { ints: win.dilations },
          pads: { ints: win.pads },
          group: { i: numAttr(n, 'group', 1) },
        });
      }
      case 'Gemm':
        return this.simple(n, 'Gemm', { alpha: { f: numAttr(n, 'alpha', 1) }, beta: { f: numAttr(n, 'beta', 1) } });
      case 'BatchNormalization':
        return this.simple(n, 'BatchNormalization', { epsilon: { f: numAttr(n, 'epsilon', 1e-5) } });
      case 'MaxPool':
      case 'AveragePool': {
        const k = intsAttr(n, 'kernel_shape', []);
        const attrs = this.window(n, [k[0]!, k[1]!]);
        if (n.op === 'AveragePool') {
          const x = this.g.info(n.inputs[0]!).shape;
          const win = window2d(n, x[1]!, x[2]!, [k[0]!, k[1]!]);
          // tfjs's 'same' average excludes the padding; explicit pads are zeros that count.
          attrs['count_include_pad'] = { i: win.same ? 0 : 1 };
        }
        return this.simple(n, n.op, attrs);
      }
      case 'LeakyRelu':
        return this.simple(n, 'LeakyRelu', { alpha: { f: numAttr(n, 'alpha', 0.01) } });
      case 'HardSigmoid':
        return this.simple(n, 'HardSigmoid', { alpha: { f: numAttr(n, 'alpha', 0.2) }, beta: { f: numAttr(n, 'beta', 0.5) } });
      case 'HardSwish': {
        if (this.opset >= 14) return this.simple(n, 'HardSwish');
        const hs = this.fresh(`${n.outputs[0]!}.hsig`);
        const x = this.name(n.inputs[0]!);
        this.emit({ name: this.fresh(`${n.name}/hsig`), opType: 'HardSigmoid', inputs: [x], outputs: [hs], attrs: { alpha: { f: 1 / 6 }, beta: { f: 0.5 } } });
        this.emit({ name: n.name, opType: 'Mul', inputs: [x, hs], outputs: [...n.outputs], attrs: {} });
        return;
      }
      case 'Clip': {
        const lo = numAttr(n, 'min', -Infinity);
        const hi = numAttr(n, 'max', Infinity);
        const ins = [this.name(n.inputs[0]!)];
        ins.push(Number.isFinite(lo) ? this.constInit(`${n.name}.min`, DT.FLOAT, [], Float32Array.of(lo)) : '');
        if (Number.isFinite(hi)) ins.push(this.constInit(`${n.name}.max`, DT.FLOAT, [], Float32Array.of(hi)));
        while (ins[ins.length - 1] === '') ins.pop();
        return this.emit({ name: n.name, opType: 'Clip', inputs: ins, outputs: [...n.outputs], attrs: {} });
      }
      case 'Dropout':
        return this.simple(n, 'Identity');
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div': {
        const [a, b] = n.inputs as [string, string];
        const mixed = (p: string, q: string): boolean => this.isMap(p) && !this.g.isParam(q) && this.rank(q) !== 4 && this.g.info(q).shape.length > 0;
        // A map broadcast with run-time data of another rank: computed in NHWC, between Transposes.
        if (mixed(a, b) || mixed(b, a)) return writeInCoreLayout(this, n, n.op);
        return this.simple(n, n.op);
      }
      case 'Softmax':
      case 'Concat': {
        const x = n.inputs[0]!;
        const axis = numAttr(n, 'axis', n.op === 'Concat' ? -1 : -1);
        return this.simple(n, n.op, { axis: { i: this.isMap(x) ? nhwcAxisToNchw(axis) : axis } });
      }
      case 'Split': {
        const x = n.inputs[0]!;
        const axis = numAttr(n, 'axis', 0);
        const shape = this.g.info(x).shape;
        const a = axis < 0 ? axis + shape.length : axis;
        const sizes = n.outputs.map((o) => this.g.info(o).shape[a]!) as number[];
        const split = this.int64(`${n.name}.split`, sizes);
        return this.simple(n, 'Split', { axis: { i: this.isMap(x) ? nhwcAxisToNchw(a) : a } }, [n.inputs[0]!, split]);
      }
      case 'Transpose': {
        const x = n.inputs[0]!;
        const rank = this.rank(x);
        const p = intsAttr(n, 'perm', [...Array(rank).keys()].reverse());
        const perm = this.isMap(x) ? NHWC_TO_NCHW.map((i) => NCHW_TO_NHWC[p[i]!]!) : p;
        return this.simple(n, 'Transpose', { perm: { ints: perm } });
      }
      case 'Pad': {
        const x = n.inputs[0]!;
        let pads = intsAttr(n, 'pads', []);
        if (this.isMap(x)) pads = [...permuteShape(pads.slice(0, 4), NHWC_TO_NCHW), ...permuteShape(pads.slice(4), NHWC_TO_NCHW)];
        const mode = strAttr(n, 'mode', 'constant');
        const ins = [this.name(x), this.int64(`${n.name}.pads`, pads)];
        if (mode === 'constant') ins.push(this.constInit(`${n.name}.value`, DT.FLOAT, [], Float32Array.of(numAttr(n, 'value', 0))));
        return this.emit({ name: n.name, opType: 'Pad', inputs: ins, outputs: [...n.outputs], attrs: { mode: { s: mode } } });
      }
      case 'Flatten':
      case 'Reshape':
        return this.reshape(n);
      case 'QuantizeLinear':
      case 'DequantizeLinear': {
        const x = n.inputs[0]!;
        const scale = this.g.info(n.inputs[1]!);
        const perAxis = scale.shape.reduce<number>((p, d) => p * (d ?? 1), 1) > 1;
        const zp = n.inputs[2] ? this.g.param(n.inputs[2]) : undefined;
        // An all-zero int8 zero point of a constant is ONNX's default: leave it out of the file.
        const ins = n.op === 'DequantizeLinear' && this.g.isParam(x) && zp?.dtype === 'int8' && zp.data.every((v) => v === 0) && !this.int4Params.has(zp.name) ? n.inputs.slice(0, 2) : [...n.inputs];
        if (!perAxis) return this.simple(n, n.op, {}, ins);
        const rank = this.rank(x);
        let axis = numAttr(n, 'axis', 1);
        if (axis < 0) axis += rank;
        if (this.roles.get(x)?.kind === 'conv') axis = HWIO_TO_OIHW.indexOf(axis as 0 | 1 | 2 | 3);
        else if (this.isMap(x)) axis = nhwcAxisToNchw(axis);
        return this.simple(n, n.op, { axis: { i: axis } }, ins);
      }
      default:
        unsupported(
          n,
          INTEGER_OPS.has(n.op)
            ? "integer ops run in process only (toIntegerOps); write the QDQ graph they came from (format 'qoperator' writes QLinearConv)"
            : 'the op has no ONNX writer',
        );
    }
  }

  private reshape(n: Node): void {
    const x = n.inputs[0]!;
    const out = n.outputs[0]!;
    const outRank = this.rank(out);
    if (!this.isMap(x) && outRank !== 4) {
      if (n.op === 'Flatten') return this.simple(n, 'Flatten', { axis: { i: numAttr(n, 'axis', 1) } });
      return this.simple(n, 'Reshape', {}, [x, this.int64(`${n.name}.shape`, intsAttr(n, 'shape', []))]);
    }
    const xs = this.g.info(x).shape;
    const flat = outRank === 2 && (n.op === 'Flatten' ? numAttr(n, 'axis', 1) === 1 : true) && this.isMap(x);
    if (flat && (xs[1] === 1 && xs[2] === 1 ? true : this.flattenFeedsOnlyWeights(out))) {
      // H·W = 1: both orders agree; otherwise the consuming Gemm weights were permuted to C,H,W rows.
      return this.simple(n, 'Flatten', { axis: { i: 1 } }, [x]);
    }
    // Anything else runs in NHWC order between a Transpose pair, exactly as inside tensorpress.
    let src = this.name(x);
    if (this.isMap(x)) {
      const t = this.fresh(`${n.name}.nhwc`);
      this.emit({ name: this.fresh(`${n.name}/to_nhwc`), opType: 'Transpose', inputs: [src], outputs: [t], attrs: { perm: { ints: NCHW_TO_NHWC } } });
      src = t;
    }
    const target = n.op === 'Flatten' ? null : intsAttr(n, 'shape', []);
    const r = outRank === 4 ? this.fresh(`${out}.nhwc`) : out;
    if (target) this.emit({ name: n.name, opType: 'Reshape', inputs: [src, this.int64(`${n.name}.shape`, target)], outputs: [r], attrs: {} });
    else this.emit({ name: n.name, opType: 'Flatten', inputs: [src], outputs: [r], attrs: { axis: { i: numAttr(n, 'axis', 1) } } });
    if (outRank === 4) {
      this.emit({ name: this.fresh(`${n.name}/to_nchw`), opType: 'Transpose', inputs: [r], outputs: [out], attrs: { perm: { ints: NHWC_TO_NCHW } } });
    }
  }
}

