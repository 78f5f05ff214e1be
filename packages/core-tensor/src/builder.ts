import { GraphError } from './errors.js';
import { Graph, type AttrValue, type Dim, type DType, type Node, type Param, type TensorInfo } from './graph.js';
import { getOp } from './ops/registry.js';
import { createRng, type Rng } from './random.js';

/** Weight initialisers. `he` = Kaiming normal (fan-in, gain √2); `glorot` = Xavier uniform. */
export type Init = 'he' | 'glorot' | 'zeros' | 'ones';

/** Options of {@link GraphBuilder.conv}. */
export interface ConvOptions {
  filters: number;
  kernel: number | [number, number];
  strides?: number | [number, number];
  dilations?: number | [number, number];
  /** 'same' (SAME_UPPER, like TensorFlow), 'valid', or explicit [top, left, bottom, right]. */
  padding?: 'same' | 'valid' | [number, number, number, number];
  group?: number;
  bias?: boolean;
  name?: string;
  init?: Init;
}

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

/**
 * Builds graphs step by step with shape checking at every node and seeded initialisation.
 * Used by the reference models and by users who define a model in code.
 */
export class GraphBuilder {
  private readonly inputs: TensorInfo[] = [];
  private readonly nodes: Node[] = [];
  private readonly params: Param[] = [];
  private readonly infos = new Map<string, TensorInfo>();
  private readonly outputs: string[] = [];
  private readonly reserved = new Set<string>();
  private readonly rng: Rng;

  constructor(options: { seed?: number } = {}) {
    this.rng = createRng(options.seed ?? 0);
  }

  private unique(base: string): string {
    let name = base;
    for (let n = 1; this.reserved.has(name) || this.infos.has(name); n++) name = `${base}_${n}`;
    this.reserved.add(name);
    return name;
  }

  /** Shape of a value defined so far. */
  shape(value: string): readonly Dim[] {
    const t = this.infos.get(value);
    if (!t) throw new GraphError('GRAPH_INVALID', `no value is called "${value}"`);
    return t.shape;
  }

  /** Adds a graph input. */
  input(name: string, shape: readonly Dim[], dtype: DType = 'float32'): string {
    const t = { name, shape: [...shape], dtype };
    this.inputs.push(t);
    this.infos.set(name, t);
    return name;
  }

  /** Adds a parameter with explicit data or an initialiser. */
  param(base: string, shape: readonly number[], init: Init | Float32Array, fan?: { in: number; out: number }, trainable = true): string {
    const name = this.unique(base);
    const n = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (init instanceof Float32Array) {
      data = init;
    } else {
      data = new Float32Array(n);
      const fi = fan?.in ?? shape[0] ?? 1;
      const fo = fan?.out ?? shape[shape.length - 1] ?? 1;
      if (init === 'ones') data.fill(1);
      else if (init === 'he') {
        const std = Math.sqrt(2 / fi);
        for (let i = 0; i < n; i++) data[i] = this.rng.normal() * std;
      } else if (init === 'glorot') {
        const lim = Math.sqrt(6 / (fi + fo));
        for (let i = 0; i < n; i++) data[i] = (this.rng.next() * 2 - 1) * lim;
      }
    }
    const p: Param = { name, shape: [...shape], dtype: 'float32', data, trainable };
    this.params.push(p);
    this.infos.set(name, { name, shape: p.shape, dtype: 'float32' });
    return name;
  }

  /** Adds any node; returns its output names. Shapes are checked now. */
  node(
    op: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue> = {},
    options: { name?: string; outputs?: number; exactName?: string } = {},
  ): string[] {
    const spec = getOp(op);
    if (!spec) throw new GraphError('UNKNOWN_OP', `unknown op "${op}"`, { op });
    const name = options.exactName ?? this.unique(options.name ?? op.toLowerCase());
    const outputs = Array.from({ length: options.outputs ?? 1 }, (_, i) => (i === 0 ? name : `${name}:${i}`));
    const node: Node = { name, op, inputs: [...inputs], outputs, attrs };
    const ins = inputs.map((v) => (v === '' ? undefined : this.infos.get(v)));
    ins.forEach((t, i) => {
      if (!t && inputs[i] !== '') throw new GraphError('GRAPH_DANGLING_EDGE', `node "${name}" reads unknown value "${inputs[i]}"`);
    });
    const outs = spec.infer(ins, node, undefined as unknown as Graph);
    outs.forEach((o, i) => this.infos.set(outputs[i]!, { ...o, name: outputs[i]! }));
    this.nodes.push(node);
    return outputs;
  }

  private one(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.node(op, inputs, attrs, name === undefined ? {} : { name })[0]!;
  }

  private reservedNode(op: string, inputs: readonly string[], attrs: Record<string, AttrValue>, exactName: string): string {
    return this.node(op, inputs, attrs, { exactName })[0]!;
  }

  /** 2-D convolution (NHWC) with weight [kh, kw, cin/group, cout]. */
  conv(x: string, o: ConvOptions): string {
    const cin = this.shape(x)[3];
    if (typeof cin !== 'number') throw new GraphError('SHAPE_MISMATCH', `conv input "${x}" must be NHWC with static channels`);
    const group = o.group ?? 1;
    const [kh, kw] = pair(o.kernel);
    const name = this.unique(o.name ?? 'conv');
    const w = this.param(`${name}.weight`, [kh, kw, cin / group, o.filters], o.init ?? 'he', {
      in: kh * kw * (cin / group),
      out: kh * kw * (o.filters / group),
    });
    const inputs = [x, w];
    if (o.bias ?? true) inputs.push(this.param(`${name}.bias`, [o.filters], 'zeros'));
    const attrs: Record<string, AttrValue> = {
      kernel_shape: [kh, kw],
      strides: pair(o.strides ?? 1),
      dilations: pair(o.dilations ?? 1),
      group,
    };
    const pad = o.padding ?? 'valid';
    if (pad === 'same') attrs['auto_pad'] = 'SAME_UPPER';
    else if (pad !== 'valid') attrs['pads'] = pad;
    return this.reservedNode('Conv', inputs, attrs, name);
  }

  /** Depthwise convolution: a Conv with group = channels (`multiplier` outputs per channel). */
  depthwiseConv(x: string, o: Omit<ConvOptions, 'filters' | 'group'> & { multiplier?: number }): string {
    const cin = this.shape(x)[3] as number;
    return this.conv(x, { ...o, filters: cin * (o.multiplier ?? 1), group: cin, name: o.name ?? 'dwconv' });
  }

  /** Fully connected layer: Gemm with weight [in, out]. */
  dense(x: string, units: number, o: { bias?: boolean; name?: string; init?: Init } = {}): string {
    const fin = this.shape(x)[1];
    if (typeof fin !== 'number') throw new GraphError('SHAPE_MISMATCH', `dense input "${x}" must be [N, features]`);
    const name = this.unique(o.name ?? 'fc');
    const w = this.param(`${name}.weight`, [fin, units], o.init ?? 'glorot', { in: fin, out: units });
    const inputs = [x, w];
    if (o.bias ?? true) inputs.push(this.param(`${name}.bias`, [units], 'zeros'));
    return this.reservedNode('Gemm', inputs, {}, name);
  }

  /** Batch normalisation over the last axis (PyTorch defaults: eps 1e-5, momentum 0.9 on the old value). */
  batchNorm(x: string, o: { name?: string; epsilon?: number; momentum?: number } = {}): string {
    const shape = this.shape(x);
    const c = shape[shape.length - 1] as number;
    const name = this.unique(o.name ?? 'bn');
    const gamma = this.param(`${name}.gamma`, [c], 'ones');
    const beta = this.param(`${name}.beta`, [c], 'zeros');
    const mean = this.param(`${name}.mean`, [c], 'zeros', undefined, false);
    const variance = this.param(`${name}.var`, [c], 'ones', undefined, false);
    return this.reservedNode(
      'BatchNormalization',
      [x, gamma, beta, mean, variance],
      { epsilon: o.epsilon ?? 1e-5, momentum: o.momentum ?? 0.9 },
      name,
    );
  }

  /** Rectified linear unit. */
  relu(x: string, name?: string): string {
    return this.one('Relu', [x], {}, name);
  }

  /** ReLU6 as Clip(0, 6). */
  relu6(x: string, name?: string): string {
    return this.one('Clip', [x], { min: 0, max: 6 }, name ?? 'relu6');
  }

  /** Max pooling (valid padding unless 'same'). */
  maxPool(x: string, size: number, o: { strides?: number; padding?: 'same' | 'valid'; name?: string } = {}): string {
    const attrs: Record<string, AttrValue> = { kernel_shape: [size, size], strides: pair(o.strides ?? size) };
    if (o.padding === 'same') attrs['auto_pad'] = 'SAME_UPPER';
    return this.one('MaxPool', [x], attrs, o.name);
  }

  /** Average pooling (valid padding unless 'same'). */
  avgPool(x: string, size: number, o: { strides?: number; padding?: 'same' | 'valid'; name?: string } = {}): string {
    const attrs: Record<string, AttrValue> = { kernel_shape: [size, size], strides: pair(o.strides ?? size) };
    if (o.padding === 'same') attrs['auto_pad'] = 'SAME_UPPER';
    return this.one('AveragePool', [x], attrs, o.name);
  }

  /** Mean over H and W, keeping dims ([N,1,1,C]). */
  globalAvgPool(x: string, name?: string): string {
    return this.one('GlobalAveragePool', [x], {}, name ?? 'gap');
  }

  /** Flattens to [N, features]. */
  flatten(x: string, name?: string): string {
    return this.one('Flatten', [x], { axis: 1 }, name);
  }

  /** Elementwise sum. */
  add(a: string, b: string, name?: string): string {
    return this.one('Add', [a, b], {}, name);
  }

  /** Concatenation over an axis (default channels). */
  concat(xs: readonly string[], axis = -1, name?: string): string {
    return this.one('Concat', xs, { axis }, name);
  }

  /** Dropout with a drop ratio. */
  dropout(x: string, ratio: number, name?: string): string {
    return this.one('Dropout', [x], { ratio }, name);
  }

  /** Marks graph outputs. */
  output(...values: string[]): void {
    this.outputs.push(...values);
  }

  /** Validates and returns the graph. */
  build(): Graph {
    return new Graph({ inputs: this.inputs, outputs: this.outputs, nodes: this.nodes, params: this.params });
  }
}
