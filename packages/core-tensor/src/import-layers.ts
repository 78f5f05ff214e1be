/**
 * Import of tfjs-layers / Keras models into the core graph IR.
 *
 * Reads the Keras topology JSON (what `model.toJSON(null, false)` returns, or the `modelTopology` of
 * saved artifacts) and the named weights; nothing here imports @tensorflow/tfjs-layers, so the
 * inputs are duck-typed. Node names are the layer names, so users find their layers in the graph.
 */
import { GraphError, TensorpressError, jsonPath } from './errors.js';
import { Graph, sizeOf, type AttrValue, type Dim, type Node, type Param, type TensorInfo } from './graph.js';
import { getOp } from './ops/registry.js';

/** A tensor as tfjs hands it out (only what the importer reads). */
export interface LayersTensorLike {
  readonly shape: readonly number[];
  readonly dtype: string;
  dataSync(): unknown;
}

/** A variable of a live tfjs-layers model (`LayerVariable`). */
export interface LayerVariableLike {
  readonly name: string;
  /** The scoped name without the process-wide uniquifying suffix; the name saved artifacts use. */
  readonly originalName?: string;
  readonly shape: readonly (number | null)[];
  readonly dtype: string;
  read?(): LayersTensorLike;
}

/** The part of a live `tf.LayersModel` that {@link importLayersModel} uses. */
export interface LayersModelLike {
  toJSON(unused?: unknown, returnString?: boolean): unknown;
  readonly weights: readonly LayerVariableLike[];
  getWeights?(): readonly LayersTensorLike[];
}

/** One entry of `weightSpecs` in tfjs model artifacts. */
export interface WeightSpecLike {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly quantization?: unknown;
}

/** Model artifacts as `model.save(...)` hands them to an IOHandler (or a parsed model.json plus its weights). */
export interface ModelArtifactsLike {
  /** The Keras topology: `{ class_name, config, keras_version }`, a model.json's `{ model_config, ... }`, or its JSON text. */
  readonly modelTopology?: unknown;
  readonly weightSpecs?: readonly WeightSpecLike[];
  /** Concatenated weight bytes in `weightSpecs` order (tfjs writes typed arrays in platform order, little-endian). */
  readonly weightData?: ArrayBuffer | readonly ArrayBuffer[] | ArrayBufferView;
}

/** Options of {@link importLayersModel}. */
export interface ImportLayersOptions {
  /**
   * Input shapes by input layer name, replacing the saved ones (batch first, `null` for a dynamic
   * size). Useful to fix spatial sizes of a model saved with `null` height/width: 'same' padding
   * needs them.
   */
  readonly inputShapes?: Readonly<Record<string, readonly Dim[]>>;
}

type Json = Record<string, unknown>;
type PathPart = string | number;

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(path: readonly PathPart[], message: string): never {
  const p = jsonPath(path);
  throw new TensorpressError('INPUT_INVALID', `layers model ${p}: ${message}`, { path: p });
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

// ---------------------------------------------------------------- topology

interface TensorRef {
  readonly layer: string;
  readonly node: number;
  readonly tensor: number;
}

interface LayerDef {
  readonly name: string;
  readonly className: string;
  readonly config: Json;
  /** One list of input tensors per call of the layer. */
  readonly calls: readonly (readonly TensorRef[])[];
  readonly path: readonly PathPart[];
}

interface Topology {
  readonly layers: readonly LayerDef[];
  readonly inputs: readonly TensorRef[];
  readonly outputs: readonly TensorRef[];
  /** Major version of the Keras that wrote it (tfjs-layers writes Keras 2 semantics). */
  readonly kerasMajor: number;
  /** Major version of tfjs-layers when it wrote the model, else null. */
  readonly tfjsMajor: number | null;
}

function parseRef(v: unknown, path: readonly PathPart[]): TensorRef {
  if (!Array.isArray(v) || typeof v[0] !== 'string') invalid(path, `expected [layerName, nodeIndex, tensorIndex], got ${show(v)}`);
  const node = v[1] ?? 0;
  const tensor = v[2] ?? 0;
  if (!Number.isInteger(node) || !Number.isInteger(tensor)) invalid(path, `expected integer node and tensor indices, got ${show(v)}`);
  return { layer: v[0], node: node as number, tensor: tensor as number };
}

function parseRefList(v: unknown, path: readonly PathPart[]): TensorRef[] {
  if (!Array.isArray(v)) invalid(path, `expected a list of [layerName, nodeIndex, tensorIndex], got ${show(v)}`);
  // Keras 3 writes a single input/output as one flat reference.
  if (typeof v[0] === 'string') return [parseRef(v, path)];
  return v.map((r, i) => parseRef(r, [...path, i]));
}

/** Tensor references in a Keras 3 call's args, depth first (Add/Concatenate take a list). */
function kerasHistories(v: unknown, path: readonly PathPart[], out: TensorRef[]): void {
  if (Array.isArray(v)) {
    v.forEach((x, i) => kerasHistories(x, [...path, i], out));
  } else if (isObj(v)) {
    const cfg = v['config'];
    if (v['class_name'] === '__keras_tensor__' && isObj(cfg)) out.push(parseRef(cfg['keras_history'], [...path, 'config', 'keras_history']));
  }
}

function parseInbound(v: unknown, path: readonly PathPart[]): TensorRef[][] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) invalid(path, `expected a list of calls, got ${show(v)}`);
  return v.map((call, i) => {
    const p = [...path, i];
    if (isObj(call)) {
      const out: TensorRef[] = [];
      kerasHistories(call['args'], [...p, 'args'], out);
      return out;
    }
    if (!Array.isArray(call)) invalid(p, `expected a list of input references, got ${show(call)}`);
    return call.map((r, j) => parseRef(r, [...p, j]));
  });
}

function layerName(l: Json, cfg: Json, path: readonly PathPart[]): string {
  const name = l['name'] ?? cfg['name'];
  if (typeof name !== 'string' || name === '') invalid([...path, 'name'], 'every layer needs a name');
  return name;
}

function parseLayer(l: unknown, path: readonly PathPart[], calls: (name: string) => TensorRef[][]): LayerDef {
  if (!isObj(l)) invalid(path, `expected a layer object, got ${show(l)}`);
  const className = l['class_name'];
  if (typeof className !== 'string') invalid([...path, 'class_name'], 'expected a string');
  const config = l['config'] ?? {};
  if (!isObj(config)) invalid([...path, 'config'], `expected an object, got ${show(config)}`);
  const name = layerName(l, config, path);
  return { name, className, config, calls: calls(name), path: [...path, 'config'] };
}

function readTopology(topology: unknown): Topology {
  let t = topology;
  if (typeof t === 'string') {
    try {
      t = JSON.parse(t) as unknown;
    } catch (e) {
      invalid([], `modelTopology is not valid JSON (${(e as Error).message})`);
    }
  }
  if (!isObj(t)) invalid([], `expected the Keras topology object, got ${show(t)}`);
  let kerasVersion = t['keras_version'];
  // A model.json's modelTopology wraps the model in model_config.
  if (isObj(t['model_config'])) {
    t = t['model_config'];
    kerasVersion ??= (t as Json)['keras_version'];
  }
  const top = t as Json;
  const version = typeof kerasVersion === 'string' ? kerasVersion : '';
  const tfjs = /^tfjs-layers (\d+)\./.exec(version);
  const keras = /^(\d+)\./.exec(version);
  const versions = { kerasMajor: keras ? Number(keras[1]) : 2, tfjsMajor: tfjs ? Number(tfjs[1]) : null };
  const className = top['class_name'];
  const config = top['config'];
  if (className === 'Sequential') return { ...readSequential(config), ...versions };
  if (className === 'Model' || className === 'Functional') return { ...readFunctional(config), ...versions };
  invalid(['class_name'], `expected a Sequential or functional (Model/Functional) topology, got ${show(className)}`);
}

type Layers = Pick<Topology, 'layers' | 'inputs' | 'outputs'>;

function readSequential(config: unknown): Layers {
  const list = Array.isArray(config) ? config : isObj(config) ? config['layers'] : undefined;
  const base: PathPart[] = Array.isArray(config) ? ['config'] : ['config', 'layers'];
  if (!Array.isArray(list) || list.length === 0) invalid(base, 'a Sequential model needs a non-empty list of layers');
  const raw = list.map((l, i) => parseLayer(l, [...base, i], () => []));
  const first = raw[0]!;
  let input: LayerDef;
  let rest: LayerDef[];
  if (first.className === 'InputLayer') {
    input = first;
    rest = raw.slice(1);
  } else {
    // tfjs-layers and Keras name the implicit input of a Sequential model `<first layer>_input`.
    const shape = first.config['batch_input_shape'] ?? first.config['batch_shape'];
    input = {
      name: `${first.name}_input`,
      className: 'InputLayer',
      config: { batch_input_shape: shape ?? null, dtype: first.config['dtype'] ?? 'float32' },
      calls: [],
      path: first.path,
    };
    rest = raw;
  }
  const layers: LayerDef[] = [input];
  let prev = input.name;
  for (const l of rest) {
    layers.push({ ...l, calls: [[{ layer: prev, node: 0, tensor: 0 }]] });
    prev = l.name;
  }
  return { layers, inputs: [{ layer: input.name, node: 0, tensor: 0 }], outputs: [{ layer: prev, node: 0, tensor: 0 }] };
}

function readFunctional(config: unknown): Layers {
  if (!isObj(config)) invalid(['config'], `expected an object, got ${show(config)}`);
  const list = config['layers'];
  if (!Array.isArray(list)) invalid(['config', 'layers'], 'expected a list of layers');
  const layers = list.map((l, i) => {
    const path: PathPart[] = ['config', 'layers', i];
    return parseLayer(l, path, () => parseInbound(isObj(l) ? l['inbound_nodes'] : undefined, [...path, 'inbound_nodes']));
  });
  return {
    layers,
    inputs: parseRefList(config['input_layers'], ['config', 'input_layers']),
    outputs: parseRefList(config['output_layers'], ['config', 'output_layers']),
  };
}

// ---------------------------------------------------------------- weights

interface RawWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  /** Present for float32 weights (a private copy). */
  readonly data?: Float32Array;
}

const SPEC_BYTES: Readonly<Record<string, number>> = { float32: 4, int32: 4, bool: 1, complex64: 8 };

function weightBytes(data: ModelArtifactsLike['weightData']): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) {
    const parts = (data as readonly unknown[]).map((b, i) => {
      if (!(b instanceof ArrayBuffer)) invalid(['weightData', i], 'expected an ArrayBuffer');
      return new Uint8Array(b);
    });
    const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.byteLength;
    }
    return out;
  }
  invalid(['weightData'], 'expected an ArrayBuffer, a list of ArrayBuffers or a typed array');
}

function decodeArtifactWeights(a: ModelArtifactsLike): Map<string, RawWeight> {
  const specs: unknown = a.weightSpecs ?? [];
  if (!Array.isArray(specs)) invalid(['weightSpecs'], 'expected a list of weight specs');
  const bytes = weightBytes(a.weightData);
  const out = new Map<string, RawWeight>();
  let offset = 0;
  specs.forEach((s: unknown, i) => {
    const path = ['weightSpecs', i];
    if (!isObj(s) || typeof s['name'] !== 'string') invalid(path, `expected { name, shape, dtype }, got ${show(s)}`);
    const name = s['name'];
    if (s['quantization'] !== undefined && s['quantization'] !== null) {
      throw new TensorpressError(
        'INPUT_INVALID',
        `weight "${name}" is quantized (${show((s['quantization'] as Json)['dtype'])}): load the model with tf.loadLayersModel, ` +
          'which dequantizes it, and pass the model instead of its artifacts',
        { weight: name },
      );
    }
    const shape = s['shape'];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
      invalid([...path, 'shape'], `expected non-negative integer dimensions, got ${show(shape)}`);
    }
    const dtype = s['dtype'];
    const per = typeof dtype === 'string' ? SPEC_BYTES[dtype] : undefined;
    if (per === undefined) invalid([...path, 'dtype'], `weight "${name}" has dtype ${show(dtype)}; expected float32, int32, bool or complex64`);
    const n = sizeOf(shape as number[]);
    const len = n * per;
    if (!Number.isSafeInteger(len) || offset + len > bytes.byteLength) {
      throw new TensorpressError(
        'INPUT_INVALID',
        `weight "${name}" needs bytes ${offset}..${offset + len} of weightData, which holds ${bytes.byteLength}: ` +
          'the weights are truncated or belong to another model',
        { weight: name, byteOffset: offset, byteLength: len, available: bytes.byteLength },
      );
    }
    let data: Float32Array | undefined;
    if (dtype === 'float32') {
      data = new Float32Array(n);
      new Uint8Array(data.buffer).set(bytes.subarray(offset, offset + len));
    }
    if (!out.has(name)) out.set(name, { name, shape: shape as number[], dtype: dtype as string, ...(data ? { data } : {}) });
    offset += len;
  });
  return out;
}

function liveWeights(m: LayersModelLike): Map<string, RawWeight> {
  const vars = m.weights;
  const values: readonly LayersTensorLike[] =
    typeof m.getWeights === 'function'
      ? m.getWeights()
      : vars.map((v) => {
          if (typeof v.read !== 'function') invalid(['weights'], 'a live model needs getWeights() or readable weights');
          return v.read();
        });
  if (values.length !== vars.length) invalid(['weights'], `getWeights() returned ${values.length} tensors for ${vars.length} weights`);
  const out = new Map<string, RawWeight>();
  vars.forEach((v, i) => {
    const t = values[i]!;
    const name = v.originalName ?? v.name;
    const raw = t.dtype === 'float32' ? t.dataSync() : undefined;
    // dataSync may return the backend's own storage: copy it.
    const data = raw instanceof Float32Array ? raw.slice() : undefined;
    if (!out.has(name)) out.set(name, { name, shape: [...t.shape], dtype: t.dtype, ...(data ? { data } : {}) });
  });
  return out;
}

class WeightStore {
  constructor(private readonly weights: ReadonlyMap<string, RawWeight>) {}

  /** The weight `<layer>/<short>` (also found under a name scope or with a `:0` suffix). */
  take(layer: LayerDef, short: string, expected?: readonly (number | null)[]): RawWeight & { data: Float32Array } {
    const key = `${layer.name}/${short}`;
    let w = this.weights.get(key) ?? this.weights.get(`${key}:0`);
    if (!w) {
      const hits = [...this.weights.values()].filter((x) => x.name.endsWith(`/${key}`) || x.name.endsWith(`/${key}:0`));
      if (hits.length === 1) w = hits[0];
    }
    if (!w) {
      const own = [...this.weights.keys()].filter((k) => k.startsWith(`${layer.name}/`));
      throw new TensorpressError(
        'INPUT_INVALID',
        `layer "${layer.name}" (${layer.className}) needs weight "${key}", which the model's weights do not hold` +
          (own.length > 0 ? ` (the layer has: ${own.join(', ')})` : ' (no weight of that layer was found)'),
        { layer: layer.name, weight: key },
      );
    }
    if (!w.data) {
      throw new TensorpressError('INPUT_INVALID', `weight "${w.name}" is ${w.dtype}; layer weights must be float32`, { weight: w.name });
    }
    if (expected && (expected.length !== w.shape.length || expected.some((d, i) => d !== null && d !== w.shape[i]))) {
      throw new TensorpressError(
        'SHAPE_MISMATCH',
        `weight "${w.name}" has shape [${w.shape.join(', ')}] but layer "${layer.name}" (${layer.className}) expects [${expected.map((d) => d ?? '?').join(', ')}]`,
        { layer: layer.name, weight: w.name },
      );
    }
    return w as RawWeight & { data: Float32Array };
  }
}

// ---------------------------------------------------------------- config readers

/** Typed access to one layer's config; errors name the JSON path. */
class LayerConfig {
  constructor(
    readonly def: LayerDef,
    private readonly topo: Pick<Topology, 'kerasMajor' | 'tfjsMajor'>,
  ) {}

  get kerasMajor(): number {
    return this.topo.kerasMajor;
  }

  get tfjsMajor(): number | null {
    return this.topo.tfjsMajor;
  }

  get name(): string {
    return this.def.name;
  }

  raw(key: string): unknown {
    return this.def.config[key];
  }

  private fail(key: string, expected: string): never {
    invalid([...this.def.path, key], `layer "${this.def.name}" (${this.def.className}): expected ${expected}, got ${show(this.raw(key))}`);
  }

  num(key: string, fallback: number): number {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a number');
    return v;
  }

  /** A number, or null when absent/null. */
  optNum(key: string): number | null {
    const v = this.raw(key);
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || Number.isNaN(v)) this.fail(key, 'a number or null');
    return v;
  }

  int(key: string, fallback: number, min = 1): number {
    const v = this.num(key, fallback);
    if (!Number.isInteger(v) || v < min) this.fail(key, `an integer >= ${min}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  str(key: string, fallback: string): string {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string') this.fail(key, 'a string');
    return v;
  }

  /** An int or a pair of ints (Keras' kernel_size, strides, ...). */
  pair(key: string, fallback: readonly [number, number] | null, min = 1): [number, number] {
    const v = this.raw(key);
    if ((v === undefined || v === null) && fallback) return [fallback[0], fallback[1]];
    const ok = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= min;
    if (ok(v)) return [v, v];
    if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return [v[0], v[1]];
    this.fail(key, `an integer >= ${min} or a pair of them`);
  }

  ints(key: string, min: number): number[] {
    const v = this.raw(key);
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= min)) {
      this.fail(key, `a list of integers >= ${min}`);
    }
    return v as number[];
  }

  /** Axis as an int or a one-element list. */
  axis(key: string, fallback: number): number {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (Array.isArray(v) && v.length === 1 && Number.isInteger(v[0])) return v[0] as number;
    this.fail(key, 'an integer axis');
  }

  /** Weights of a layer frozen in Keras stay frozen. */
  get trainable(): boolean {
    return this.raw('trainable') !== false;
  }
}

// ---------------------------------------------------------------- graph assembly

/** Collects nodes and parameters with shape inference at every step (errors name the layer's node). */
class GraphAssembly {
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

interface Call {
  readonly cfg: LayerConfig;
  readonly inputs: readonly string[];
  /** Name of the layer's main node: the layer name (or `<layer>/call_<k>` for a shared layer's later calls). */
  readonly base: string;
  readonly g: GraphAssembly;
  readonly weights: WeightStore;
}

type Activation = { op: string; attrs: Record<string, AttrValue> } | null;

const ACTIVATIONS = ['linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'hard_sigmoid', 'hard_swish', 'hard_silu', 'leaky_relu'];

function activationName(v: unknown): string | undefined {
  if (v === undefined || v === null) return 'linear';
  let s: unknown = v;
  // Keras 3 may write a serialized function object.
  if (isObj(v)) s = typeof v['config'] === 'string' ? v['config'] : v['class_name'];
  if (typeof s !== 'string') return undefined;
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

function resolveActivation(v: unknown, kerasMajor: number): Activation | string {
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

function applyActivation(c: Call, x: string, key = 'activation'): string {
  const act = resolveActivation(c.cfg.raw(key), c.cfg.kerasMajor);
  if (act === null) return x;
  if (typeof act === 'string') throw new TensorpressError('UNSUPPORTED_LAYER', `layer "${c.cfg.name}": ${act}`);
  return c.g.node(act.op, [x], act.attrs, c.g.fresh(`${c.base}/activation`));
}

/**
 * The parameter holding a layer weight (made on the layer's first call). `expected` is the Keras
 * shape, `null` where any size goes; `reshape` maps it to the core layout.
 */
function weight(
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
function constant(c: Call, short: string, shape: readonly number[], value: number): string {
  const key = `${c.cfg.name}\u0000${short}`;
  const cached = c.g.layerParams.get(key);
  if (cached) return cached.name;
  const made = { name: c.g.param(`${c.cfg.name}/${short}`, shape, new Float32Array(sizeOf(shape)).fill(value), false), kerasShape: shape };
  c.g.layerParams.set(key, made);
  return made.name;
}

function channels(c: Call, x: string): number {
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
function depthwiseKernel(c: Call, k: [number, number], cin: number, mult: number | null): { name: string; mult: number } {
  // Both layouts share one memory order (output channel c*mult+m), so only the shape changes.
  const w = weight(c, 'depthwise_kernel', [k[0], k[1], cin, mult], { reshape: (s) => [s[0]!, s[1]!, 1, s[2]! * s[3]!] });
  return { name: w.name, mult: w.kerasShape[3]! };
}

function windowAttrs(cfg: LayerConfig, kernel: [number, number], strides: [number, number], withDilation: boolean): Record<string, AttrValue> {
  const attrs: Record<string, AttrValue> = { kernel_shape: kernel, strides };
  if (withDilation) attrs['dilations'] = cfg.pair('dilation_rate', [1, 1]);
  // Keras 'same' is TensorFlow's SAME: the extra pad goes after (bottom/right).
  if (cfg.str('padding', 'valid') === 'same') attrs['auto_pad'] = 'SAME_UPPER';
  return attrs;
}

function one(c: Call): string {
  if (c.inputs.length !== 1) {
    throw new TensorpressError('INPUT_INVALID', `layer "${c.cfg.name}" (${c.cfg.def.className}) takes one input, got ${c.inputs.length}`, {
      layer: c.cfg.name,
    });
  }
  return c.inputs[0]!;
}

/** How one Keras layer class becomes nodes. */
interface LayerConverter {
  /** Why this configuration cannot be imported (run on every layer before anything is built). */
  check?(cfg: LayerConfig): string | undefined;
  /** Emits the layer's nodes; returns the value holding its output. */
  convert(c: Call): string;
}

function checkAll(...checks: ((cfg: LayerConfig) => string | undefined)[]): (cfg: LayerConfig) => string | undefined {
  return (cfg) => {
    for (const f of checks) {
      const r = f(cfg);
      if (r) return r;
    }
    return undefined;
  };
}

const channelsLast = (cfg: LayerConfig): string | undefined => {
  const f = cfg.str('data_format', 'channels_last');
  return f === 'channels_last' ? undefined : `data_format "${f}" is not supported (channels_last only)`;
};

const paddingMode = (cfg: LayerConfig): string | undefined => {
  const p = cfg.str('padding', 'valid');
  return p === 'same' || p === 'valid' ? undefined : `padding "${p}" is not supported (same, valid)`;
};

const activationOk =
  (key = 'activation') =>
  (cfg: LayerConfig): string | undefined => {
    const a = resolveActivation(cfg.raw(key), cfg.kerasMajor);
    return typeof a === 'string' ? a : undefined;
  };

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

const CONVERTERS: Readonly<Record<string, LayerConverter>> = {
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

const SUPPORTED = ['InputLayer', ...Object.keys(CONVERTERS)];

interface Problem {
  readonly name: string;
  readonly className: string;
  readonly reason: string;
}

function findProblems(topo: Topology): Problem[] {
  const problems: Problem[] = [];
  for (const l of topo.layers) {
    const cfg = new LayerConfig(l, topo);
    let reason: string | undefined;
    if (l.className === 'InputLayer') {
      const dtype = cfg.str('dtype', 'float32');
      if (dtype !== 'float32') reason = `input dtype ${dtype} is not supported (float32 only)`;
    } else if (['Sequential', 'Model', 'Functional'].includes(l.className)) {
      reason = 'nested models are not supported: build the model with the nested model\'s layers inlined';
    } else {
      const conv = CONVERTERS[l.className];
      reason = conv ? conv.check?.(cfg) : 'layer type not supported';
    }
    if (reason) problems.push({ name: l.name, className: l.className, reason });
  }
  return problems;
}

function unsupportedError(problems: readonly Problem[]): TensorpressError {
  const lines = problems.map((p) => `  - "${p.name}" (${p.className}): ${p.reason}`);
  return new TensorpressError(
    'UNSUPPORTED_LAYER',
    `${problems.length} layer${problems.length === 1 ? '' : 's'} cannot be imported:\n${lines.join('\n')}\n` +
      `Supported layers: ${SUPPORTED.join(', ')}; activations: ${ACTIVATIONS.join(', ')}.\n` +
      'Way around: replace these layers with supported equivalents (e.g. activation "relu" instead of "swish") and ' +
      're-train or copy the weights, run them outside the imported model, or export the model to ONNX and import that ' +
      'with @tensorpress/export-onnx.',
    { layers: problems.map((p) => ({ ...p })) },
  );
}

function inputShape(l: LayerDef, options: ImportLayersOptions): Dim[] {
  const override = options.inputShapes?.[l.name];
  const shape: unknown = override ?? l.config['batch_input_shape'] ?? l.config['batch_shape'];
  const path = [...l.path, 'batch_input_shape'];
  if (shape === undefined || shape === null) {
    invalid(path, `input "${l.name}" has no shape: build the model with an input shape, or pass options.inputShapes`);
  }
  if (!Array.isArray(shape) || shape.length < 1 || !shape.every((d) => d === null || (Number.isInteger(d) && (d as number) >= 0))) {
    invalid(override ? ['options', 'inputShapes', l.name] : path, `expected [batch, ...dims] of non-negative integers or null, got ${show(shape)}`);
  }
  return shape as Dim[];
}

function isLiveModel(m: LayersModelLike | ModelArtifactsLike): m is LayersModelLike {
  return typeof (m as Partial<LayersModelLike>).toJSON === 'function';
}

/**
 * Imports a tfjs-layers (Keras) model into a validated {@link Graph}.
 *
 * Accepts a live `tf.LayersModel` (duck-typed: `toJSON`, `weights`, `getWeights`) or model artifacts
 * (`{ modelTopology, weightSpecs, weightData }`, as `model.save` hands them to an IOHandler), for
 * Sequential and functional models. Node names are the layer names; a Conv/Dense activation becomes
 * its own node `<layer>/activation`. Keras 'same' padding becomes `auto_pad: 'SAME_UPPER'`; depthwise
 * kernels become grouped Conv weights `[kh, kw, 1, cin*mult]`; BN running statistics are
 * non-trainable, and so are the weights of layers Keras marks `trainable: false`.
 *
 * @throws TensorpressError `UNSUPPORTED_LAYER` listing every unsupported layer (name, class, reason)
 *   at once; `INPUT_INVALID` for a malformed topology or missing/truncated/quantized weights (the
 *   message names the JSON path or weight); a {@link GraphError} when shapes do not fit.
 */
export function importLayersModel(model: LayersModelLike | ModelArtifactsLike, options: ImportLayersOptions = {}): Graph {
  if (!isObj(model)) invalid([], 'expected a tf.LayersModel or model artifacts');
  let topo: Topology;
  let weights: Map<string, RawWeight>;
  if (isLiveModel(model)) {
    topo = readTopology(model.toJSON(null, false));
    weights = liveWeights(model);
  } else {
    if (model.modelTopology === undefined || model.modelTopology === null) {
      invalid(['modelTopology'], 'the artifacts carry no model topology');
    }
    topo = readTopology(model.modelTopology);
    weights = decodeArtifactWeights(model);
  }

  const problems = findProblems(topo);
  if (problems.length > 0) throw unsupportedError(problems);

  const byName = new Map<string, LayerDef>();
  for (const l of topo.layers) {
    if (byName.has(l.name)) invalid([...l.path, 'name'], `two layers are called "${l.name}"`);
    byName.set(l.name, l);
  }
  if (options.inputShapes) {
    for (const k of Object.keys(options.inputShapes)) {
      if (byName.get(k)?.className !== 'InputLayer') {
        const names = topo.inputs.map((r) => r.layer).join(', ');
        invalid(['options', 'inputShapes', k], `the model has no input layer "${k}" (inputs: ${names})`);
      }
    }
  }

  const g = new GraphAssembly(new Set(byName.keys()));
  const store = new WeightStore(weights);
  const values = new Map<string, string>();
  const key = (r: TensorRef): string => `${r.layer}\u0000${r.node}\u0000${r.tensor}`;

  for (const r of topo.inputs) {
    const l = byName.get(r.layer);
    if (!l || l.className !== 'InputLayer') invalid(['config', 'input_layers'], `"${r.layer}" is not an input layer of the model`);
    if (values.has(key({ layer: l.name, node: 0, tensor: 0 }))) continue;
    values.set(key({ layer: l.name, node: 0, tensor: 0 }), g.input(g.fresh(l.name, true), inputShape(l, options)));
  }

  // Resolve calls as their inputs become available: a shared layer's calls may be listed out of order.
  let pending = topo.layers.flatMap((l) => (l.className === 'InputLayer' ? [] : l.calls.map((refs, k) => ({ l, refs, k }))));
  while (pending.length > 0) {
    const next: typeof pending = [];
    for (const p of pending) {
      const ins = p.refs.map((r) => values.get(key(r)));
      if (ins.some((v) => v === undefined)) {
        next.push(p);
        continue;
      }
      const base = g.fresh(p.k === 0 ? p.l.name : `${p.l.name}/call_${p.k}`, p.k === 0);
      const out = CONVERTERS[p.l.className]!.convert({
        cfg: new LayerConfig(p.l, topo),
        inputs: ins as string[],
        base,
        g,
        weights: store,
      });
      values.set(key({ layer: p.l.name, node: p.k, tensor: 0 }), out);
    }
    if (next.length === pending.length) {
      const p = next[0]!;
      const missing = p.refs.filter((r) => !values.has(key(r))).map((r) => `${r.layer}[${r.node}][${r.tensor}]`);
      invalid([...p.l.path.slice(0, -1), 'inbound_nodes', p.k], `layer "${p.l.name}" reads ${missing.join(', ')}, which no input or layer call produces`);
    }
    pending = next;
  }

  const outputs = topo.outputs.map((r, i) => {
    const v = values.get(key(r));
    if (v === undefined) invalid(['config', 'output_layers', i], `output ${r.layer}[${r.node}][${r.tensor}] is not produced by the model`);
    return v;
  });
  return new Graph({ inputs: g.inputs, outputs, nodes: g.nodes, params: g.params });
}
