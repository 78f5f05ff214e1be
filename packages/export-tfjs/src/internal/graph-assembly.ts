/**
 * How a layer call becomes nodes: a graph under construction with shape inference at each node,
 * the layer's weights as parameters (shared by a shared layer's calls), Keras activations, and the
 * small checks and helpers every converter uses.
 */
import { GraphError, TensorpressError, getOp, sizeOf, type AttrValue, type Dim, type Graph, type Node, type Param, type TensorInfo } from '@tensorpress/core-tensor';
import { isObj, show } from './json.js';
import type { LayerConfig } from './layer-config.js';
import type { WeightStore } from './layer-weights.js';

/** Collects nodes and parameters with shape inference at every step (errors name the layer's node). */
export class GraphAssembly {
  readonly inputs: TensorInfo[] = [];
  readonly nodes: Node[] = [];
  readonly params: Param[] = [];
  private readonly infos = new Map<string, TensorInfo>();
  private readonly used = new Set<string>();
  /** Parameters made for a layer's weights, by layer and weight: a shared layer's calls share them. */
  readonly layerParams = new Map<string, { name: string; kerasShape: readonly number[] }>();

  constructor(private readonly reserved: ReadonlySet<string>) {}

  /** `wanted` itself when free (a layer may take its own reserved name), else `wanted_1`, `wanted_2`, ... */
  fresh(wanted: string, own = false): string {
    const free = (n: string): boolean => !this.used.has(n) && (own ? n === wanted || !this.reserved.has(n) : !this.reserved.has(n));
    let name = wanted;
    for (let i = 1; !free(name); i++) name = `${wanted}_${i}`;
    this.used.add(name);
    return name;
  }

  info(value: string): TensorInfo {
    const t = this.infos.get(value);
    if (!t) throw new GraphError('GRAPH_INVALID', `no value is called "${value}"`, { value });
    return t;
  }

  input(name: string, shape: readonly Dim[]): string {
    const t: TensorInfo = { name, shape: [...shape], dtype: 'float32' };
    this.inputs.push(t);
    this.infos.set(name, t);
    return name;
  }

  param(wanted: string, shape: readonly number[], data: Float32Array, trainable: boolean): string {
    const name = this.fresh(wanted);
    this.params.push({ name, shape: [...shape], dtype: 'float32', data, trainable });
    this.infos.set(name, { name, shape: [...shape], dtype: 'float32' });
    return name;
  }

  node(op: string, inputs: readonly string[], attrs: Record<string, AttrValue>, name: string): string {
    const node: Node = { name, op, inputs: [...inputs], outputs: [name], attrs };
    const outs = getOp(op)!.infer(
      inputs.map((v) => this.info(v)),
      node,
      undefined as unknown as Graph,
    );
    this.infos.set(name, { ...outs[0]!, name });
    this.nodes.push(node);
    return name;
  }
}

/** One call of a layer being converted. */
export interface Call {
  readonly cfg: LayerConfig;
  readonly inputs: readonly string[];
  /** Name of the layer's main node: the layer name (or `<layer>/call_<k>` for a shared layer's later calls). */
  readonly base: string;
  readonly g: GraphAssembly;
  readonly weights: WeightStore;
}

type Activation = { op: string; attrs: Record<string, AttrValue> } | null;

/** Keras activations the importer maps to core ops. */
export const ACTIVATIONS = ['linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'hard_sigmoid', 'hard_swish', 'hard_silu', 'leaky_relu'];

function activationName(v: unknown): string | undefined {
  if (v === undefined || v === null) return 'linear';
  let s: unknown = v;
  // Keras 3 may write a serialized function object.
  if (isObj(v)) s = typeof v['config'] === 'string' ? v['config'] : v['class_name'];
  if (typeof s !== 'string') return undefined;
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** The core op of a Keras activation, null for linear, or why it is not supported. */
export function resolveActivation(v: unknown, kerasMajor: number): Activation | string {
  const name = activationName(v);
  switch (name) {
    case 'linear':
      return null;
    case 'relu':
      return { op: 'Relu', attrs: {} };
    case 'relu6':
      return { op: 'Clip', attrs: { min: 0, max: 6 } };
    case 'sigmoid':
      return { op: 'Sigmoid', attrs: {} };
    case 'tanh':
      return { op: 'Tanh', attrs: {} };
    case 'softmax':
      return { op: 'Softmax', attrs: { axis: -1 } };
    case 'hard_sigmoid':
      // Keras 2 and tfjs: clip(0.2x + 0.5, 0, 1). Keras 3: relu6(x + 3) / 6.
      return { op: 'HardSigmoid', attrs: { alpha: kerasMajor >= 3 ? 1 / 6 : 0.2, beta: 0.5 } };
    case 'hard_swish':
    case 'hard_silu':
      return { op: 'HardSwish', attrs: {} };
    case 'leaky_relu':
      return { op: 'LeakyRelu', attrs: { alpha: 0.2 } };
    default:
      return `activation ${show(v)} is not supported (supported: ${ACTIVATIONS.join(', ')})`;
  }
}

/** Appends the layer's fused activation (config key `key`) after `x`. */
export function applyActivation(c: Call, x: string, key = 'activation'): string {
  const act = resolveActivation(c.cfg.raw(key), c.cfg.kerasMajor);
  if (act === null) return x;
  if (typeof act === 'string') throw new TensorpressError('UNSUPPORTED_LAYER', `layer "${c.cfg.name}": ${act}`);
  return c.g.node(act.op, [x], act.attrs, c.g.fresh(`${c.base}/activation`));
}

/**
 * The parameter holding a layer weight (made on the layer's first call). `expected` is the Keras
 * shape, `null` where any size goes; `reshape` maps it to the core layout.
 */
export function weight(
  c: Call,
  short: string,
  expected: readonly (number | null)[],
  o: { reshape?: (shape: readonly number[]) => number[]; trainable?: boolean } = {},
): { name: string; kerasShape: readonly number[] } {
  const key = `${c.cfg.name}\u0000${short}`;
  const cached = c.g.layerParams.get(key);
  if (cached) return cached;
  const w = c.weights.take(c.cfg.def, short, expected);
  const shape = o.reshape ? o.reshape(w.shape) : [...w.shape];
  const made = { name: c.g.param(`${c.cfg.name}/${short}`, shape, w.data, o.trainable ?? c.cfg.trainable), kerasShape: w.shape };
  c.g.layerParams.set(key, made);
  return made;
}

/** A constant the layer's config implies (BN without scale or center). */
export function constant(c: Call, short: string, shape: readonly number[], value: number): string {
  const key = `${c.cfg.name}\u0000${short}`;
  const cached = c.g.layerParams.get(key);
  if (cached) return cached.name;
  const made = { name: c.g.param(`${c.cfg.name}/${short}`, shape, new Float32Array(sizeOf(shape)).fill(value), false), kerasShape: shape };
  c.g.layerParams.set(key, made);
  return made.name;
}

/** Static channel count of an NHWC input (a GraphError otherwise). */
export function channels(c: Call, x: string): number {
  const s = c.g.info(x).shape;
  const ch = s[s.length - 1];
  if (s.length !== 4 || typeof ch !== 'number') {
    throw new GraphError('SHAPE_MISMATCH', `layer "${c.cfg.name}" (${c.cfg.def.className}) needs an NHWC input with static channels, got [${s.map((d) => d ?? '?').join(', ')}]`, {
      node: c.base,
    });
  }
  return ch;
}

/** A depthwise kernel: Keras [kh, kw, cin, mult] becomes the core's grouped-Conv weight [kh, kw, 1, cin*mult]. */
export function depthwiseKernel(c: Call, k: [number, number], cin: number, mult: number | null): { name: string; mult: number } {
  // Both layouts share one memory order (output channel c*mult+m), so only the shape changes.
  const w = weight(c, 'depthwise_kernel', [k[0], k[1], cin, mult], { reshape: (s) => [s[0]!, s[1]!, 1, s[2]! * s[3]!] });
  return { name: w.name, mult: w.kerasShape[3]! };
}

/** Kernel, strides, optional dilations and auto_pad of a 2-D window layer. */
export function windowAttrs(cfg: LayerConfig, kernel: [number, number], strides: [number, number], withDilation: boolean): Record<string, AttrValue> {
  const attrs: Record<string, AttrValue> = { kernel_shape: kernel, strides };
  if (withDilation) attrs['dilations'] = cfg.pair('dilation_rate', [1, 1]);
  // Keras 'same' is TensorFlow's SAME: the extra pad goes after (bottom/right).
  if (cfg.str('padding', 'valid') === 'same') attrs['auto_pad'] = 'SAME_UPPER';
  return attrs;
}

/** The layer's single input. */
export function one(c: Call): string {
  if (c.inputs.length !== 1) {
    throw new TensorpressError('INPUT_INVALID', `layer "${c.cfg.name}" (${c.cfg.def.className}) takes one input, got ${c.inputs.length}`, {
      layer: c.cfg.name,
    });
  }
  return c.inputs[0]!;
}

/** How one Keras layer class becomes nodes. */
export interface LayerConverter {
  /** Why this configuration cannot be imported (run on every layer before anything is built). */
  check?(cfg: LayerConfig): string | undefined;
  /** Emits the layer's nodes; returns the value holding its output. */
  convert(c: Call): string;
}

/** The first reason any check gives. */
export function checkAll(...checks: ((cfg: LayerConfig) => string | undefined)[]): (cfg: LayerConfig) => string | undefined {
  return (cfg) => {
    for (const f of checks) {
      const r = f(cfg);
      if (r) return r;
    }
    return undefined;
  };
}

/** Only channels_last data. */
export const channelsLast = (cfg: LayerConfig): string | undefined => {
  const f = cfg.str('data_format', 'channels_last');
  return f === 'channels_last' ? undefined : `data_format "${f}" is not supported (channels_last only)`;
};

/** Only 'same' and 'valid' padding. */
export const paddingMode = (cfg: LayerConfig): string | undefined => {
  const p = cfg.str('padding', 'valid');
  return p === 'same' || p === 'valid' ? undefined : `padding "${p}" is not supported (same, valid)`;
};

/** The activation under `key` is supported. */
export const activationOk =
  (key = 'activation') =>
  (cfg: LayerConfig): string | undefined => {
    const a = resolveActivation(cfg.raw(key), cfg.kerasMajor);
    return typeof a === 'string' ? a : undefined;
  };
