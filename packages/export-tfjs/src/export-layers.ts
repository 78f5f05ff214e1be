/**
 * Export of a graph as tfjs-layers model artifacts (a functional Keras topology plus weights), for
 * graphs whose ops have a tfjs-layers equivalent, stripped quantized graphs included (weights
 * folded to float, activation Q/DQ pairs as stock layers). Other graphs (grouped convolutions,
 * integer ops, ...) go out through ONNX instead.
 */
import { ConfigError, TensorpressError, convGeometry, intsAttr, numAttr, strAttr, window2d, type Dim, type Graph, type Node } from '@tensorpress/core-tensor';
import { fakeQuantLayers, readActivationQdq } from './internal/activation-qdq.js';
import { foldWeightDequantize } from './internal/fold-dequantize.js';
import { WEIGHT_FORMATS, packWeights, type WeightFormat, type WeightQuantization } from './internal/weight-codec.js';

/** One weight entry of {@link LayersArtifacts}. */
export interface LayersWeightSpec {
  readonly name: string;
  readonly shape: number[];
  readonly dtype: 'float32';
  /** How the values are stored when not as float32 (tfjs-core decodes it on load). */
  readonly quantization?: WeightQuantization;
}

/**
 * tfjs-layers model artifacts (`tf.io.ModelArtifacts`): load with
 * `tf.loadLayersModel(tf.io.fromMemory(artifacts))`, or write `modelTopology` with a
 * `weightsManifest` as a model.json.
 */
export interface LayersArtifacts {
  readonly modelTopology: Record<string, unknown>;
  readonly format: 'layers-model';
  readonly generatedBy: string;
  readonly convertedBy: null;
  readonly weightSpecs: LayersWeightSpec[];
  readonly weightData: ArrayBuffer;
}

/** Options of {@link exportLayersArtifacts}. */
export interface ExportLayersOptions {
  /** The model's name in the topology. Default 'tensorpress'. */
  readonly name?: string;
  /**
   * How weights are stored: `float32` (default, exact), `float16`, or `uint8`/`uint16` affine
   * (`value = q · scale + min` per weight tensor, tfjs-converter's `--quantize_uint8/16` format).
   * tfjs dequantizes on load, so the model computes in float32 either way.
   */
  readonly weights?: WeightFormat;
  /**
   * Activation QuantizeLinear → DequantizeLinear pairs of a quantized graph: `fake-quant` (default)
   * writes them as stock layers that round and clip as the pair does, so the model computes what
   * the stripped graph computes; `float` drops them and activations run in float32.
   */
  readonly activations?: 'fake-quant' | 'float';
}

type Ref = [string, number, number, Record<string, never>];
interface LayerJson {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: Ref[][];
}

interface Problem {
  readonly node: string;
  readonly op: string;
  readonly reason: string;
}

class Unsupported extends Error {}

function no(reason: string): never {
  throw new Unsupported(reason);
}

const ref = (layer: string): Ref => [layer, 0, 0, {}];

/** What tfjs-layers accepts as a layer or weight name (its `isValidTensorName`). */
const TENSOR_NAME = /^[A-Za-z0-9][-A-Za-z0-9._/]*$/;

/** A name tfjs-layers accepts: other characters (`:`, `#`, ...) become `_`, and a leading one gets a letter. */
function layerSafe(name: string): string {
  const s = name.replace(/[^-A-Za-z0-9._/]/g, '_');
  return /^[A-Za-z0-9]/.test(s) ? s : `l${s}`;
}

/**
 * Writes a graph as tfjs-layers artifacts: one functional model whose layers carry the node names
 * (characters tfjs-layers refuses in a name, such as `:` and `#`, become `_`). Conv becomes Conv2D
 * (or DepthwiseConv2D for depthwise groups), Gemm and MatMul(+bias Add) Dense, explicit pads a
 * ZeroPadding2D before the layer; GlobalAveragePool followed by Flatten becomes one
 * GlobalAveragePooling2D. Every parameter must belong to exactly one layer weight. A stripped
 * quantized graph goes too: weight DequantizeLinear nodes fold into float32 weights (what the
 * executor computes from the integer codes), and activation Q/DQ pairs become stock layers that
 * round and clip the same way (see {@link ExportLayersOptions.activations}).
 *
 * @throws ConfigError for an unknown `weights` or `activations` option.
 * @throws TensorpressError `UNSUPPORTED_OP` listing every node without a tfjs-layers equivalent
 *   (node, op, reason) at once; export such graphs to ONNX instead.
 */
export function exportLayersArtifacts(source: Graph, options: ExportLayersOptions = {}): LayersArtifacts {
  const format = options.weights ?? 'float32';
  if (!WEIGHT_FORMATS.includes(format)) throw new ConfigError('options.weights', `expected one of ${WEIGHT_FORMATS.join(', ')}, got ${JSON.stringify(format)}`);
  const activations = options.activations ?? 'fake-quant';
  if (activations !== 'fake-quant' && activations !== 'float') {
    throw new ConfigError('options.activations', `expected "fake-quant" or "float", got ${JSON.stringify(activations)}`);
  }
  const graph = foldWeightDequantize(source);
  const layers: LayerJson[] = [];
  const specs: LayersWeightSpec[] = [];
  const chunks: Float32Array[] = [];
  const problems: Problem[] = [];
  /** The layer whose output holds a graph value. */
  const valueLayer = new Map<string, string>();
  /** For a GlobalAveragePool/GlobalMaxPool output: the layer holding it flattened to [N, C]. */
  const flatLayer = new Map<string, string>();
  const skipped = new Set<string>();
  const used = new Set<string>([...graph.inputs.map((i) => i.name), ...graph.nodes.map((n) => n.name)]);
  const paramUses = new Map<string, number>();
  for (const n of graph.nodes) for (const v of n.inputs) if (graph.isParam(v)) paramUses.set(v, (paramUses.get(v) ?? 0) + 1);
  const outputs = new Set(graph.outputs);

  const fresh = (wanted: string): string => {
    const base = layerSafe(wanted);
    let name = base;
    for (let i = 1; used.has(name); i++) name = `${base}_${i}`;
    used.add(name);
    return name;
  };
  /** The layer name of a graph name: itself when tfjs-layers accepts it, else a fresh cleaned-up name. */
  const safeNames = new Map<string, string>();
  const safe = (name: string): string => {
    let s = safeNames.get(name);
    if (s === undefined) {
      s = TENSOR_NAME.test(name) ? name : fresh(name);
      safeNames.set(name, s);
    }
    return s;
  };

  /** A layer weight that no parameter holds (the fake-quant chain's statistics). */
  const constantWeight = (layer: string, short: string, values: Float32Array, shape: readonly number[]): void => {
    specs.push({ name: `${safe(layer)}/${short}`, shape: [...shape], dtype: 'float32' });
    chunks.push(values);
  };

  const weight = (layer: string, short: string, value: string, shape?: readonly number[]): void => {
    const p = graph.param(value);
    if (!p) no(`input "${value}" must be a parameter`);
    if (p.dtype !== 'float32') no(`parameter "${value}" is ${p.dtype}; tfjs-layers weights here are float32`);
    if ((paramUses.get(value) ?? 0) > 1) no(`parameter "${value}" is shared by several nodes`);
    constantWeight(layer, short, p.data as Float32Array, shape ?? p.shape);
  };

  const input = (n: Node, i: number): string => {
    const v = n.inputs[i];
    if (v === undefined || v === '') no(`input ${i} is missing`);
    if (graph.isParam(v)) no(`input ${i} reads parameter "${v}", which has no tfjs-layers place here`);
    const l = valueLayer.get(v);
    if (!l) no(`input "${v}" has no tfjs-layers equivalent`);
    return l;
  };

  const add = (wanted: string, className: string, config: Record<string, unknown>, inputs: readonly string[]): string => {
    const name = safe(wanted);
    layers.push({ name, class_name: className, config: { name, trainable: true, ...config }, inbound_nodes: [inputs.map(ref)] });
    return name;
  };

  const rank = (v: string): number => graph.info(v).shape.length;

  /** Explicit [top, left, bottom, right] pads become a ZeroPadding2D layer before the op. */
  const padded = (n: Node, x: string, pads: readonly number[]): string => {
    if (pads.every((p) => p === 0)) return x;
    return add(fresh(`${n.name}/pad`), 'ZeroPadding2D', { padding: [[pads[0], pads[2]], [pads[1], pads[3]]], data_format: 'channels_last' }, [x]);
  };

  const activation = (n: Node, name: string): string => add(n.name, 'Activation', { activation: name }, [input(n, 0)]);

  /** A QuantizeLinear and its DequantizeLinear readers: the stock fake-quant layers, or nothing in float mode. */
  const quantizePair = (n: Node): undefined => {
    const pair = readActivationQdq(graph, n);
    if (typeof pair === 'string') no(pair);
    let out = input(n, 0);
    if (activations === 'fake-quant') {
      const s = graph.info(n.inputs[0]!).shape;
      const channels = s[s.length - 1];
      if (typeof channels !== 'number' || s.length < 2) no('the fake-quant layers need a static last (channel) dimension; pass activations: "float"');
      for (const l of fakeQuantLayers(pair, channels)) {
        const name = fresh(`${n.name}/${l.suffix}`);
        for (const w of l.weights ?? []) constantWeight(name, w.short, w.values, [channels]);
        out = add(name, l.className, l.config, [out]);
      }
    }
    for (const dq of pair.dequantizers) {
      skipped.add(dq.name);
      valueLayer.set(dq.outputs[0]!, out);
    }
    // The integer output itself has no layer: only the DequantizeLinear outputs are read.
    return undefined;
  };

  const emit = (n: Node): string | undefined => {
    switch (n.op) {
      case 'Conv': {
        const x = n.inputs[0]!;
        const w = n.inputs[1]!;
        const g = convGeometry(n, graph.info(x).shape, graph.info(w).shape);
        const inp = padded(n, input(n, 0), g.same ? [0, 0, 0, 0] : g.pads);
        const common = {
          kernel_size: g.kernel,
          strides: g.strides,
          padding: g.same && g.pads.some((p) => p > 0) ? 'same' : 'valid',
          data_format: 'channels_last',
          dilation_rate: g.dilations,
          activation: 'linear',
          use_bias: n.inputs[2] !== undefined && n.inputs[2] !== '',
        };
        if (g.group === 1) {
          weight(n.name, 'kernel', w);
          if (common.use_bias) weight(n.name, 'bias', n.inputs[2]!);
          return add(n.name, 'Conv2D', { ...common, filters: g.outChannels }, [inp]);
        }
        if (!g.depthwise) no(`grouped convolution (group ${g.group}) has no tfjs-layers layer`);
        if (g.dilations.some((d) => d > 1)) no('tfjs-layers ignores dilation_rate in DepthwiseConv2D');
        const mult = g.outChannels / g.inChannels;
        weight(n.name, 'depthwise_kernel', w, [g.kernel[0], g.kernel[1], g.inChannels, mult]);
        if (common.use_bias) weight(n.name, 'bias', n.inputs[2]!);
        return add(n.name, 'DepthwiseConv2D', { ...common, depth_multiplier: mult }, [inp]);
      }
      case 'Gemm': {
        if (numAttr(n, 'alpha', 1) !== 1 || numAttr(n, 'beta', 1) !== 1) no('alpha and beta must be 1');
        if (numAttr(n, 'transA', 0) !== 0 || numAttr(n, 'transB', 0) !== 0) no('transA/transB must be 0');
        const x = input(n, 0);
        const w = graph.info(n.inputs[1]!).shape;
        const bias = n.inputs[2] !== undefined && n.inputs[2] !== '';
        weight(n.name, 'kernel', n.inputs[1]!);
        if (bias) weight(n.name, 'bias', n.inputs[2]!);
        return add(n.name, 'Dense', { units: w[1], activation: 'linear', use_bias: bias }, [x]);
      }
      case 'MatMul': {
        const w = graph.param(n.inputs[1]!);
        if (!w || w.shape.length !== 2) no('only a matmul by a 2-D parameter (Dense) is supported');
        const x = input(n, 0);
        // MatMul followed by its only consumer, an Add of a [units] parameter: one Dense with bias.
        const cons = graph.consumers(n.outputs[0]!);
        const bias = cons.length === 1 && !outputs.has(n.outputs[0]!) && cons[0]!.node.op === 'Add' ? cons[0]!.node : undefined;
        const b = bias?.inputs[1 - cons[0]!.input];
        const fused = bias && b && graph.isParam(b) && graph.info(b).shape.length === 1 && graph.info(b).shape[0] === w.shape[1];
        weight(n.name, 'kernel', n.inputs[1]!);
        if (fused) {
          weight(n.name, 'bias', b);
          skipped.add(bias.name);
          valueLayer.set(bias.outputs[0]!, n.name);
        }
        return add(n.name, 'Dense', { units: w.shape[1], activation: 'linear', use_bias: Boolean(fused) }, [x]);
      }
      case 'BatchNormalization': {
        const x = input(n, 0);
        ['gamma', 'beta', 'moving_mean', 'moving_variance'].forEach((s, i) => weight(n.name, s, n.inputs[i + 1]!));
        return add(n.name, 'BatchNormalization', { axis: -1, epsilon: numAttr(n, 'epsilon', 1e-5), momentum: numAttr(n, 'momentum', 0.9), center: true, scale: true }, [x]);
      }
      case 'Relu':
        return activation(n, 'relu');
      case 'Sigmoid':
        return activation(n, 'sigmoid');
      case 'Tanh':
        return activation(n, 'tanh');
      case 'Identity':
        return activation(n, 'linear');
      case 'HardSigmoid':
        if (numAttr(n, 'alpha', 0.2) !== 0.2 || numAttr(n, 'beta', 0.5) !== 0.5) no("tfjs-layers' hard_sigmoid is fixed at alpha 0.2, beta 0.5");
        return activation(n, 'hard_sigmoid');
      case 'Clip': {
        const lo = numAttr(n, 'min', -Infinity);
        const hi = numAttr(n, 'max', Infinity);
        if (lo !== 0) no('only Clip with min 0 (ReLU with a max value) is supported');
        if (hi === 6) return activation(n, 'relu6');
        return add(n.name, 'ReLU', { max_value: Number.isFinite(hi) ? hi : null }, [input(n, 0)]);
      }
      case 'LeakyRelu':
        return add(n.name, 'LeakyReLU', { alpha: numAttr(n, 'alpha', 0.01) }, [input(n, 0)]);
      case 'Softmax': {
        const r = rank(n.inputs[0]!);
        const axis = numAttr(n, 'axis', -1);
        return add(n.name, 'Softmax', { axis: axis === r - 1 ? -1 : axis }, [input(n, 0)]);
      }
      case 'Add':
      case 'Sub':
      case 'Mul': {
        const [a, b] = [graph.info(n.inputs[0]!).shape, graph.info(n.inputs[1]!).shape];
        if (a.length !== b.length || a.some((d, i) => d !== b[i])) no('operands of different shapes (broadcasting) are not supported');
        const cls = n.op === 'Add' ? 'Add' : n.op === 'Sub' ? 'Subtract' : 'Multiply';
        return add(n.name, cls, {}, [input(n, 0), input(n, 1)]);
      }
      case 'Concat': {
        const r = rank(n.inputs[0]!);
        const axis = numAttr(n, 'axis', -1);
        if (axis === 0 || axis === -r) no('concatenation over the batch axis is not supported');
        return add(n.name, 'Concatenate', { axis: axis === r - 1 ? -1 : axis }, n.inputs.map((_, i) => input(n, i)));
      }
      case 'MaxPool':
      case 'AveragePool': {
        const x = n.inputs[0]!;
        const s = graph.info(x).shape;
        const k = intsAttr(n, 'kernel_shape', []);
        const win = window2d(n, s[1]!, s[2]!, [k[0]!, k[1]!]);
        const explicit = !win.same && win.pads.some((p) => p > 0);
        if (explicit && n.op === 'MaxPool') no('explicit pads on MaxPool have no tfjs-layers equivalent');
        if (explicit && numAttr(n, 'count_include_pad', 0) === 0) no('explicit pads on AveragePool need count_include_pad=1');
        const inp = padded(n, input(n, 0), explicit ? win.pads : [0, 0, 0, 0]);
        const cls = n.op === 'MaxPool' ? 'MaxPooling2D' : 'AveragePooling2D';
        const padding = win.same && win.pads.some((p) => p > 0) ? 'same' : 'valid';
        return add(n.name, cls, { pool_size: win.kernel, strides: win.strides, padding, data_format: 'channels_last' }, [inp]);
      }
      case 'GlobalAveragePool':
      case 'GlobalMaxPool': {
        const cls = n.op === 'GlobalAveragePool' ? 'GlobalAveragePooling2D' : 'GlobalMaxPooling2D';
        const flat = add(n.name, cls, { data_format: 'channels_last' }, [input(n, 0)]);
        const v = n.outputs[0]!;
        flatLayer.set(v, flat);
        // tfjs-layers' global pooling drops H and W; restore them unless only a Flatten reads the value.
        const onlyFlatten = !outputs.has(v) && graph.consumers(v).every((c) => c.node.op === 'Flatten' && numAttr(c.node, 'axis', 1) === 1);
        if (onlyFlatten) return undefined;
        const c = graph.info(v).shape[3];
        return add(fresh(`${n.name}/keepdims`), 'Reshape', { target_shape: [1, 1, c] }, [flat]);
      }
      case 'Flatten': {
        const x = n.inputs[0]!;
        const flat = flatLayer.get(x);
        if (flat) return flat;
        if (numAttr(n, 'axis', 1) !== 1) no('only Flatten with axis 1 is supported');
        // tfjs-layers' Flatten needs rank >= 3; a [N, F] input is already flat.
        if (rank(x) <= 2) return input(n, 0);
        return add(n.name, 'Flatten', { data_format: 'channels_last' }, [input(n, 0)]);
      }
      case 'Reshape': {
        const out: readonly Dim[] = graph.info(n.outputs[0]!).shape;
        const inp: readonly Dim[] = graph.info(n.inputs[0]!).shape;
        if (out[0] !== inp[0] || out.slice(1).some((d) => d === null)) no('only reshapes that keep the batch and give static sizes are supported');
        return add(n.name, 'Reshape', { target_shape: out.slice(1) }, [input(n, 0)]);
      }
      case 'Transpose': {
        const perm = intsAttr(n, 'perm', []);
        if (perm[0] !== 0) no('the batch axis must stay first');
        return add(n.name, 'Permute', { dims: perm.slice(1) }, [input(n, 0)]);
      }
      case 'Pad': {
        const pads = intsAttr(n, 'pads', []);
        const r = rank(n.inputs[0]!);
        const ok = r === 4 && strAttr(n, 'mode', 'constant') === 'constant' && numAttr(n, 'value', 0) === 0;
        if (!ok || pads[0] !== 0 || pads[3] !== 0 || pads[4] !== 0 || pads[7] !== 0) no('only zero padding of H and W (NHWC) is supported');
        return add(n.name, 'ZeroPadding2D', { padding: [[pads[1], pads[5]], [pads[2], pads[6]]], data_format: 'channels_last' }, [input(n, 0)]);
      }
      case 'Dropout':
        return add(n.name, 'Dropout', { rate: numAttr(n, 'ratio', 0.5) }, [input(n, 0)]);
      case 'QuantizeLinear':
        return quantizePair(n);
      case 'DequantizeLinear':
        return no('a DequantizeLinear must read parameters (weights, folded to float) or a QuantizeLinear (an activation pair)');
      default:
        no('no tfjs-layers equivalent');
    }
  };

  for (const t of graph.inputs) {
    if (t.dtype !== 'float32') problems.push({ node: t.name, op: 'input', reason: `input dtype ${t.dtype}: only float32 inputs are supported` });
    const name = safe(t.name);
    layers.push({
      name,
      class_name: 'InputLayer',
      config: { batch_input_shape: [...t.shape], dtype: 'float32', sparse: false, name },
      inbound_nodes: [],
    });
    valueLayer.set(t.name, name);
  }
  for (const n of graph.nodes) {
    if (skipped.has(n.name)) continue;
    try {
      if (n.outputs.length !== 1) no('nodes with several outputs are not supported');
      const layer = emit(n);
      if (layer !== undefined) valueLayer.set(n.outputs[0]!, layer);
    } catch (e) {
      if (!(e instanceof Unsupported)) throw e;
      // Record every problem, skipping nodes that only failed because an input did.
      if (!e.message.endsWith('has no tfjs-layers equivalent') || !n.inputs.some((v) => v !== '' && !graph.isParam(v) && !valueLayer.has(v) && !flatLayer.has(v))) {
        problems.push({ node: n.name, op: n.op, reason: e.message });
      }
    }
  }
  for (const o of graph.outputs) {
    if (!valueLayer.has(o) && !problems.length) problems.push({ node: o, op: 'output', reason: 'graph output is not a layer output (a parameter?)' });
  }
  if (problems.length > 0) {
    throw new TensorpressError(
      'UNSUPPORTED_OP',
      `${problems.length} node${problems.length === 1 ? '' : 's'} cannot be written as tfjs-layers:\n` +
        problems.map((p) => `  - "${p.node}" (${p.op}): ${p.reason}`).join('\n') +
        '\nWay around: export the graph to ONNX with @tensorpress/export-onnx, or keep these parts outside the tfjs-layers model.',
      { nodes: problems.map((p) => ({ ...p })) },
    );
  }

  const { quantizations, weightData } = packWeights(chunks, format);
  return {
    modelTopology: {
      class_name: 'Model',
      config: {
        name: options.name ?? 'tensorpress',
        layers,
        input_layers: graph.inputs.map((t) => [safe(t.name), 0, 0]),
        output_layers: graph.outputs.map((o) => [valueLayer.get(o)!, 0, 0]),
      },
      // tfjs-layers 4 semantics (e.g. DepthwiseConv2D without dilation): what loads these artifacts.
      keras_version: 'tfjs-layers 4.22.0',
      backend: 'tensor_flow.js',
    },
    format: 'layers-model',
    generatedBy: '@tensorpress/export-tfjs',
    convertedBy: null,
    weightSpecs: specs.map((spec, i) => (quantizations[i] ? { ...spec, quantization: quantizations[i] } : spec)),
    weightData,
  };
}
