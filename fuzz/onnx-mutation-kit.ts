/**
 * What the ONNX mutations share: the decoded protobuf types, wire codes, hostile values, random
 * attributes and the helpers that find and name values in a model.
 */
import type { Rng } from '@tensorpress/core-tensor';
import onnxProto from 'onnx-proto';

export const { onnx } = onnxProto;
export type Model = onnxProto.onnx.ModelProto;
export type NodeP = onnxProto.onnx.INodeProto;
export type AttrP = onnxProto.onnx.IAttributeProto;
export type TensorP = onnxProto.onnx.ITensorProto;

/** AttributeProto.AttributeType codes. */
export const AT = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;
/** TensorProto.DataType codes. */
export const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, FLOAT16: 10, DOUBLE: 11, UINT4: 21, INT4: 22 } as const;

export const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;

/** Interesting integers: boundaries of every check a reader makes. */
export const HOSTILE_INTS = [-(2 ** 31), -65, -5, -2, -1, 0, 1, 2, 3, 4, 5, 7, 8, 10, 64, 255, 2 ** 16, 2 ** 24, 2 ** 30, 2 ** 31, 2 ** 40, 2 ** 53 - 1];
export const HOSTILE_FLOATS = [Number.NaN, Infinity, -Infinity, -1, 0, 1e-45, 0.5, 1, 6, 1e30, -1e30];
export const STRINGS = ['', 'NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID', 'constant', 'reflect', 'edge', 'wrap', 'bogus', 'x'.repeat(300)];
/** Ops to swap in or insert: every op the reader converts, QOperator ops, and ops it does not know. */
export const OPS = [
  'Relu', 'Sigmoid', 'Tanh', 'LeakyRelu', 'HardSigmoid', 'HardSwish', 'Identity', 'Add', 'Sub', 'Mul', 'Div', 'Constant', 'Conv', 'Gemm',
  'MatMul', 'BatchNormalization', 'Dropout', 'Clip', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'ReduceMean',
  'Flatten', 'Reshape', 'Transpose', 'Concat', 'Split', 'Slice', 'Softmax', 'Pad', 'QuantizeLinear', 'DequantizeLinear',
  'DynamicQuantizeLinear', 'Shape', 'Gather', 'Unsqueeze', 'Squeeze', 'Cast', 'QLinearConv', 'QLinearMatMul', 'MatMulInteger',
  'ConvInteger', 'Loop', 'If', 'Foo', '',
];

/** A mutation: edits the decoded model in place and describes what it did (undefined: not applicable). */
export type FieldMutation = (m: Model, rng: Rng) => string | undefined;

export function nodes(m: Model): NodeP[] {
  return m.graph!.node!;
}

export function valueNames(m: Model): string[] {
  const g = m.graph!;
  return [...(g.input ?? []).map((v) => v.name ?? ''), ...(g.initializer ?? []).map((t) => t.name ?? ''), ...(g.node ?? []).flatMap((n) => n.output ?? [])].filter(Boolean);
}

export function fresh(m: Model, base: string): string {
  const taken = new Set([...valueNames(m), ...nodes(m).map((n) => n.name ?? '')]);
  let name = base;
  for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
  return name;
}

export function randomInts(rng: Rng): number[] {
  const len = pick(rng, [0, 1, 2, 3, 4, 4, 6, 9]);
  return Array.from({ length: len }, () => (rng.next() < 0.5 ? pick(rng, HOSTILE_INTS) : rng.int(5) - 1));
}

/** A random attribute value of any type, as an AttributeProto without its name. */
export function randomAttr(rng: Rng): Omit<AttrP, 'name'> {
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


export function int64Tensor(name: string, values: readonly number[], dims: number[] = [values.length]): TensorP {
  const raw = new Uint8Array(8 * values.length);
  const dv = new DataView(raw.buffer);
  values.forEach((v, i) => dv.setBigInt64(8 * i, BigInt(Math.trunc(v)), true));
  return { name, dims, dataType: DT.INT64, rawData: raw };
}

export function floatTensor(name: string, values: readonly number[], dims: number[] = [values.length]): TensorP {
  return { name, dims, dataType: DT.FLOAT, rawData: new Uint8Array(Float32Array.from(values).buffer) };
}

