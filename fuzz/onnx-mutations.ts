/**
 * Seeded mutations of ONNX files for the fuzz harness: byte-level damage (flips anywhere or inside
 * one node's bytes, truncation, splices) and field-level edits of the decoded protobuf (attribute
 * types and values, inputs dropped, added or rewired, nodes duplicated, dropped or given another
 * op, new nodes of every op the reader knows inserted with hostile attributes, initializer dims,
 * dtypes and values — NaN, ±Inf, zero scales, huge dims —, graph input shapes, opsets).
 * Every mutation is a pure function of the base bytes and the rng draws.
 */
import type { Rng } from '@tensorpress/core-tensor';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type Model = onnxProto.onnx.ModelProto;
type NodeP = onnxProto.onnx.INodeProto;
type AttrP = onnxProto.onnx.IAttributeProto;
type TensorP = onnxProto.onnx.ITensorProto;

/** AttributeProto.AttributeType codes. */
const AT = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;
/** TensorProto.DataType codes. */
const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, FLOAT16: 10, DOUBLE: 11, UINT4: 21, INT4: 22 } as const;

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;

/** Interesting integers: boundaries of every check a reader makes. */
const HOSTILE_INTS = [-(2 ** 31), -65, -5, -2, -1, 0, 1, 2, 3, 4, 5, 7, 8, 10, 64, 255, 2 ** 16, 2 ** 24, 2 ** 30, 2 ** 31, 2 ** 40, 2 ** 53 - 1];
const HOSTILE_FLOATS = [Number.NaN, Infinity, -Infinity, -1, 0, 1e-45, 0.5, 1, 6, 1e30, -1e30];
const STRINGS = ['', 'NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID', 'constant', 'reflect', 'edge', 'wrap', 'bogus', 'x'.repeat(300)];
/** Ops to swap in or insert: every op the reader converts, QOperator ops, and ops it does not know. */
const OPS = [
  'Relu', 'Sigmoid', 'Tanh', 'LeakyRelu', 'HardSigmoid', 'HardSwish', 'Identity', 'Add', 'Sub', 'Mul', 'Div', 'Constant', 'Conv', 'Gemm',
  'MatMul', 'BatchNormalization', 'Dropout', 'Clip', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'ReduceMean',
  'Flatten', 'Reshape', 'Transpose', 'Concat', 'Split', 'Slice', 'Softmax', 'Pad', 'QuantizeLinear', 'DequantizeLinear',
  'DynamicQuantizeLinear', 'Shape', 'Gather', 'Unsqueeze', 'Squeeze', 'Cast', 'QLinearConv', 'QLinearMatMul', 'MatMulInteger',
  'ConvInteger', 'Loop', 'If', 'Foo', '',
];

/** A mutation: edits the decoded model in place and describes what it did (undefined: not applicable). */
type FieldMutation = (m: Model, rng: Rng) => string | undefined;

function nodes(m: Model): NodeP[] {
  return m.graph!.node!;
}

function valueNames(m: Model): string[] {
  const g = m.graph!;
  return [...(g.input ?? []).map((v) => v.name ?? ''), ...(g.initializer ?? []).map((t) => t.name ?? ''), ...(g.node ?? []).flatMap((n) => n.output ?? [])].filter(Boolean);
}

function fresh(m: Model, base: string): string {
  const taken = new Set([...valueNames(m), ...nodes(m).map((n) => n.name ?? '')]);
  let name = base;
  for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
  return name;
}

function randomInts(rng: Rng): number[] {
  const len = pick(rng, [0, 1, 2, 3, 4, 4, 6, 9]);
  return Array.from({ length: len }, () => (rng.next() < 0.5 ? pick(rng, HOSTILE_INTS) : rng.int(5) - 1));
}

/** A random attribute value of any type, as an AttributeProto without its name. */
function randomAttr(rng: Rng): Omit<AttrP, 'name'> {
  switch (rng.int(7)) {
    case 0:
      return { type: AT.INT, i: pick(rng, HOSTILE_INTS) };
    case 1:
      return { type: AT.FLOAT, f: pick(rng, HOSTILE_FLOATS) };
    case 2:
      return { type: AT.STRING, s: new TextEncoder().encode(pick(rng, STRINGS)) };
    case 3:
      return { type: AT.INTS, ints: randomInts(rng) };
    case 4:
      return { type: AT.FLOATS, floats: [pick(rng, HOSTILE_FLOATS), pick(rng, HOSTILE_FLOATS)] };
    case 5:
      return { type: pick(rng, [0, 5, 9, 13, 99]) as onnxProto.onnx.AttributeProto.AttributeType, i: 1 };
    default:
      return { type: AT.TENSOR, t: { dims: [2], dataType: DT.INT64, int64Data: [pick(rng, HOSTILE_INTS), 1] } };
  }
}

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

function int64Tensor(name: string, values: readonly number[], dims: number[] = [values.length]): TensorP {
  const raw = new Uint8Array(8 * values.length);
  const dv = new DataView(raw.buffer);
  values.forEach((v, i) => dv.setBigInt64(8 * i, BigInt(Math.trunc(v)), true));
  return { name, dims, dataType: DT.INT64, rawData: raw };
}

function floatTensor(name: string, values: readonly number[], dims: number[] = [values.length]): TensorP {
  return { name, dims, dataType: DT.FLOAT, rawData: new Uint8Array(Float32Array.from(values).buffer) };
}

/**
 * Inserts a node of a random op after a random value, rewiring that value's readers to the new
 * output: its attributes and constant inputs are drawn from plausible and hostile values alike.
 */
const insertOp: FieldMutation = (m, rng) => {
  const g = m.graph!;
  const ns = nodes(m);
  const at = rng.int(ns.length);
  const src = ns[at]!.output?.[0];
  if (!src) return undefined;
  const op = pick(rng, [
    'Pad', 'Clip', 'Reshape', 'Unsqueeze', 'Squeeze', 'Slice', 'Concat', 'Transpose', 'Softmax', 'Flatten', 'Split', 'Gather', 'MaxPool',
    'AveragePool', 'LeakyRelu', 'HardSigmoid', 'Cast', 'Dropout', 'ReduceMean', 'Add', 'Mul', 'Div', 'MatMul', 'Gemm', 'Conv',
    'BatchNormalization', 'QuantizeLinear', 'DequantizeLinear', 'Shape', 'Identity', 'GlobalMaxPool', 'Sigmoid', 'HardSwish',
  ]);
  const out = fresh(m, `${op.toLowerCase()}.out`);
  const k = (base: string, t: TensorP): string => {
    const name = fresh(m, base);
    g.initializer = [...(g.initializer ?? []), { ...t, name }];
    return name;
  };
  const ints = (): number[] => randomInts(rng);
  const smallInts = (n: number): number[] => Array.from({ length: n }, () => (rng.next() < 0.2 ? pick(rng, HOSTILE_INTS) : rng.int(6) - 2));
  const attrs: AttrP[] = [];
  const attr = (name: string, v: Omit<AttrP, 'name'>): void => void attrs.push({ name, ...v });
  let inputs: string[] = [src];
  switch (op) {
    case 'Pad': {
      const p = rng.next() < 0.3 ? [0, 0, 2 ** 30, 2 ** 30, 0, 0, 2 ** 30, 2 ** 30] : smallInts(8).map((v) => Math.abs(v) * pick(rng, [1, 1, 10, 100]));
      inputs.push(k('pads', int64Tensor('', p)));
      if (rng.next() < 0.5) inputs.push(k('pad_value', floatTensor('', [pick(rng, HOSTILE_FLOATS)], [])));
      attr('mode', { type: AT.STRING, s: new TextEncoder().encode(pick(rng, ['constant', 'reflect', 'reflect', 'edge', 'bogus'])) });
      break;
    }
    case 'Clip': {
      const lo = pick(rng, [...HOSTILE_FLOATS, 0, 6]);
      const hi = pick(rng, [...HOSTILE_FLOATS, 0, 6]);
      inputs.push(rng.next() < 0.2 ? '' : k('clip_min', floatTensor('', [lo], [])), k('clip_max', floatTensor('', [hi], [])));
      break;
    }
    case 'Reshape':
      inputs.push(k('shape', int64Tensor('', rng.next() < 0.5 ? smallInts(1 + rng.int(5)) : pick(rng, [[0, -1], [-1], [1, -1], [-1, -1], [3, 5], [0, 0, 0, 0, 0]]))));
      break;
    case 'Unsqueeze':
    case 'Squeeze': {
      const axes = smallInts(1 + rng.int(3));
      if (rng.next() < 0.5) inputs.push(k('axes', int64Tensor('', axes)));
      else attr('axes', { type: AT.INTS, ints: axes });
      break;
    }
    case 'Slice': {
      const n = 1 + rng.int(2);
      inputs.push(k('starts', int64Tensor('', smallInts(n))), k('ends', int64Tensor('', smallInts(n).map((v) => v * 3))));
      if (rng.next() < 0.7) inputs.push(k('axes', int64Tensor('', rng.next() < 0.3 ? [10] : smallInts(n))));
      if (rng.next() < 0.3) inputs.push(k('steps', int64Tensor('', smallInts(n))));
      break;
    }
    case 'Concat':
      inputs = rng.next() < 0.3 ? [] : [src, rng.next() < 0.5 ? src : pick(rng, valueNames(m))];
      if (rng.next() < 0.9) attr('axis', { type: AT.INT, i: smallInts(1)[0]! });
      break;
    case 'Transpose':
      if (rng.next() < 0.8) attr('perm', { type: AT.INTS, ints: rng.next() < 0.5 ? [0, 2, 3, 1] : smallInts(4) });
      break;
    case 'Softmax':
    case 'Flatten':
    case 'Gather':
      if (op === 'Gather') inputs.push(k('indices', int64Tensor('', smallInts(1 + rng.int(2)))));
      if (rng.next() < 0.8) attr('axis', { type: AT.INT, i: smallInts(1)[0]! });
      break;
    case 'Split':
      attr('axis', { type: AT.INT, i: smallInts(1)[0]! });
      if (rng.next() < 0.5) inputs.push(k('split', int64Tensor('', smallInts(2))));
      break;
    case 'MaxPool':
    case 'AveragePool':
      attr('kernel_shape', { type: AT.INTS, ints: rng.next() < 0.7 ? [2, 2] : ints() });
      if (rng.next() < 0.5) attr('strides', { type: AT.INTS, ints: rng.next() < 0.5 ? [2, 2] : ints() });
      if (rng.next() < 0.3) attr('pads', { type: AT.INTS, ints: ints() });
      if (rng.next() < 0.2) attr('ceil_mode', { type: AT.INT, i: 1 });
      if (rng.next() < 0.2) attr('auto_pad', { type: AT.STRING, s: new TextEncoder().encode(pick(rng, STRINGS)) });
      break;
    case 'LeakyRelu':
    case 'HardSigmoid':
      attr('alpha', rng.next() < 0.7 ? { type: AT.FLOAT, f: pick(rng, HOSTILE_FLOATS) } : randomAttr(rng));
      break;
    case 'Cast':
      attr('to', { type: AT.INT, i: pick(rng, [DT.FLOAT, DT.INT64, DT.INT32, DT.UINT8, DT.BOOL, DT.DOUBLE, 0, 99]) });
      break;
    case 'Dropout':
      if (rng.next() < 0.5) inputs.push(k('ratio', floatTensor('', [pick(rng, HOSTILE_FLOATS)], [])));
      break;
    case 'ReduceMean':
      attr('axes', { type: AT.INTS, ints: rng.next() < 0.5 ? [2, 3] : smallInts(2) });
      attr('keepdims', { type: AT.INT, i: rng.int(3) });
      break;
    case 'Add':
    case 'Mul':
    case 'Div': {
      const dims = pick(rng, [[], [1], [3], [1, 1, 1, 1], [7, 1, 1], [2, 3, 4, 5, 6]]);
      const n = dims.reduce((p, d) => p * d, 1);
      inputs.push(k('operand', floatTensor('', Array.from({ length: n }, () => (rng.next() < 0.1 ? pick(rng, HOSTILE_FLOATS) : rng.next())), dims)));
      if (rng.next() < 0.1) inputs.push(src);
      break;
    }
    case 'MatMul':
    case 'Gemm': {
      const dims = pick(rng, [[3, 3], [8, 10], [10, 8], [1], [2, 3, 4]]);
      const n = dims.reduce((p, d) => p * d, 1);
      inputs.push(k('weight', floatTensor('', Array.from({ length: n }, () => rng.next()), dims)));
      if (op === 'Gemm' && rng.next() < 0.5) attr(pick(rng, ['transA', 'transB', 'alpha', 'beta']), randomAttr(rng));
      break;
    }
    case 'Conv': {
      const dims = pick(rng, [[4, 4, 3, 3], [1, 1, 1, 1], [8, 2, 3, 3], [4, 4, 2 ** 12, 1], [3, 3]]);
      const n = dims.reduce((p, d) => p * d, 1);
      inputs.push(k('weight', floatTensor('', Array.from({ length: n }, () => rng.next() - 0.5), dims)));
      if (rng.next() < 0.6) attr(pick(rng, ['strides', 'pads', 'dilations', 'group', 'kernel_shape', 'auto_pad']), rng.next() < 0.5 ? { type: AT.INTS, ints: ints() } : randomAttr(rng));
      break;
    }
    case 'BatchNormalization': {
      const c = pick(rng, [1, 4, 8, 16, 64]);
      for (const p of ['gamma', 'beta', 'mean', 'var']) inputs.push(k(p, floatTensor('', Array.from({ length: c }, () => (p === 'var' ? pick(rng, [1, 0, -1, 0.5]) : rng.next())))));
      if (rng.next() < 0.5) attr('epsilon', { type: AT.FLOAT, f: pick(rng, HOSTILE_FLOATS) });
      break;
    }
    case 'QuantizeLinear':
    case 'DequantizeLinear': {
      const s = pick(rng, [0.1, 0, -1, Number.NaN, Infinity]);
      inputs.push(k('scale', floatTensor('', [s], [])));
      if (rng.next() < 0.7) {
        const name = fresh(m, 'zp');
        g.initializer = [...(g.initializer ?? []), { name, dims: [], dataType: pick(rng, [DT.UINT8, DT.INT8, DT.INT32]), rawData: new Uint8Array(pick(rng, [1, 4])) }];
        inputs.push(name);
      }
      if (rng.next() < 0.3) attr('axis', { type: AT.INT, i: smallInts(1)[0]! });
      break;
    }
    default:
      break;
  }
  const node: NodeP = onnx.NodeProto.create({ name: fresh(m, `fuzz.${op}`), opType: op, input: inputs, output: [out], attribute: attrs });
  for (const n of ns) n.input = (n.input ?? []).map((v) => (v === src ? out : v));
  for (const o of g.output ?? []) if (o.name === src) o.name = out;
  ns.splice(at + 1, 0, node);
  return `${op} inserted after "${src}" (${inputs.length} inputs, attrs ${attrs.map((a) => a.name).join(',') || 'none'})`;
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
