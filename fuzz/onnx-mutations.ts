/**
 * Seeded mutations of ONNX files for the fuzz harness: byte-level damage (flips anywhere or inside
 * one node's bytes, truncation, splices) and field-level edits of the decoded protobuf (attribute
 * types and values, inputs dropped, added or rewired, nodes duplicated, dropped or given another
 * op, new nodes of every op the reader knows inserted with hostile attributes, initializer dims,
 * dtypes and values — NaN, ±Inf, zero scales, huge dims —, graph input shapes, opsets).
 * Every mutation is a pure function of the base bytes and the rng draws.
 */
import type { Rng } from '@tensorpress/core-tensor';
import { insertOp } from './onnx-insert-op.js';
import { AT, DT, HOSTILE_FLOATS, HOSTILE_INTS, OPS, STRINGS, fresh, nodes, onnx, pick, randomAttr, randomInts, valueNames, type FieldMutation, type Model, type NodeP, type TensorP } from './onnx-mutation-kit.js';

const ATTR_NAMES = [
  'kernel_shape', 'strides', 'pads', 'dilations', 'group', 'auto_pad', 'axis', 'axes', 'perm', 'alpha', 'beta', 'epsilon', 'momentum',
  'transA', 'transB', 'mode', 'ceil_mode', 'count_include_pad', 'keepdims', 'to', 'split', 'value', 'value_ints', 'min', 'max', 'start', 'end',
  'training_mode', 'saturate', 'block_size', 'storage_order', 'num_outputs', 'foo',
];

function withAttrs(m: Model): NodeP[] {
  return nodes(m).filter((n) => (n.attribute ?? []).length > 0);
}

const attrType: FieldMutation = (m, rng) => {
  const n = pick(rng, withAttrs(m).length > 0 ? withAttrs(m) : [undefined]);
  if (!n) return undefined;
  const a = pick(rng, n.attribute!);
  const was = a.type;
  const v = randomAttr(rng);
  n.attribute![n.attribute!.indexOf(a)] = onnx.AttributeProto.create({ name: a.name, ...v });
  return `attribute ${a.name} of "${n.name}" (${n.opType}): type ${was} -> ${v.type}`;
};

const attrValue: FieldMutation = (m, rng) => {
  const n = pick(rng, withAttrs(m).length > 0 ? withAttrs(m) : [undefined]);
  if (!n) return undefined;
  const a = pick(rng, n.attribute!);
  switch (a.type) {
    case AT.INT:
      a.i = pick(rng, HOSTILE_INTS);
      return `attribute ${a.name} of "${n.name}" (${n.opType}) = ${String(a.i)}`;
    case AT.FLOAT:
      a.f = pick(rng, HOSTILE_FLOATS);
      return `attribute ${a.name} of "${n.name}" (${n.opType}) = ${a.f}`;
    case AT.INTS:
      a.ints = randomInts(rng);
      return `attribute ${a.name} of "${n.name}" (${n.opType}) = [${a.ints.join(', ')}]`;
    case AT.STRING: {
      const s = pick(rng, STRINGS);
      a.s = new TextEncoder().encode(s);
      return `attribute ${a.name} of "${n.name}" (${n.opType}) = "${s.slice(0, 20)}"`;
    }
    default:
      return undefined;
  }
};

const attrAdd: FieldMutation = (m, rng) => {
  const n = pick(rng, nodes(m));
  const name = rng.next() < 0.3 && (n.attribute ?? []).length > 0 ? pick(rng, n.attribute!).name! : pick(rng, ATTR_NAMES);
  const v = randomAttr(rng);
  n.attribute = [...(n.attribute ?? []), onnx.AttributeProto.create({ name, ...v })];
  return `attribute ${name} (type ${v.type}) added to "${n.name}" (${n.opType})`;
};

const attrDrop: FieldMutation = (m, rng) => {
  const n = pick(rng, withAttrs(m).length > 0 ? withAttrs(m) : [undefined]);
  if (!n) return undefined;
  const i = rng.int(n.attribute!.length);
  const name = n.attribute![i]!.name;
  n.attribute!.splice(i, 1);
  return `attribute ${name} dropped from "${n.name}" (${n.opType})`;
};

const inputDrop: FieldMutation = (m, rng) => {
  const n = pick(rng, nodes(m));
  const ins = n.input ?? [];
  if (ins.length === 0) return undefined;
  const i = rng.int(ins.length);
  if (rng.next() < 0.5) ins.splice(i, 1);
  else ins[i] = '';
  n.input = ins;
  return `input ${i} of "${n.name}" (${n.opType}) dropped`;
};

const inputAdd: FieldMutation = (m, rng) => {
  const n = pick(rng, nodes(m));
  const v = rng.next() < 0.8 ? pick(rng, valueNames(m)) : pick(rng, ['', 'nowhere']);
  n.input = [...(n.input ?? []), v];
  return `input "${v}" appended to "${n.name}" (${n.opType})`;
};

const inputRewire: FieldMutation = (m, rng) => {
  const n = pick(rng, nodes(m));
  const ins = n.input ?? [];
  if (ins.length === 0) return undefined;
  const i = rng.int(ins.length);
  ins[i] = pick(rng, valueNames(m));
  return `input ${i} of "${n.name}" (${n.opType}) now reads "${ins[i]}"`;
};

const outputEdit: FieldMutation = (m, rng) => {
  const n = pick(rng, nodes(m));
  const outs = n.output ?? [];
  if (rng.next() < 0.3 || outs.length === 0) {
    n.output = [...outs, fresh(m, 'extra')];
    return `an output added to "${n.name}" (${n.opType})`;
  }
  const i = rng.int(outs.length);
  outs[i] = rng.next() < 0.5 ? '' : fresh(m, 'renamed');
  return `output ${i} of "${n.name}" (${n.opType}) renamed to "${outs[i]}"`;
};

const nodeDup: FieldMutation = (m, rng) => {
  const ns = nodes(m);
  const i = rng.int(ns.length);
  const copy = onnx.NodeProto.decode(onnx.NodeProto.encode(ns[i]!).finish());
  if (rng.next() < 0.5) copy.output = (copy.output ?? []).map((o) => fresh(m, `${o}.dup`));
  ns.splice(i + 1, 0, copy);
  return `node "${ns[i]!.name}" (${ns[i]!.opType}) duplicated`;
};

const nodeDrop: FieldMutation = (m, rng) => {
  const ns = nodes(m);
  const i = rng.int(ns.length);
  const [n] = ns.splice(i, 1);
  return `node "${n!.name}" (${n!.opType}) dropped`;
};

const nodeSwapOp: FieldMutation = (m, rng) => {
  const n = pick(rng, nodes(m));
  const was = n.opType;
  n.opType = pick(rng, OPS);
  return `node "${n.name}" op ${was} -> ${n.opType}`;
};

const nodeDomain: FieldMutation = (m, rng) => {
  const n = pick(rng, nodes(m));
  n.domain = pick(rng, ['com.microsoft', 'ai.onnx.ml', 'foo', 'ai.onnx']);
  return `node "${n.name}" (${n.opType}) domain -> ${n.domain}`;
};

const nodeCycle: FieldMutation = (m, rng) => {
  const ns = nodes(m);
  const a = pick(rng, ns);
  const b = pick(rng, ns);
  if (!(a.output ?? [])[0] || !(b.output ?? [])[0] || (a.input ?? []).length === 0 || (b.input ?? []).length === 0) return undefined;
  a.input![0] = b.output![0]!;
  b.input![0] = a.output![0]!;
  return `"${a.name}" and "${b.name}" read each other`;
};

const nodeShuffle: FieldMutation = (m, rng) => {
  const ns = nodes(m);
  for (let i = ns.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [ns[i], ns[j]] = [ns[j]!, ns[i]!];
  }
  return 'node order shuffled';
};

function floatInits(m: Model): TensorP[] {
  return (m.graph!.initializer ?? []).filter((t) => t.dataType === DT.FLOAT);
}

const initDims: FieldMutation = (m, rng) => {
  const t = pick(rng, m.graph!.initializer ?? []);
  if (!t) return undefined;
  const dims = (t.dims ?? []).map(Number);
  const how = rng.int(5);
  if (how === 0 && dims.length > 0) dims.splice(rng.int(dims.length), 1);
  else if (how === 1) dims.splice(rng.int(dims.length + 1), 0, 1);
  else if (how === 2) dims.reverse();
  else if (how === 3 && dims.length > 0) dims[rng.int(dims.length)] = dims[0]! * 2;
  else dims[rng.int(Math.max(1, dims.length))] = pick(rng, [0, 1, 3]);
  t.dims = dims;
  return `dims of "${t.name}" -> [${dims.join(', ')}]`;
};

const initHugeDims: FieldMutation = (m, rng) => {
  const t = pick(rng, m.graph!.initializer ?? []);
  if (!t) return undefined;
  t.dims = pick(rng, [[2 ** 31, 2 ** 31], [2 ** 24, 2 ** 24], [2 ** 40], [-1], [2 ** 24, 2 ** 24, 2 ** 24, 2 ** 24], Array(9).fill(1) as number[]]);
  return `dims of "${t.name}" -> [${t.dims.join(', ')}]`;
};

const initDtype: FieldMutation = (m, rng) => {
  const t = pick(rng, m.graph!.initializer ?? []);
  if (!t) return undefined;
  const was = t.dataType;
  t.dataType = pick(rng, [0, DT.FLOAT, DT.UINT8, DT.INT8, DT.INT32, DT.INT64, DT.STRING, DT.BOOL, DT.FLOAT16, DT.DOUBLE, DT.UINT4, DT.INT4, 99]);
  return `dtype of "${t.name}" ${was} -> ${t.dataType}`;
};

/** Writes `v` into element `i` of a float tensor held as raw bytes or float_data. */
function setFloat(t: TensorP, i: number, v: number): void {
  if (t.rawData && t.rawData.length >= 4) {
    const raw = new Uint8Array(t.rawData);
    new DataView(raw.buffer).setFloat32(4 * (i % Math.floor(raw.length / 4)), v, true);
    t.rawData = raw;
  } else if (t.floatData && t.floatData.length > 0) {
    t.floatData[i % t.floatData.length] = v;
  }
}

const initNonFinite: FieldMutation = (m, rng) => {
  const fs = floatInits(m);
  if (fs.length === 0) return undefined;
  // Scales are what quantized files are most sensitive to: favour them.
  const scales = fs.filter((t) => /scale/i.test(t.name ?? ''));
  const t = scales.length > 0 && rng.next() < 0.5 ? pick(rng, scales) : pick(rng, fs);
  const v = pick(rng, [Number.NaN, Infinity, -Infinity, 0, -1, -0.5, 1e-45]);
  const all = rng.next() < 0.3;
  const count = all ? 1 << 20 : 1 + rng.int(3);
  const len = t.rawData ? t.rawData.length / 4 : (t.floatData ?? []).length;
  for (let k = 0; k < Math.min(count, len); k++) setFloat(t, all ? k : rng.int(Math.max(1, len)), v);
  return `${all ? 'every value' : 'values'} of "${t.name}" = ${v}`;
};

const initRaw: FieldMutation = (m, rng) => {
  const t = pick(rng, (m.graph!.initializer ?? []).filter((x) => x.rawData && x.rawData.length > 0));
  if (!t) return undefined;
  const raw = t.rawData!;
  t.rawData = rng.next() < 0.5 ? raw.slice(0, rng.int(raw.length)) : new Uint8Array([...raw, ...new Uint8Array(1 + rng.int(8))]);
  return `raw_data of "${t.name}" resized to ${t.rawData.length} bytes`;
};

const initDrop: FieldMutation = (m, rng) => {
  const inits = m.graph!.initializer ?? [];
  if (inits.length === 0) return undefined;
  const [t] = inits.splice(rng.int(inits.length), 1);
  return `initializer "${t!.name}" dropped`;
};

const initExternal: FieldMutation = (m, rng) => {
  const t = pick(rng, m.graph!.initializer ?? []);
  if (!t) return undefined;
  t.dataLocation = 1;
  t.externalData = [{ key: 'location', value: pick(rng, ['../../etc/passwd', '/etc/passwd', 'weights.bin', '']) }];
  return `initializer "${t.name}" moved to external data`;
};

const graphInputShape: FieldMutation = (m, rng) => {
  const vi = m.graph!.input?.[0];
  const shape = vi?.type?.tensorType?.shape;
  if (!vi || !shape) return undefined;
  const dims = shape.dim ?? [];
  const how = rng.int(6);
  let what: string;
  if (how === 0) {
    dims.splice(2, 2, { dimValue: 2 ** 24 }, { dimValue: 2 ** 24 });
    what = 'H, W = 2^24';
  } else if (how === 1) {
    const k = 1 + rng.int(Math.max(1, dims.length - 1));
    const v = pick(rng, [0, 1, 2, 3, 7, 29, 64, 511, 2 ** 24 + 1, -3]);
    dims[k] = { dimValue: v };
    what = `dim ${k} = ${v}`;
  } else if (how === 2) {
    dims.splice(rng.int(dims.length), 1);
    what = 'rank - 1';
  } else if (how === 3) {
    dims.push({ dimValue: 1 });
    what = 'rank + 1';
  } else if (how === 4) {
    dims[1 + rng.int(Math.max(1, dims.length - 1))] = { dimParam: 'h' };
    what = 'a dynamic non-batch dim';
  } else {
    vi.type!.tensorType!.elemType = pick(rng, [0, DT.UINT8, DT.INT8, DT.INT32, DT.INT64, DT.DOUBLE, DT.BOOL, DT.FLOAT16]);
    return `graph input elem type -> ${vi.type!.tensorType!.elemType}`;
  }
  shape.dim = dims;
  return `graph input ${what}`;
};

const graphOutputs: FieldMutation = (m, rng) => {
  const g = m.graph!;
  const how = rng.int(4);
  if (how === 0) g.output = [];
  else if (how === 1 && g.output?.[0]) g.output[0].name = 'nowhere';
  else if (how === 2 && g.output?.[0] && g.initializer?.[0]) g.output[0].name = g.initializer[0].name;
  else g.output = [...(g.output ?? []), { name: pick(rng, valueNames(m)) }];
  return `graph outputs edited (${how})`;
};

const opset: FieldMutation = (m, rng) => {
  const v = pick(rng, [1, 7, 10, 11, 12, 13, 14, 17, 18, 19, 21, 22, 999]);
  m.opsetImport = [{ domain: '', version: v }, ...(m.opsetImport ?? []).filter((o) => o.domain)];
  return `opset -> ${v}`;
};

/** The field-level mutations, with weights (how often each is drawn). */
const FIELD: readonly [FieldMutation, number][] = [
  [attrType, 6],
  [attrValue, 8],
  [attrAdd, 4],
  [attrDrop, 3],
  [inputDrop, 4],
  [inputAdd, 3],
  [inputRewire, 4],
  [outputEdit, 2],
  [nodeDup, 2],
  [nodeDrop, 2],
  [nodeSwapOp, 5],
  [nodeDomain, 1],
  [nodeCycle, 1],
  [nodeShuffle, 1],
  [initDims, 3],
  [initHugeDims, 2],
  [initDtype, 3],
  [initNonFinite, 5],
  [initRaw, 2],
  [initDrop, 2],
  [initExternal, 1],
  [graphInputShape, 4],
  [graphOutputs, 1],
  [opset, 2],
  [insertOp, 16],
];
const FIELD_TOTAL = FIELD.reduce((s, [, w]) => s + w, 0);

function fieldMutation(rng: Rng): FieldMutation {
  let r = rng.next() * FIELD_TOTAL;
  for (const [f, w] of FIELD) {
    r -= w;
    if (r < 0) return f;
  }
  return FIELD[FIELD.length - 1]![0];
}

/** Byte-level damage of the encoded file. */
function byteMutation(base: Uint8Array, rng: Rng): { bytes: Uint8Array; mutation: string } {
  const how = rng.int(4);
  if (how === 0) {
    const at = rng.int(base.length);
    return { bytes: Uint8Array.from(base.subarray(0, at)), mutation: `truncated at byte ${at}` };
  }
  if (how === 1) {
    const bytes = Uint8Array.from(base);
    const flips = 1 + rng.int(8);
    for (let f = 0; f < flips; f++) bytes[rng.int(bytes.length)] = rng.int(256);
    return { bytes, mutation: `${flips} random bytes overwritten` };
  }
  if (how === 2) {
    // Weights are most of a file; flipping inside one node's bytes hits the structure instead.
    const m = onnx.ModelProto.decode(base);
    const n = pick(rng, nodes(m));
    const enc = onnx.NodeProto.encode(n).finish();
    const start = Buffer.from(base).indexOf(Buffer.from(enc));
    const bytes = Uint8Array.from(base);
    if (start < 0) return { bytes, mutation: 'node bytes not found (unchanged)' };
    const flips = 1 + rng.int(4);
    for (let f = 0; f < flips; f++) bytes[start + rng.int(enc.length)] = rng.int(256);
    return { bytes, mutation: `${flips} bytes overwritten in node "${n.name}" (${n.opType})` };
  }
  const at = rng.int(base.length);
  const junk = Uint8Array.from({ length: 1 + rng.int(32) }, () => rng.int(256));
  const cut = rng.int(16);
  return { bytes: new Uint8Array([...base.subarray(0, at), ...junk, ...base.subarray(at + cut)]), mutation: `${junk.length} junk bytes spliced at ${at} over ${cut}` };
}

/**
 * One seeded mutation of an ONNX file: a quarter byte-level damage, the rest one to three
 * field-level edits of the decoded model.
 */
export function mutateOnnx(base: Uint8Array, rng: Rng): { bytes: Uint8Array; mutation: string } {
  if (rng.next() < 0.25) return byteMutation(base, rng);
  const m = onnx.ModelProto.decode(base);
  const steps = rng.next() < 0.7 ? 1 : 2 + rng.int(2);
  const done: string[] = [];
  for (let s = 0; s < steps; s++) {
    // A mutation that does not apply (no attribute to change, ...) draws again.
    for (let tries = 0; tries < 5; tries++) {
      const what = fieldMutation(rng)(m, rng);
      if (what !== undefined) {
        done.push(what);
        break;
      }
    }
  }
  return { bytes: onnx.ModelProto.encode(m).finish(), mutation: done.join('; ') || 'unchanged' };
}
