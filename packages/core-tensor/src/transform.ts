import { GraphError, TensorpressError } from './errors.js';
import { foldBatchNorm } from './fold-batchnorm.js';
import type { Graph, Node, Param } from './graph.js';
import { type Hook, type HookFn, type InsertionPoint, pointKey } from './hooks.js';

/** What every command carries: who registered it and where it sorts (see PRIORITY in hooks.ts). */
export interface CommandBase {
  /** The algorithm that registered the command (named in errors and statistics). */
  readonly algorithm: string;
  /** Lower applies first: pruning 100 < sparsity 200 < binarization 250 < quantization 300. */
  readonly priority: number;
}

/** Run `hook` at its insertion point (fake-quant, masks ...); the graph itself is unchanged. */
export interface HookCommand extends CommandBase {
  readonly kind: 'hook';
  readonly hook: Hook;
}

/** A subgraph that takes the place of one node (see {@link replaceNode}). */
export interface NodeReplacement {
  /** The new nodes; together they produce every output name of the replaced node. */
  readonly nodes: readonly Node[];
  /** Parameters the new nodes introduce. */
  readonly params?: readonly Param[];
}

/** Replace one node by a subgraph reading the same inputs and producing the same output names. */
export interface ReplaceNodeCommand extends CommandBase {
  readonly kind: 'replace-node';
  readonly node: string;
  readonly replacement: NodeReplacement;
}

/** Bypass a node with one activation input and one output (see {@link removeNode}). */
export interface RemoveNodeCommand extends CommandBase {
  readonly kind: 'remove-node';
  readonly node: string;
}

/** Fold the BatchNormalization `node` into the Conv or Gemm before it (see foldBatchNorm). */
export interface FoldBatchNormCommand extends CommandBase {
  readonly kind: 'fold-batchnorm';
  readonly node: string;
}

/**
 * Any other structural change, supplied by the algorithm that needs it (the pruning package's
 * physical channel removal is one): core knows it only as a pure function from graph to graph,
 * applied in priority order with the other structural commands.
 */
export interface RewriteCommand extends CommandBase {
  readonly kind: 'rewrite';
  /** What the rewrite does, for errors: `<algorithm>: cannot <description>: <why>` (e.g. `cut channels of "conv1"`). */
  readonly description: string;
  /**
   * The rewritten graph. Must not modify its argument (a graph and its buffers are shared); throws a
   * TensorpressError when it cannot apply, which {@link applyLayout} reports as `TRANSFORM_INVALID`.
   */
  apply(graph: Graph): Graph;
}

/** Everything a compression algorithm may ask of the graph. */
export type Command = HookCommand | ReplaceNodeCommand | RemoveNodeCommand | FoldBatchNormCommand | RewriteCommand;

/** Commands that change the graph's structure (everything but hooks). */
export type StructuralCommand = Exclude<Command, HookCommand>;

function checkBase(cmd: CommandBase): void {
  if (typeof cmd.algorithm !== 'string' || cmd.algorithm === '') {
    throw new TensorpressError('TRANSFORM_INVALID', 'a command needs a non-empty algorithm name');
  }
  if (typeof cmd.priority !== 'number' || !Number.isFinite(cmd.priority)) {
    throw new TensorpressError('TRANSFORM_INVALID', `${cmd.algorithm}: command priority must be a finite number, got ${String(cmd.priority)}`);
  }
}

/**
 * The commands of one or more algorithms, to be applied together by {@link applyLayout} (NNCF's
 * TransformationLayout). Algorithms never edit the graph themselves: they add commands here, the
 * layouts of stacked algorithms are merged, and one transformer applies the result.
 */
export class TransformationLayout {
  private readonly list: Command[] = [];

  /** Adds a command; returns the layout for chaining. */
  add(cmd: Command): this {
    checkBase(cmd);
    if (cmd.kind === 'hook' && (cmd.hook.priority !== cmd.priority || cmd.hook.algorithm !== cmd.algorithm)) {
      throw new TensorpressError(
        'TRANSFORM_INVALID',
        `${cmd.algorithm}: hook "${cmd.hook.id}" says algorithm "${cmd.hook.algorithm}" priority ${cmd.hook.priority}, ` +
          `its command algorithm "${cmd.algorithm}" priority ${cmd.priority}`,
      );
    }
    if (cmd.kind === 'rewrite' && (typeof cmd.apply !== 'function' || typeof cmd.description !== 'string' || cmd.description === '')) {
      throw new TensorpressError('TRANSFORM_INVALID', `${cmd.algorithm}: a rewrite command needs a description and an apply(graph) function`);
    }
    this.list.push(cmd);
    return this;
  }

  /** Registers `fn` at `point` (shorthand for a {@link HookCommand}). */
  addHook(point: InsertionPoint, fn: HookFn, options: { algorithm: string; priority: number; id: string }): this {
    const hook: Hook = { point, fn, algorithm: options.algorithm, priority: options.priority, id: options.id };
    return this.add({ kind: 'hook', algorithm: options.algorithm, priority: options.priority, hook });
  }

  /** Appends every command of `other` (after this layout's own); returns this layout. */
  merge(other: TransformationLayout): this {
    for (const c of other.commands()) this.list.push(c);
    return this;
  }

  /** The commands in registration order. */
  commands(): readonly Command[] {
    return [...this.list];
  }
}

/** Result of {@link applyLayout}. */
export interface AppliedLayout {
  /** The graph after every structural command. */
  readonly graph: Graph;
  /** Every hook, validated against `graph`, sorted by priority (stable: registration order within one priority). */
  readonly hooks: readonly Hook[];
}

function describe(cmd: StructuralCommand): string {
  switch (cmd.kind) {
    case 'replace-node':
      return `replace node "${cmd.node}"`;
    case 'remove-node':
      return `remove node "${cmd.node}"`;
    case 'fold-batchnorm':
      return `fold BatchNormalization "${cmd.node}"`;
    case 'rewrite':
      return cmd.description;
  }
}

function applyOne(graph: Graph, cmd: StructuralCommand): Graph {
  switch (cmd.kind) {
    case 'replace-node':
      return replaceNode(graph, cmd.node, cmd.replacement);
    case 'remove-node':
      return removeNode(graph, cmd.node);
    case 'fold-batchnorm':
      return foldBatchNorm(graph, cmd.node);
    case 'rewrite':
      return cmd.apply(graph);
  }
}

/** Why `point` does not exist in `graph`, or undefined when it does. */
function pointProblem(graph: Graph, p: InsertionPoint): string | undefined {
  if (p.type === 'input') return graph.inputs.some((i) => i.name === p.name) ? undefined : 'names no graph input';
  const node = graph.node(p.node);
  if (!node) return 'names no node';
  if (p.type === 'post') return p.output >= 0 && p.output < node.outputs.length ? undefined : `${node.op} has no output ${p.output}`;
  const v = node.inputs[p.input];
  if (v === undefined || v === '') return `${node.op} has no input ${p.input}`;
  if (p.type === 'weight' && !graph.isParam(v)) return `input ${p.input} of ${node.op} reads "${v}", which is not a parameter`;
  return undefined;
}

/**
 * Applies a merged layout: structural commands in priority order (registration order within a
 * priority), each producing a new graph, then the hooks, checked against the final graph and sorted
 * by priority so that at a shared point the lower priority runs first (a sparsity mask before
 * fake-quant on the same weight). Pure: the input graph is not modified.
 *
 * @throws TensorpressError `TRANSFORM_INVALID` naming the algorithm when a command cannot apply, a
 *   hook's insertion point does not exist in the final graph, or an algorithm reuses a hook id.
 */
export function applyLayout(graph: Graph, layout: TransformationLayout): AppliedLayout {
  const cmds = layout.commands();
  const byPriority = <T extends Command>(list: T[]): T[] =>
    list
      .map((c, i) => ({ c, i }))
      .sort((a, b) => a.c.priority - b.c.priority || a.i - b.i)
      .map((x) => x.c);
  let g = graph;
  for (const cmd of byPriority(cmds.filter((c): c is StructuralCommand => c.kind !== 'hook'))) {
    try {
      g = applyOne(g, cmd);
    } catch (e) {
      if (!(e instanceof TensorpressError)) throw e;
      throw new TensorpressError('TRANSFORM_INVALID', `${cmd.algorithm}: cannot ${describe(cmd)}: ${e.message}`, {
        ...e.details,
        algorithm: cmd.algorithm,
        cause: e.code,
      });
    }
  }
  const hooks = byPriority(cmds.filter((c): c is HookCommand => c.kind === 'hook')).map((c) => c.hook);
  const ids = new Set<string>();
  for (const h of hooks) {
    const key = `${h.algorithm}\u0000${h.id}`;
    if (ids.has(key)) throw new TensorpressError('TRANSFORM_INVALID', `${h.algorithm}: hook id "${h.id}" is used twice`, { algorithm: h.algorithm, id: h.id });
    ids.add(key);
    const problem = pointProblem(g, h.point);
    if (problem) {
      throw new TensorpressError(
        'TRANSFORM_INVALID',
        `${h.algorithm}: hook "${h.id}" at insertion point ${pointKey(h.point)} ${problem} in the transformed graph`,
        { algorithm: h.algorithm, point: pointKey(h.point), id: h.id },
      );
    }
  }
  return { graph: g, hooks };
}

/** Parameters read by `removed` inputs that nothing in `nodes` reads any more. */
function orphanParams(graph: Graph, removed: readonly string[], nodes: readonly Node[]): Set<string> {
  const read = new Set<string>();
  for (const n of nodes) for (const v of n.inputs) read.add(v);
  return new Set(removed.filter((v) => graph.isParam(v) && !read.has(v)));
}

function rebuilt(graph: Graph, what: string, changes: Parameters<Graph['with']>[0]): Graph {
  try {
    return graph.with(changes);
  } catch (e) {
    if (!(e instanceof GraphError)) throw e;
    throw new TensorpressError('TRANSFORM_INVALID', `${what} gives an invalid graph: ${e.message}`, { ...e.details, cause: e.code });
  }
}

/**
 * Replaces node `nodeName` by a subgraph. The new nodes may read the replaced node's inputs, any
 * existing parameter, their own new parameters and each other's outputs, and together must produce
 * every output name of the replaced node, so consumers and graph outputs are untouched. Parameters
 * only the replaced node read, and that the subgraph no longer reads, are dropped. Pure.
 *
 * @throws TensorpressError `TRANSFORM_INVALID` when the node does not exist, an output name is not
 *   produced, the subgraph reads another activation, or the result is not a valid graph.
 */
export function replaceNode(graph: Graph, nodeName: string, replacement: NodeReplacement): Graph {
  const what = `replacing node "${nodeName}"`;
  const old = graph.node(nodeName);
  if (!old) throw new TensorpressError('TRANSFORM_INVALID', `${what}: no node has this name`, { node: nodeName });
  const produced = new Set(replacement.nodes.flatMap((n) => n.outputs));
  const missing = old.outputs.filter((o) => !produced.has(o));
  if (missing.length > 0) {
    throw new TensorpressError('TRANSFORM_INVALID', `${what}: the replacement does not produce ${missing.map((o) => `"${o}"`).join(', ')}`, {
      node: nodeName,
    });
  }
  const newParams = new Set((replacement.params ?? []).map((p) => p.name));
  const allowed = new Set(old.inputs);
  for (const n of replacement.nodes) {
    for (const v of n.inputs) {
      if (v === '' || produced.has(v) || newParams.has(v) || allowed.has(v) || graph.isParam(v)) continue;
      throw new TensorpressError(
        'TRANSFORM_INVALID',
        `${what}: new node "${n.name}" reads "${v}", which is neither an input of "${nodeName}", a parameter nor a new node's output`,
        { node: nodeName, value: v },
      );
    }
  }
  const nodes: Node[] = [];
  for (const n of graph.nodes) {
    if (n.name === nodeName) nodes.push(...replacement.nodes);
    else nodes.push(n);
  }
  const drop = orphanParams(graph, old.inputs, nodes);
  // A new parameter may take the name of one only the replaced node read (a weight replaced in place).
  for (const name of newParams) {
    if (graph.isParam(name) && graph.consumers(name).every((c) => c.node.name === nodeName)) drop.add(name);
  }
  return rebuilt(graph, what, {
    nodes,
    params: [...graph.params.filter((p) => !drop.has(p.name)), ...(replacement.params ?? [])],
  });
}

/**
 * Bypasses node `nodeName`, which must have exactly one activation (non-parameter) input and one
 * output: its consumers, and the graph outputs, read its input instead. Parameters only it read are
 * dropped (removing a BatchNormalization drops its four). Pure.
 *
 * @throws TensorpressError `TRANSFORM_INVALID` when the node does not exist or has another form.
 */
export function removeNode(graph: Graph, nodeName: string): Graph {
  const what = `removing node "${nodeName}"`;
  const node = graph.node(nodeName);
  if (!node) throw new TensorpressError('TRANSFORM_INVALID', `${what}: no node has this name`, { node: nodeName });
  const acts = node.inputs.filter((v) => v !== '' && !graph.isParam(v));
  if (acts.length !== 1 || node.outputs.length !== 1) {
    throw new TensorpressError(
      'TRANSFORM_INVALID',
      `${what}: only a node with one activation input and one output can be bypassed; this ${node.op} has ${acts.length} activation inputs and ${node.outputs.length} outputs`,
      { node: nodeName },
    );
  }
  const src = acts[0]!;
  const out = node.outputs[0]!;
  const nodes = graph.nodes
    .filter((n) => n.name !== nodeName)
    .map((n) => (n.inputs.includes(out) ? { ...n, inputs: n.inputs.map((v) => (v === out ? src : v)) } : n));
  const drop = orphanParams(graph, node.inputs, nodes);
  return rebuilt(graph, what, {
    nodes,
    outputs: graph.outputs.map((o) => (o === out ? src : o)),
    params: graph.params.filter((p) => !drop.has(p.name)),
  });
}
