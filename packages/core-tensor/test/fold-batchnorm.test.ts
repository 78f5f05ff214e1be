import { GraphBuilder, TensorpressError, useBackend, type Graph } from '@tensorpress/core-tensor';
import {
  expectClose,
  expectNoLeak,
  expectParamsUntouched,
  randomizeBnStats,
  runOutput,
  seededTensor,
  snapshotParams,
} from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { foldAllBatchNorms, foldBatchNorm } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';

beforeAll(async () => {
  await useBackend('cpu');
});

const TOL = { atol: 1e-5, rtol: 1e-4 };

/** Folds `bn`, checks eval outputs, purity and the structure; returns the folded graph. */
function checkFold(graph: Graph, bn: string, inputShape: number[]): Graph {
  const x = seededTensor(inputShape, 3);
  const snap = snapshotParams(graph);
  const before = runOutput(graph, x);
  const folded = foldBatchNorm(graph, bn);
  expectClose(runOutput(folded, x), before, { ...TOL, label: bn });
  expectParamsUntouched(graph, snap);
  expect(folded.node(bn)).toBeUndefined();
  expect(folded.nodes.some((n) => n.op === 'BatchNormalization' && n.name === bn)).toBe(false);
  expect(folded.outputs).toEqual(graph.outputs);
  // The producer now writes the BN's output name.
  const bnOut = graph.requireNode(bn).outputs[0]!;
  expect(folded.producer(bnOut)?.node.op).toMatch(/^(Conv|Gemm)$/);
  x.dispose();
  return folded;
}

describe('foldBatchNorm', () => {
  it('folds into a Conv with a bias', () => {
    const b = new GraphBuilder({ seed: 1 });
    let h = b.conv(b.input('x', [null, 6, 6, 3]), { filters: 5, kernel: 3, padding: 'same', name: 'c' });
    h = b.relu(b.batchNorm(h, { name: 'bn' }));
    b.output(h);
    const g = randomizeBnStats(b.build());
    const f = checkFold(g, 'bn', [2, 6, 6, 3]);
    expect(f.params.length).toBe(2);
    expect(f.param('c.bias')!.data).not.toBe(g.param('c.bias')!.data);
  });

  it('adds a bias to a Conv without one', () => {
    const b = new GraphBuilder({ seed: 2 });
    const h = b.batchNorm(b.conv(b.input('x', [null, 5, 5, 2]), { filters: 4, kernel: 3, bias: false, name: 'c' }), { name: 'bn' });
    b.output(h);
    const g = randomizeBnStats(b.build());
    const f = checkFold(g, 'bn', [3, 5, 5, 2]);
    const conv = f.requireNode('c');
    expect(conv.inputs).toHaveLength(3);
    expect(f.param(conv.inputs[2]!)!.shape).toEqual([4]);
    expect(f.param(conv.inputs[2]!)!.trainable).toBe(true);
  });

  it('folds into a depthwise Conv with a channel multiplier', () => {
    const b = new GraphBuilder({ seed: 3 });
    const x = b.input('x', [null, 6, 6, 3]);
    const h = b.batchNorm(b.depthwiseConv(x, { kernel: 3, padding: 'same', multiplier: 2, name: 'dw' }), { name: 'bn' });
    b.output(b.relu(h));
    checkFold(randomizeBnStats(b.build()), 'bn', [2, 6, 6, 3]);
  });

  it('folds into a grouped Conv', () => {
    const b = new GraphBuilder({ seed: 4 });
    const x = b.input('x', [null, 6, 6, 4]);
    const h = b.batchNorm(b.conv(x, { filters: 6, kernel: 3, group: 2, strides: 2, padding: 'same', name: 'g' }), { name: 'bn' });
    b.output(h);
    checkFold(randomizeBnStats(b.build()), 'bn', [2, 6, 6, 4]);
  });

  it('folds into a Gemm (BN on [N, C]) and its beta attribute', () => {
    const b = new GraphBuilder({ seed: 5 });
    const x = b.input('x', [null, 7]);
    const h = b.batchNorm(b.dense(x, 5, { name: 'fc' }), { name: 'bn' });
    b.output(b.dense(b.relu(h), 3, { name: 'out' }));
    const g = randomizeBnStats(b.build());
    checkFold(g, 'bn', [4, 7]);
    const scaled = g.with({ nodes: g.nodes.map((n) => (n.name === 'fc' ? { ...n, attrs: { alpha: 0.5, beta: 2 } } : n)) });
    const f = checkFold(scaled, 'bn', [4, 7]);
    expect(f.requireNode('fc').attrs).toEqual({ alpha: 0.5 });
  });

  it('keeps a BN output that is a graph output', () => {
    const b = new GraphBuilder({ seed: 6 });
    const h = b.batchNorm(b.conv(b.input('x', [null, 4, 4, 2]), { filters: 3, kernel: 1, name: 'c' }), { name: 'bn' });
    b.output(h);
    const f = checkFold(randomizeBnStats(b.build()), 'bn', [2, 4, 4, 2]);
    expect(f.outputs).toEqual(['bn']);
  });

  it('refuses a BN that follows an Add', () => {
    const b = new GraphBuilder({ seed: 7 });
    const x = b.input('x', [null, 4, 4, 2]);
    const a = b.conv(x, { filters: 3, kernel: 1, name: 'c1' });
    const c = b.conv(x, { filters: 3, kernel: 1, name: 'c2' });
    b.output(b.batchNorm(b.add(a, c, 'add'), { name: 'bn' }));
    const g = b.build();
    expect(() => foldBatchNorm(g, 'bn')).toThrowError(/cannot fold BatchNormalization "bn".*Add "add"/);
    try {
      foldBatchNorm(g, 'bn');
    } catch (e) {
      expect(e).toBeInstanceOf(TensorpressError);
      expect((e as TensorpressError).code).toBe('TRANSFORM_INVALID');
    }
  });

  it('refuses a Conv whose output is also read elsewhere or is a graph output', () => {
    const b = new GraphBuilder({ seed: 8 });
    const x = b.input('x', [null, 4, 4, 2]);
    const c = b.conv(x, { filters: 3, kernel: 1, name: 'c' });
    const bn = b.batchNorm(c, { name: 'bn' });
    b.output(b.add(bn, b.relu(c, 'side'), 'add'));
    expect(() => foldBatchNorm(b.build(), 'bn')).toThrowError(/also read by "side"/);

    const b2 = new GraphBuilder({ seed: 8 });
    const c2 = b2.conv(b2.input('x', [null, 4, 4, 2]), { filters: 3, kernel: 1, name: 'c' });
    b2.output(b2.batchNorm(c2, { name: 'bn' }), c2);
    expect(() => foldBatchNorm(b2.build(), 'bn')).toThrowError(/graph output/);
  });

  it('refuses unknown nodes, other ops and graph inputs', () => {
    const b = new GraphBuilder({ seed: 9 });
    const x = b.input('x', [null, 4, 4, 2]);
    b.output(b.relu(b.batchNorm(x, { name: 'bn' }), 'r'));
    const g = b.build();
    expect(() => foldBatchNorm(g, 'nope')).toThrowError(/no node/);
    expect(() => foldBatchNorm(g, 'r')).toThrowError(/Relu, not a BatchNormalization/);
    expect(() => foldBatchNorm(g, 'bn')).toThrowError(/graph input/);
  });
});

describe('foldAllBatchNorms', () => {
  function residual(): Graph {
    const b = new GraphBuilder({ seed: 11 });
    const x = b.input('x', [null, 8, 8, 3]);
    let h = b.relu(b.batchNorm(b.conv(x, { filters: 4, kernel: 3, padding: 'same', bias: false, name: 'stem' }), { name: 'stem_bn' }));
    let y = b.relu(b.batchNorm(b.conv(h, { filters: 6, kernel: 3, strides: 2, padding: 'same', name: 'c1' }), { name: 'bn1' }));
    y = b.batchNorm(b.conv(y, { filters: 6, kernel: 3, padding: 'same', name: 'c2' }), { name: 'bn2' });
    const sc = b.batchNorm(b.conv(h, { filters: 6, kernel: 1, strides: 2, bias: false, name: 'down' }), { name: 'down_bn' });
    h = b.relu(b.add(y, sc, 'add'));
    // Not foldable: it follows the Add.
    h = b.batchNorm(h, { name: 'post_bn' });
    h = b.flatten(b.globalAvgPool(h));
    b.output(b.dense(h, 3, { name: 'fc' }));
    return randomizeBnStats(b.build());
  }

  it('folds every foldable BN of a residual model and reports the others', async () => {
    const g = residual();
    const snap = snapshotParams(g);
    const x = seededTensor([2, 8, 8, 3], 5);
    const before = runOutput(g, x);
    const res = await expectNoLeak(() => foldAllBatchNorms(g));
    expect(res.folded).toEqual(['stem_bn', 'bn1', 'bn2', 'down_bn']);
    expect(res.skipped).toHaveLength(1);
    expect(res.skipped[0]!.node).toBe('post_bn');
    expect(res.skipped[0]!.reason).toMatch(/Relu/);
    expect(res.graph.nodes.filter((n) => n.op === 'BatchNormalization').map((n) => n.name)).toEqual(['post_bn']);
    expectClose(runOutput(res.graph, x), before, TOL);
    expectParamsUntouched(g, snap);
    x.dispose();
  });

  it('folds every BN of the reference models without changing eval outputs', () => {
    for (const [name, make] of Object.entries(referenceModels)) {
      const g = randomizeBnStats(make({ inputShape: [12, 12, 1], seed: 3 }), 21);
      const snap = snapshotParams(g);
      const x = seededTensor([2, 12, 12, 1], 9);
      const before = runOutput(g, x);
      const res = foldAllBatchNorms(g);
      expect(res.skipped, name).toEqual([]);
      expect(res.graph.nodes.some((n) => n.op === 'BatchNormalization'), name).toBe(false);
      expectClose(runOutput(res.graph, x), before, { ...TOL, label: name });
      expectParamsUntouched(g, snap);
      x.dispose();
    }
  });

  it('returns the same graph when there is nothing to fold', () => {
    const b = new GraphBuilder();
    b.output(b.dense(b.input('x', [null, 3]), 2));
    const g = b.build();
    const res = foldAllBatchNorms(g);
    expect(res.graph).toBe(g);
    expect(res.folded).toEqual([]);
  });
});
