/** Converters of the convolution and dense layers: Conv2D, DepthwiseConv2D, SeparableConv2D, Dense. */
import { GraphError } from '@tensorpress/core-tensor';
import {
  activationOk,
  applyActivation,
  channels,
  channelsLast,
  checkAll,
  depthwiseKernel,
  one,
  paddingMode,
  weight,
  windowAttrs,
  type Call,
  type LayerConverter,
} from './graph-assembly.js';

/**
 * A channels-last 2-D convolution layer: shared checks, its one input, input channels and kernel
 * size, and the fused activation; `build` emits the convolution itself.
 */
function convLayer(build: (c: Call, x: string, cin: number, kernel: [number, number]) => string): LayerConverter {
  return {
    check: checkAll(channelsLast, paddingMode, activationOk()),
    convert: (c) => {
      const x = one(c);
      const cin = channels(c, x);
      return applyActivation(c, build(c, x, cin, c.cfg.pair('kernel_size', null)));
    },
  };
}

/** Conv2D, DepthwiseConv2D, SeparableConv2D and Dense. */
export const CONV_CONVERTERS: Readonly<Record<string, LayerConverter>> = {
  Conv2D: convLayer((c, x, cin, k) => {
    const cfg = c.cfg;
    const filters = cfg.int('filters', 0);
    const group = cfg.int('groups', 1);
    if (cin % group !== 0) {
      throw new GraphError('SHAPE_MISMATCH', `layer "${cfg.name}": ${cin} input channels do not split into ${group} groups`, { node: c.base });
    }
    const inputs = [x, weight(c, 'kernel', [k[0], k[1], cin / group, filters]).name];
    if (cfg.bool('use_bias', true)) inputs.push(weight(c, 'bias', [filters]).name);
    const attrs = { ...windowAttrs(cfg, k, cfg.pair('strides', [1, 1]), true), group };
    return c.g.node('Conv', inputs, attrs, c.base);
  }),

  DepthwiseConv2D: convLayer((c, x, cin, k) => {
    const cfg = c.cfg;
    const w = depthwiseKernel(c, k, cin, cfg.int('depth_multiplier', 1));
    const inputs = [x, w.name];
    if (cfg.bool('use_bias', true)) inputs.push(weight(c, 'bias', [cin * w.mult]).name);
    // tfjs-layers (up to 4.x) ignores dilation_rate in DepthwiseConv2D: a model it wrote was trained
    // and runs without dilation, so the import follows what the model computes, not its config.
    const dilated = cfg.tfjsMajor === null || cfg.tfjsMajor > 4;
    const attrs = { ...windowAttrs(cfg, k, cfg.pair('strides', [1, 1]), dilated), group: cin };
    return c.g.node('Conv', inputs, attrs, c.base);
  }),

  SeparableConv2D: convLayer((c, x, cin, k) => {
    const cfg = c.cfg;
    const filters = cfg.int('filters', 0);
    // tfjs-layers leaves depth_multiplier out of SeparableConv2D's config: the kernel's shape tells it.
    const dw = depthwiseKernel(c, k, cin, null);
    const dwAttrs = { ...windowAttrs(cfg, k, cfg.pair('strides', [1, 1]), true), group: cin };
    const h = c.g.node('Conv', [x, dw.name], dwAttrs, c.g.fresh(`${c.base}/depthwise`));
    const inputs = [h, weight(c, 'pointwise_kernel', [1, 1, cin * dw.mult, filters]).name];
    if (cfg.bool('use_bias', true)) inputs.push(weight(c, 'bias', [filters]).name);
    return c.g.node('Conv', inputs, { kernel_shape: [1, 1], strides: [1, 1], dilations: [1, 1], group: 1 }, c.base);
  }),

  Dense: {
    check: activationOk(),
    convert: (c) => {
      const x = one(c);
      const cfg = c.cfg;
      const s = c.g.info(x).shape;
      const fin = s[s.length - 1];
      if (s.length < 2 || typeof fin !== 'number') {
        throw new GraphError('SHAPE_MISMATCH', `layer "${cfg.name}" (Dense) needs an input with static features, got [${s.map((d) => d ?? '?').join(', ')}]`, {
          node: c.base,
        });
      }
      const units = cfg.int('units', 0);
      const w = weight(c, 'kernel', [fin, units]).name;
      const b = cfg.bool('use_bias', true) ? weight(c, 'bias', [units]).name : undefined;
      let y: string;
      if (s.length === 2) {
        y = c.g.node('Gemm', b ? [x, w, b] : [x, w], {}, c.base);
      } else {
        // Keras applies Dense to the last axis of higher-rank inputs.
        y = c.g.node('MatMul', [x, w], {}, c.base);
        if (b) y = c.g.node('Add', [y, b], {}, c.g.fresh(`${c.base}/bias_add`));
      }
      return applyActivation(c, y);
    },
  },
};
