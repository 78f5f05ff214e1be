import { intsAttr } from './attrs.js';
import { ConfigError } from './errors.js';
import { dtypeBytes, sizeOf, type Dim, type DType, type Graph, type Node } from './graph.js';
import { convGeometry } from './ops/conv.js';

/** A bit width per node: a function of the node (undefined falls back to the inferred width), or a record by node name. */
export type BitsOverride = ((node: Node) => number | undefined) | Readonly<Record<string, number>>;

/** Options of {@link graphStatistics}. */
export interface StatisticsOptions {
  /** Weight bit widths of MAC nodes, overriding what the graph implies. */
  weightBits?: BitsOverride;
  /** Activation bit widths of MAC nodes, overriding what the graph implies. */
  activationBits?: BitsOverride;
  /** Value of a dynamic (null) batch dimension. Default 1: counts are per example. */
  batch?: number;
}

/** Counts of one node. */
export interface NodeStats {
  readonly name: string;
  readonly op: string;
  /** Shape of the node's first output (a dynamic batch shown as `null`). */
  readonly outputShape: readonly Dim[];
  /**
   * Elements of the parameters the node reads, BN running statistics and quantization constants
   * included. A Conv/Gemm/MatMul whose weight comes through a DequantizeLinear of a parameter counts
   * that DequantizeLinear's parameters as its own (the DequantizeLinear then counts none).
   */
  readonly params: number;
  /** Storage of those parameters in bytes, by dtype (float32 4, int32 4, int8 1, uint8 1). */
  readonly bytes: number;
  /** Multiply-accumulates (Conv, Gemm, MatMul; 0 for every other op). */
  readonly macs: number;
  /** Floating-point operations: 2·MACs for MAC ops, an elementwise count for the rest (see {@link graphStatistics}). */
  readonly flops: number;
  /** Bit operations: MACs × weight bits × activation bits (0 for non-MAC ops). */
  readonly bops: number;
  /** Weight bit width used for `bops` (MAC ops only). */
  readonly weightBits?: number;
  /** Activation bit width used for `bops` (MAC ops only). */
  readonly activationBits?: number;
}

/** Totals over a graph. */
export interface StatisticsTotal {
  /** Elements of every parameter read by some node, each counted once (shared parameters too). */
  readonly params: number;
  /** Bytes of those parameters. */
  readonly bytes: number;
  readonly macs: number;
  readonly flops: number;
  readonly bops: number;
}

/** Per-node and total counts of a graph. */
export interface GraphStatistics {
  readonly nodes: readonly NodeStats[];
  readonly total: StatisticsTotal;
  /** The batch size the counts are for. */
  readonly batch: number;
}

const MAC_OPS = new Set(['Conv', 'Gemm', 'MatMul']);

/** FLOPs per output element of elementwise ops. */
const PER_ELEMENT: Readonly<Record<string, number>> = {
  Relu: 1,
  LeakyRelu: 2,
  Clip: 2,
  Sigmoid: 4,
  Tanh: 4,
  HardSigmoid: 3,
  HardSwish: 5,
  Add: 1,
  Sub: 1,
  Mul: 1,
  Div: 1,
  BatchNormalization: 2,
  Softmax: 5,
  QuantizeLinear: 3,
  DequantizeLinear: 2,
};

function bitsOfDtype(dtype: DType): number {
  return dtypeBytes(dtype) * 8;
}

function override(o: BitsOverride | undefined, node: Node, path: string): number | undefined {
  if (o === undefined) return undefined;
  const v = typeof o === 'function' ? o(node) : o[node.name];
  if (v === undefined) return undefined;
  if (!(Number.isFinite(v) && v > 0)) throw new ConfigError(path, `bit width of node "${node.name}" must be a positive number, got ${v}`);
  return v;
}

/**
 * Counts parameters, bytes, MACs, FLOPs and BOPs of a graph, per node and in total.
 *
 * Conventions (all counts are for `options.batch` examples; a dynamic batch dimension counts as
 * `batch`, default 1, and any other dynamic dimension as 1):
 * - MACs: Conv = out_h·out_w·C_out·k_h·k_w·C_in/group per example (depthwise: group = C_in);
 *   Gemm = in·out per row; MatMul = output elements × inner dimension. Other ops do no MACs.
 * - FLOPs: 2·MACs for Conv/Gemm/MatMul (a multiply and an add per MAC, exact when there is a bias;
 *   the bias add is not counted again). Elementwise ops count per output element: Relu, Add, Sub,
 *   Mul, Div 1; LeakyRelu, Clip (ReLU6), BatchNormalization (folded scale and shift) 2;
 *   HardSigmoid, QuantizeLinear 3; Sigmoid, Tanh 4; HardSwish, Softmax 5; DequantizeLinear 2 (0 when
 *   it dequantizes a parameter: that is folded ahead of time). MaxPool/AveragePool: k_h·k_w per
 *   output element; GlobalAveragePool/GlobalMaxPool: one per input element. Shape ops (Flatten,
 *   Reshape, Transpose, Concat, Split, Pad), Identity and Dropout: 0.
 * - BOPs: MACs × weight bits × activation bits, MAC ops only. Bits default to 32; a weight (input 1)
 *   or activation (input 0) produced by a DequantizeLinear takes the bit width of that
 *   DequantizeLinear's integer input dtype (int8/uint8: 8, int32: 32). `weightBits` and
 *   `activationBits` override per node.
 * - Params and bytes: see {@link NodeStats.params}; the total counts each parameter once.
 */
export function graphStatistics(graph: Graph, options: StatisticsOptions = {}): GraphStatistics {
  const batch = options.batch ?? 1;
  if (!(Number.isInteger(batch) && batch >= 1)) throw new ConfigError('$.batch', `must be a positive integer, got ${batch}`);
  const elems = (shape: readonly Dim[]): number => shape.reduce<number>((p, d, i) => p * (d ?? (i === 0 ? batch : 1)), 1);

  // A DequantizeLinear of a parameter that only feeds weight ports of MAC ops belongs to those ops.
  const isWeightDq = (node: Node): boolean =>
    node.op === 'DequantizeLinear' &&
    graph.isParam(node.inputs[0] ?? '') &&
    graph.consumers(node.outputs[0]!).length > 0 &&
    graph.consumers(node.outputs[0]!).every((c) => MAC_OPS.has(c.node.op) && c.input > 0);

  const weightDqOf = (value: string): Node | undefined => {
    const p = graph.producer(value)?.node;
    return p && isWeightDq(p) ? p : undefined;
  };

  const paramsOf = (node: Node): Set<string> => {
    const set = new Set<string>();
    if (isWeightDq(node)) return set;
    for (const [i, v] of node.inputs.entries()) {
      if (v === '') continue;
      if (graph.isParam(v)) set.add(v);
      else if (MAC_OPS.has(node.op) && i > 0) {
        const dq = weightDqOf(v);
        if (dq) for (const u of dq.inputs) if (u !== '' && graph.isParam(u)) set.add(u);
      }
    }
    return set;
  };

  const inferredBits = (value: string | undefined): number => {
    if (!value) return 32;
    const p = graph.producer(value)?.node;
    if (p?.op === 'DequantizeLinear' && p.inputs[0]) return bitsOfDtype(graph.info(p.inputs[0]).dtype);
    return bitsOfDtype(graph.info(value).dtype);
  };

  const nodes: NodeStats[] = [];
  const all = new Set<string>();
  const total = { params: 0, bytes: 0, macs: 0, flops: 0, bops: 0 };
  for (const node of graph.nodes) {
    const ps = paramsOf(node);
    let params = 0;
    let bytes = 0;
    for (const name of ps) {
      const p = graph.param(name)!;
      const n = sizeOf(p.shape);
      params += n;
      bytes += n * dtypeBytes(p.dtype);
      all.add(name);
    }
    const out = graph.info(node.outputs[0]!).shape;
    const outElems = elems(out);
    let macs = 0;
    let flops = 0;
    let bops = 0;
    let weightBits: number | undefined;
    let activationBits: number | undefined;
    const inShape = (i: number): readonly Dim[] => graph.info(node.inputs[i]!).shape;
    switch (node.op) {
      case 'Conv': {
        const g = convGeometry(node, inShape(0), inShape(1));
        macs = outElems * g.kernel[0] * g.kernel[1] * (g.inChannels / g.group);
        break;
      }
      case 'Gemm':
      case 'MatMul': {
        const a = inShape(0);
        macs = outElems * (a[a.length - 1] ?? 1);
        break;
      }
      case 'MaxPool':
      case 'AveragePool': {
        const k = intsAttr(node, 'kernel_shape', [1, 1]);
        flops = outElems * k.reduce((p, v) => p * v, 1);
        break;
      }
      case 'GlobalAveragePool':
      case 'GlobalMaxPool':
        flops = elems(inShape(0));
        break;
      case 'DequantizeLinear':
        flops = isWeightDq(node) ? 0 : outElems * 2;
        break;
      default:
        flops = outElems * (PER_ELEMENT[node.op] ?? 0);
    }
    if (MAC_OPS.has(node.op)) {
      flops = 2 * macs;
      weightBits = override(options.weightBits, node, '$.weightBits') ?? inferredBits(node.inputs[1]);
      activationBits = override(options.activationBits, node, '$.activationBits') ?? inferredBits(node.inputs[0]);
      bops = macs * weightBits * activationBits;
    }
    total.macs += macs;
    total.flops += flops;
    total.bops += bops;
    nodes.push({
      name: node.name,
      op: node.op,
      outputShape: out,
      params,
      bytes,
      macs,
      flops,
      bops,
      ...(weightBits === undefined ? {} : { weightBits, activationBits: activationBits! }),
    });
  }
  for (const name of all) {
    const p = graph.param(name)!;
    const n = sizeOf(p.shape);
    total.params += n;
    total.bytes += n * dtypeBytes(p.dtype);
  }
  return { nodes, total, batch };
}

function num(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/**
 * Formats statistics as a plain-text table (one row per node, then the totals), for logs and
 * READMEs. Numbers carry thousands separators; the batch the counts are for is in the header.
 */
export function formatStatistics(stats: GraphStatistics): string {
  const header = ['node', 'op', 'output', 'params', 'bytes', 'MACs', 'FLOPs', 'BOPs', 'bits w/a'];
  const rows = stats.nodes.map((n) => [
    n.name,
    n.op,
    `[${n.outputShape.map((d) => (d === null ? '?' : d)).join(',')}]`,
    num(n.params),
    num(n.bytes),
    num(n.macs),
    num(n.flops),
    num(n.bops),
    n.weightBits === undefined ? '' : `${n.weightBits}/${n.activationBits}`,
  ]);
  const t = stats.total;
  const totalRow = ['total', '', '', num(t.params), num(t.bytes), num(t.macs), num(t.flops), num(t.bops), ''];
  const all = [header, ...rows, totalRow];
  const widths = header.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  const right = (c: number): boolean => c >= 3 && c <= 7;
  const line = (r: string[]): string =>
    r
      .map((cell, c) => (right(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [`statistics (batch ${stats.batch})`, line(header), rule, ...rows.map(line), rule, line(totalRow)].join('\n');
}
