import { clampFoldsIntoQuantizer } from './integer-ops.js';
import type { OAttr, OModel, ONode, OTensor } from './internal/ir.js';
import { DT, rawBytes } from './internal/proto.js';

/**
 * Rewrites a QDQ model into the QOperator form, node by node, where the pattern allows:
 *
 * - DQ(x_q) → Conv(DQ(w_q), bias) [→ Relu|Clip] → Q  ⇒  QLinearConv (the Relu or Clip folds in where
 *   the output's range makes it redundant, onnxruntime's rule: `clampFoldsIntoQuantizer`).
 * - DQ(x_q) → Gemm/MatMul(DQ(w_q)) → Q, no bias  ⇒  QLinearMatMul.
 * - DQ(x_q) → Gemm/MatMul(DQ(w_q), bias) with a float output  ⇒  MatMulInteger → Cast → Mul(s_x·s_w) → Add(bias).
 * - DynamicQuantizeLinear → DQ → Gemm/MatMul/Conv  ⇒  MatMulInteger / ConvInteger with the runtime scale.
 *
 * - DQ(a), DQ(b) → Add [→ Relu|Clip] → Q  ⇒  QLinearAdd, and DQ(x) → GlobalAveragePool → Q  ⇒
 *   QLinearGlobalAveragePool (onnxruntime's com.microsoft ops, as its own QOperator quantizer writes).
 *
 * Anything else (MaxPool, a conv whose output stays float) keeps its QDQ form: mixing both in one
 * model is valid ONNX, and onnxruntime fuses what it can of the rest.
 */
export function toQOperator(model: OModel): OModel {
  return new QOperatorPass(model).run();
}

function f32(t: OTensor): Float32Array {
  return new Float32Array(t.raw.buffer.slice(t.raw.byteOffset, t.raw.byteOffset + t.raw.byteLength));
}

function ints(t: OTensor): Int32Array | Int8Array | Uint8Array {
  const b = t.raw.buffer.slice(t.raw.byteOffset, t.raw.byteOffset + t.raw.byteLength);
  if (t.dataType === DT.INT32) return new Int32Array(b);
  if (t.dataType === DT.INT8) return new Int8Array(b);
  return new Uint8Array(b);
}

class QOperatorPass {
  private readonly producers = new Map<string, ONode>();
  private readonly consumers = new Map<string, ONode[]>();
  private readonly outputs: Set<string>;
  private readonly replaced = new Map<ONode, ONode[]>();
  private readonly removed = new Set<ONode>();

  constructor(private readonly m: OModel) {
    for (const n of m.nodes) {
      for (const o of n.outputs) this.producers.set(o, n);
      for (const i of n.inputs) if (i) this.consumers.set(i, [...(this.consumers.get(i) ?? []), n]);
    }
    this.outputs = new Set(m.outputs.map((o) => o.name));
  }

  private init(name: string | undefined): OTensor | undefined {
    return name ? this.m.initializers.get(name) : undefined;
  }

  private addInit(name: string, dataType: number, dims: number[], data: Float32Array | Int32Array | Int8Array | Uint8Array): string {
    this.m.initializers.set(name, { name, dims, dataType, raw: rawBytes(data) });
    return name;
  }

  /** The activation DQ feeding `v`: its integer input, scale and zero point (created if absent). */
  private activationDq(v: string): { q: string; scale: string; zp: string; dynamic?: ONode } | undefined {
    const dq = this.producers.get(v);
    if (!dq || dq.opType !== 'DequantizeLinear' || dq.attrs['axis'] || this.init(dq.inputs[0])) return undefined;
    const src = this.producers.get(dq.inputs[0]!);
    if (src?.opType === 'DynamicQuantizeLinear') return { q: src.outputs[0]!, scale: src.outputs[1]!, zp: src.outputs[2]!, dynamic: src };
    if (src?.opType !== 'QuantizeLinear' || !this.init(dq.inputs[1])) return undefined;
    const zpName = dq.inputs[2] || src.inputs[2];
    const zp = zpName ? zpName : this.addInit(`${dq.name}.zp0`, DT.UINT8, [], new Uint8Array(1));
    return { q: dq.inputs[0]!, scale: dq.inputs[1]!, zp };
  }

  /** The weight DQ feeding `v`: int8 codes, scale, zero point. */
  private weightDq(v: string): { q: OTensor; scale: OTensor; zp: string; axis: number | undefined } | undefined {
    const dq = this.producers.get(v);
    if (!dq || dq.opType !== 'DequantizeLinear') return undefined;
    const q = this.init(dq.inputs[0]);
    const scale = this.init(dq.inputs[1]);
    if (!q || !scale || q.dataType !== DT.INT8) return undefined;
    let zp = dq.inputs[2] ?? '';
    if (!zp) zp = this.addInit(`${dq.name}.zp0`, DT.INT8, scale.dims, new Int8Array(f32(scale).length));
    const axis = dq.attrs['axis'];
    return { q, scale, zp, axis: axis && 'i' in axis ? axis.i : undefined };
  }

  /** The float bias values behind port 2 (a float initializer or a DQ of an int32 one). */
  private biasValues(v: string | undefined): Float32Array | undefined | null {
    if (!v) return undefined;
    const t = this.init(v);
    if (t && t.dataType === DT.FLOAT) return f32(t);
    const dq = this.producers.get(v);
    const q = this.init(dq?.inputs[0]);
    const s = this.init(dq?.inputs[1]);
    if (dq?.opType !== 'DequantizeLinear' || !q || !s || q.dataType !== DT.INT32) return null;
    const codes = ints(q);
    const scale = f32(s);
    return Float32Array.from(codes, (c, i) => c * scale[scale.length === 1 ? 0 : i]!);
  }

  /**
   * The single Q that consumes `v`, directly or after a Relu or Clip that the Q's saturation
   * stands for (`clampFoldsIntoQuantizer`, onnxruntime's rule).
   */
  private outputQ(v: string): { q: ONode; clamp?: ONode } | undefined {
    const sole = (value: string): ONode | undefined => {
      const cs = this.consumers.get(value) ?? [];
      return this.outputs.has(value) || cs.length !== 1 ? undefined : cs[0];
    };
    const isQ = (n: ONode): boolean => n.opType === 'QuantizeLinear' && !n.attrs['axis'] && this.init(n.inputs[1]) !== undefined;
    const c = sole(v);
    if (!c) return undefined;
    if (isQ(c)) return { q: c };
    const bounds = this.clampBounds(c);
    const q = sole(c.outputs[0]!);
    if (!bounds || !q || !isQ(q)) return undefined;
    const zp = this.init(q.inputs[2]);
    if (!zp || (zp.dataType !== DT.UINT8 && zp.dataType !== DT.INT8)) return undefined;
    const folds = clampFoldsIntoQuantizer(bounds, f32(this.init(q.inputs[1])!)[0]!, ints(zp)[0]!, zp.dataType === DT.UINT8 ? 'uint8' : 'int8');
    return folds ? { q, clamp: c } : undefined;
  }

  /** The bounds of a Relu, or of a Clip with constant bounds (opset-13 inputs or older attributes). */
  private clampBounds(n: ONode): { min: number; max?: number } | undefined {
    if (n.opType === 'Relu') return { min: 0 };
    if (n.opType !== 'Clip') return undefined;
    const bound = (port: number, attr: string, absent: number): number | undefined => {
      const name = n.inputs[port];
      if (name) {
        const t = this.init(name);
        return t && t.dataType === DT.FLOAT && t.raw.byteLength === 4 ? f32(t)[0] : undefined;
      }
      const a = n.attrs[attr];
      return a && 'f' in a ? a.f : absent;
    };
    const min = bound(1, 'min', -Infinity);
    const max = bound(2, 'max', Infinity);
    return min === undefined || max === undefined ? undefined : { min, max };
  }

  private replace(n: ONode, by: ONode[], remove: ONode[] = []): void {
    this.replaced.set(n, by);
    for (const r of remove) this.removed.add(r);
  }

  run(): OModel {
    for (const n of this.m.nodes) {
      if (n.opType === 'Conv') this.conv(n);
      else if (n.opType === 'MatMul' || (n.opType === 'Gemm' && this.plainGemm(n))) this.matmul(n);
      else if (n.opType === 'Add' || n.opType === 'GlobalAveragePool') this.contrib(n);
    }
    const nodes: ONode[] = [];
    for (const n of this.m.nodes) {
      if (this.removed.has(n)) continue;
      nodes.push(...(this.replaced.get(n) ?? [n]));
    }
    return prune({ ...this.m, nodes });
  }

  /**
   * `DQ(a), DQ(b) → Add [→ Relu|Clip] → Q` ⇒ QLinearAdd and `DQ(x) → GlobalAveragePool → Q` ⇒
   * QLinearGlobalAveragePool, onnxruntime's com.microsoft ops (what its own QOperator quantizer
   * writes, and what it fuses the QDQ form into).
   */
  private contrib(n: ONode): void {
    const ins = n.opType === 'Add' ? [this.activationDq(n.inputs[0]!), this.activationDq(n.inputs[1]!)] : [this.activationDq(n.inputs[0]!)];
    if (ins.some((x) => !x || x.dynamic)) return;
    const out = this.outputQ(n.outputs[0]!);
    if (!out) return;
    const yzp = out.q.inputs[2] || this.addInit(`${n.name}.yzp0`, DT.UINT8, [], new Uint8Array(1));
    const op = n.opType === 'Add' ? 'QLinearAdd' : 'QLinearGlobalAveragePool';
    const inputs = [...ins.flatMap((x) => [x!.q, x!.scale, x!.zp]), out.q.inputs[1]!, yzp];
    const attrs: Record<string, OAttr> = n.opType === 'Add' ? {} : { channels_last: { i: 0 } };
    this.replace(n, [{ name: n.name, opType: op, domain: 'com.microsoft', inputs, outputs: [...out.q.outputs], attrs }], [out.q, ...(out.clamp ? [out.clamp] : [])]);
  }

  private plainGemm(n: ONode): boolean {
    const num = (k: string, d: number): number => {
      const a = n.attrs[k];
      return a && 'f' in a ? a.f : a && 'i' in a ? a.i : d;
    };
    return num('alpha', 1) === 1 && num('beta', 1) === 1 && num('transA', 0) === 0 && num('transB', 0) === 0;
  }

  private conv(n: ONode): void {
    const x = this.activationDq(n.inputs[0]!);
    const w = this.weightDq(n.inputs[1]!);
    if (!x || !w) return;
    const bias = this.biasValues(n.inputs[2]);
    if (bias === null) return;
    const ws = f32(w.scale);
    if (x.dynamic) return this.convInteger(n, x, w, bias);
    const out = this.outputQ(n.outputs[0]!);
    if (!out) return;
    const xs = f32(this.init(x.scale)!)[0]!;
    const ins = [x.q, x.scale, x.zp, w.q.name, w.scale.name, w.zp, out.q.inputs[1]!, out.q.inputs[2] || this.addInit(`${n.name}.yzp0`, DT.UINT8, [], new Uint8Array(1))];
    if (bias) {
      const bq = Int32Array.from(bias, (b, i) => Math.round(b / (xs * ws[ws.length === 1 ? 0 : i]!)));
      ins.push(this.addInit(`${n.name}.bias_q`, DT.INT32, [bias.length], bq));
    }
    this.replace(n, [{ name: n.name, opType: 'QLinearConv', inputs: ins, outputs: [...out.q.outputs], attrs: n.attrs }], [out.q, ...(out.clamp ? [out.clamp] : [])]);
  }

  private convInteger(n: ONode, x: { q: string; scale: string; zp: string }, w: { q: OTensor; scale: OTensor; zp: string; axis: number | undefined }, bias: Float32Array | undefined): void {
    // onnxruntime's ConvInteger takes one weight zero point for all channels (per-channel scales
    // are applied after it, by the Mul below): a conv whose channels have different zero points
    // keeps its QDQ form.
    const zpT = this.init(w.zp);
    const zps = zpT ? ints(zpT) : [0];
    if (zps.some((z) => z !== zps[0])) return;
    // It takes uint8 weights: shift the int8 codes and the zero point by 128.
    const wq = Uint8Array.from(ints(w.q), (v) => v + 128);
    const cout = w.q.dims[0]!;
    const wName = this.addInit(`${n.name}.w_u8`, DT.UINT8, w.q.dims, wq);
    const zpName = this.addInit(`${n.name}.w_zp_u8`, DT.UINT8, [], Uint8Array.of(zps[0]! + 128));
    const ws = f32(w.scale);
    const scale4 = this.addInit(`${n.name}.w_scale4`, DT.FLOAT, [1, ws.length, 1, 1], ws);
    const o = n.outputs[0]!;
    const nodes: ONode[] = [
      { name: `${n.name}/int`, opType: 'ConvInteger', inputs: [x.q, wName, x.zp, zpName], outputs: [`${o}.i32`], attrs: n.attrs },
      { name: `${n.name}/cast`, opType: 'Cast', inputs: [`${o}.i32`], outputs: [`${o}.f`], attrs: { to: { i: DT.FLOAT } } },
      { name: `${n.name}/xscale`, opType: 'Mul', inputs: [`${o}.f`, x.scale], outputs: [`${o}.fx`], attrs: {} },
      { name: `${n.name}/wscale`, opType: 'Mul', inputs: [`${o}.fx`, scale4], outputs: [bias ? `${o}.nb` : o], attrs: {} },
    ];
    if (bias) {
      const b = this.addInit(`${n.name}.bias4`, DT.FLOAT, [1, cout, 1, 1], bias);
      nodes.push({ name: `${n.name}/bias`, opType: 'Add', inputs: [`${o}.nb`, b], outputs: [o], attrs: {} });
    }
    this.replace(n, nodes);
  }

  private matmul(n: ONode): void {
    const x = this.activationDq(n.inputs[0]!);
    const w = this.weightDq(n.inputs[1]!);
    if (!x || !w || w.q.dims.length !== 2) return;
    const bias = this.biasValues(n.inputs[2]);
    if (bias === null) return;
    const out = !bias && !x.dynamic ? this.outputQ(n.outputs[0]!) : undefined;
    if (out && !out.clamp) {
      const ins = [x.q, x.scale, x.zp, w.q.name, w.scale.name, w.zp, out.q.inputs[1]!, out.q.inputs[2] || this.addInit(`${n.name}.yzp0`, DT.UINT8, [], new Uint8Array(1))];
      this.replace(n, [{ name: n.name, opType: 'QLinearMatMul', inputs: ins, outputs: [...out.q.outputs], attrs: {} }], [out.q]);
      return;
    }
    const o = n.outputs[0]!;
    const ws = f32(w.scale);
    const nodes: ONode[] = [
      { name: `${n.name}/int`, opType: 'MatMulInteger', inputs: [x.q, w.q.name, x.zp, w.zp], outputs: [`${o}.i32`], attrs: {} },
      { name: `${n.name}/cast`, opType: 'Cast', inputs: [`${o}.i32`], outputs: [`${o}.f`], attrs: { to: { i: DT.FLOAT } } },
    ];
    let cur = `${o}.f`;
    const step = (name: string, op: string, other: string, last: boolean): void => {
      const next = last ? o : `${o}.${name}`;
      nodes.push({ name: `${n.name}/${name}`, opType: op, inputs: [cur, other], outputs: [next], attrs: {} });
      cur = next;
    };
    if (x.dynamic) {
      step('xscale', 'Mul', x.scale, false);
      step('wscale', 'Mul', w.scale.name, !bias);
    } else {
      const xs = f32(this.init(x.scale)!)[0]!;
      const combined = Float32Array.from(ws, (s) => s * xs);
      step('scale', 'Mul', this.addInit(`${n.name}.rescale`, DT.FLOAT, ws.length === 1 ? [] : [ws.length], combined), !bias);
    }
    if (bias) step('bias', 'Add', this.addInit(`${n.name}.bias_f`, DT.FLOAT, [bias.length], bias), true);
    this.replace(n, nodes);
  }
}

/** Drops nodes whose outputs nobody reads and initializers no node reads. */
function prune(m: OModel): OModel {
  let nodes = m.nodes;
  for (;;) {
    const used = new Set<string>(m.outputs.map((o) => o.name));
    for (const n of nodes) for (const i of n.inputs) used.add(i);
    const kept = nodes.filter((n) => n.outputs.some((o) => used.has(o)));
    if (kept.length === nodes.length) break;
    nodes = kept;
  }
  const used = new Set<string>();
  for (const n of nodes) for (const i of n.inputs) used.add(i);
  const initializers = new Map([...m.initializers].filter(([k]) => used.has(k)));
  return { ...m, nodes, initializers };
}
