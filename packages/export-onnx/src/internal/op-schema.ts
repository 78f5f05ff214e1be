/**
 * The ONNX operator schemas the reader checks every node against before converting it, as
 * onnxruntime does when it loads a model: the number of inputs and outputs (required ones
 * present), every attribute's name (for the node's opset), type and static range, and the
 * attributes that must be present. Ranges that depend on a tensor's rank (an axis) are checked
 * where the conversion knows the rank (read-ops.ts, read-shape.ts, read-conv.ts).
 */
import type { onnx } from 'onnx-proto';
import { attrValue } from './decode.js';
import { nodeInvalid } from './node-error.js';
import { AT } from './proto.js';

/** An attribute's wire type, by its ONNX name. */
type AttrType = 'FLOAT' | 'INT' | 'STRING' | 'TENSOR' | 'FLOATS' | 'INTS' | 'STRINGS' | 'SPARSE_TENSOR';
const TYPE_CODE: Record<AttrType, number> = { FLOAT: AT.FLOAT, INT: AT.INT, STRING: AT.STRING, TENSOR: AT.TENSOR, FLOATS: AT.FLOATS, INTS: AT.INTS, STRINGS: AT.STRINGS, SPARSE_TENSOR: 11 };
const TYPE_NAME: Record<number, string> = { 0: 'UNDEFINED', 1: 'FLOAT', 2: 'INT', 3: 'STRING', 4: 'TENSOR', 5: 'GRAPH', 6: 'FLOATS', 7: 'INTS', 8: 'STRINGS', 9: 'TENSORS', 10: 'GRAPHS', 11: 'SPARSE_TENSOR', 12: 'SPARSE_TENSORS', 13: 'TYPE_PROTO', 14: 'TYPE_PROTOS' };

/** A decoded attribute value handed to a range check. */
type Value = number | string | readonly number[] | readonly string[] | undefined;

interface AttrSpec {
  type: AttrType;
  required?: boolean;
  /** First opset that has the attribute. */
  since?: number;
  /** First opset that no longer has it. */
  until?: number;
  /** A range check: what is wrong with the value, or undefined. */
  check?: (v: Value) => string | undefined;
}

type Range = readonly [number, number];

interface OpSchema {
  /** Inputs (min, max); a function of the opset where it changed. Trailing empty names are absent inputs. */
  inputs: Range | ((opset: number) => Range);
  /** Outputs (min, max). Default (1, 1). */
  outputs?: Range | ((opset: number) => Range);
  attrs?: Record<string, AttrSpec>;
  /** Checks between attributes (lengths that must agree, one of several that must be set). */
  check?: (a: ReadonlyMap<string, Value>) => { attribute?: string; message: string } | undefined;
}

const MANY = Number.MAX_SAFE_INTEGER;

const isInt = (v: Value): v is number => typeof v === 'number';
const isList = (v: Value): v is readonly number[] => Array.isArray(v);

const finite = (v: Value): string | undefined => (isInt(v) && !Number.isFinite(v) ? `must be finite, got ${v}` : undefined);
const nonNegativeFinite = (v: Value): string | undefined => finite(v) ?? (isInt(v) && v < 0 ? `must be >= 0, got ${v}` : undefined);
const bool = (v: Value): string | undefined => (isInt(v) && v !== 0 && v !== 1 ? `must be 0 or 1, got ${v}` : undefined);
const atLeast =
  (lo: number) =>
  (v: Value): string | undefined =>
    isInt(v) && v < lo ? `must be >= ${lo}, got ${v}` : undefined;
const each =
  (lo: number, what: string) =>
  (v: Value): string | undefined =>
    isList(v) && v.some((x) => x < lo) ? `every ${what} must be >= ${lo}, got [${v.join(', ')}]` : undefined;
const nonEmptyEach =
  (lo: number, what: string) =>
  (v: Value): string | undefined =>
    isList(v) && v.length === 0 ? 'must not be empty' : each(lo, what)(v);
const oneOf =
  (...xs: string[]) =>
  (v: Value): string | undefined =>
    typeof v === 'string' && !xs.includes(v) ? `must be one of ${xs.join(', ')}, got "${v.slice(0, 40)}"` : undefined;
const unique = (v: Value): string | undefined => (isList(v) && new Set(v).size !== v.length ? `holds a repeated value: [${v.join(', ')}]` : undefined);
const permutation = (v: Value): string | undefined =>
  isList(v) && [...v].sort((p, q) => p - q).some((x, i) => x !== i) ? `must be a permutation of 0..${v.length - 1}, got [${v.join(', ')}]` : undefined;
/** TensorProto data types up to INT4 (opset 21). */
const dataType = (v: Value): string | undefined => (isInt(v) && (v < 1 || v > 22) ? `is not an ONNX data type (1 to 22), got ${v}` : undefined);

const AUTO_PAD: AttrSpec = { type: 'STRING', check: oneOf('NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID') };
const WINDOW: Record<string, AttrSpec> = {
  auto_pad: AUTO_PAD,
  kernel_shape: { type: 'INTS', check: nonEmptyEach(1, 'kernel size') },
  pads: { type: 'INTS', check: each(0, 'pad') },
  strides: { type: 'INTS', check: nonEmptyEach(1, 'stride') },
};
const CONV_ATTRS: Record<string, AttrSpec> = {
  ...WINDOW,
  dilations: { type: 'INTS', check: nonEmptyEach(1, 'dilation') },
  group: { type: 'INT', check: atLeast(1) },
};
const POOL_ATTRS: Record<string, AttrSpec> = { ...WINDOW, kernel_shape: { ...WINDOW['kernel_shape']!, required: true }, ceil_mode: { type: 'INT', check: bool } };

/** Kernel, strides, dilations and pads of a window op must describe the same number of spatial axes. */
function windowCheck(a: ReadonlyMap<string, Value>): { attribute?: string; message: string } | undefined {
  const len = (k: string): number | undefined => {
    const v = a.get(k);
    return isList(v) ? v.length : undefined;
  };
  const pads = len('pads');
  const spatial = len('kernel_shape') ?? len('strides') ?? len('dilations') ?? (pads !== undefined ? pads / 2 : undefined);
  for (const name of ['strides', 'dilations']) {
    const m = len(name);
    if (m !== undefined && m !== spatial) return { attribute: name, message: `has ${m} values for ${spatial} spatial axes` };
  }
  if (pads !== undefined && pads !== 2 * spatial!) return { attribute: 'pads', message: `has ${pads} values; it needs a begin and an end for each spatial axis (${2 * Math.ceil(spatial!)})` };
  return undefined;
}

const ONE: Range = [1, 1];

/** A Reduce* op whose axes move from an attribute to input 1 at opset `inputSince`. */
function reduceSchema(inputSince: number): OpSchema {
  return {
    inputs: (o) => (o >= inputSince ? [1, 2] : [1, 1]),
    attrs: {
      axes: { type: 'INTS', until: inputSince, check: unique },
      keepdims: { type: 'INT', check: bool },
      noop_with_empty_axes: { type: 'INT', since: inputSince, check: bool },
    },
  };
}
const unary = (attrs: Record<string, AttrSpec> = {}): OpSchema => ({ inputs: ONE, attrs });
const binary: OpSchema = { inputs: [2, 2] };
const qdqAttrs = (quantize: boolean): Record<string, AttrSpec> => ({
  axis: { type: 'INT', since: 13 },
  block_size: { type: 'INT', since: 21, check: atLeast(0) },
  ...(quantize ? { saturate: { type: 'INT', since: 19, check: bool }, output_dtype: { type: 'INT', since: 21, check: (v) => (isInt(v) && v !== 0 ? dataType(v) : undefined) } } : {}),
});

/** Schemas of the default (ai.onnx) domain, opsets 7 to 21, for every op the reader knows. */
const DEFAULT_DOMAIN: Record<string, OpSchema> = {
  Relu: unary(),
  Sigmoid: unary(),
  Tanh: unary(),
  HardSwish: unary(),
  Identity: unary(),
  LeakyRelu: unary({ alpha: { type: 'FLOAT', check: finite } }),
  HardSigmoid: unary({ alpha: { type: 'FLOAT', check: finite }, beta: { type: 'FLOAT', check: finite } }),
  Add: binary,
  Sub: binary,
  Mul: binary,
  Div: binary,
  Constant: {
    inputs: [0, 0],
    attrs: {
      value: { type: 'TENSOR' },
      value_float: { type: 'FLOAT' },
      value_floats: { type: 'FLOATS' },
      value_int: { type: 'INT' },
      value_ints: { type: 'INTS' },
      value_string: { type: 'STRING' },
      value_strings: { type: 'STRINGS' },
      sparse_value: { type: 'SPARSE_TENSOR' },
    },
    check: (a) => (a.size === 1 ? undefined : { message: `needs exactly one value attribute, has ${a.size}` }),
  },
  Conv: { inputs: [2, 3], attrs: CONV_ATTRS, check: windowCheck },
  ConvInteger: { inputs: [2, 4], attrs: CONV_ATTRS, check: windowCheck },
  QLinearConv: { inputs: [8, 9], attrs: CONV_ATTRS, check: windowCheck },
  MatMulInteger: { inputs: [2, 4] },
  QLinearMatMul: { inputs: [8, 8] },
  Gemm: {
    inputs: [2, 3],
    attrs: { alpha: { type: 'FLOAT', check: finite }, beta: { type: 'FLOAT', check: finite }, transA: { type: 'INT', check: bool }, transB: { type: 'INT', check: bool } },
  },
  MatMul: binary,
  BatchNormalization: {
    inputs: [5, 5],
    outputs: (o) => (o >= 14 ? [1, 3] : [1, 5]),
    attrs: {
      epsilon: { type: 'FLOAT', check: nonNegativeFinite },
      momentum: { type: 'FLOAT', check: finite },
      training_mode: { type: 'INT', since: 14, check: bool },
      // Opsets 7 and 8 (spatial); is_test and consumed_inputs are older still, but exporters kept writing them.
      spatial: { type: 'INT', until: 9, check: bool },
      is_test: { type: 'INT', until: 9, check: bool },
      consumed_inputs: { type: 'INTS', until: 9 },
    },
  },
  Dropout: {
    inputs: (o) => (o >= 12 ? [1, 3] : ONE),
    outputs: [1, 2],
    attrs: { ratio: { type: 'FLOAT', until: 12 }, seed: { type: 'INT', since: 12 }, is_test: { type: 'INT', until: 9, check: bool } },
  },
  Clip: { inputs: (o) => (o >= 11 ? [1, 3] : ONE), attrs: { min: { type: 'FLOAT', until: 11 }, max: { type: 'FLOAT', until: 11 } } },
  MaxPool: {
    inputs: ONE,
    outputs: [1, 2],
    attrs: { ...POOL_ATTRS, dilations: { type: 'INTS', check: nonEmptyEach(1, 'dilation') }, storage_order: { type: 'INT', check: bool } },
    check: windowCheck,
  },
  AveragePool: {
    inputs: ONE,
    attrs: { ...POOL_ATTRS, count_include_pad: { type: 'INT', check: bool }, dilations: { type: 'INTS', since: 19, check: nonEmptyEach(1, 'dilation') } },
    check: windowCheck,
  },
  GlobalAveragePool: unary(),
  GlobalMaxPool: unary(),
  ReduceMean: reduceSchema(18),
  ReduceMax: reduceSchema(18),
  ReduceSum: reduceSchema(13),
  Upsample: { inputs: (o) => (o >= 9 ? [2, 2] : ONE), attrs: { mode: { type: 'STRING', check: oneOf('nearest', 'linear', 'bilinear') }, scales: { type: 'FLOATS', until: 9, required: true } } },
  Resize: {
    inputs: (o) => (o >= 13 ? [1, 4] : o >= 11 ? [3, 4] : [2, 2]),
    attrs: {
      mode: { type: 'STRING', check: oneOf('nearest', 'linear', 'cubic') },
      coordinate_transformation_mode: {
        type: 'STRING',
        since: 11,
        check: oneOf('half_pixel', 'half_pixel_symmetric', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn', 'tf_crop_and_resize'),
      },
      cubic_coeff_a: { type: 'FLOAT', since: 11 },
      exclude_outside: { type: 'INT', since: 11, check: bool },
      extrapolation_value: { type: 'FLOAT', since: 11 },
      nearest_mode: { type: 'STRING', since: 11, check: oneOf('round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil') },
      antialias: { type: 'INT', since: 18, check: bool },
      axes: { type: 'INTS', since: 18, check: unique },
      keep_aspect_ratio_policy: { type: 'STRING', since: 18, check: oneOf('stretch', 'not_larger', 'not_smaller') },
    },
  },
  ConvTranspose: {
    inputs: [2, 3],
    attrs: { ...CONV_ATTRS, output_padding: { type: 'INTS', check: each(0, 'output padding') }, output_shape: { type: 'INTS' } },
    check: windowCheck,
  },
  LayerNormalization: { inputs: [2, 3], outputs: [1, 3], attrs: { axis: { type: 'INT' }, epsilon: { type: 'FLOAT', check: nonNegativeFinite }, stash_type: { type: 'INT' } } },
  InstanceNormalization: { inputs: [3, 3], attrs: { epsilon: { type: 'FLOAT', check: nonNegativeFinite } } },
  LogSoftmax: unary({ axis: { type: 'INT' } }),
  ArgMax: unary({ axis: { type: 'INT' }, keepdims: { type: 'INT', check: bool }, select_last_index: { type: 'INT', since: 12, check: bool } }),
  PRelu: binary,
  Pow: binary,
  Equal: binary,
  Less: binary,
  Greater: binary,
  Where: { inputs: [3, 3] },
  Expand: binary,
  Tile: binary,
  ConstantOfShape: unary({ value: { type: 'TENSOR' } }),
  Range: { inputs: [3, 3] },
  Exp: unary(),
  Log: unary(),
  Sqrt: unary(),
  Reciprocal: unary(),
  Neg: unary(),
  Abs: unary(),
  Erf: unary(),
  Softplus: unary(),
  Mish: unary(),
  Gelu: unary({ approximate: { type: 'STRING', check: oneOf('none', 'tanh') } }),
  Flatten: unary({ axis: { type: 'INT' } }),
  Reshape: { inputs: [2, 2], attrs: { allowzero: { type: 'INT', since: 14, check: bool } } },
  Transpose: unary({ perm: { type: 'INTS', check: permutation } }),
  Concat: { inputs: [1, MANY], attrs: { axis: { type: 'INT', required: true } } },
  Split: {
    inputs: (o) => (o >= 13 ? [1, 2] : ONE),
    outputs: [1, MANY],
    attrs: { axis: { type: 'INT' }, split: { type: 'INTS', until: 13, check: each(0, 'split size') }, num_outputs: { type: 'INT', since: 18, check: atLeast(1) } },
  },
  Slice: {
    inputs: (o) => (o >= 10 ? [3, 5] : ONE),
    attrs: { starts: { type: 'INTS', until: 10, required: true }, ends: { type: 'INTS', until: 10, required: true }, axes: { type: 'INTS', until: 10, check: unique } },
  },
  Softmax: unary({ axis: { type: 'INT' } }),
  Pad: {
    inputs: (o) => (o >= 18 ? [2, 4] : o >= 11 ? [2, 3] : ONE),
    attrs: {
      mode: { type: 'STRING', check: (v) => oneOf('constant', 'reflect', 'edge', 'wrap')(v) },
      pads: { type: 'INTS', until: 11, required: true },
      value: { type: 'FLOAT', until: 11, check: finite },
    },
  },
  QuantizeLinear: { inputs: [2, 3], attrs: qdqAttrs(true) },
  DequantizeLinear: { inputs: [2, 3], attrs: qdqAttrs(false) },
  DynamicQuantizeLinear: { inputs: ONE, outputs: [3, 3] },
  Shape: unary({ start: { type: 'INT', since: 15 }, end: { type: 'INT', since: 15 } }),
  Gather: { inputs: [2, 2], attrs: { axis: { type: 'INT' } } },
  Unsqueeze: { inputs: (o) => (o >= 13 ? [2, 2] : ONE), attrs: { axes: { type: 'INTS', until: 13, required: true, check: unique } } },
  Squeeze: { inputs: (o) => (o >= 13 ? [1, 2] : ONE), attrs: { axes: { type: 'INTS', until: 13, check: unique } } },
  Cast: unary({ to: { type: 'INT', required: true, check: dataType }, saturate: { type: 'INT', since: 19, check: bool } }),
};

/** onnxruntime's contrib ops (com.microsoft) that the reader expands from QOperator files. */
const MICROSOFT: Record<string, OpSchema> = {
  QLinearAdd: { inputs: [7, 8] },
  QLinearMul: { inputs: [7, 8] },
  QLinearGlobalAveragePool: { inputs: [5, 5], attrs: { channels_last: { type: 'INT', check: bool } } },
  QLinearAveragePool: {
    inputs: [4, 5],
    attrs: { ...POOL_ATTRS, count_include_pad: { type: 'INT', check: bool }, channels_last: { type: 'INT', check: bool } },
    check: windowCheck,
  },
  QLinearConcat: { inputs: [5, MANY], attrs: { axis: { type: 'INT', required: true } } },
};

function schemaOf(n: onnx.INodeProto): OpSchema | undefined {
  const op = n.opType ?? '';
  if (!n.domain || n.domain === 'ai.onnx') return Object.hasOwn(DEFAULT_DOMAIN, op) ? DEFAULT_DOMAIN[op] : undefined;
  if (n.domain === 'com.microsoft') return Object.hasOwn(MICROSOFT, op) ? MICROSOFT[op] : undefined;
  return undefined;
}

function describe(a: onnx.IAttributeProto): string {
  const code = a.type ?? 0;
  const name = TYPE_NAME[code] ?? `type ${code}`;
  switch (code) {
    case AT.STRING:
      return `a STRING ("${new TextDecoder().decode(a.s ?? new Uint8Array()).slice(0, 20)}")`;
    case AT.FLOAT:
      return `a FLOAT (${a.f ?? 0})`;
    case AT.INT:
      return `an INT (${String(a.i ?? 0)})`;
    case AT.INTS:
      return `INTS ([${(a.ints ?? []).slice(0, 8).map(String).join(', ')}])`;
    case AT.FLOATS:
      return `FLOATS ([${(a.floats ?? []).slice(0, 8).join(', ')}])`;
    default:
      return name;
  }
}

/** Counts a node's inputs or outputs: trailing empty names stand for absent optional ones. */
function used(names: readonly string[]): number {
  let n = names.length;
  while (n > 0 && !names[n - 1]) n--;
  return n;
}

/**
 * Checks a node of an op the reader knows against its schema for `opset`; throws `ONNX_INVALID`
 * naming the node, the op, the attribute or input, and the node's byte offset when known. Nodes
 * of ops without a schema are left to the unsupported-op report.
 */
export function checkNodeSchema(n: onnx.INodeProto, opset: number, offset: number | undefined): void {
  const s = schemaOf(n);
  if (!s) return;
  const fail: (message: string, extra?: { attribute?: string; input?: number; output?: number }) => never = (message, extra = {}) =>
    nodeInvalid(n, message, { ...extra, offset });
  const range = (r: Range | ((o: number) => Range) | undefined): Range => (r === undefined ? ONE : typeof r === 'function' ? r(opset) : r);
  const ins = n.input ?? [];
  const [imin, imax] = range(s.inputs);
  // A list too short or too long is a count error; an empty name in a required place names the port.
  const ni = ins.length < imin ? ins.length : Math.max(used(ins), imin);
  if (ni < imin || ni > imax) {
    const want = imin === imax ? `${imin}` : imax === MANY ? `at least ${imin}` : `${imin} to ${imax}`;
    fail(`takes ${want} input${want.endsWith(' 1') || want === '1' ? '' : 's'} at opset ${opset}, got ${ni}`);
  }
  for (let i = 0; i < imin; i++) if (!ins[i]) fail(`input ${i} is required but missing (an empty name)`, { input: i });
  const outs = n.output ?? [];
  const [omin, omax] = range(s.outputs);
  const no = used(outs);
  if (no < omin || no > omax) fail(`has ${no} output${no === 1 ? '' : 's'}, the op has ${omin === omax ? omin : `${omin} to ${omax === MANY ? 'any number' : omax}`}`);
  for (let i = 0; i < omin; i++) if (!outs[i]) fail(`output ${i} is required but has an empty name`, { output: i });

  const values = new Map<string, Value>();
  for (const a of n.attribute ?? []) {
    const name = a.name ?? '';
    if (values.has(name)) fail('is given twice', { attribute: name });
    const spec = s.attrs && Object.hasOwn(s.attrs, name) ? s.attrs[name] : undefined;
    if (!spec || (spec.since !== undefined && opset < spec.since) || (spec.until !== undefined && opset >= spec.until)) {
      const when = spec ? ` at opset ${opset} (it exists ${spec.since !== undefined ? `from opset ${spec.since}` : `before opset ${spec.until}`})` : '';
      fail(`is not an attribute of ${n.opType}${when}`, { attribute: name });
    }
    if (a.type !== TYPE_CODE[spec.type]) fail(`must be ${spec.type}, got ${describe(a)}`, { attribute: name });
    // The wire type matched the schema, so the value is a number, string or list of them.
    const v = attrValue(a, `node "${n.name ?? ''}" attribute ${name}`) as Value;
    const why = spec.check?.(v);
    if (why) fail(why, { attribute: name });
    values.set(name, v);
  }
  for (const [name, spec] of Object.entries(s.attrs ?? {})) {
    const present = (spec.since === undefined || opset >= spec.since) && (spec.until === undefined || opset < spec.until);
    if (spec.required && present && !values.has(name)) fail('is required', { attribute: name });
  }
  const bad = s.check?.(values);
  if (bad) fail(bad.message, bad.attribute !== undefined ? { attribute: bad.attribute } : {});
}
