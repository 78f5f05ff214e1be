/**
 * ConvTranspose of an NHWC map with a `[kh, kw, cout/group, cin]` weight (ONNX's
 * `[cin, cout/group, kh, kw]` through the same OIHW→HWIO transpose as Conv weights): groups,
 * strides, pads and output_padding; dilations of 1. Each group is tf.conv2dTranspose at 'valid'
 * padding, then cropped by the pads and extended by output_padding, so it is differentiable.
 */
import * as tf from '@tensorflow/tfjs-core';
import { intsAttr, numAttr, type Dim, type Node, type OpSpec } from '@tensorpress/core-tensor';
import { fail, fmt, needFloat, req } from './helpers.js';

/** Window attributes of a ConvTranspose node with their defaults. */
export function convTransposeWindow(node: Node): { strides: number[]; pads: number[]; outputPadding: number[]; group: number } {
  return {
    strides: intsAttr(node, 'strides', [1, 1]),
    pads: intsAttr(node, 'pads', [0, 0, 0, 0]),
    outputPadding: intsAttr(node, 'output_padding', [0, 0]),
    group: numAttr(node, 'group', 1),
  };
}

function outSize(d: Dim, k: number, s: number, pBegin: number, pEnd: number, op: number): Dim {
  return d === null ? null : s * (d - 1) + op + k - pBegin - pEnd;
}

/** The ConvTranspose op. */
export const CONV_TRANSPOSE_OP: OpSpec = {
  op: 'ConvTranspose',
  arity: [2, 3],
  weightInputs: [1, 2],
  infer: (ins, node) => {
    const x = needFloat(node, ins, 0);
    const w = needFloat(node, ins, 1);
    if (x.shape.length !== 4 || w.shape.length !== 4) fail(node, `needs an NHWC map and a rank-4 weight, got ${fmt(x.shape)} and ${fmt(w.shape)}`);
    const { strides, pads, outputPadding, group } = convTransposeWindow(node);
    if (strides.length !== 2 || pads.length !== 4 || outputPadding.length !== 2) fail(node, 'strides, pads and output_padding must describe two spatial axes', 'GRAPH_INVALID');
    if (intsAttr(node, 'dilations', [1, 1]).some((d) => d !== 1)) fail(node, 'dilations other than 1 are not supported', 'UNSUPPORTED_OP');
    const [kh, kw, coutG, cin] = w.shape as number[];
    if (x.shape[3] !== null && x.shape[3] !== cin) fail(node, `input has ${x.shape[3]} channels, the weight ${fmt(w.shape)} expects ${cin}`);
    if (!(group >= 1) || cin! % group !== 0) fail(node, `group ${group} does not divide the ${cin} input channels`, 'GRAPH_INVALID');
    outputPadding.forEach((p, i) => {
      if (p < 0 || p >= Math.max(strides[i]!, 1)) fail(node, `output_padding ${p} must be below the stride ${strides[i]}`, 'GRAPH_INVALID');
    });
    const cout = coutG! * group;
    if (ins[2]) {
      const b = needFloat(node, ins, 2);
      if (b.shape.length !== 1 || b.shape[0] !== cout) fail(node, `bias must be [${cout}], got ${fmt(b.shape)}`);
    }
    const oh = outSize(x.shape[1]!, kh!, strides[0]!, pads[0]!, pads[2]!, outputPadding[0]!);
    const ow = outSize(x.shape[2]!, kw!, strides[1]!, pads[1]!, pads[3]!, outputPadding[1]!);
    if ((oh !== null && oh < 1) || (ow !== null && ow < 1)) fail(node, `the output would be empty for input ${fmt(x.shape)}`);
    return [{ name: '', shape: [x.shape[0]!, oh, ow, cout], dtype: 'float32' }];
  },
  forward: (ins, node) => {
    const x = req(node, ins, 0) as tf.Tensor4D;
    const w = req(node, ins, 1) as tf.Tensor4D;
    const { strides, pads, outputPadding, group } = convTransposeWindow(node);
    const [n, h, wd] = x.shape;
    const [kh, kw, coutG] = w.shape;
    const fullH = (h - 1) * strides[0]! + kh;
    const fullW = (wd - 1) * strides[1]! + kw;
    const xs = group === 1 ? [x] : (tf.split(x, group, 3) as tf.Tensor4D[]);
    const ws = group === 1 ? [w] : (tf.split(w, group, 3) as tf.Tensor4D[]);
    const parts = xs.map((xi, i) => tf.conv2dTranspose(xi, ws[i]!, [n, fullH, fullW, coutG], [strides[0]!, strides[1]!], 'valid'));
    let y: tf.Tensor4D = parts.length === 1 ? parts[0]! : tf.concat(parts, 3);
    const oh = fullH + outputPadding[0]! - pads[0]! - pads[2]!;
    const ow = fullW + outputPadding[1]! - pads[1]! - pads[3]!;
    // output_padding adds rows and columns past the full result (zeros before the bias).
    const extraH = Math.max(0, pads[0]! + oh - fullH);
    const extraW = Math.max(0, pads[1]! + ow - fullW);
    if (extraH > 0 || extraW > 0) y = tf.pad(y, [[0, 0], [0, extraH], [0, extraW], [0, 0]]);
    y = tf.slice(y, [0, pads[0]!, pads[1]!, 0], [n, oh, ow, y.shape[3]]);
    return [ins[2] ? tf.add(y, ins[2]) : y];
  },
};
