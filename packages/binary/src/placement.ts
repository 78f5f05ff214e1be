import { ConfigError, didYouMean, nodePattern, type Graph, type Node, type Scopes } from '@tensorpress/core-tensor';

/** Ops whose port-1 weight can be binarized and whose port-0 input can be binarized. */
export const BINARY_WEIGHT_OPS: ReadonlySet<string> = new Set(['Conv', 'Gemm', 'MatMul']);

/** Where binarization acts, and what it leaves in full precision (with the reason). */
export interface BinaryPlacement {
  /** Weighted nodes that are binarized (weights and/or input activations). */
  readonly nodes: readonly Node[];
  /** Nodes kept in full precision and why (never skipped silently). */
  readonly skipped: readonly { node: string; reason: string }[];
}

function hasWeight(graph: Graph, n: Node): boolean {
  return BINARY_WEIGHT_OPS.has(n.op) && n.inputs[1] !== undefined && graph.isParam(n.inputs[1]);
}

/**
 * The first weighted layers (no weighted layer upstream) and the last ones (none downstream):
 * what `fullPrecision.first` / `.last` keep in FP32 (the input and the logits need the resolution).
 */
export function firstAndLastLayers(graph: Graph): { first: Set<string>; last: Set<string> } {
  const up = new Set<string>();
  const first = new Set<string>();
  for (const n of graph.nodes) {
    const upstream = n.inputs.some((v) => up.has(v));
    if (hasWeight(graph, n) && !upstream) first.add(n.name);
    if (upstream || hasWeight(graph, n)) for (const o of n.outputs) up.add(o);
  }
  const down = new Set<string>();
  const last = new Set<string>();
  for (const n of [...graph.nodes].reverse()) {
    const downstream = n.outputs.some((v) => down.has(v));
    if (hasWeight(graph, n) && !downstream) last.add(n.name);
    if (downstream || hasWeight(graph, n)) for (const v of n.inputs) down.add(v);
  }
  return { first, last };
}

/** Options of {@link placeBinarizers}. */
export interface PlacementOptions {
  readonly inScope: (node: string) => boolean;
  readonly scopes: Scopes;
  readonly fullPrecision: { readonly first: boolean; readonly last: boolean; readonly nodes: readonly string[] };
  /** JSON paths of the params and of the entry, for errors. */
  readonly paths: { readonly params: string; readonly entry: string };
}

/**
 * The nodes binarization acts on: every Conv/Gemm/MatMul with a parameter weight that is in scope
 * and not kept in full precision. Config errors name the JSON path: a target scope that names a
 * node without weights, a full-precision entry naming no node, a node without weights, or a node
 * already kept as the first or last layer (named twice).
 */
export function placeBinarizers(graph: Graph, options: PlacementOptions): BinaryPlacement {
  const names = new Set(graph.nodes.map((n) => n.name));
  (options.scopes.targetScopes ?? []).forEach((t, i) => {
    const n = graph.node(t);
    if (n && !hasWeight(graph, n)) {
      throw new ConfigError(`${options.paths.entry}.targetScopes[${i}]`, `node "${t}" (${n.op}) has no weights to binarize; binarization acts on Conv, Gemm and MatMul nodes with a weight parameter`, {
        node: t,
      });
    }
  });
  const { first, last } = firstAndLastLayers(graph);
  const fp = options.fullPrecision;
  const kept = new Map<string, string>();
  if (fp.first) for (const n of first) kept.set(n, 'first layer, kept in full precision (fullPrecision.first)');
  if (fp.last) for (const n of last) kept.set(n, 'last layer, kept in full precision (fullPrecision.last)');
  const matchers = fp.nodes.map((p, i) => {
    const path = `${options.paths.params}.fullPrecision.nodes[${i}]`;
    if (!p.startsWith('{re}')) {
      const n = graph.node(p);
      if (!n) throw new ConfigError(path, `"${p}" names no node of the graph${didYouMean(p, names)}`, { node: p });
      if (!hasWeight(graph, n)) throw new ConfigError(path, `node "${p}" (${n.op}) has no weights, so there is nothing to keep in full precision`, { node: p });
      if (kept.has(p)) throw new ConfigError(path, `node "${p}" is named twice: it is already the ${first.has(p) && fp.first ? 'first' : 'last'} layer kept by fullPrecision.${first.has(p) && fp.first ? 'first' : 'last'}`, { node: p });
    }
    return nodePattern(p, path);
  });
  const nodes: Node[] = [];
  const skipped: { node: string; reason: string }[] = [];
  for (const n of graph.nodes) {
    if (!BINARY_WEIGHT_OPS.has(n.op)) continue;
    if (!options.inScope(n.name)) continue;
    if (!hasWeight(graph, n)) {
      skipped.push({ node: n.name, reason: `its weight "${n.inputs[1] ?? ''}" is computed, not a parameter` });
      continue;
    }
    const why = kept.get(n.name) ?? (matchers.some((m) => m(n.name)) ? 'kept in full precision (fullPrecision.nodes)' : undefined);
    if (why) skipped.push({ node: n.name, reason: why });
    else nodes.push(n);
  }
  return { nodes, skipped };
}
