/**
 * Gradient functions for `Conv2D` and `DepthwiseConv2dNative` that accept dilation rates above 1:
 * tfjs' own assert the rates are 1 ("dilation rates greater than 1 are not yet supported in
 * gradients"). Where a backend runs tensorpress' gradient kernels (which take an extra
 * `dilations` attribute, see gradients.ts) the dilation goes to them; elsewhere the gradient is
 * computed for the equivalent zero-inserted filter.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap, Tensor, Tensor4D } from '@tensorflow/tfjs-core';
import { isFastGradientKernel } from './gradients.js';
import { pair } from './internal/scope.js';

function runKernel(name: string, inputs: Record<string, Tensor>, attrs: NamedAttrMap): Tensor4D {
  return tf.engine().runKernel(name, inputs as never, attrs) as Tensor4D;
}

/** Inserts `d - 1` zeros between filter taps: a dilated filter as an ordinary one. */
function dilateFilter(f: Tensor4D, dh: number, dw: number): Tensor4D {
  const [kh, kw, a, b] = f.shape;
  return tf.tidy(() => {
    const spread = tf.pad(tf.reshape(f, [kh, 1, kw, 1, a, b]), [
      [0, 0],
      [0, dh - 1],
      [0, 0],
      [0, dw - 1],
      [0, 0],
      [0, 0],
    ]);
    const full = tf.reshape(spread, [kh * dh, kw * dw, a, b]);
    return tf.slice(full, [0, 0, 0, 0], [(kh - 1) * dh + 1, (kw - 1) * dw + 1, a, b]);
  }) as Tensor4D;
}

/** Every `d`-th tap of a gradient computed for the zero-dilated filter. */
function undilate(g: Tensor4D, dh: number, dw: number): Tensor4D {
  const [h, w, a, b] = g.shape;
  return tf.stridedSlice(g, [0, 0, 0, 0], [h, w, a, b], [dh, dw, 1, 1]) as Tensor4D;
}

function nativeDilation(kernelName: string): boolean {
  return isFastGradientKernel(tf.getKernel(kernelName, tf.getBackend()));
}

const conv2dGrad: GradConfig = {
  kernelName: 'Conv2D',
  inputsToSave: ['x', 'filter'],
  gradFunc: (dyIn, saved, attrs) => {
    const dy = dyIn as Tensor4D;
    const [x, filter] = saved as [Tensor4D, Tensor4D];
    const { strides, pad, dataFormat, dimRoundingMode } = attrs;
    const [dh, dw] = pair(attrs['dilations'], 1);
    const common = { strides, pad, dataFormat, dimRoundingMode } as NamedAttrMap;
    if (dh === 1 && dw === 1) {
      return {
        x: () => runKernel('Conv2DBackpropInput', { dy, filter }, { ...common, inputShape: x.shape }),
        filter: () => runKernel('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: filter.shape }),
      };
    }
    const dilations = [dh, dw];
    return {
      x: () =>
        nativeDilation('Conv2DBackpropInput')
          ? runKernel('Conv2DBackpropInput', { dy, filter }, { ...common, dilations, inputShape: x.shape })
          : tf.tidy(() => {
              const fd = dilateFilter(filter, dh, dw);
              return runKernel('Conv2DBackpropInput', { dy, filter: fd }, { ...common, inputShape: x.shape });
            }),
      filter: () =>
        nativeDilation('Conv2DBackpropFilter')
          ? runKernel('Conv2DBackpropFilter', { x, dy }, { ...common, dilations, filterShape: filter.shape })
          : tf.tidy(() => {
              const [kh, kw, a, b] = filter.shape;
              const shape = [(kh - 1) * dh + 1, (kw - 1) * dw + 1, a, b];
              return undilate(runKernel('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: shape }), dh, dw);
            }),
    };
  },
};

const depthwiseGrad: GradConfig = {
  kernelName: 'DepthwiseConv2dNative',
  inputsToSave: ['x', 'filter'],
  gradFunc: (dyIn, saved, attrs) => {
    const dy = dyIn as Tensor4D;
    const [x, filter] = saved as [Tensor4D, Tensor4D];
    const { strides, pad, dimRoundingMode } = attrs;
    const [dh, dw] = pair(attrs['dilations'], 1);
    const dilations = [dh, dw];
    const common = { strides, pad, dimRoundingMode } as NamedAttrMap;
    const plain = dh === 1 && dw === 1;
    return {
      x: () =>
        plain || nativeDilation('DepthwiseConv2dNativeBackpropInput')
          ? runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter }, { ...common, dilations, inputShape: x.shape })
          : tf.tidy(() => {
              const fd = dilateFilter(filter, dh, dw);
              return runKernel(
                'DepthwiseConv2dNativeBackpropInput',
                { dy, filter: fd },
                { ...common, dilations: [1, 1], inputShape: x.shape },
              );
            }),
      filter: () =>
        plain || nativeDilation('DepthwiseConv2dNativeBackpropFilter')
          ? runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...common, dilations, filterShape: filter.shape })
          : tf.tidy(() => {
              const [kh, kw, a, b] = filter.shape;
              const shape = [(kh - 1) * dh + 1, (kw - 1) * dw + 1, a, b];
              const g = runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...common, dilations: [1, 1], filterShape: shape });
              return undilate(g, dh, dw);
            }),
    };
  },
};

/**
 * Registers gradient functions for `Conv2D` and `DepthwiseConv2dNative` that also handle dilation
 * rates above 1 (tfjs' own assert they are 1). Undilated convolutions take exactly tfjs' path.
 * With dilation, backends running our kernels get the dilation natively; others get the
 * equivalent zero-inserted filter. Call after the stock gradients are loaded (idempotent).
 */
export function registerDilatedConvGradients(): void {
  if (tf.getGradient('Conv2D') !== conv2dGrad) tf.registerGradient(conv2dGrad);
  if (tf.getGradient('DepthwiseConv2dNative') !== depthwiseGrad) tf.registerGradient(depthwiseGrad);
}
