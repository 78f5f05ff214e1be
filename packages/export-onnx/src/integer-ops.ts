import { checkQuantScales, qRange, type FoldSkip, type Graph, type Node, type Param } from '@tensorpress/core-tensor';
import { registerIntegerOps } from './integer-kernels.js';

/** A quantized op that {@link toIntegerOps} left in float Q/DQ form, and why (node, reason). */
export type IntegerSkip = FoldSkip;

/** Result of {@link toIntegerOps}. */
export interface IntegerOpsResult {
  /** The graph with QLinearConv / QGemm / QLinearAdd / QLinearGlobalAveragePool nodes in place of their Q/DQ patterns. */
  readonly graph: Graph;
  /** Names of the Conv, Gemm, Add and GlobalAveragePool nodes that now run on integer codes, in graph order. */
  readonly fused: readonly string[];
  /** Conv, Gemm, Add and GlobalAveragePool nodes that stay float, with the reason. */
  readonly skipped: readonly IntegerSkip[];
}

/** An activation DequantizeLinear: its codes, scale and zero point (a per-tensor scale parameter). */
interface ActivationDq {
  readonly codes: string;
  readonly scale: string;
  readonly zp: string;
}

function scalarParam(graph: Graph, name: string | undefined): Param | undefined {
  const p = name ? graph.param(name) : undefined;
  return p && p.data.length === 1 ? p : undefined;
}

function activationDq(graph: Graph, value: string): ActivationDq | string {
  const p = graph.producer(value)?.node;
  if (!p || p.op !== 'DequantizeLinear') return `its input "${value}" does not come from a DequantizeLinear`;
  if (graph.isParam(p.inputs[0]!)) return `its input "${value}" is a dequantized parameter, not an activation`;
  if (!scalarParam(graph, p.inputs[1])) return `the DequantizeLinear of "${value}" has no per-tensor scale parameter`;
  if (p.inputs[2] && !scalarParam(graph, p.inputs[2])) return `the DequantizeLinear of "${value}" has no per-tensor zero point parameter`;
  return { codes: p.inputs[0]!, scale: p.inputs[1]!, zp: p.inputs[2] ?? '' };
}

const FLOAT32_EPSILON = 2 ** -23;

/**
 * Whether a clamp ahead of a QuantizeLinear is redundant, so an integer runtime drops it and the
 * quantizer's saturation does its work: onnxruntime's rule (ReluQuantFusion, ClipQuantFusion). A
 * Relu (`max` absent) goes when the zero point is the bottom of the code range; a Clip goes when
 * the quantizer's float range `[scale·(qmin − zp), scale·(qmax − zp)]` lies inside `[min, max]` to
 * float32 epsilon, computed in float32.
 */
export function clampFoldsIntoQuantizer(clamp: { min: number; max?: number }, scale: number, zp: number, dtype: 'int8' | 'uint8'): boolean {
  const [qmin, qmax] = qRange(dtype);
  if (clamp.max === undefined) return clamp.min === 0 && zp === qmin;
  const f = Math.fround;
  const lower = f(f(scale) * (qmin - zp));
  const upper = f(f(scale) * (qmax - zp));
  return f(f(clamp.min) - lower) <= FLOAT32_EPSILON && f(upper - f(clamp.max)) <= FLOAT32_EPSILON;
}

/** The bounds of a Relu or Clip node (Relu: min 0, no max), or undefined for any other op. */
function clampOf(n: Node): { min: number; max?: number } | undefined {
  if (n.op === 'Relu') return { min: 0 };
  if (n.op !== 'Clip') return undefined;
  const num = (k: string, d: number): number => (typeof n.attrs[k] === 'number' ? (n.attrs[k] as number) : d);
  return { min: num('min', -Infinity), max: num('max', Infinity) };
}

/**
 * The QuantizeLinear that alone reads `value`, directly or through a Relu or Clip that its
 * saturation stands for ({@link clampFoldsIntoQuantizer}), or why not.
 */
function soleQuantizer(graph: Graph, value: string): { q: Node; clamp?: Node } | string {
  if (graph.outputs.includes(value)) return `its output "${value}" is a graph output`;
  const cs = graph.consumers(value);
  if (cs.length !== 1) return `its output "${value}" has ${cs.length} readers; one QuantizeLinear must read it alone`;
  let next = cs[0]!.node;
  let clamp: Node | undefined;
  const bounds = clampOf(next);
  if (bounds) {
    clamp = next;
    const after = soleQuantizer(graph, next.outputs[0]!);
    if (typeof after === 'string') return after;
    if (after.clamp) return `two clamps (${clamp.op}, ${after.clamp.op}) follow "${value}"`;
    next = after.q;
  }
  if (next.op !== 'QuantizeLinear') return `its output "${value}" is read by ${next.op} "${next.name}", not by a QuantizeLinear`;
  const s = scalarParam(graph, next.inputs[1]);
  if (!s) return `QuantizeLinear "${next.name}" has no per-tensor scale parameter`;
  if (clamp && bounds) {
    const zp = scalarParam(graph, next.inputs[2]);
    if (!zp || (zp.dtype !== 'uint8' && zp.dtype !== 'int8')) return `${clamp.op} "${clamp.name}" cannot fold: QuantizeLinear "${next.name}" has no 8-bit zero point parameter`;
    if (!clampFoldsIntoQuantizer(bounds, s.data[0]!, zp.data[0]!, zp.dtype)) {
      return bounds.max === undefined
        ? `Relu "${clamp.name}" cannot fold: the zero point of "${next.name}" is not the bottom of its range`
        : `Clip "${clamp.name}" cannot fold: the range of "${next.name}" is not inside [${bounds.min}, ${bounds.max}]`;
    }
  }
  return { q: next, ...(clamp ? { clamp } : {}) };
}

/**
 * The integer op that replaces a Conv (QLinearConv) or a Gemm (QGemm), or why it cannot: codes of
 * a dequantized activation and of dequantized integer weights, an int32 bias at x_scale · w_scale.
 * A Conv needs a QuantizeLinear after it; a Gemm without one gives float output, as onnxruntime's
 * QGemm does.
 */
function fuseLinear(graph: Graph, n: Node): { node: Node; removed: Node[] } | string {
  const x = activationDq(graph, n.inputs[0]!);
  if (typeof x === 'string') return x;
  const dw = graph.producer(n.inputs[1]!)?.node;
  if (!dw || dw.op !== 'DequantizeLinear' || !graph.isParam(dw.inputs[0]!)) return 'its weight is not a DequantizeLinear of integer codes';
  const wq = graph.param(dw.inputs[0]!)!;
  const ws = graph.param(dw.inputs[1]!);
  if (!ws) return 'its weight scale is not a parameter';
  if (ws.data.length > 1 && (dw.attrs['axis'] ?? 1) !== wq.shape.length - 1 && dw.attrs['axis'] !== -1) {
    return 'its weight is quantized per channel on an axis other than the output channels';
  }
  const gemm = n.op === 'Gemm';
  if (gemm && ['alpha', 'beta'].some((k) => (n.attrs[k] ?? 1) !== 1)) return 'its alpha or beta is not 1';
  const out = soleQuantizer(graph, n.outputs[0]!);
  if (typeof out === 'string' && !gemm) return out;
  let bias = '';
  const b = n.inputs[2];
  if (b) {
    const db = graph.producer(b)?.node;
    const bq = db?.op === 'DequantizeLinear' ? graph.param(db.inputs[0]!) : undefined;
    if (!db || !bq || bq.dtype !== 'int32') return 'its bias is not a DequantizeLinear of int32 codes';
    // Integer runtimes add the bias to the accumulator: its scale must be x_scale · w_scale.
    const bs = graph.param(db.inputs[1]!)?.data;
    const sx = graph.param(x.scale)!.data[0]!;
    const wsd = ws.data;
    const ok = bs && Array.from(bs).every((s, c) => Math.abs(s - sx * wsd[wsd.length > 1 ? c : 0]!) <= 1e-6 * Math.abs(s));
    if (!ok) return 'its bias scale is not x_scale · w_scale';
    if (db.inputs[2] && graph.param(db.inputs[2])?.data.some((v) => v !== 0)) return 'its bias has a nonzero zero point';
    bias = db.inputs[0]!;
  }
  const xw = [x.codes, x.scale, x.zp, dw.inputs[0]!, dw.inputs[1]!, dw.inputs[2] ?? ''];
  if (typeof out === 'string') {
    // A Gemm whose output stays float (the logits): QGemm's float form.
    return { node: { name: n.name, op: 'QGemm', inputs: [...xw, bias], outputs: [...n.outputs], attrs: {} }, removed: [n] };
  }
  const removed = [n, out.q, ...(out.clamp ? [out.clamp] : [])];
  const y = [out.q.inputs[1]!, out.q.inputs[2] ?? ''];
  const node: Node = gemm
    ? { name: n.name, op: 'QGemm', inputs: [...xw, bias, ...y], outputs: [out.q.outputs[0]!], attrs: {} }
    : { name: n.name, op: 'QLinearConv', inputs: [...xw, ...y, ...(bias ? [bias] : [])], outputs: [out.q.outputs[0]!], attrs: n.attrs };
  return { node, removed };
}

/** The QLinearGlobalAveragePool that replaces `pool`, or why it cannot. */
function fusePool(graph: Graph, pool: Node): { node: Node; removed: Node[] } | string {
  const x = activationDq(graph, pool.inputs[0]!);
  if (typeof x === 'string') return x;
  if (!x.zp) return 'its input DequantizeLinear has no zero point';
  const out = soleQuantizer(graph, pool.outputs[0]!);
  if (typeof out === 'string') return out;
  if (!out.q.inputs[2]) return `QuantizeLinear "${out.q.name}" has no zero point`;
  const inputs = [x.codes, x.scale, x.zp, out.q.inputs[1]!, out.q.inputs[2]];
  const removed = [pool, out.q, ...(out.clamp ? [out.clamp] : [])];
  return { node: { name: pool.name, op: 'QLinearGlobalAveragePool', inputs, outputs: [out.q.outputs[0]!], attrs: {} }, removed };
}

/** The QLinearAdd that replaces `add`, or why it cannot. */
function fuseAdd(graph: Graph, add: Node): { node: Node; removed: Node[] } | string {
  const a = activationDq(graph, add.inputs[0]!);
  if (typeof a === 'string') return a;
  const b = activationDq(graph, add.inputs[1]!);
  if (typeof b === 'string') return b;
  if (!a.zp || !b.zp) return 'an input DequantizeLinear has no zero point';
  const shape = (v: string): string => graph.info(v).shape.join(',');
  if (shape(add.inputs[0]!) !== shape(add.inputs[1]!)) return 'its inputs have different shapes (broadcasting)';
  const out = soleQuantizer(graph, add.outputs[0]!);
  if (typeof out === 'string') return out;
  if (!out.q.inputs[2]) return `QuantizeLinear "${out.q.name}" has no zero point`;
  const inputs = [a.codes, a.scale, a.zp, b.codes, b.scale, b.zp, out.q.inputs[1]!, out.q.inputs[2]];
  const removed = [add, out.q, ...(out.clamp ? [out.clamp] : [])];
  return { node: { name: add.name, op: 'QLinearAdd', inputs, outputs: [out.q.outputs[0]!], attrs: {} }, removed };
}

const FUSERS: Readonly<Record<string, (graph: Graph, n: Node) => { node: Node; removed: Node[] } | string>> = {
  Conv: fuseLinear,
  Gemm: fuseLinear,
  GlobalAveragePool: fusePool,
  Add: fuseAdd,
};

/** The ops {@link toIntegerOps} writes: in-process integer kernels, not part of a stripped graph. */
export const INTEGER_OPS: ReadonlySet<string> = new Set(['QLinearConv', 'QGemm', 'QLinearAdd', 'QLinearGlobalAveragePool']);

/**
 * Rewrites a stripped QDQ graph (quant's `strip()`) into the integer ops an integer runtime runs,
 * the way onnxruntime fuses a QDQ file: `DQ(x) → Conv(DQ(w), DQ(b)) [→ Relu|Clip] → Q` becomes
 * QLinearConv (int32 accumulation, the bias added as int32, requantised by the float32 multiplier
 * `x_scale · w_scale / y_scale`, rounded half to even), `DQ(a), DQ(b) → Add → Q` (same shapes)
 * becomes QLinearAdd (onnxruntime's x86 kernel: two float32 fused multiply-adds of the codes with
 * the scale ratios, zero points folded into one constant), and `DQ(x) → GlobalAveragePool → Q`
 * becomes QLinearGlobalAveragePool, and `DQ(x) → Gemm(DQ(w), DQ(b)) [→ Q]` becomes QGemm
 * (onnxruntime's: the conv's accumulation and requantisation, or float output when no Q follows).
 * A Relu or Clip before the Q folds in where onnxruntime drops it ({@link clampFoldsIntoQuantizer}):
 * the fused op saturates to the Q's range. MaxPool keeps its float Q/DQ form (a max of dequantized
 * codes is exact). The result matches onnxruntime's integer kernels code for code, where float
 * arithmetic on dequantized values rounds a few ties the other way.
 *
 * The graph is not modified. DequantizeLinear nodes that nothing reads any more are dropped. The
 * integer ops are registered with core's executor first ({@link registerIntegerOps}). A scale that is
 * not finite and positive is a `NUMERIC_INVALID` error.
 */
export function toIntegerOps(graph: Graph): IntegerOpsResult {
  // Requantisation multipliers are computed from the scales: refuse ones that give no numbers.
  checkQuantScales(graph);
  // The rewritten graph holds the integer ops: core must know them before it is validated.
  registerIntegerOps();
  const replaced = new Map<string, Node>();
  const removed = new Set<string>();
  const fused: string[] = [];
  const skipped: IntegerSkip[] = [];
  for (const n of graph.nodes) {
    const fuse = FUSERS[n.op];
    if (!fuse) continue;
    const r = fuse(graph, n);
    if (typeof r === 'string') {
      skipped.push({ node: n.name, reason: r });
      continue;
    }
    fused.push(n.name);
    replaced.set(n.name, r.node);
    for (const m of r.removed) removed.add(m.name);
  }
  const rewritten = graph.nodes.flatMap((n) => (replaced.has(n.name) ? [replaced.get(n.name)!] : removed.has(n.name) ? [] : [n]));
  // Drop the DequantizeLinear nodes nothing reads any more (the fused ops read the codes), and the
  // parameters only they read. A DequantizeLinear never reads another, so one pass does.
  const readers = new Set([...graph.outputs, ...rewritten.flatMap((n) => n.inputs)]);
  const nodes = rewritten.filter((n) => n.op !== 'DequantizeLinear' || n.outputs.some((o) => readers.has(o)));
  const read = new Set([...graph.outputs, ...nodes.flatMap((n) => n.inputs)]);
  const params = graph.params.filter((p) => read.has(p.name));
  return { graph: fused.length ? graph.with({ nodes, params }) : graph, fused, skipped };
}
