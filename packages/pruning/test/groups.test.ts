import { useBackend, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { pruningGroups, type PruningGroupsOptions } from '@tensorpress/pruning';
import { beforeAll, describe, expect, it } from 'vitest';
import { concatGraph, flattenGemmGraph, groupedGraph, sharedWeightGraph } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** `{ group id: producers }` and `{ node: reason | 'prunable' }` in a compact, comparable form. */
function summary(graph: Graph, options: PruningGroupsOptions = {}) {
  const r = pruningGroups(graph, options);
  return {
    groups: Object.fromEntries(r.groups.map((g) => [g.id, g.producers])),
    followers: Object.fromEntries(r.groups.filter((g) => g.followers.length > 0).map((g) => [g.id, g.followers])),
    nodes: Object.fromEntries(r.nodes.map((n) => [n.node, { group: n.group, role: n.role, prunable: n.prunable }])),
    reasons: Object.fromEntries(r.nodes.filter((n) => !n.prunable).map((n) => [n.node, n.reason])),
    result: r,
  };
}

describe('pruningGroups', () => {
  it('residualCnn: convs feeding one Add form one group; first and strided convs are excluded by default, with reasons', () => {
    const s = summary(referenceModels.residualCnn());
    expect(s.groups).toEqual({
      'stem.conv': ['stem.conv', 'block1.conv2'],
      'block1.conv1': ['block1.conv1'],
      'block2.conv1': ['block2.conv1'],
      'block2.conv2': ['block2.conv2', 'block2.down'],
      'block3.conv1': ['block3.conv1'],
      'block3.conv2': ['block3.conv2', 'block3.down'],
      fc: ['fc'],
    });
    expect(Object.keys(s.reasons).sort()).toEqual(
      ['stem.conv', 'block1.conv2', 'block2.conv1', 'block2.conv2', 'block2.down', 'block3.conv1', 'block3.conv2', 'block3.down', 'fc'].sort(),
    );
    expect(s.reasons['block1.conv2']).toMatch(/"stem\.conv" is the first convolution.*pruneFirstConv/);
    expect(s.reasons['block2.conv1']).toMatch(/"block2\.conv1" is a downsampling convolution.*pruneDownsampleConvs/);
    // The residual partner is reported as unprunable because of its group, not skipped silently.
    expect(s.reasons['block2.conv2']).toMatch(/"block2\.down" is a downsampling convolution/);
    expect(s.reasons['fc']).toMatch(/graph output/);
    expect(s.nodes['block1.conv1']).toEqual({ group: 'block1.conv1', role: 'producer', prunable: true });
  });

  it('residualCnn with pruneFirstConv and pruneDownsampleConvs: every conv group is prunable', () => {
    const s = summary(referenceModels.residualCnn(), { pruneFirstConv: true, pruneDownsampleConvs: true });
    expect(Object.keys(s.reasons)).toEqual(['fc']);
    const block3 = s.result.groups.find((g) => g.id === 'block3.conv2')!;
    expect(block3.batchNorms).toEqual(['block3.bn2', 'block3.down_bn']);
    expect(block3.steps.map((x) => `${x.node}:${x.role}`)).toContain('flatten:reshape');
  });

  it('mobileNetCnn: a depthwise conv follows its producer; the inverted residual joins ds1.pw and ir1.project', () => {
    const s = summary(referenceModels.mobileNetCnn());
    expect(s.groups).toEqual({
      'stem.conv': ['stem.conv'],
      'ds1.pw': ['ds1.pw', 'ir1.project'],
      'ir1.expand': ['ir1.expand'],
      'ds2.pw': ['ds2.pw'],
      'head.conv': ['head.conv'],
      fc: ['fc'],
    });
    expect(s.followers).toEqual({ 'stem.conv': ['ds1.dw'], 'ds1.pw': ['ds2.dw'], 'ir1.expand': ['ir1.dw'] });
    expect(s.nodes['ir1.dw']).toEqual({ group: 'ir1.expand', role: 'follower', prunable: true });
    expect(s.nodes['ds2.dw']).toEqual({ group: 'ds1.pw', role: 'follower', prunable: true });
    expect(s.nodes['ds1.dw']).toEqual({ group: 'stem.conv', role: 'follower', prunable: false });
    expect(s.reasons['ds1.dw']).toMatch(/follows group "stem\.conv", which is not prunable: .*first convolution/);
    expect(Object.keys(s.reasons).sort()).toEqual(['ds1.dw', 'fc', 'stem.conv']);
  });

  it('Concat: each input is its own group and the cut reaches the consumer through the concat offset', () => {
    const s = summary(concatGraph(), { pruneFirstConv: true });
    expect(s.groups).toEqual({ stem: ['stem'], convA: ['convA'], convB: ['convB'], convC: ['convC'], fc: ['fc'] });
    const a = s.result.groups.find((g) => g.id === 'convA')!;
    expect(a.steps.map((x) => `${x.node}:${x.role}`)).toEqual([
      'convA:producer',
      'a_relu:passthrough',
      'cat:concat',
      'cat_bn:batchnorm',
      'cat_relu:passthrough',
      'convC:consumer',
    ]);
    expect(Object.keys(s.reasons)).toEqual(['fc']);
  });

  it('a grouped conv: unprunable in normal mode (naming mode group), prunable in group mode with its block count', () => {
    const normal = summary(groupedGraph(), { pruneFirstConv: true });
    expect(normal.reasons['stem']).toMatch(/grouped Conv "gconv" \(group=2\).*mode 'group'/);
    expect(normal.reasons['gconv']).toMatch(/grouped Conv "gconv" \(group=2\)/);
    expect(normal.nodes['conv']!.prunable).toBe(true);
    const group = pruningGroups(groupedGraph(), { pruneFirstConv: true, mode: 'group' });
    expect(group.groups.filter((g) => g.prunable).map((g) => [g.id, g.blocks])).toEqual([
      ['stem', 2],
      ['gconv', 2],
      ['conv', 1],
    ]);
  });

  it('Flatten→Gemm: the conv before a Flatten is prunable and its cut reaches the Gemm features', () => {
    const s = summary(flattenGemmGraph(), { pruneFirstConv: true });
    const g = s.result.groups.find((x) => x.id === 'conv')!;
    expect(g.prunable).toBe(true);
    expect(g.steps.map((x) => `${x.node}:${x.role}`)).toEqual(['conv:producer', 'relu:passthrough', 'flatten:reshape', 'fc1:consumer']);
    expect(s.nodes['fc1']).toEqual({ group: 'fc1', role: 'producer', prunable: true });
    const convOnly = summary(flattenGemmGraph(), { pruneFirstConv: true, operations: ['Conv'] });
    expect(convOnly.reasons['fc1']).toBe('Gemm is not in operations');
  });

  it('a weight used twice: both convs, and the group whose cut reaches one as consumer, say why', () => {
    const s = summary(sharedWeightGraph(), { pruneFirstConv: true });
    expect(s.reasons['convA']).toMatch(/"convA\.weight" is shared with node "convB"/);
    expect(s.reasons['convB']).toMatch(/"convA\.weight" is shared with node "convA"/);
    expect(s.reasons['stem']).toMatch(/blocked at node "convA".*shared/);
  });

  it('ignoredScopes: one ignored producer makes its whole group unprunable, named in the reason', () => {
    const s = summary(referenceModels.residualCnn(), { pruneFirstConv: true, pruneDownsampleConvs: true, ignoredScopes: ['block2.down'] });
    expect(s.reasons['block2.conv2']).toMatch(/"block2\.down" is excluded by ignoredScopes/);
    expect(s.reasons['block2.down']).toMatch(/excluded by ignoredScopes/);
    expect(s.nodes['block3.conv1']!.prunable).toBe(true);
  });

  it('regular mode: a group with no more channels than N is left out with the reason; requireBatchNorm too', () => {
    const s = summary(referenceModels.residualCnn(), { pruneFirstConv: true, pruneDownsampleConvs: true, mode: 'regular', multipleOf: 16 });
    expect(s.reasons['block1.conv1']).toMatch(/multiple of 16 .* only 16/);
    expect(s.nodes['block2.conv1']!.prunable).toBe(true);
    const mlp = summary(referenceModels.mlp(), { requireBatchNorm: true });
    expect(mlp.reasons['fc1']).toMatch(/BatchNormalization right after producer "fc1"/);
  });
});
