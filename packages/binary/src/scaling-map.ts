import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, getOp, intsAttr, type ForwardContext, type Node } from '@tensorpress/core-tensor';

/**
 * The AveragePool node that box-filters XNOR-Net's mean-|A| map with the window of `conv` (its
 * kernel, strides and padding), or undefined for a Gemm/MatMul (whose K is one mean per example).
 * Core's AveragePool semantics hold in training and in the stripped graph alike ('same' padding
 * averages over the window's valid positions, explicit pads count as zeros).
 */
export function scalingPool(conv: Node, kernel: readonly number[], name: string, input: string, output: string): Node | undefined {
  if (conv.op !== 'Conv') return undefined;
  const attrs: Record<string, number[] | string> = { kernel_shape: [kernel[0]!, kernel[1]!] };
  for (const key of ['strides', 'pads'] as const) if (conv.attrs[key] !== undefined) attrs[key] = [...intsAttr(conv, key, [])];
  if (typeof conv.attrs['auto_pad'] === 'string') attrs['auto_pad'] = conv.attrs['auto_pad'];
  return { name, op: 'AveragePool', inputs: [input], outputs: [output], attrs };
}

/** Refuses a scaling map where the box filter cannot follow the conv's window. */
export function checkScalingMap(conv: Node, path: string): void {
  if (conv.op === 'Conv' && intsAttr(conv, 'dilations', [1, 1]).some((d) => d !== 1)) {
    throw new ConfigError(path, `node "${conv.name}" is a dilated Conv: XNOR-Net's scaling map needs an undilated window; turn activations.scalingMap off or add the node to ignoredScopes`, { node: conv.name });
  }
}

const NO_CONTEXT: ForwardContext = {
  training: false,
  nextSeed: () => 0,
  updateParam: () => undefined,
  get graph(): never {
    throw new Error('the scaling map pool reads no graph');
  },
};

/**
 * XNOR-Net's K for the input `a` of `conv`: the mean of |A| over channels, box-filtered with the
 * conv's window ([n, ho, wo, 1]); for a Gemm/MatMul the mean of |A| per example ([n, 1]).
 * Differentiable.
 */
export function scalingMap(a: tf.Tensor, conv: Node, kernel: readonly number[]): tf.Tensor {
  return tf.tidy(() => {
    const m = tf.mean(tf.abs(a), -1, true);
    const pool = scalingPool(conv, kernel, `${conv.name}/k_pool`, 'a', 'k');
    if (!pool) return m;
    return getOp('AveragePool')!.forward([m], pool, NO_CONTEXT)[0]!;
  });
}
