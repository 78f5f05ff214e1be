/**
 * The mutation that reaches the most reader code: a node of any op the reader knows, inserted
 * after a random value with plausible and hostile attributes and constant inputs alike.
 */
import { AT, DT, HOSTILE_FLOATS, HOSTILE_INTS, STRINGS, fresh, floatTensor, int64Tensor, nodes, onnx, pick, randomAttr, randomInts, valueNames, type AttrP, type FieldMutation, type NodeP, type TensorP } from './onnx-mutation-kit.js';

/**
 * Inserts a node of a random op after a random value, rewiring that value's readers to the new
 * output: its attributes and constant inputs are drawn from plausible and hostile values alike.
 */
export const insertOp: FieldMutation = (m, rng) => {
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

