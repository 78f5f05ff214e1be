/**
 * Converters of every other supported layer: batch normalization, activation layers, merges,
 * pooling, and shape layers (Flatten, Reshape, Permute, ZeroPadding2D, Dropout, Identity, Rescaling).
 */
import { GraphError, TensorpressError, sizeOf } from '@tensorpress/core-tensor';
import {
  activationOk,
  channels,
  channelsLast,
  checkAll,
  constant,
  one,
  paddingMode,
  resolveActivation,
  weight,
  windowAttrs,
  type LayerConverter,
} from './graph-assembly.js';
import { invalid, show } from './json.js';

function elementwise(op: string, exactlyTwo = false): LayerConverter {
  return {
    convert: (c) => {
      const n = c.inputs.length;
      if (n < 2 || (exactlyTwo && n !== 2)) {
        throw new TensorpressError('INPUT_INVALID', `layer "${c.cfg.name}" (${c.cfg.def.className}) needs ${exactlyTwo ? 'two' : 'at least two'} inputs, got ${n}`);
      }
      let acc = c.inputs[0]!;
      for (let i = 1; i < n; i++) {
        const name = i === n - 1 ? c.base : c.g.fresh(`${c.base}/partial_${i}`);
        acc = c.g.node(op, [acc, c.inputs[i]!], {}, name);
      }
      return acc;
    },
  };
}

function pooling(op: 'MaxPool' | 'AveragePool'): LayerConverter {
  return {
    check: checkAll(channelsLast, paddingMode),
    convert: (c) => {
      const k = c.cfg.pair('pool_size', [2, 2]);
      const s = c.cfg.pair('strides', k);
      return c.g.node(op, [one(c)], windowAttrs(c.cfg, k, s, false), c.base);
    },
  };
}

function globalPooling(op: 'GlobalAveragePool' | 'GlobalMaxPool'): LayerConverter {
  return {
    check: channelsLast,
    convert: (c) => {
      const x = one(c);
      channels(c, x);
      const y = c.g.node(op, [x], {}, c.base);
      if (c.cfg.bool('keepdims', false)) return y;
      return c.g.node('Flatten', [y], { axis: 1 }, c.g.fresh(`${c.base}/flatten`));
    },
  };
}

/** Batch normalization, activations, merges, pooling and shape layers, in the order of the supported-layers message. */
export const CORE_CONVERTERS: Readonly<Record<string, LayerConverter>> = {
  BatchNormalization: {
    check: (cfg) => {
      if (cfg.bool('renorm', false)) return 'renorm is not supported';
      if (cfg.optNum('virtual_batch_size') !== null) return 'virtual_batch_size is not supported';
      return undefined;
    },
    convert: (c) => {
      const x = one(c);
      const cfg = c.cfg;
      const s = c.g.info(x).shape;
      const axis = cfg.axis('axis', -1);
      const ch = s[s.length - 1];
      if ((axis !== -1 && axis !== s.length - 1) || typeof ch !== 'number') {
        throw new TensorpressError(
          'UNSUPPORTED_LAYER',
          `layer "${cfg.name}" (BatchNormalization): axis ${axis} on an input of rank ${s.length} is not supported; only the last (channels) axis is`,
          { layer: cfg.name },
        );
      }
      const gamma = cfg.bool('scale', true) ? weight(c, 'gamma', [ch]).name : constant(c, 'gamma', [ch], 1);
      const beta = cfg.bool('center', true) ? weight(c, 'beta', [ch]).name : constant(c, 'beta', [ch], 0);
      const mean = weight(c, 'moving_mean', [ch], { trainable: false }).name;
      const variance = weight(c, 'moving_variance', [ch], { trainable: false }).name;
      // Keras' momentum weights the old running value, as the core BN's does.
      const attrs = { epsilon: cfg.num('epsilon', 1e-3), momentum: cfg.num('momentum', 0.99) };
      return c.g.node('BatchNormalization', [x, gamma, beta, mean, variance], attrs, c.base);
    },
  },

  Activation: {
    check: activationOk(),
    convert: (c) => {
      const act = resolveActivation(c.cfg.raw('activation'), c.cfg.kerasMajor);
      if (typeof act === 'string') throw new TensorpressError('UNSUPPORTED_LAYER', `layer "${c.cfg.name}": ${act}`);
      return act ? c.g.node(act.op, [one(c)], act.attrs, c.base) : c.g.node('Identity', [one(c)], {}, c.base);
    },
  },

  ReLU: {
    check: (cfg) => {
      const t = cfg.num('threshold', 0);
      return t !== 0 ? `threshold ${t} is not supported (0 only)` : undefined;
    },
    convert: (c) => {
      const max = c.cfg.optNum('max_value');
      const slope = c.cfg.num('negative_slope', 0);
      const x = one(c);
      if (slope === 0) return max === null ? c.g.node('Relu', [x], {}, c.base) : c.g.node('Clip', [x], { min: 0, max }, c.base);
      if (max === null) return c.g.node('LeakyRelu', [x], { alpha: slope }, c.base);
      const h = c.g.node('LeakyRelu', [x], { alpha: slope }, c.g.fresh(`${c.base}/leaky`));
      return c.g.node('Clip', [h], { max }, c.base);
    },
  },

  LeakyReLU: {
    convert: (c) => {
      // tfjs and Keras 2 call the slope alpha, Keras 3 negative_slope; the default is 0.3 in both.
      const alpha = c.cfg.optNum('negative_slope') ?? c.cfg.num('alpha', 0.3);
      return c.g.node('LeakyRelu', [one(c)], { alpha }, c.base);
    },
  },

  Softmax: {
    convert: (c) => c.g.node('Softmax', [one(c)], { axis: c.cfg.axis('axis', -1) }, c.base),
  },

  Add: elementwise('Add'),
  Subtract: elementwise('Sub', true),
  Multiply: elementwise('Mul'),

  Concatenate: {
    convert: (c) => {
      if (c.inputs.length < 1) throw new TensorpressError('INPUT_INVALID', `layer "${c.cfg.name}" (Concatenate) has no inputs`);
      return c.g.node('Concat', c.inputs, { axis: c.cfg.axis('axis', -1) }, c.base);
    },
  },

  MaxPooling2D: pooling('MaxPool'),
  AveragePooling2D: pooling('AveragePool'),
  GlobalAveragePooling2D: globalPooling('GlobalAveragePool'),
  GlobalMaxPooling2D: globalPooling('GlobalMaxPool'),

  Flatten: {
    check: channelsLast,
    convert: (c) => c.g.node('Flatten', [one(c)], { axis: 1 }, c.base),
  },

  Reshape: {
    convert: (c) => {
      const x = one(c);
      // tfjs-layers writes the unknown size as null, Keras as -1.
      const raw = c.cfg.raw('target_shape');
      const target = Array.isArray(raw) ? raw.map((d: unknown) => (d === null ? -1 : d)) : raw;
      if (!Array.isArray(target) || !target.every((d) => Number.isInteger(d) && (d as number) >= -1)) {
        invalid([...c.cfg.def.path, 'target_shape'], `expected a list of sizes (one may be -1 or null), got ${show(raw)}`);
      }
      if (target.filter((d) => d === -1).length > 1) invalid([...c.cfg.def.path, 'target_shape'], 'at most one -1 is allowed');
      let resolved = target as number[];
      if (target.includes(-1)) {
        // The batch takes the Reshape's own -1, so resolve the layer's -1 from the static sizes.
        const inner = c.g.info(x).shape.slice(1);
        if (inner.some((d) => d === null)) {
          throw new GraphError('SHAPE_MISMATCH', `layer "${c.cfg.name}" (Reshape): a -1 in target_shape needs a static input shape`, { node: c.base });
        }
        const total = sizeOf(inner);
        const known = target.reduce<number>((p, d) => (d === -1 ? p : p * (d as number)), 1);
        if (known === 0 || total % known !== 0) {
          throw new GraphError('SHAPE_MISMATCH', `layer "${c.cfg.name}" (Reshape): cannot reshape ${total} values to [${target.join(', ')}]`, {
            node: c.base,
          });
        }
        resolved = target.map((d) => (d === -1 ? total / known : (d as number)));
      }
      return c.g.node('Reshape', [x], { shape: [-1, ...resolved] }, c.base);
    },
  },

  Permute: {
    convert: (c) => c.g.node('Transpose', [one(c)], { perm: [0, ...c.cfg.ints('dims', 1)] }, c.base),
  },

  Dropout: {
    check: (cfg) => (cfg.raw('noise_shape') !== undefined && cfg.raw('noise_shape') !== null ? 'noise_shape is not supported' : undefined),
    convert: (c) => c.g.node('Dropout', [one(c)], { ratio: c.cfg.num('rate', 0) }, c.base),
  },

  ZeroPadding2D: {
    check: channelsLast,
    convert: (c) => {
      const v = c.cfg.raw('padding');
      let p: [number, number, number, number];
      const nonNeg = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
      if (v === undefined || v === null) p = [1, 1, 1, 1];
      else if (nonNeg(v)) p = [v, v, v, v];
      else if (Array.isArray(v) && v.length === 2 && nonNeg(v[0]) && nonNeg(v[1])) p = [v[0], v[0], v[1], v[1]];
      else if (
        Array.isArray(v) &&
        v.length === 2 &&
        Array.isArray(v[0]) &&
        Array.isArray(v[1]) &&
        [...(v[0] as unknown[]), ...(v[1] as unknown[])].length === 4 &&
        [...(v[0] as unknown[]), ...(v[1] as unknown[])].every(nonNeg)
      ) {
        p = [v[0][0] as number, v[0][1] as number, v[1][0] as number, v[1][1] as number];
      } else invalid([...c.cfg.def.path, 'padding'], `expected an int, [h, w] or [[top, bottom], [left, right]], got ${show(v)}`);
      const [top, bottom, left, right] = p;
      return c.g.node('Pad', [one(c)], { pads: [0, top, left, 0, 0, bottom, right, 0], mode: 'constant', value: 0 }, c.base);
    },
  },

  Identity: {
    convert: (c) => c.g.node('Identity', [one(c)], {}, c.base),
  },

  Rescaling: {
    convert: (c) => {
      const x = one(c);
      const vec = (key: string, fallback: number): Float32Array => {
        const v = c.cfg.raw(key);
        if (v === undefined || v === null) return Float32Array.of(fallback);
        if (typeof v === 'number') return Float32Array.of(v);
        if (Array.isArray(v) && v.every((e) => typeof e === 'number')) return Float32Array.from(v as number[]);
        invalid([...c.cfg.def.path, key], `expected a number or a list of numbers, got ${show(v)}`);
      };
      const scale = vec('scale', 1);
      const offset = vec('offset', 0);
      const shapeOf = (a: Float32Array): number[] => (a.length === 1 ? [] : [a.length]);
      const s = c.g.param(`${c.cfg.name}/scale`, shapeOf(scale), scale, false);
      if (offset.every((o) => o === 0)) return c.g.node('Mul', [x, s], {}, c.base);
      const y = c.g.node('Mul', [x, s], {}, c.base);
      const o = c.g.param(`${c.cfg.name}/offset`, shapeOf(offset), offset, false);
      return c.g.node('Add', [y, o], {}, c.g.fresh(`${c.base}/offset_add`));
    },
  },
};
