/**
 * The Keras topology of a layers model: Sequential or functional (Keras 2 and 3 forms, tfjs-layers'
 * own), parsed into layers, their calls and the model's inputs and outputs. Errors name the JSON path.
 */
import { invalid, isObj, show, type Json, type PathPart } from './json.js';

/** One tensor of the topology: output `tensor` of call `node` of a layer. */
export interface TensorRef {
  readonly layer: string;
  readonly node: number;
  readonly tensor: number;
}

/** One layer of the topology and its calls. */
export interface LayerDef {
  readonly name: string;
  readonly className: string;
  readonly config: Json;
  /** One list of input tensors per call of the layer. */
  readonly calls: readonly (readonly TensorRef[])[];
  readonly path: readonly PathPart[];
}

/** A parsed topology. */
export interface Topology {
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

/** Parses a Sequential or functional Keras topology (an object or JSON text, bare or wrapped in `model_config`). */
export function readTopology(topology: unknown): Topology {
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
