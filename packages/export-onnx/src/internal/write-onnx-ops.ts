/**
 * The writer's side of export-onnx's own ops (src/ops): each written back as its ONNX op (or, below
 * the opset that has it, as the ONNX ops it is made of), with the NHWC ↔ NCHW conversion: axes of
 * a map renumbered, or the op run between a Transpose pair in core's own layout where that is what
 * keeps its meaning (Where, Expand, Tile, batched MatMul of rank-4 values, LayerNormalization).
 */
import { intsAttr, numAttr, strAttr, type Graph, type Node, type ParamData } from '@tensorpress/core-tensor';
import { NCHW_TO_NHWC, NHWC_TO_NCHW, nhwcAxisToNchw } from '../layout.js';
import type { OAttr, ONode, OValueInfo } from './ir.js';
import { ONNX_NODE_OP } from '../ops/opaque.js';
import { DT, onnxDType, proto } from './proto.js';

/** What these conversions need of the writer. */
export interface WriterApi {
  readonly g: Graph;
  readonly opset: number;
  fresh(base: string): string;
  rank(v: string): number;
  isMap(v: string): boolean;
  name(v: string): string;
  emit(n: ONode): void;
  constInit(base: string, dataType: number, dims: number[], data: ParamData | BigInt64Array): string;
  int64(base: string, values: readonly number[]): string;
  /** Adds an initializer with its bytes as given; returns its (fresh) name. */
  rawInit(base: string, dataType: number, dims: number[], raw: Uint8Array): string;
  /** Declares a value's shape in the file (value_info). */
  declare(info: OValueInfo): void;
}

const PLAIN = new Set(['Exp', 'Log', 'Sqrt', 'Reciprocal', 'Neg', 'Abs', 'Erf', 'Softplus', 'InstanceNormalization', 'PRelu', 'Pow']);
const COMPARE = new Set(['Equal', 'Less', 'Greater']);
/** Ops whose parameter operands broadcast against a map like Add's (the writer gives them the `bcast` role). */
export const BROADCAST_OPS = new Set(['PRelu', 'Pow', ...COMPARE]);
/** Ops whose weight (input 1) is laid out like a Conv weight. */
export const CONV_WEIGHT_OPS = new Set(['ConvTranspose']);

/** Writes node `n` if it is one of export-onnx's ops (or a batched MatMul of maps); false otherwise. */
export function writeOnnxOp(w: WriterApi, n: Node): boolean {
  const x = n.inputs[0] ?? '';
  const op = (type: string, inputs: string[], outputs: string[], attrs: Record<string, OAttr> = {}, name?: string): void =>
    w.emit({ name: name ?? w.fresh(`${n.name}/${type}`), opType: type, inputs, outputs, attrs });
  if (PLAIN.has(n.op)) {
    w.emit({ name: n.name, opType: n.op, inputs: n.inputs.map((v) => w.name(v)), outputs: [...n.outputs], attrs: n.op === 'InstanceNormalization' ? { epsilon: { f: numAttr(n, 'epsilon', 1e-5) } } : {} });
    return true;
  }
  if (COMPARE.has(n.op)) {
    const b = w.fresh(`${n.outputs[0]!}.bool`);
    op(n.op, n.inputs.map((v) => w.name(v)), [b], {}, n.name);
    op('Cast', [b], [n.outputs[0]!], { to: { i: DT.UINT8 } });
    return true;
  }
  switch (n.op) {
    case 'Mish':
      if (w.opset >= 18) return simple(w, n, 'Mish');
      return inLayout(w, n, false, ([v], [y]) => {
        const sp = w.fresh(`${y}.softplus`);
        const th = w.fresh(`${y}.tanh`);
        op('Softplus', [v!], [sp]);
        op('Tanh', [sp], [th]);
        op('Mul', [v!, th], [y!], {}, n.name);
      });
    case 'Gelu':
      if (w.opset >= 20) return simple(w, n, 'Gelu', { approximate: { s: strAttr(n, 'approximate', 'none') } });
      return inLayout(w, n, false, ([v], [y]) => gelu(w, n, v!, y!, op));
    case 'ReduceMean':
    case 'ReduceSum':
    case 'ReduceMax': {
      const keep = numAttr(n, 'keepdims', 1);
      const axesIn = intsAttr(n, 'axes', []);
      const map = w.isMap(x);
      const inputOpset = n.op === 'ReduceSum' ? 13 : 18;
      return inLayout(w, n, map && keep === 0, ([v], [y]) => {
        const axes = map && keep !== 0 ? axesIn.map(nhwcAxisToNchw) : axesIn;
        if (w.opset >= inputOpset) op(n.op, [v!, ...(axes.length ? [w.int64(`${n.name}.axes`, axes)] : [])], [y!], { keepdims: { i: keep } }, n.name);
        else op(n.op, [v!], [y!], { keepdims: { i: keep }, ...(axes.length ? { axes: { ints: axes } } : {}) }, n.name);
      });
    }
    case 'LogSoftmax': {
      const axis = numAttr(n, 'axis', -1);
      return simple(w, n, 'LogSoftmax', { axis: { i: w.isMap(x) ? nhwcAxisToNchw(axis) : axis } });
    }
    case 'ArgMax': {
      const keep = numAttr(n, 'keepdims', 1);
      const map = w.isMap(x);
      return inLayout(w, n, map && keep === 0, ([v], [y]) => {
        const axis = numAttr(n, 'axis', 0);
        const i64 = w.fresh(`${y!}.int64`);
        op('ArgMax', [v!], [i64], { axis: { i: map && keep !== 0 ? nhwcAxisToNchw(axis) : axis }, keepdims: { i: keep } }, n.name);
        op('Cast', [i64], [y!], { to: { i: DT.INT32 } });
      });
    }
    case 'LayerNormalization':
      return inLayout(w, n, true, (ins, [y]) => layerNorm(w, n, ins, y!, op));
    case 'Where':
      return inLayout(w, n, true, ([c, a, b], [y]) => {
        const cb = w.fresh(`${c!}.bool`);
        op('Cast', [c!], [cb], { to: { i: DT.BOOL } });
        op('Where', [cb, a!, b!], [y!], {}, n.name);
      });
    case 'Expand':
      return inLayout(w, n, true, ([v, ref], [y]) => {
        const shape = intsAttr(n, 'shape', []);
        let target: string;
        if (!shape.includes(-1)) target = w.int64(`${n.name}.shape`, shape);
        else {
          const s = w.fresh(`${n.name}.ref_shape`);
          const batch = w.fresh(`${n.name}.batch`);
          op('Shape', [ref!], [s]);
          op('Gather', [s, w.int64(`${n.name}.zero`, [0])], [batch], { axis: { i: 0 } });
          target = w.fresh(`${n.name}.shape`);
          op('Concat', shape.map((d, i) => (d === -1 ? batch : w.int64(`${n.name}.dim${i}`, [d]))), [target], { axis: { i: 0 } });
        }
        op('Expand', [v!, target], [y!], {}, n.name);
      });
    case 'Tile':
      return inLayout(w, n, true, ([v], [y]) => op('Tile', [v!, w.int64(`${n.name}.repeats`, intsAttr(n, 'repeats', []))], [y!], {}, n.name));
    case 'MatMul':
      if (!n.inputs.some((v) => w.isMap(v))) return false;
      return inLayout(w, n, true, ([a, b], [y]) => op('MatMul', [a!, b!], [y!], {}, n.name));
    case 'Resize':
      return resize(w, n, op);
    case ONNX_NODE_OP:
      return writeKept(w, n);
    case 'ConvTranspose': {
      const ws = w.g.info(n.inputs[1]!).shape as number[];
      return simple(w, n, 'ConvTranspose', {
        kernel_shape: { ints: [ws[0]!, ws[1]!] },
        strides: { ints: intsAttr(n, 'strides', [1, 1]) },
        pads: { ints: intsAttr(n, 'pads', [0, 0, 0, 0]) },
        output_padding: { ints: intsAttr(n, 'output_padding', [0, 0]) },
        dilations: { ints: [1, 1] },
        group: { i: numAttr(n, 'group', 1) },
      });
    }
    default:
      return false;
  }
}

/** Writes `n` as ONNX `opType` (same inputs and attributes-free) computed in core's NHWC order between Transposes. */
export function writeInCoreLayout(w: WriterApi, n: Node, opType: string): void {
  inLayout(w, n, true, (ins, outs) => w.emit({ name: n.name, opType, inputs: ins, outputs: outs, attrs: {} }));
}

type Emit = (type: string, inputs: string[], outputs: string[], attrs?: Record<string, OAttr>, name?: string) => void;

function simple(w: WriterApi, n: Node, opType: string, attrs: Record<string, OAttr> = {}): true {
  w.emit({ name: n.name, opType, inputs: n.inputs.map((v) => (v === '' ? '' : w.name(v))), outputs: [...n.outputs], attrs });
  return true;
}

/**
 * Runs `build` on the node's inputs and outputs; with `coreLayout`, rank-4 values are taken back to
 * core's NHWC order first (one Transpose each) and the results to the file's after, so that the
 * op computes exactly what it does in tensorpress.
 */
function inLayout(w: WriterApi, n: Node, coreLayout: boolean, build: (inputs: string[], outputs: string[]) => void): true {
  const inputs = n.inputs.map((v) => {
    if (v === '') return '';
    const name = w.name(v);
    if (!coreLayout || !w.isMap(v)) return name;
    const t = w.fresh(`${name}.nhwc`);
    w.emit({ name: w.fresh(`${n.name}/in_nhwc`), opType: 'Transpose', inputs: [name], outputs: [t], attrs: { perm: { ints: NCHW_TO_NHWC } } });
    return t;
  });
  const back: [string, string][] = [];
  const outputs = n.outputs.map((o) => {
    if (!coreLayout || !w.isMap(o)) return o;
    const t = w.fresh(`${o}.nhwc`);
    back.push([t, o]);
    return t;
  });
  build(inputs, outputs);
  for (const [t, o] of back) w.emit({ name: w.fresh(`${n.name}/out_nchw`), opType: 'Transpose', inputs: [t], outputs: [o], attrs: { perm: { ints: NHWC_TO_NCHW } } });
  return true;
}

function scalar(w: WriterApi, base: string, v: number): string {
  return w.constInit(base, DT.FLOAT, [], Float32Array.of(v));
}

/** Gelu from Erf (or Tanh) for opsets below 20. */
function gelu(w: WriterApi, n: Node, x: string, y: string, op: Emit): void {
  const t = (s: string): string => w.fresh(`${y}.${s}`);
  const inner = t('inner');
  const act = t('act');
  if (strAttr(n, 'approximate', 'none') === 'tanh') {
    const cube = t('cube');
    const c3 = t('c3');
    const sum = t('sum');
    op('Pow', [x, scalar(w, `${n.name}.three`, 3)], [cube]);
    op('Mul', [cube, scalar(w, `${n.name}.c`, 0.044715)], [c3]);
    op('Add', [x, c3], [sum]);
    op('Mul', [sum, scalar(w, `${n.name}.k`, Math.sqrt(2 / Math.PI))], [inner]);
    op('Tanh', [inner], [act]);
  } else {
    op('Mul', [x, scalar(w, `${n.name}.rsqrt2`, Math.SQRT1_2)], [inner]);
    op('Erf', [inner], [act]);
  }
  const one = t('one');
  const half = t('half');
  op('Add', [act, scalar(w, `${n.name}.one`, 1)], [one]);
  op('Mul', [x, scalar(w, `${n.name}.half`, 0.5)], [half]);
  op('Mul', [half, one], [y], {}, n.name);
}

/** LayerNormalization (opset 17), or its decomposition into ReduceMean, Sub, Mul, Sqrt, Div below it. */
function layerNorm(w: WriterApi, n: Node, ins: string[], y: string, op: Emit): void {
  const rank = w.rank(n.inputs[0]!);
  const axis = numAttr(n, 'axis', -1);
  const eps = numAttr(n, 'epsilon', 1e-5);
  const [x, scale, bias] = ins as [string, string, string | undefined];
  if (w.opset >= 17) {
    op('LayerNormalization', [x, scale, ...(bias ? [bias] : [])], [y], { axis: { i: axis }, epsilon: { f: eps } }, n.name);
    return;
  }
  const a = axis < 0 ? axis + rank : axis;
  const axes = { ints: [...Array(rank - a).keys()].map((i) => i + a) };
  const t = (s: string): string => w.fresh(`${y}.${s}`);
  const [mean, d, sq, v, ve, sd, norm] = ['mean', 'centred', 'sq', 'var', 've', 'std', 'norm'].map(t) as string[];
  op('ReduceMean', [x], [mean!], { axes, keepdims: { i: 1 } });
  op('Sub', [x, mean!], [d!]);
  op('Mul', [d!, d!], [sq!]);
  op('ReduceMean', [sq!], [v!], { axes, keepdims: { i: 1 } });
  op('Add', [v!, scalar(w, `${n.name}.epsilon`, eps)], [ve!]);
  op('Sqrt', [ve!], [sd!]);
  op('Div', [d!, sd!], [norm!]);
  if (!bias) {
    op('Mul', [norm!, scale], [y], {}, n.name);
    return;
  }
  const scaled = t('scaled');
  op('Mul', [norm!, scale], [scaled]);
  op('Add', [scaled, bias], [y], {}, n.name);
}

/** Resize of a map: scales where they give the size exactly, else sizes with the run-time batch and channels. */
function resize(w: WriterApi, n: Node, op: Emit): true {
  const x = n.inputs[0]!;
  const [, h, wd] = w.g.info(x).shape as number[];
  const [oh, ow] = intsAttr(n, 'sizes', []) as [number, number];
  const scales = (n.attrs['scales'] as readonly number[] | undefined) ?? [oh / h!, ow / wd!];
  const attrs: Record<string, OAttr> = {
    mode: { s: strAttr(n, 'mode', 'nearest') },
    coordinate_transformation_mode: { s: strAttr(n, 'coordinate_transformation_mode', 'half_pixel') },
    nearest_mode: { s: strAttr(n, 'nearest_mode', 'round_prefer_floor') },
  };
  const src = w.name(x);
  const exact = Math.floor(h! * Math.fround(scales[0]!)) === oh && Math.floor(wd! * Math.fround(scales[1]!)) === ow;
  if (exact) {
    const s = w.constInit(`${n.name}.scales`, DT.FLOAT, [4], Float32Array.of(1, 1, scales[0]!, scales[1]!));
    op('Resize', [src, '', s], [n.outputs[0]!], attrs, n.name);
    return true;
  }
  const shape = w.fresh(`${n.name}.in_shape`);
  const nc = w.fresh(`${n.name}.nc`);
  const sizes = w.fresh(`${n.name}.sizes`);
  op('Shape', [src], [shape]);
  op('Slice', [shape, w.int64(`${n.name}.start`, [0]), w.int64(`${n.name}.end`, [2])], [nc]);
  op('Concat', [nc, w.int64(`${n.name}.hw`, [oh, ow])], [sizes], { axis: { i: 0 } });
  op('Resize', [src, '', '', sizes], [n.outputs[0]!], attrs, n.name);
  return true;
}

/** A kept ONNX node written as it was read: its op, domain and attributes, its constants as initializers, in the file's layout. */
function writeKept(w: WriterApi, n: Node): true {
  const np = proto.NodeProto.decode(Buffer.from(strAttr(n, 'node', ''), 'base64'));
  const consts = JSON.parse(strAttr(n, 'consts', '{}')) as Record<string, string>;
  return inLayout(w, n, true, (ins, outs) => {
    const inputs = ins.map((v, i) => {
      const c = consts[String(i)];
      if (c === undefined) return v;
      const t = proto.TensorProto.decode(Buffer.from(c, 'base64'));
      return w.rawInit(t.name || `${n.name}.input${i}`, t.dataType ?? DT.FLOAT, (t.dims ?? []).map(Number), t.rawData ?? new Uint8Array());
    });
    const attrs: Record<string, OAttr> = {};
    for (const a of np.attribute ?? []) attrs[a.name ?? ''] = { proto: { ...a } as Record<string, unknown> };
    w.emit({ name: n.name, opType: np.opType ?? '', ...(np.domain ? { domain: np.domain } : {}), inputs, outputs: outs, attrs });
    // Its outputs hold the file's own layout: declare their shapes, so that a reader of the file knows them.
    outs.forEach((o, i) => {
      const t = w.g.info(n.outputs[i]!);
      if (o && t.shape.length > 0) w.declare({ name: o, elemType: onnxDType(t.dtype), dims: t.shape.map((d, k) => d ?? (k === 0 ? 'N' : `d${k}`)) });
    });
  });
}
