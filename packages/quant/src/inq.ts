import * as tf from '@tensorflow/tfjs-core';
import {
  ConfigError,
  CountingScheduler,
  PRIORITY,
  TensorpressError,
  checkScopeNames,
  createGraph,
  createRng,
  defineController,
  entryPaths,
  parseWithSchema,
  permutation,
  scopeFilter,
  type AlgorithmController,
  type CompressedModel,
  type CompressionBuilder,
  type EntryLocation,
  type Graph,
  type Json,
  type LayerStatistics,
  type LrScheduleFn,
  type Node,
  type Param,
} from '@tensorpress/core-tensor';
import { z } from 'zod';
import { WEIGHT_OPS } from './placement.js';
import { QUANTIZER_STACKING, quantDefinition } from './qat/definition.js';
import type { ScopeOptions } from './qat/settings.js';

/**
 * Incremental Network Quantization (Zhou et al. 2017, arXiv:1702.03044): the weights of every
 * Conv/Gemm/MatMul become zero or ±2^n, n2 ≤ n ≤ n1, a growing portion at a time. Each step
 * partitions the not yet quantized weights of a layer (largest |w| first, or at random), quantizes
 * the chosen ones and freezes them; the rest is retrained until the accumulated portion reaches 1.
 */
export const inqSchema = z
  .object({
    /** Bit width b: 2^(b−2) exponents, two signs, plus zero (one bit for zero, as the paper counts). */
    bits: z.number().int().min(2).max(8).default(5),
    /** How the weights to quantize next are chosen: largest |w| first (the paper's default) or at random. */
    partition: z.enum(['magnitude', 'random']).default('magnitude'),
    /** Accumulated portions of quantized weights, increasing, ending at 1. */
    portions: z
      .array(z.number().gt(0).max(1))
      .min(1)
      .default([0.5, 0.75, 0.875, 1])
      .superRefine((p, ctx) => {
        for (let i = 1; i < p.length; i++) {
          if (!(p[i]! > p[i - 1]!)) ctx.addIssue({ code: 'custom', path: [i], message: `portions must increase: ${p[i - 1]} then ${p[i]}` });
        }
        if (p[p.length - 1] !== 1) ctx.addIssue({ code: 'custom', path: [p.length - 1], message: `the last portion must be 1 (every weight quantized), got ${p[p.length - 1]}` });
      }),
    /** Epochs of retraining between two portions (the schedule); the first portion is quantized at build. */
    epochsPerStep: z.number().int().positive().default(1),
    /** Optimisation steps between two portions instead of epochs (fine-tuning for a fraction of an epoch). */
    stepsPerStep: z.number().int().positive().optional(),
    /** Seed of the random partition. */
    seed: z.number().int().default(0),
    /**
     * How each layer's largest exponent n1 is set: `max`, the paper's n1 = floor(log2(4s/3)) from
     * s = max|W| (eq. 2); `min_error`, the n1 among that and the 3 below it whose set quantizes the
     * layer's initial weights with the least squared error (the few largest weights saturate at
     * 2^n1 instead of setting the grid of all). At 3 bits (two exponents and zero) `max` zeroes 68–90 %
     * of the bench CNNs' Conv/Gemm weights.
     */
    n1: z.enum(['max', 'min_error']).default('max'),
  })
  .strict();

/** Validated INQ parameters. */
export type InqParams = z.output<typeof inqSchema>;
/** INQ parameters as written in a config. */
export type InqInput = z.input<typeof inqSchema>;

/** The power-of-two set of a layer: exponents n2..n1 (and zero). */
export interface PowerOfTwoSet {
  readonly n1: number;
  readonly n2: number;
}

/**
 * n1 = floor(log2(4s/3)) for s = max |W|, n2 = n1 + 1 − 2^(b−2) (Zhou et al. 2017, eq. 2–3). The
 * floor is taken exactly (2^n1 ≤ 4s/3 < 2^(n1+1)), not from a rounded logarithm.
 */
export function powerOfTwoSet(s: number, bits: number): PowerOfTwoSet {
  if (!(s > 0) || !Number.isFinite(s)) throw new TensorpressError('NUMERIC_INVALID', `inq: max |W| must be positive and finite, got ${s}`);
  if (!Number.isInteger(bits) || bits < 2) throw new TensorpressError('INPUT_INVALID', `inq: bits must be an integer ≥ 2, got ${bits}`);
  const t = (4 * s) / 3;
  let n1 = Math.floor(Math.log2(t));
  while (2 ** n1 > t) n1--;
  while (2 ** (n1 + 1) <= t) n1++;
  return { n1, n2: n1 + 1 - 2 ** (bits - 2) };
}

/**
 * The paper's rule (eq. 4): with α, β adjacent in {0} ∪ {2^n2..2^n1}, Ŵ = β·sgn(W) where
 * (α+β)/2 ≤ |W| < 3β/2, else 0. Returns the exponent k of |Ŵ| = 2^k, or −Infinity for zero.
 */
export function powerOfTwoExponent(w: number, set: PowerOfTwoSet): number {
  const a = Math.abs(w);
  if (a < 2 ** (set.n2 - 1)) return -Infinity;
  // β = 2^k where 3·2^(k−2) ≤ |W| (the midpoint with 2^(k−1)); the lowest β = 2^n2 starts at 2^(n2−1).
  let k = Math.floor(Math.log2((4 * a) / 3));
  while (k > set.n2 && 3 * 2 ** (k - 2) > a) k--;
  while (3 * 2 ** (k - 1) <= a) k++;
  return Math.min(set.n1, Math.max(set.n2, k));
}

/**
 * The set among `powerOfTwoSet(max|w|, bits)` shifted down by 0..`maxShift` exponents that
 * quantizes `w` with the least Σ(w − Q(w))² (ties: the higher n1).
 */
export function minErrorPowerOfTwoSet(w: ArrayLike<number>, bits: number, maxShift = 3): PowerOfTwoSet {
  let s = 0;
  for (let i = 0; i < w.length; i++) s = Math.max(s, Math.abs(w[i]!));
  const base = powerOfTwoSet(s, bits);
  let best = base;
  let bestErr = Infinity;
  for (let shift = 0; shift <= maxShift; shift++) {
    const set = { n1: base.n1 - shift, n2: base.n2 - shift };
    let err = 0;
    for (let i = 0; i < w.length; i++) err += (w[i]! - quantizePowerOfTwo(w[i]!, set)) ** 2;
    if (err < bestErr) {
      bestErr = err;
      best = set;
    }
  }
  return best;
}

/** Quantizes one value to 0 or ±2^k with n2 ≤ k ≤ n1. */
export function quantizePowerOfTwo(w: number, set: PowerOfTwoSet): number {
  const k = powerOfTwoExponent(w, set);
  return k === -Infinity ? 0 : Math.sign(w) * 2 ** k;
}

/**
 * The learning rate INQ's retraining follows (for `fit`'s `lrSchedule`): the paper decays the rate
 * within each portion's retraining and starts again at the next. Cosine from the base rate to 0 over
 * each of the `retrainings` phases of `stepsPerStep` steps (one per portion but the last: the
 * portions' count − 1), then, with every weight quantized, over `finalSteps` more (what INQ leaves in
 * float: biases, BN), and 0 after those. Steps count over the whole run (epoch · stepsPerEpoch + step).
 */
export function inqLrSchedule(options: { stepsPerStep: number; retrainings: number; finalSteps: number }): LrScheduleFn {
  for (const [key, min] of [['stepsPerStep', 1], ['retrainings', 1], ['finalSteps', 0]] as const) {
    const v = options[key];
    if (!Number.isInteger(v) || v < min) throw new ConfigError(`$.${key}`, `expected an integer ≥ ${min}, got ${String(v)}`);
  }
  const { stepsPerStep: k, retrainings, finalSteps } = options;
  return (epoch, stepInEpoch, stepsPerEpoch, base) => {
    const g = epoch * stepsPerEpoch + stepInEpoch;
    const t = g < retrainings * k ? (g % k) / k : finalSteps > 0 ? Math.min(1, (g - retrainings * k) / finalSteps) : 1;
    return base * 0.5 * (1 + Math.cos(Math.PI * t));
  };
}

/**
 * Which entries are quantized after each portion: `order` ranks the candidates (largest |w| first,
 * or a permutation), `done` the entries already frozen. Returns the entries to add for `portion`.
 */
export function nextPartition(values: ArrayLike<number>, done: Uint8Array, portion: number, partition: 'magnitude' | 'random', randomOrder?: Int32Array): number[] {
  const n = values.length;
  const target = portion >= 1 ? n : Math.round(portion * n);
  let have = 0;
  for (let i = 0; i < n; i++) have += done[i]!;
  const need = Math.max(0, target - have);
  if (need === 0) return [];
  let candidates: number[];
  if (partition === 'random') {
    candidates = Array.from(randomOrder!).filter((i) => !done[i]);
  } else {
    candidates = [];
    for (let i = 0; i < n; i++) if (!done[i]) candidates.push(i);
    // Stable: ties keep index order, so a run is reproducible.
    candidates.sort((a, b) => Math.abs(values[b]!) - Math.abs(values[a]!) || a - b);
  }
  return candidates.slice(0, need);
}

interface InqLayer {
  readonly node: string;
  readonly op: string;
  readonly param: string;
  readonly set: PowerOfTwoSet;
  readonly size: number;
  readonly shape: readonly number[];
  /** 1 where the weight is quantized and frozen. */
  done: Uint8Array;
  readonly randomOrder?: Int32Array;
  /** Bool mask and frozen values for the weight hook (kept tensors). */
  mask?: tf.Tensor;
  frozen?: tf.Tensor;
}

function weightLayers(graph: Graph, inScope: (n: string) => boolean): { node: Node; param: Param }[] {
  const out: { node: Node; param: Param }[] = [];
  for (const node of graph.nodes) {
    if (!WEIGHT_OPS.has(node.op) || !inScope(node.name)) continue;
    const p = graph.param(node.inputs[1] ?? '');
    if (p && p.dtype === 'float32') out.push({ node, param: p });
  }
  return out;
}

class InqScheduler extends CountingScheduler {
  /** Index into `portions` of the portion in force. */
  index = 0;
  private stepsSince = 0;
  private epochsSince = 0;
  constructor(
    private readonly params: InqParams,
    private readonly afterStep: () => void,
    private readonly advance: (index: number) => void,
  ) {
    super();
  }
  override step(): void {
    super.step();
    // Restore every frozen entry after the optimizer moved it (Adam's momentum, weight decay).
    this.afterStep();
    if (this.params.stepsPerStep !== undefined && ++this.stepsSince >= this.params.stepsPerStep) {
      this.stepsSince = 0;
      this.next();
    }
  }
  override epochStep(): void {
    super.epochStep();
    if (this.params.stepsPerStep === undefined && ++this.epochsSince >= this.params.epochsPerStep) {
      this.epochsSince = 0;
      this.next();
    }
  }
  private next(): void {
    if (this.index + 1 >= this.params.portions.length) return;
    this.index++;
    this.advance(this.index);
  }
  state(): Json {
    return { index: this.index, stepsSince: this.stepsSince, epochsSince: this.epochsSince, epoch: this.epoch, stepInEpoch: this.stepInEpoch };
  }
  load(s: Record<string, Json>): void {
    this.index = Number(s['index'] ?? 0);
    this.stepsSince = Number(s['stepsSince'] ?? 0);
    this.epochsSince = Number(s['epochsSince'] ?? 0);
    this.epoch = Number(s['epoch'] ?? 0);
    this.stepInEpoch = Number(s['stepInEpoch'] ?? 0);
  }
}

/** Bytes of `n` weights at `bits` bits each (packed). */
function packedBytes(n: number, bits: number): number {
  return Math.ceil((n * bits) / 8);
}

/**
 * The INQ builder. Alone in a config, or after pruning (a pruned zero stays zero: it is below
 * every threshold, and the freeze keeps it). `location` names the config entry in errors.
 */
export function inq(input: InqInput = {}, scopes: ScopeOptions = {}, location?: EntryLocation): CompressionBuilder {
  const p = parseWithSchema(inqSchema, input);
  const paths = entryPaths(location);
  const inScope = scopeFilter(scopes, paths.entry);
  const layers = new Map<string, InqLayer>();

  return {
    algorithm: 'inq',
    priority: PRIORITY.quantization,
    stacking: QUANTIZER_STACKING,
    register(graph, layout) {
      checkScopeNames(scopes, graph.nodes.map((n) => n.name), paths.entry);
      weightLayers(graph, inScope).forEach(({ node, param }, li) => {
        const data = param.data as Float32Array;
        let s = 0;
        for (const v of data) s = Math.max(s, Math.abs(v));
        if (s === 0) return; // an all-zero weight is already quantized (to zero): nothing to do
        layers.set(node.name, {
          node: node.name,
          op: node.op,
          param: param.name,
          set: p.n1 === 'max' ? powerOfTwoSet(s, p.bits) : minErrorPowerOfTwoSet(data, p.bits),
          size: data.length,
          shape: [...param.shape],
          done: new Uint8Array(data.length),
          ...(p.partition === 'random' ? { randomOrder: permutation(data.length, createRng(p.seed * 7919 + li)) } : {}),
        });
        layout.addHook(
          { type: 'weight', node: node.name, input: 1 },
          (x) => {
            const l = layers.get(node.name)!;
            // Frozen entries read their power of two and pass no gradient (Adam never sees one).
            return l.mask && l.frozen ? tf.where(l.mask, l.frozen, x) : x;
          },
          { algorithm: 'inq', priority: PRIORITY.quantization, id: `inq:${node.name}` },
        );
      });
    },
    build(model) {
      return inqController(p, model, layers);
    },
  };
}

function inqController(p: InqParams, model: CompressedModel, layers: Map<string, InqLayer>): AlgorithmController {
  const ex = model.executor;
  const variableOf = (l: InqLayer): tf.Variable => {
    const v = ex.variables().get(l.param);
    if (!v) throw new TensorpressError('STATE_INVALID', `inq: the model has no variable for weight "${l.param}" of node "${l.node}"`, { node: l.node });
    return v;
  };

  /** Rebuilds a layer's mask and frozen tensors from `done` and the variable's current values. */
  const refresh = (l: InqLayer, values: Float32Array): void => {
    const frozen = new Float32Array(l.size);
    for (let i = 0; i < l.size; i++) if (l.done[i]) frozen[i] = quantizePowerOfTwo(values[i]!, l.set);
    tf.dispose([l.mask, l.frozen].filter((t): t is tf.Tensor => t !== undefined));
    l.mask = tf.keep(tf.tensor(l.done, [...l.shape], 'bool'));
    l.frozen = tf.keep(tf.tensor(frozen, [...l.shape]));
  };

  /** Writes the frozen values into the variable (the weights the optimizer sees and strip reads). */
  const restore = (): void => {
    for (const l of layers.values()) {
      const v = variableOf(l);
      tf.tidy(() => v.assign(tf.where(l.mask!, l.frozen!, v)));
    }
  };

  const quantizePortion = (index: number): void => {
    const portion = p.portions[index]!;
    for (const l of layers.values()) {
      const values = variableOf(l).dataSync() as Float32Array;
      for (const i of nextPartition(values, l.done, portion, p.partition, l.randomOrder)) l.done[i] = 1;
      refresh(l, values);
    }
    restore();
  };

  const scheduler = new InqScheduler(p, restore, quantizePortion);
  quantizePortion(0);

  const frozenCount = (l: InqLayer): number => l.done.reduce((a, b) => a + b, 0);

  const strip = (graph: Graph): Graph => {
    const nodes = graph.nodes.map((n) => ({ ...n, inputs: [...n.inputs] }));
    const params = new Map(graph.params.map((x) => [x.name, x]));
    const codesFit8 = 2 ** (p.bits - 2) - 1 <= 6;
    for (const l of layers.values()) {
      const node = nodes.find((n) => n.name === l.node);
      const wp = node ? params.get(node.inputs[1]!) : undefined;
      if (!node || !wp || wp.dtype !== 'float32') throw new TensorpressError('STATE_INVALID', `inq: strip found no float weight on node "${l.node}"`, { node: l.node });
      const data = wp.data as Float32Array;
      // Every weight is quantized in the deployable form (the part not yet frozen by the same rule).
      const codes = codesFit8 ? new Int8Array(data.length) : new Int32Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const k = powerOfTwoExponent(data[i]!, l.set);
        codes[i] = k === -Infinity ? 0 : Math.sign(data[i]!) * 2 ** (k - l.set.n2);
      }
      const base = l.node.replace(/[^A-Za-z0-9_./:-]/g, '_');
      const qName = `${base}.w_pow2`;
      const sName = `${base}.w_pow2_scale`;
      for (const name of [qName, sName]) if (params.has(name)) throw new TensorpressError('STATE_INVALID', `inq: strip: parameter name "${name}" is taken`);
      params.set(qName, { name: qName, shape: wp.shape, dtype: codesFit8 ? 'int8' : 'int32', data: codes, trainable: false });
      params.set(sName, { name: sName, shape: [], dtype: 'float32', data: Float32Array.of(2 ** l.set.n2), trainable: false });
      const wName = node.inputs[1]!;
      // int32 codes (b ≥ 5: codes up to 2^(2^(b−2)−1) exceed int8) carry no zero point, as ONNX requires.
      nodes.push({ name: `${base}/dq_pow2`, op: 'DequantizeLinear', inputs: [qName, sName], outputs: [`${base}.w_pow2_dq`], attrs: {} });
      node.inputs[1] = `${base}.w_pow2_dq`;
      if (!nodes.some((n) => n.inputs.includes(wName))) params.delete(wName);
    }
    return createGraph({ inputs: graph.inputs, outputs: graph.outputs, nodes, params: [...params.values()] });
  };

  return defineController('inq', {
    scheduler,
    statistics: () => {
      const rows: LayerStatistics[] = [...layers.values()].map((l) => ({
        node: l.node,
        op: l.op,
        bits: p.bits,
        n1: l.set.n1,
        n2: l.set.n2,
        weights: l.size,
        quantized: frozenCount(l),
        quantizedFraction: frozenCount(l) / l.size,
        bytesAtBits: packedBytes(l.size, p.bits),
        floatBytes: l.size * 4,
      }));
      const n = rows.reduce((a, r) => a + Number(r['weights']), 0);
      const q = rows.reduce((a, r) => a + Number(r['quantized']), 0);
      return {
        algorithm: 'inq',
        layers: rows,
        total: {
          bits: p.bits,
          portion: p.portions[scheduler.index]!,
          step: scheduler.index,
          steps: p.portions.length,
          weights: n,
          quantizedFraction: n ? q / n : 1,
          bytesAtBits: rows.reduce((a, r) => a + Number(r['bytesAtBits']), 0),
          floatBytes: n * 4,
        },
        skipped: [],
      };
    },
    state: () => ({
      scheduler: scheduler.state(),
      layers: Object.fromEntries([...layers.values()].map((l) => [l.node, { n1: l.set.n1, done: Array.from(l.done).join('') }])),
    }),
    loadState: (state: Json) => {
      const st = state as { scheduler?: Record<string, Json>; layers?: Record<string, { n1?: number; done?: string }> } | null;
      if (!st || typeof st !== 'object' || !st.scheduler || !st.layers) throw new TensorpressError('STATE_INVALID', 'inq: state must hold scheduler and layers');
      for (const l of layers.values()) {
        const e = st.layers[l.node];
        if (!e || typeof e.done !== 'string' || e.done.length !== l.size || e.n1 !== l.set.n1) {
          throw new TensorpressError('STATE_INVALID', `inq: the state's entry for node "${l.node}" does not match the model (${l.size} weights, n1 = ${l.set.n1})`, { node: l.node });
        }
      }
      scheduler.load(st.scheduler);
      for (const l of layers.values()) {
        const d = st.layers[l.node]!.done!;
        for (let i = 0; i < l.size; i++) l.done[i] = d.charCodeAt(i) === 49 ? 1 : 0;
        refresh(l, variableOf(l).dataSync() as Float32Array);
      }
      restore();
    },
    strip,
    dispose: () => {
      for (const l of layers.values()) {
        tf.dispose([l.mask, l.frozen].filter((t): t is tf.Tensor => t !== undefined));
        l.mask = undefined;
        l.frozen = undefined;
      }
    },
  });
}

/** The `inq` algorithm for pipeline configs. */
export const inqDefinition = quantDefinition('inq', 'Incremental Network Quantization: weights to {0, ±2^n} a growing portion at a time (Zhou et al. 2017)', inqSchema, inq);
