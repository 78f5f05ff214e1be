import { ConfigError, checkScopeNames, numAttr, scopeFilter, type Graph, type Scopes } from '@tensorpress/core-tensor';

/** A weight a sparsity algorithm acts on: port 1 of a Conv, Gemm or MatMul, read from a float parameter. */
export interface WeightTarget {
  readonly node: string;
  readonly op: string;
  /** The parameter name. */
  readonly param: string;
  readonly shape: readonly number[];
  readonly size: number;
  /** Axis of the input channels in the weight ([kh, kw, cin/group, cout]: 2; Gemm/MatMul [in, out]: 0). */
  readonly inAxis: number;
  /** Input channels per group (the length of `inAxis`). */
  readonly inChannels: number;
  /** True for a depthwise convolution (one input channel per group). */
  readonly depthwise: boolean;
}

/** A node the algorithm could act on but left alone, and why (statistics report it). */
export interface Skip {
  readonly node: string;
  readonly reason: string;
}

const OPS = new Set(['Conv', 'Gemm', 'MatMul']);

/**
 * The weights of `graph` that a sparsity algorithm takes, after scopes: every Conv, Gemm and
 * MatMul whose port-1 input is a float32 parameter. A parameter shared by two nodes is taken once.
 */
export function weightTargets(graph: Graph, scopes: Scopes, entryPath: string): { targets: WeightTarget[]; skipped: Skip[] } {
  checkScopeNames(scopes, graph.nodes.map((n) => n.name), entryPath);
  const inScope = scopeFilter(scopes, entryPath);
  const targets: WeightTarget[] = [];
  const skipped: Skip[] = [];
  const seen = new Set<string>();
  for (const node of graph.nodes) {
    if (!OPS.has(node.op) || !inScope(node.name)) continue;
    const name = node.inputs[1];
    const p = name ? graph.param(name) : undefined;
    if (!p) {
      skipped.push({ node: node.name, reason: `${node.op} input 1 is not a parameter (a computed weight)` });
      continue;
    }
    if (p.dtype !== 'float32') {
      skipped.push({ node: node.name, reason: `${node.op} weight "${p.name}" is ${p.dtype}, not float32` });
      continue;
    }
    if (seen.has(p.name)) continue;
    seen.add(p.name);
    const conv = node.op === 'Conv';
    if (conv && p.shape.length !== 4) {
      skipped.push({ node: node.name, reason: `Conv weight "${p.name}" has shape [${p.shape.join(', ')}], expected [kh, kw, cin/group, cout]` });
      continue;
    }
    if (!conv && p.shape.length !== 2) {
      skipped.push({ node: node.name, reason: `${node.op} weight "${p.name}" has shape [${p.shape.join(', ')}], expected [in, out]` });
      continue;
    }
    if (node.op === 'Gemm' && numAttr(node, 'transB', 0) !== 0) {
      skipped.push({ node: node.name, reason: 'Gemm with transB=1 (weights are expected as [in, out])' });
      continue;
    }
    const inAxis = conv ? 2 : 0;
    const group = conv ? numAttr(node, 'group', 1) : 1;
    const inChannels = p.shape[inAxis]!;
    targets.push({
      node: node.name,
      op: node.op,
      param: p.name,
      shape: p.shape,
      size: p.shape.reduce((a, b) => a * b, 1),
      inAxis,
      inChannels,
      depthwise: conv && group > 1 && inChannels === 1,
    });
  }
  if (targets.length === 0) {
    throw new ConfigError(
      entryPath,
      `no Conv, Gemm or MatMul weight to sparsify${skipped.length ? `: ${skipped.map((s) => `"${s.node}": ${s.reason}`).join('; ')}` : ' in scope (check ignoredScopes / targetScopes)'}`,
      { skipped },
      'NOTHING_PRUNABLE',
    );
  }
  return { targets, skipped };
}
