import { GraphError, TensorpressError } from './errors.js';
import { getOp } from './ops/registry.js';

/** Element types a graph value or parameter can have. */
export type DType = 'float32' | 'int32' | 'int8' | 'uint8';

/** One dimension: a size, or `null` where it is only known at run time (the batch). */
export type Dim = number | null;

/** Name, shape and type of a value flowing through the graph. */
export interface TensorInfo {
  readonly name: string;
  readonly shape: readonly Dim[];
  readonly dtype: DType;
}

/** Attribute values, as in ONNX. */
export type AttrValue = number | string | boolean | readonly number[] | readonly string[];

/**
 * One operation. `op` uses ONNX's vocabulary; layouts are NHWC inside
 * (see the op families in ops/ for each op's inputs, weights and attributes).
 */
export interface Node {
  readonly name: string;
  readonly op: string;
  /** Value names: graph inputs, other nodes' outputs, or parameter names. `''` marks an absent optional input. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, AttrValue>>;
}

/** Storage of a parameter's values. */
export type ParamData = Float32Array | Int32Array | Int8Array | Uint8Array;

/** A constant or trainable tensor of the graph (an ONNX initializer). */
export interface Param {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly data: ParamData;
  /** False for running statistics (BN mean/variance), integer weights and quantization constants. */
  readonly trainable: boolean;
}

/** The plain, serialisable form of a graph. */
export interface GraphDef {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly string[];
  readonly nodes: readonly Node[];
  readonly params: readonly Param[];
}

const DTYPE_ARRAYS: Record<DType, { new (n: number): ParamData; BYTES_PER_ELEMENT: number }> = {
  float32: Float32Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
};

/** Bytes per element of a dtype. */
export function dtypeBytes(dtype: DType): number {
  return DTYPE_ARRAYS[dtype].BYTES_PER_ELEMENT;
}

/** Makes a zero-filled typed array of a dtype. */
export function allocParamData(dtype: DType, n: number): ParamData {
  return new DTYPE_ARRAYS[dtype](n);
}

/** Product of a shape's sizes (nulls count as 1). */
export function sizeOf(shape: readonly Dim[]): number {
  let n = 1;
  for (const d of shape) n *= d ?? 1;
  return n;
}

/**
 * Most elements one value may hold per example (a run-time batch counted as 1): 2^31 - 1, what
 * tfjs' typed arrays and int32 indexing can address. Shapes that multiply past it are refused at
 * inference, before anything is allocated for them.
 */
export const MAX_VALUE_ELEMENTS = 2 ** 31 - 1;

function checkVolume(shape: readonly Dim[], what: string, details: Record<string, unknown>): void {
  const n = sizeOf(shape);
  if (n > MAX_VALUE_ELEMENTS) {
    throw new GraphError('GRAPH_INVALID', `${what} would hold ${n} elements per example (shape [${shape.map((d) => d ?? '?').join(', ')}]), more than a tensor can hold (2^31 - 1)`, details);
  }
}

function dataMatches(dtype: DType, data: ParamData): boolean {
  return data instanceof DTYPE_ARRAYS[dtype];
}

/**
 * A validated graph: names are unique, every edge has a source, there is no cycle, every op is
 * known and every value has an inferred shape. Instances are immutable; transformations return new
 * graphs. Nodes are kept in a topological order.
 */
export class Graph implements GraphDef {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly string[];
  readonly nodes: readonly Node[];
  readonly params: readonly Param[];
  private readonly paramIndex = new Map<string, Param>();
  private readonly nodeIndex = new Map<string, Node>();
  private readonly producerIndex = new Map<string, { node: Node; output: number }>();
  private readonly consumerIndex = new Map<string, { node: Node; input: number }[]>();
  private readonly infos = new Map<string, TensorInfo>();

  /** Validates `def` and infers every shape; throws a {@link GraphError} naming the node at fault. */
  constructor(def: GraphDef) {
    this.inputs = def.inputs.map((t) => ({ name: t.name, shape: [...t.shape], dtype: t.dtype }));
    this.outputs = [...def.outputs];
    this.params = [...def.params];
    const seen = new Set<string>();
    const claim = (name: string, what: string): void => {
      if (!name) throw new GraphError('GRAPH_INVALID', `${what} has an empty name`);
      if (seen.has(name)) {
        throw new GraphError('GRAPH_DUPLICATE_NAME', `value name "${name}" is defined twice (${what})`, { name });
      }
      seen.add(name);
    };
    for (const t of this.inputs) {
      claim(t.name, `graph input "${t.name}"`);
      checkVolume(t.shape, `graph input "${t.name}"`, { input: t.name });
      this.infos.set(t.name, t);
    }
    for (const p of this.params) {
      claim(p.name, `parameter "${p.name}"`);
      if (!p.shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new GraphError('GRAPH_INVALID', `parameter "${p.name}" has an invalid shape [${p.shape.join(', ')}]`);
      }
      if (!dataMatches(p.dtype, p.data)) {
        throw new GraphError('GRAPH_INVALID', `parameter "${p.name}" declares ${p.dtype} but holds ${p.data.constructor.name}`);
      }
      if (p.data.length !== sizeOf(p.shape)) {
        throw new GraphError(
          'SHAPE_MISMATCH',
          `parameter "${p.name}" has shape [${p.shape.join(', ')}] (${sizeOf(p.shape)} values) but holds ${p.data.length} values`,
          { param: p.name },
        );
      }
      this.paramIndex.set(p.name, p);
      this.infos.set(p.name, { name: p.name, shape: p.shape, dtype: p.dtype });
    }
    const nodeNames = new Set<string>();
    for (const n of def.nodes) {
      if (!n.name) throw new GraphError('GRAPH_INVALID', `a node of op ${n.op} has an empty name`);
      if (nodeNames.has(n.name)) {
        throw new GraphError('GRAPH_DUPLICATE_NAME', `node name "${n.name}" is used twice`, { node: n.name });
      }
      nodeNames.add(n.name);
      if (!getOp(n.op)) {
        throw new GraphError('UNKNOWN_OP', `node "${n.name}" has unknown op "${n.op}"`, { node: n.name, op: n.op });
      }
      n.outputs.forEach((o, i) => {
        claim(o, `output ${i} of node "${n.name}"`);
        this.producerIndex.set(o, { node: n, output: i });
      });
    }
    for (const n of def.nodes) {
      n.inputs.forEach((v, i) => {
        if (v === '') return;
        if (!seen.has(v)) {
          throw new GraphError(
            'GRAPH_DANGLING_EDGE',
            `input ${i} of node "${n.name}" (${n.op}) reads "${v}", which no graph input, parameter or node defines`,
            { node: n.name, input: i, value: v },
          );
        }
        const list = this.consumerIndex.get(v) ?? [];
        list.push({ node: n, input: i });
        this.consumerIndex.set(v, list);
      });
    }
    for (const o of this.outputs) {
      if (!seen.has(o)) {
        throw new GraphError('GRAPH_DANGLING_EDGE', `graph output "${o}" is not produced by any node`, { value: o });
      }
    }
    this.nodes = topoSort(def.nodes, this.producerIndex);
    for (const n of this.nodes) {
      this.nodeIndex.set(n.name, n);
      const spec = getOp(n.op)!;
      const ins = n.inputs.map((v) => (v === '' ? undefined : this.infos.get(v)));
      let outs: TensorInfo[];
      try {
        outs = spec.infer(ins, n, this);
      } catch (e) {
        if (e instanceof TensorpressError) throw e;
        throw new GraphError('GRAPH_INVALID', `node "${n.name}" (${n.op}): ${(e as Error).message}`, { node: n.name });
      }
      if (outs.length !== n.outputs.length) {
        throw new GraphError(
          'GRAPH_INVALID',
          `node "${n.name}" (${n.op}) declares ${n.outputs.length} outputs but the op produces ${outs.length}`,
          { node: n.name },
        );
      }
      outs.forEach((o, i) => {
        checkVolume(o.shape, `output ${i} of node "${n.name}" (${n.op})`, { node: n.name, op: n.op });
        this.infos.set(n.outputs[i]!, { ...o, name: n.outputs[i]! });
      });
    }
  }

  /** The node called `name`, or undefined. */
  node(name: string): Node | undefined {
    return this.nodeIndex.get(name);
  }

  /** The node called `name`; throws a GraphError when absent. */
  requireNode(name: string): Node {
    const n = this.nodeIndex.get(name);
    if (!n) throw new GraphError('GRAPH_INVALID', `no node is called "${name}"`, { node: name });
    return n;
  }

  /** The parameter called `name`, or undefined. */
  param(name: string): Param | undefined {
    return this.paramIndex.get(name);
  }

  /** True when `value` names a parameter. */
  isParam(value: string): boolean {
    return this.paramIndex.has(value);
  }

  /** Shape and dtype of any value (input, parameter or node output). */
  info(value: string): TensorInfo {
    const t = this.infos.get(value);
    if (!t) throw new GraphError('GRAPH_INVALID', `no value is called "${value}"`, { value });
    return t;
  }

  /** The node and output index that produce `value` (undefined for graph inputs and parameters). */
  producer(value: string): { node: Node; output: number } | undefined {
    return this.producerIndex.get(value);
  }

  /** Every (node, input index) that reads `value`. */
  consumers(value: string): readonly { node: Node; input: number }[] {
    return this.consumerIndex.get(value) ?? [];
  }

  /** The plain form (shares parameter buffers: treat them as read-only). */
  toDef(): GraphDef {
    return { inputs: this.inputs, outputs: this.outputs, nodes: this.nodes, params: this.params };
  }

  /** A new validated graph with some parts replaced. */
  with(changes: Partial<GraphDef>): Graph {
    return new Graph({ ...this.toDef(), ...changes });
  }

  /**
   * A new graph with the named parameters' data (and, if given, shapes) replaced; data is not copied.
   * Unknown names throw.
   */
  withParams(updates: ReadonlyMap<string, { data: ParamData; shape?: readonly number[]; dtype?: DType }>): Graph {
    for (const k of updates.keys()) {
      if (!this.paramIndex.has(k)) throw new GraphError('GRAPH_INVALID', `no parameter is called "${k}"`, { param: k });
    }
    return this.with({
      params: this.params.map((p) => {
        const u = updates.get(p.name);
        return u ? { ...p, data: u.data, shape: u.shape ?? p.shape, dtype: u.dtype ?? p.dtype } : p;
      }),
    });
  }
}

function topoSort(nodes: readonly Node[], producers: Map<string, { node: Node; output: number }>): Node[] {
  const state = new Map<string, 0 | 1 | 2>();
  const out: Node[] = [];
  for (const root of nodes) {
    if (state.get(root.name) === 2) continue;
    // Iterative DFS: graphs from ONNX can be deep enough to overflow recursion.
    const stack: { node: Node; next: number }[] = [{ node: root, next: 0 }];
    state.set(root.name, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.node.inputs.length) {
        const v = top.node.inputs[top.next++]!;
        const p = producers.get(v);
        if (!p) continue;
        const st = state.get(p.node.name);
        if (st === 1) {
          // The stack runs against the data flow (a node, then what it reads): reverse it for the message.
          const cycle = [...stack.slice(stack.findIndex((s) => s.node === p.node)).map((s) => s.node.name), p.node.name].reverse();
          throw new GraphError('GRAPH_CYCLE', `the graph has a cycle: ${cycle.join(' -> ')}`, { cycle });
        }
        if (st === 2) continue;
        state.set(p.node.name, 1);
        stack.push({ node: p.node, next: 0 });
      } else {
        state.set(top.node.name, 2);
        out.push(top.node);
        stack.pop();
      }
    }
  }
  return out;
}

/** Makes a validated graph from its plain form. */
export function createGraph(def: GraphDef): Graph {
  return def instanceof Graph ? def : new Graph(def);
}
