import type { onnx } from 'onnx-proto';
import type { Konst } from './decode.js';
import { AT, DT } from './proto.js';

/** A QOperator node the reader cannot expand, and why. */
export interface QOperatorSkip {
  node: string;
  op: string;
  why: string;
}

/**
 * How a fused QLinear op reads as QDQ: its quantized inputs as [value, scale, zero point] ports (the
 * file's port numbers), the output quantizer's [scale, zero point] ports, and the float op between.
 * `weightAxis` is the per-channel axis of the second input's scale (QLinearConv: output channels of
 * the OIHW weight; QLinearMatMul: the columns of B).
 */
interface QLinearForm {
  op: string;
  inputs: (r: number) => [number, number, number][];
  out: [number, number];
  weightAxis?: number;
  /** Port of an int32 bias with scale x_scale · w_scale. */
  bias?: number;
  domain?: string;
}

const pairInputs = (): [number, number, number][] => [
  [0, 1, 2],
  [3, 4, 5],
];

const QLINEAR: Record<string, QLinearForm> = {
  QLinearConv: { op: 'Conv', inputs: pairInputs, out: [6, 7], weightAxis: 0, bias: 8 },
  QLinearMatMul: { op: 'MatMul', inputs: pairInputs, out: [6, 7], weightAxis: 1 },
  QLinearAdd: { op: 'Add', inputs: pairInputs, out: [6, 7], domain: 'com.microsoft' },
  QLinearMul: { op: 'Mul', inputs: pairInputs, out: [6, 7], domain: 'com.microsoft' },
  QLinearGlobalAveragePool: { op: 'GlobalAveragePool', inputs: () => [[0, 1, 2]], out: [3, 4], domain: 'com.microsoft' },
  QLinearAveragePool: { op: 'AveragePool', inputs: () => [[0, 1, 2]], out: [3, 4], domain: 'com.microsoft' },
  // Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) per input.
  QLinearConcat: {
    op: 'Concat',
    inputs: (r) => Array.from({ length: Math.floor((r - 2) / 3) }, (_, i): [number, number, number] => [2 + 3 * i, 3 + 3 * i, 4 + 3 * i]),
    out: [0, 1],
    domain: 'com.microsoft',
  },
};

/** Integer ops whose int32 output a Cast to float turns back into values: read as a float op of dequantized codes. */
const INTEGER: Record<string, string> = { MatMulInteger: 'MatMul', ConvInteger: 'Conv' };

function isDefaultDomain(d: string | null | undefined): boolean {
  return !d || d === 'ai.onnx';
}

/**
 * Rewrites a QOperator model's fused integer nodes into the QDQ form the reader reads (the inverse
 * of the writer's `toQOperator`): `QLinearConv(x, …, w, …, y_scale, y_zp, B)` becomes
 * `DQ(x) → Conv(DQ(w), DQ(B, x_scale·w_scale)) → Q(y_scale, y_zp)`, and likewise QLinearMatMul,
 * onnxruntime's QLinearAdd/Mul/GlobalAveragePool/AveragePool/Concat (com.microsoft), and
 * MatMulInteger/ConvInteger followed by a Cast to float (dequantized with scale 1 and their zero
 * points). `toIntegerOps` fuses the convolutions back for integer-exact runs. New
 * constants go into `konsts`; `taken` holds every name in use and receives the new ones.
 * Nodes that cannot be expanded come back in `skipped` with the reason. `onNode` hears of each
 * node made and the file node it stands for (error messages name the file node's offset).
 */
export function expandQOperator(
  nodes: readonly onnx.INodeProto[],
  konsts: Map<string, Konst>,
  taken: Set<string>,
  onNode?: (made: onnx.INodeProto, from: onnx.INodeProto) => void,
): { nodes: onnx.INodeProto[]; skipped: QOperatorSkip[] } {
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };
  const floatScalar = (v: string | undefined): number | undefined => {
    const k = v ? konsts.get(v) : undefined;
    return k && k.dtype === 'float32' && k.data.length === 1 ? (k.data[0] as number) : undefined;
  };
  const size = (v: string | undefined): number => (v ? (konsts.get(v)?.data.length ?? 1) : 1);
  /** A DequantizeLinear's scale and zero point of one shape: a scalar zero point under per-channel scales is repeated. */
  const zeroPointFor = (scale: string, zp: string | undefined): string | undefined => {
    const k = zp ? konsts.get(zp) : undefined;
    const n = size(scale);
    if (!zp || !k || k.data.length !== 1 || n === 1) return zp;
    const name = fresh(`${zp}.per_channel`);
    const data = k.dtype === 'int8' ? new Int8Array(n) : k.dtype === 'uint8' ? new Uint8Array(n) : new Int32Array(n);
    data.fill(k.data[0] as number);
    konsts.set(name, { dims: [n], dtype: k.dtype, data });
    return name;
  };
  /** Scale 1 in the shape of `zp` (an integer op's operand has no scale, only a zero point), one constant per size. */
  const ones = new Map<number, string>();
  const unitScale = (zp: string | undefined): string => {
    const n = size(zp);
    let name = ones.get(n);
    if (!name) {
      name = fresh(n > 1 ? `qoperator.ones${n}` : 'qoperator.one');
      konsts.set(name, { dims: n > 1 ? [n] : [], dtype: 'float32', data: new Float32Array(n).fill(1) });
      ones.set(n, name);
    }
    return name;
  };
  const readers = new Map<string, onnx.INodeProto[]>();
  for (const n of nodes) for (const i of n.input ?? []) if (i) readers.set(i, [...(readers.get(i) ?? []), n]);

  const out: onnx.INodeProto[] = [];
  const skipped: QOperatorSkip[] = [];
  const node = (name: string, opType: string, input: string[], output: string[], attribute: onnx.IAttributeProto[] = []): onnx.INodeProto => ({
    name: fresh(name),
    opType,
    domain: '',
    input,
    output,
    attribute,
  });
  const axisAttr = (scale: string, axis: number | undefined): onnx.IAttributeProto[] =>
    axis !== undefined && (konsts.get(scale)?.data.length ?? 1) > 1 ? [{ name: 'axis', type: AT.INT, i: axis }] : [];

  for (const n of nodes) {
    const before = out.length;
    try {
      expandOne(n);
    } finally {
      for (const made of out.slice(before)) if (made !== n) onNode?.(made, n);
    }
  }
  return { nodes: out, skipped };

  function expandOne(n: onnx.INodeProto): void {
    const op = n.opType ?? '';
    const name = n.name || op;
    const ins = n.input ?? [];
    const form = QLINEAR[op];
    const ported = (ports: number[]): boolean => ports.every((p) => !!ins[p]) && !!n.output?.[0];
    if (form && (form.domain ?? '') === (isDefaultDomain(n.domain) ? '' : n.domain)) {
      const triples = form.inputs(ins.length);
      if (triples.length === 0 || !ported([...triples.flatMap(([v, sc]) => [v, sc]), form.out[0]])) {
        skipped.push({ node: name, op, why: 'an input or the output is missing' });
        out.push(n);
        return;
      }
      const missing = [...triples.map(([, sc]) => sc), form.out[0]].find((p) => !konsts.has(ins[p] ?? ''));
      if (missing !== undefined) {
        skipped.push({ node: name, op, why: `its scale at input ${missing} is not a constant` });
        out.push(n);
        return;
      }
      const attrs = (n.attribute ?? []).filter((a) => a.name !== 'channels_last');
      if ((n.attribute ?? []).some((a) => a.name === 'channels_last' && Number(a.i ?? 0) !== 0)) {
        skipped.push({ node: name, op, why: 'channels_last inputs are not supported' });
        out.push(n);
        return;
      }
      // The int32 bias has scale x_scale · w_scale (per output channel).
      const b = form.bias !== undefined ? ins[form.bias] : undefined;
      const sx = floatScalar(ins[1]);
      const sw = konsts.get(ins[4] ?? '');
      if (b && (sx === undefined || !sw || sw.dtype !== 'float32')) {
        skipped.push({ node: name, op, why: 'its bias scale x_scale · w_scale needs constant float scales' });
        out.push(n);
        return;
      }
      const floatIns = triples.map(([v, sc, z], k) => {
        const dq = fresh(`${ins[v]}.dq`);
        const axis = k === 1 ? form.weightAxis : undefined;
        const zp = zeroPointFor(ins[sc]!, ins[z]);
        out.push(node(`${name}/dq${k}`, 'DequantizeLinear', [ins[v]!, ins[sc]!, ...(zp ? [zp] : [])], [dq], axisAttr(ins[sc]!, axis)));
        return dq;
      });
      if (b && sw && sx !== undefined) {
        const bs = fresh(`${name}.bias_scale`);
        konsts.set(bs, { dims: sw.dims.length ? [...sw.dims] : [], dtype: 'float32', data: Float32Array.from(sw.data as Float32Array, (s) => sx * s) });
        const bdq = fresh(`${b}.dq`);
        out.push(node(`${name}/dq_bias`, 'DequantizeLinear', [b, bs], [bdq], axisAttr(bs, 0)));
        floatIns.push(bdq);
      }
      const y = fresh(`${n.output![0]}.float`);
      out.push(node(`${name}/float`, form.op, floatIns, [y], attrs));
      out.push(node(`${name}/q`, 'QuantizeLinear', [y, ins[form.out[0]]!, ...(ins[form.out[1]] ? [ins[form.out[1]]!] : [])], [n.output![0]!]));
      return;
    }
    const floatOp = isDefaultDomain(n.domain) ? INTEGER[op] : undefined;
    if (floatOp) {
      if (!ported([0, 1])) {
        skipped.push({ node: name, op, why: 'an input or the output is missing' });
        out.push(n);
        return;
      }
      const o = n.output![0]!;
      const cs = readers.get(o) ?? [];
      if (cs.length === 0 || !cs.every((c) => c.opType === 'Cast' && (c.attribute ?? []).some((a) => a.name === 'to' && Number(a.i ?? 0) === DT.FLOAT))) {
        skipped.push({ node: name, op, why: 'its int32 output must be read only by Casts to float' });
        out.push(n);
        return;
      }
      if (size(ins[2]) > 1) {
        skipped.push({ node: name, op, why: 'a per-row zero point of its first input is not supported' });
        out.push(n);
        return;
      }
      // Cast(op(a, b, a_zp, b_zp)) = op(DQ(a, 1, a_zp), DQ(b, 1, b_zp)): integer sums, exact in
      // float below 2^24. A per-channel b_zp is on B's columns (MatMul) or output channels (Conv).
      const floatIns = [0, 1].map((k) => {
        const dq = fresh(`${ins[k]}.dq`);
        const zp = ins[k + 2];
        const scale = unitScale(zp);
        out.push(node(`${name}/dq${k}`, 'DequantizeLinear', [ins[k]!, scale, ...(zp ? [zp] : [])], [dq], axisAttr(scale, op === 'MatMulInteger' ? 1 : 0)));
        return dq;
      });
      out.push(node(`${name}/float`, floatOp, floatIns, [o], n.attribute ?? []));
      return;
    }
    out.push(n);
  }
}
