/**
 * Convolution geometry as tfjs' forward kernels compute it, shared by every convolution kernel and
 * gradient here: their output shapes and padding must match the forward op's exactly.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { pair } from './scope.js';

/** tfjs' conv geometry (shapes, strides, dilations, padding). */
export type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

type Pair = [number, number];
/** Explicit NHWC padding, `[[0, 0], [top, bottom], [left, right], [0, 0]]`. */
export type Padding4 = [Pair, Pair, Pair, Pair];
type PadAttr = 'valid' | 'same' | number | Padding4;
type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;

/**
 * Geometry of a conv kernel call (forward or gradient) from its shapes and attributes: `strides`,
 * `dilations`, `pad` and `dimRoundingMode`, as the forward kernel read them.
 */
export function convInfo(inShape: readonly number[], filterShape: readonly number[], attrs: NamedAttrMap, depthwise = false, nchw = false): Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    pair(attrs['strides'], 1),
    pair(attrs['dilations'], 1),
    attrs['pad'] as PadAttr as never,
    attrs['dimRoundingMode'] as RoundingMode,
    depthwise,
    nchw ? 'channelsFirst' : 'channelsLast',
  );
}

/** Throws unless `dy` has the forward op's output shape (a gradient kernel's input check). */
export function checkDy(dy: TensorInfo, info: Conv2DInfo, kernel: string): void {
  const expected = info.outShape;
  if (dy.shape.length !== 4 || dy.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`${kernel}: dy has shape [${dy.shape.join(',')}], expected [${expected.join(',')}]`);
  }
}
