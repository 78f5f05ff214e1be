/**
 * Pruning groups of imported PyTorch models (export-onnx's committed fixtures): through a U-Net's
 * ConvTranspose layers and through ShuffleNetV2's channel shuffle (pruned group-consistently),
 * then cut, written back to ONNX and run in onnxruntime.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compress, graphStatistics, useBackend, type Graph } from '@tensorpress/core-tensor';
import { checkParity, fromOnnx, toOnnx } from '@tensorpress/export-onnx';
import { cutChannels, filterPruning, pruningGroups, type PruningGroup } from '@tensorpress/pruning';
import { expectClose, runOutput, seededTensor } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'export-onnx', 'test', 'fixtures');
const read = (name: string): Graph => fromOnnx(new Uint8Array(readFileSync(path.join(fixtures, `${name}.onnx`))));

beforeAll(async () => {
  await useBackend('cpu');
});

/** Keeps the first half of each of a group's blocks (every block keeps the same positions). */
function halfKeep(g: PruningGroup): number[] {
  const size = g.channels / g.blocks;
  const per = Math.max(1, Math.floor(size / 2));
  return Array.from({ length: g.blocks }, (_, b) => Array.from({ length: per }, (_, i) => b * size + i)).flat();
}

function cutAll(graph: Graph, groups: readonly PruningGroup[]): Graph {
  let g = graph;
  for (const group of groups) g = cutChannels(g, { producers: group.producers, keep: halfKeep(group) });
  return g;
}

describe('pruning imported graphs', () => {
  it('U-Net: groups pass through ConvTranspose (as producer and as grouped consumer); cut, written, run in onnxruntime', async () => {
    const g = read('unet-tiny');
    const { groups, nodes } = pruningGroups(g, { mode: 'group', pruneFirstConv: true });
    const byProducer = (p: string): PruningGroup => groups.find((x) => x.producers.includes(p))!;
    const up1 = nodes.find((n) => n.op === 'ConvTranspose' && n.channels === 8)!;
    const up2 = nodes.find((n) => n.op === 'ConvTranspose' && n.channels === 16)!;
    // A plain ConvTranspose is a producer whose cut crosses the skip Concat into dec1.
    expect(up1.role).toBe('producer');
    expect(up1.prunable).toBe(true);
    // A grouped one cannot lose outputs, but the cut of the conv before it ends there (even per group).
    expect(up2.prunable).toBe(false);
    expect(up2.reason).toMatch(/grouped ConvTranspose/);
    const feeding = groups.find((x) => x.steps.some((s) => s.node === up2.node && s.role === 'consumer'))!;
    expect(feeding.prunable).toBe(true);
    expect(feeding.blocks).toBe(2);
    const prunable = groups.filter((x) => x.prunable);
    expect(prunable.length).toBeGreaterThanOrEqual(4);
    expect(byProducer(up1.node).steps.map((s) => s.role)).toContain('concat');
    const pruned = cutAll(g, prunable);
    expect(graphStatistics(pruned).total.params).toBeLessThan(0.6 * graphStatistics(g).total.params);
    const x = seededTensor([2, 32, 32, 3], 3);
    const report = await checkParity(pruned, toOnnx(pruned), x);
    expect(report.maxAbsDiff).toBeLessThan(1e-4);
    x.dispose();
  });

  it('ShuffleNetV2 downsampling unit: both branches are cut together through the channel shuffle; written, run in onnxruntime', async () => {
    const g = read('shufflenetv2-down-tiny');
    const { groups } = pruningGroups(g, { pruneDownsampleConvs: true });
    const through = groups.find((x) => x.steps.some((s) => s.role === 'shuffle'))!;
    expect(through.prunable).toBe(true);
    // The two branches of the unit feed one Concat whose halves are the shuffle's two blocks.
    expect(through.producers.length).toBe(2);
    const pruned = cutAll(g, [through]);
    const shuffled = pruned.nodes.filter((n) => n.op === 'Reshape' && pruned.info(n.outputs[0]!).shape.length === 5);
    expect(shuffled.map((n) => pruned.info(n.outputs[0]!).shape.slice(1, 3))).toEqual([[2, 4]]);
    const x = seededTensor([2, 32, 32, 3], 4);
    const before = await checkParity(g, toOnnx(g), x);
    const report = await checkParity(pruned, toOnnx(pruned), x);
    expect(before.maxAbsDiff).toBeLessThan(1e-4);
    expect(report.maxAbsDiff).toBeLessThan(1e-4);
    // Cutting everything else prunable too still runs.
    const all = cutAll(g, groups.filter((x2) => x2.prunable));
    expect((await checkParity(all, toOnnx(all), x)).maxAbsDiff).toBeLessThan(1e-4);
    x.dispose();
  });

  it('ShuffleNetV2 with a second unit: a shuffle whose blocks would be cut differently blocks the group, saying so', () => {
    const g = read('shufflenetv2-tiny');
    const { groups } = pruningGroups(g, { pruneDownsampleConvs: true });
    const reasons = groups.filter((x) => !x.prunable).map((x) => x.reason ?? '');
    expect(reasons.some((r) => /shuffles 2 blocks of 8 channels and the cut must keep the same channels in each/.test(r))).toBe(true);
    // Groups inside the branches (up to the shuffle) stay prunable.
    expect(groups.filter((x) => x.prunable).length).toBeGreaterThan(0);
  });

  it.each([
    ['unet-tiny', { mode: 'group' as const }],
    ['shufflenetv2-down-tiny', {}],
  ])('%s: filter pruning with masks computes what the stripped graph computes, which runs in onnxruntime', async (name, extra) => {
    const g = read(name);
    const x = seededTensor([2, 32, 32, 3], 6);
    const ctrl = compress(g, [filterPruning({ pruneFirstConv: true, pruneDownsampleConvs: true, ratio: 0.5, ...extra })]);
    const [y] = ctrl.model.executor.run(x);
    const masked = y!.dataSync() as Float32Array;
    const stripped = ctrl.strip();
    expectClose(runOutput(stripped, x), masked, { atol: 1e-4, rtol: 1e-3 });
    expect(graphStatistics(stripped).total.params).toBeLessThan(graphStatistics(g).total.params);
    expect((await checkParity(stripped, toOnnx(stripped), x)).maxAbsDiff).toBeLessThan(1e-4);
    y!.dispose();
    ctrl.dispose();
    x.dispose();
  });
});
