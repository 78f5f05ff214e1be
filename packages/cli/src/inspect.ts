import { graphStatistics, useBackend, type BackendName, type Graph } from '@tensorpress/core-tensor';
import { discoverAlgorithms, type DiscoveredPackage } from './discover.js';
import { loadModel } from './load-model.js';

/** Options of {@link runInspect} (`tensorpress inspect`). */
export interface RunInspectOptions {
  model: string;
  backend?: BackendName | readonly BackendName[];
}

/** What {@link runInspect} reports. */
export interface InspectResult {
  readonly model: string;
  readonly kind: string;
  readonly inputs: readonly { name: string; shape: readonly (number | null)[] }[];
  readonly outputs: readonly string[];
  /** Node count per op. */
  readonly ops: Readonly<Record<string, number>>;
  readonly params: number;
  readonly bytes: number;
  /** Per example. */
  readonly flops: number;
  readonly macs: number;
  /** From @tensorpress/quant (null when it is not installed): weights and activations that get quantizers, and ops left in float with the reason. */
  readonly quantization: {
    readonly weights: readonly { node: string; op: string }[];
    readonly activations: number;
    readonly skipped: readonly { node: string; op: string; reason: string }[];
  } | null;
  /** From @tensorpress/pruning (null when it is not installed): each group of channels cut together, prunable or why not. */
  readonly pruningGroups: readonly { id: string; producers: readonly string[]; channels: number; prunable: boolean; reason?: string }[] | null;
  /** Installed technique packages and their algorithms. */
  readonly techniques: readonly DiscoveredPackage[];
  /** Problems of the model file that did not stop it loading (ONNX: NaN weights, invalid quantization scales). */
  readonly warnings: readonly string[];
}

interface QuantModule {
  placeQuantizers(graph: Graph): {
    weights: readonly { node: string; op: string }[];
    activations: readonly unknown[];
    skipped: readonly { node: string; op: string; reason: string }[];
  };
}
interface PruningModule {
  pruningGroups(graph: Graph): { groups: readonly { id: string; producers: readonly string[]; channels: number; prunable: boolean; reason?: string }[] };
}

async function optional<T>(name: string): Promise<T | null> {
  try {
    return (await import(name)) as T;
  } catch {
    return null;
  }
}

/**
 * `tensorpress inspect`: ops, params, FLOPs, the nodes quantization would touch and the pruning
 * groups with the reason any group cannot be pruned. Builtin models are inspected untrained
 * (structure only, MNIST shapes).
 */
export async function runInspect(options: RunInspectOptions): Promise<InspectResult> {
  await useBackend((options.backend ?? ['wasm', 'cpu']) as BackendName | BackendName[]);
  const { graph, kind, warnings } = await loadModel(options.model);
  const stats = graphStatistics(graph);
  const ops: Record<string, number> = {};
  for (const n of graph.nodes) ops[n.op] = (ops[n.op] ?? 0) + 1;
  const quant = await optional<QuantModule>('@tensorpress/quant');
  const pruning = await optional<PruningModule>('@tensorpress/pruning');
  const placement = quant?.placeQuantizers(graph);
  const groups = pruning?.pruningGroups(graph).groups;
  return {
    model: options.model,
    kind,
    inputs: graph.inputs.map((i) => ({ name: i.name, shape: [...i.shape] })),
    outputs: [...graph.outputs],
    ops,
    params: stats.total.params,
    bytes: stats.total.bytes,
    flops: stats.total.flops,
    macs: stats.total.macs,
    quantization: placement
      ? {
          weights: placement.weights.map((w) => ({ node: w.node, op: w.op })),
          activations: placement.activations.length,
          skipped: placement.skipped.map((s) => ({ node: s.node, op: s.op, reason: s.reason })),
        }
      : null,
    pruningGroups: groups
      ? groups.map((g) => ({ id: g.id, producers: [...g.producers], channels: g.channels, prunable: g.prunable, ...(g.reason ? { reason: g.reason } : {}) }))
      : null,
    techniques: (await discoverAlgorithms()).packages,
    warnings: warnings ?? [],
  };
}

/** The human-readable form of an {@link InspectResult}. */
export function formatInspect(r: InspectResult): string {
  const lines: string[] = [];
  lines.push(`${r.model} (${r.kind})`);
  lines.push(`inputs: ${r.inputs.map((i) => `${i.name} [${i.shape.map((d) => d ?? '?').join(', ')}]`).join(', ')}; outputs: ${r.outputs.join(', ')}`);
  lines.push(`params ${r.params.toLocaleString('en-US')} (${r.bytes.toLocaleString('en-US')} bytes), FLOPs/example ${r.flops.toLocaleString('en-US')}, MACs ${r.macs.toLocaleString('en-US')}`);
  lines.push(`ops: ${Object.entries(r.ops).map(([op, n]) => `${op} ×${n}`).join(', ')}`);
  if (r.quantization) {
    lines.push(`quantizable: ${r.quantization.weights.length} weight(s) (${r.quantization.weights.map((w) => w.node).join(', ')}), ${r.quantization.activations} activation quantizer(s)`);
    for (const s of r.quantization.skipped) lines.push(`  left in float: ${s.node} (${s.op}): ${s.reason}`);
  } else lines.push('quantizable: (install @tensorpress/quant to see)');
  if (r.pruningGroups) {
    lines.push(`pruning groups: ${r.pruningGroups.length}`);
    for (const g of r.pruningGroups) {
      lines.push(`  ${g.prunable ? 'prunable    ' : 'not prunable'} ${g.id}: ${g.channels} channels, producers ${g.producers.join(', ')}${g.reason ? `: ${g.reason}` : ''}`);
    }
  } else lines.push('pruning groups: (install @tensorpress/pruning to see)');
  lines.push(
    `techniques: ${r.techniques.map((p) => (p.installed ? `${p.name} (${p.algorithms.join(', ') || 'no algorithms'})` : `${p.name} (not installed)`)).join('; ')}`,
  );
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}
