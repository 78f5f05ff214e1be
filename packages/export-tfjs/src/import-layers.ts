/**
 * Import of tfjs-layers / Keras models into the core graph IR.
 *
 * Reads the Keras topology JSON (what `model.toJSON(null, false)` returns, or the `modelTopology` of
 * saved artifacts) and the named weights; nothing here imports @tensorflow/tfjs-layers, so the
 * inputs are duck-typed. Node names are the layer names, so users find their layers in the graph.
 */
import { Graph, TensorpressError, type Dim } from '@tensorpress/core-tensor';
import { CONV_CONVERTERS } from './internal/convert-conv.js';
import { CORE_CONVERTERS } from './internal/convert-core.js';
import { ACTIVATIONS, GraphAssembly, type LayerConverter } from './internal/graph-assembly.js';
import { invalid, isObj, show } from './internal/json.js';
import { readTopology, type LayerDef, type TensorRef, type Topology } from './internal/keras-topology.js';
import { LayerConfig } from './internal/layer-config.js';
import { WeightStore, decodeArtifactWeights, liveWeights, type RawWeight } from './internal/layer-weights.js';
import type { LayersModelLike, ModelArtifactsLike } from './layers-model-like.js';

/** Options of {@link importLayersModel}. */
export interface ImportLayersOptions {
  /**
   * Input shapes by input layer name, replacing the saved ones (batch first, `null` for a dynamic
   * size). Useful to fix spatial sizes of a model saved with `null` height/width: 'same' padding
   * needs them.
   */
  readonly inputShapes?: Readonly<Record<string, readonly Dim[]>>;
}

const CONVERTERS: Readonly<Record<string, LayerConverter>> = { ...CONV_CONVERTERS, ...CORE_CONVERTERS };

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
