import * as tf from '@tensorflow/tfjs-core';
import { GraphError, TensorpressError } from './errors.js';
import type { Graph, Node, Param, ParamData } from './graph.js';
import { type Hook, type HookContext, type InsertionPoint, pointKey } from './hooks.js';
import { getOp, type ForwardContext } from './ops/registry.js';
import { createRng, type Rng } from './random.js';

/** Inputs of a run: one tensor for a single-input graph, or tensors by input name. */
export type Feeds = tf.Tensor | Readonly<Record<string, tf.Tensor>>;

/** Options of one forward run. */
export interface RunOptions {
  /** Train mode: BN batch statistics, dropout, hooks in train mode. Default false. */
  training?: boolean;
  /** Update BN running statistics in train mode. Default: equal to `training`. */
  updateStats?: boolean;
  /** Value names to return instead of the graph outputs (any node output, input or parameter). */
  outputs?: readonly string[];
  /** Run without hooks (the plain FP32 graph). Default false. */
  bypassHooks?: boolean;
  /** Tensors to use instead of some parameters' values (Hessian products, what-if analyses). */
  paramOverrides?: ReadonlyMap<string, tf.Tensor>;
}

/** Options of an executor. */
export interface ExecutorOptions {
  /** Transforms at insertion points (fake-quant, masks ...), merged by priority. */
  hooks?: readonly Hook[];
  /** Seed of the stochastic ops' stream (dropout). Default 0. */
  seed?: number;
}

/**
 * Runs one node. A failure that is not a TensorpressError comes from tfjs meeting sizes that only
 * the run reveals (a Reshape whose fixed batch differs from the fed one, a reflection larger than
 * a run-time axis): it becomes an `EXECUTION_FAILED` error naming the node and its input shapes.
 */
function forwardNode(node: Node, ins: readonly (tf.Tensor | undefined)[], ctx: ForwardContext): tf.Tensor[] {
  try {
    return getOp(node.op)!.forward(ins, node, ctx);
  } catch (e) {
    if (e instanceof TensorpressError) throw e;
    const shapes = ins.map((t) => (t ? `[${t.shape.join(', ')}]` : '-')).join(', ');
    throw new GraphError('EXECUTION_FAILED', `node "${node.name}" (${node.op}) failed on inputs ${shapes}: ${(e as Error).message}`, {
      node: node.name,
      op: node.op,
      inputShapes: ins.map((t) => t?.shape ?? null),
    });
  }
}

/**
 * A QuantizeLinear/DequantizeLinear scale stored in the graph must be finite and positive:
 * computing with zero, negative or non-finite scales gives no usable numbers (onnxruntime runs
 * them all the same), so the executor refuses them before it runs anything.
 */
export function checkQuantScales(graph: Graph): void {
  for (const n of graph.nodes) {
    if (n.op !== 'QuantizeLinear' && n.op !== 'DequantizeLinear') continue;
    const p = graph.param(n.inputs[1] ?? '');
    if (!p || p.dtype !== 'float32') continue;
    const i = (p.data as Float32Array).findIndex((v) => !(v > 0 && v < Infinity));
    if (i >= 0) {
      throw new TensorpressError(
        'NUMERIC_INVALID',
        `node "${n.name}" (${n.op}): scale "${p.name}" holds ${p.data[i]} at index ${i}; a quantization scale must be finite and positive`,
        { node: n.name, op: n.op, param: p.name, index: i },
      );
    }
  }
}

function paramTensor(p: Param): tf.Tensor {
  if (p.dtype === 'float32') return tf.tensor(p.data as Float32Array, [...p.shape], 'float32');
  return tf.tensor(Int32Array.from(p.data as ArrayLike<number>), [...p.shape], 'int32');
}

/**
 * Runs a graph with tfjs. Float parameters live in `tf.Variable`s (trainable unless the graph marks
 * them otherwise) so any graph can be fine-tuned; integer parameters are constants. Every run is
 * wrapped in `tf.tidy`: only the returned tensors survive, and they belong to the caller.
 */
export class Executor {
  readonly graph: Graph;
  private readonly vars = new Map<string, tf.Variable>();
  private readonly consts = new Map<string, tf.Tensor>();
  private hooksByPoint = new Map<string, Hook[]>();
  private hookList: Hook[] = [];
  private rng: Rng;
  private disposed = false;

  constructor(graph: Graph, options: ExecutorOptions = {}) {
    checkQuantScales(graph);
    this.graph = graph;
    this.rng = createRng(options.seed ?? 0);
    for (const p of graph.params) {
      if (p.dtype === 'float32') {
        const t = paramTensor(p);
        this.vars.set(p.name, tf.variable(t, p.trainable));
        t.dispose();
      } else {
        this.consts.set(p.name, paramTensor(p));
      }
    }
    this.setHooks(options.hooks ?? []);
  }

  /** Replaces the hooks (validated against the graph). */
  setHooks(hooks: readonly Hook[]): void {
    const map = new Map<string, Hook[]>();
    for (const h of hooks) {
      this.checkPoint(h.point, h.algorithm);
      const k = pointKey(h.point);
      const list = map.get(k) ?? [];
      list.push(h);
      map.set(k, list);
    }
    for (const list of map.values()) list.sort((a, b) => a.priority - b.priority);
    this.hooksByPoint = map;
    this.hookList = [...hooks];
  }

  /** The hooks in force. */
  hooks(): readonly Hook[] {
    return this.hookList;
  }

  private checkPoint(p: InsertionPoint, algorithm: string): void {
    const where = `${algorithm}: insertion point ${pointKey(p)}`;
    if (p.type === 'input') {
      if (!this.graph.inputs.some((i) => i.name === p.name)) throw new GraphError('TRANSFORM_INVALID', `${where} names no graph input`);
      return;
    }
    const node = this.graph.node(p.node);
    if (!node) throw new GraphError('TRANSFORM_INVALID', `${where} names no node`, { node: p.node });
    if (p.type === 'post') {
      if (p.output < 0 || p.output >= node.outputs.length) throw new GraphError('TRANSFORM_INVALID', `${where}: no such output`);
      return;
    }
    const v = node.inputs[p.input];
    if (v === undefined || v === '') throw new GraphError('TRANSFORM_INVALID', `${where}: no such input port`, { node: p.node });
    if (p.type === 'weight' && !this.graph.isParam(v)) {
      throw new GraphError('TRANSFORM_INVALID', `${where}: port ${p.input} of ${node.op} reads "${v}", which is not a parameter`);
    }
  }

  /** The float parameter variables, by parameter name. */
  variables(): ReadonlyMap<string, tf.Variable> {
    return this.vars;
  }

  /** The trainable parameter variables (BN running statistics and integer weights excluded). */
  trainableVariables(): tf.Variable[] {
    return [...this.vars.values()].filter((v) => v.trainable);
  }

  /** The current tensor of a parameter (a variable or an integer constant as int32). */
  paramValue(name: string): tf.Tensor {
    const t = this.vars.get(name) ?? this.consts.get(name);
    if (!t) throw new GraphError('GRAPH_INVALID', `no parameter is called "${name}"`, { param: name });
    return t;
  }

  /**
   * Runs the graph forward. Returns the graph outputs (or `options.outputs`) in order; the caller
   * disposes them. Differentiable with respect to the variables.
   */
  run(feeds: Feeds, options: RunOptions = {}): tf.Tensor[] {
    if (this.disposed) throw new TensorpressError('INPUT_INVALID', 'this executor was disposed');
    const training = options.training ?? false;
    const updateStats = options.updateStats ?? training;
    const wanted = options.outputs ?? this.graph.outputs;
    const feedMap = this.resolveFeeds(feeds);
    const pending: [string, tf.Tensor][] = [];
    const hooks = options.bypassHooks ? new Map<string, Hook[]>() : this.hooksByPoint;
    const apply = (point: InsertionPoint, x: tf.Tensor): tf.Tensor => {
      const list = hooks.get(pointKey(point));
      if (!list) return x;
      const ctx: HookContext = { training, point };
      let y = x;
      for (const h of list) y = h.fn(y, ctx);
      return y;
    };
    const outs = tf.tidy(() => {
      const values = new Map<string, tf.Tensor>();
      for (const inp of this.graph.inputs) values.set(inp.name, apply({ type: 'input', name: inp.name }, feedMap.get(inp.name)!));
      const ctx: ForwardContext = {
        training,
        graph: this.graph,
        nextSeed: () => this.rng.seed(),
        updateParam: (name, value) => {
          if (updateStats && this.vars.has(name)) pending.push([name, tf.keep(value)]);
        },
      };
      for (const node of this.graph.nodes) {
        const ins = node.inputs.map((v, i) => {
          if (v === '') return undefined;
          const p = options.paramOverrides?.get(v) ?? this.vars.get(v) ?? this.consts.get(v);
          if (p) return apply({ type: 'pre', node: node.name, input: i }, apply({ type: 'weight', node: node.name, input: i }, p));
          const t = values.get(v);
          if (!t) throw new GraphError('GRAPH_INVALID', `value "${v}" was not computed before node "${node.name}"`);
          return apply({ type: 'pre', node: node.name, input: i }, t);
        });
        const res = forwardNode(node, ins, ctx);
        res.forEach((t, i) => values.set(node.outputs[i]!, apply({ type: 'post', node: node.name, output: i }, t)));
      }
      return wanted.map((name) => {
        const t = values.get(name) ?? this.vars.get(name) ?? this.consts.get(name);
        if (!t) throw new GraphError('GRAPH_INVALID', `no value is called "${name}"`, { value: name });
        // A variable must not be handed out: the caller would dispose it.
        return this.vars.has(name) || this.consts.has(name) ? tf.clone(t) : t;
      });
    });
    for (const [name, value] of pending) {
      this.vars.get(name)!.assign(value);
      value.dispose();
    }
    return outs;
  }

  private resolveFeeds(feeds: Feeds): Map<string, tf.Tensor> {
    const map = new Map<string, tf.Tensor>();
    if (feeds instanceof tf.Tensor) {
      if (this.graph.inputs.length !== 1) {
        throw new TensorpressError('INPUT_INVALID', `the graph has ${this.graph.inputs.length} inputs: pass a record by input name`);
      }
      map.set(this.graph.inputs[0]!.name, feeds);
    } else {
      for (const [k, v] of Object.entries(feeds)) map.set(k, v);
    }
    for (const inp of this.graph.inputs) {
      const t = map.get(inp.name);
      if (!t) throw new TensorpressError('INPUT_INVALID', `input "${inp.name}" is missing`, { input: inp.name });
      const ok = t.rank === inp.shape.length && inp.shape.every((d, i) => d === null || d === t.shape[i]);
      if (!ok) {
        throw new TensorpressError(
          'INPUT_INVALID',
          `input "${inp.name}" expects shape [${inp.shape.map((d) => d ?? '?').join(', ')}] but got [${t.shape.join(', ')}]`,
          { input: inp.name },
        );
      }
    }
    return map;
  }

  /** Copies the current parameter values into a new graph of the same structure. */
  snapshot(): Graph {
    const updates = new Map<string, { data: ParamData }>();
    for (const [name, v] of this.vars) updates.set(name, { data: v.dataSync() as Float32Array });
    return this.graph.withParams(updates);
  }

  /** Sets parameters from a graph (or a map of arrays) with the same names and shapes. */
  loadParams(source: Graph | ReadonlyMap<string, Float32Array>): void {
    const get = (name: string): Float32Array | undefined =>
      source instanceof Map ? source.get(name) : ((source as Graph).param(name)?.data as Float32Array | undefined);
    for (const [name, v] of this.vars) {
      const d = get(name);
      if (!d) continue;
      if (d.length !== v.size) {
        throw new GraphError('SHAPE_MISMATCH', `parameter "${name}" has ${v.size} values, the source ${d.length}`, { param: name });
      }
      tf.tidy(() => v.assign(tf.tensor(d, v.shape, 'float32')));
    }
  }

  /** The seeded stream's state (for checkpoints). */
  rngState(): number {
    return this.rng.state();
  }

  /** Restores the seeded stream's state. */
  setRngState(state: number): void {
    this.rng = createRng({ state });
  }

  /** Frees every variable and constant. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.vars.values()) v.dispose();
    for (const c of this.consts.values()) c.dispose();
    this.vars.clear();
    this.consts.clear();
  }
}

/** Runs a graph once in eval mode and returns its outputs (a convenience over {@link Executor}). */
export function runGraph(graph: Graph, feeds: Feeds, options: RunOptions = {}): tf.Tensor[] {
  const ex = new Executor(graph);
  try {
    return ex.run(feeds, options);
  } finally {
    ex.dispose();
  }
}
