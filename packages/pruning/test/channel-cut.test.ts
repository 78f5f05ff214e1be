import * as tf from '@tensorflow/tfjs-core';
import { GraphBuilder, PRIORITY, TransformationLayout, applyLayout, sizeOf, useBackend, type Graph, type TensorpressError } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import {
  errorOf,
  expectClose,
  expectNoLeak,
  expectParamsUntouched,
  randomizeBnStats,
  runOutput,
  seededTensor,
  snapshotParams,
} from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { channelDependencies, cutChannels } from '@tensorpress/pruning';

beforeAll(async () => {
  await useBackend('cpu');
});

const TOL = { atol: 1e-5, rtol: 1e-4 };

const PASS = new Set(['Relu', 'Clip', 'LeakyRelu', 'Dropout', 'Identity', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Pad']);

/**
 * Test oracle, independent of cutChannels: makes the channels the cut removes contribute exactly
 * zero. The producers' weight columns and bias entries of the removed channels become 0, and so do
 * gamma and beta of every BN downstream (BN(0) is then exactly 0 in eval mode) and the channel
 * blocks and bias of depthwise convs on the way. Consumers are left alone: removing their input
 * slices is what cutChannels must get right.
 */
function zeroRemoved(graph: Graph, producers: readonly string[], keep: readonly number[]): Graph {
  const data = new Map<string, Float32Array>();
  const get = (name: string): Float32Array => data.get(name) ?? Float32Array.from(graph.param(name)!.data as Float32Array);
  const zeroLast = (name: string | undefined, drop: ReadonlySet<number>): void => {
    if (name === undefined || name === '') return;
    const d = get(name);
    const shape = graph.param(name)!.shape;
    const c = shape[shape.length - 1]!;
    for (let i = 0; i < d.length; i++) if (drop.has(i % c)) d[i] = 0;
    data.set(name, d);
  };
  const dropped = new Map<string, Set<number>>();
  for (const p of producers) {
    const n = graph.requireNode(p);
    const w = graph.param(n.inputs[1]!)!.shape;
    const drop = new Set([...Array(w[w.length - 1]).keys()].filter((c) => !keep.includes(c)));
    zeroLast(n.inputs[1], drop);
    zeroLast(n.inputs[2], drop);
    dropped.set(n.outputs[0]!, drop);
  }
  for (const n of graph.nodes) {
    const d = dropped.get(n.inputs[0]!);
    const out = n.outputs[0]!;
    if (n.op === 'BatchNormalization' && d) {
      zeroLast(n.inputs[1], d);
      zeroLast(n.inputs[2], d);
      dropped.set(out, d);
    } else if (PASS.has(n.op) && d) {
      dropped.set(out, d);
    } else if (['Add', 'Sub', 'Mul'].includes(n.op)) {
      const u = new Set(n.inputs.flatMap((v) => [...(dropped.get(v) ?? [])]));
      if (u.size > 0) dropped.set(out, u);
    } else if (n.op === 'Conv' && d && Number(n.attrs['group'] ?? 1) > 1 && graph.param(n.inputs[1]!)!.shape[2] === 1) {
      const cout = graph.param(n.inputs[1]!)!.shape[3]!;
      const mult = cout / Number(n.attrs['group']);
      const dd = new Set([...d].flatMap((c) => [...Array(mult).keys()].map((m) => c * mult + m)));
      zeroLast(n.inputs[1], dd);
      zeroLast(n.inputs[2], dd);
      dropped.set(out, dd);
    } else if (n.op === 'Concat') {
      let off = 0;
      const u = new Set<number>();
      for (const v of n.inputs) {
        for (const c of dropped.get(v) ?? []) u.add(off + c);
        off += graph.info(v).shape[3] as number;
      }
      if (u.size > 0) dropped.set(out, u);
    }
  }
  return graph.withParams(new Map([...data].map(([k, v]) => [k, { data: v }])));
}

function paramCount(g: Graph): number {
  return g.params.reduce((s, p) => s + sizeOf(p.shape), 0);
}

/** Zeroes what the cut removes, cuts, and checks outputs are unchanged, the input graph untouched and the model smaller. */
function checkCut(graph: Graph, producers: string[], keep: number[], inputShape: number[], label = producers.join('+')): Graph {
  const zeroed = zeroRemoved(graph, producers, keep);
  const x = seededTensor(inputShape, 13);
  const before = runOutput(zeroed, x);
  const snap = snapshotParams(zeroed);
  const cut = cutChannels(zeroed, { producers, keep });
  expectClose(runOutput(cut, x), before, { ...TOL, label });
  expectParamsUntouched(zeroed, snap);
  expect(paramCount(cut), label).toBeLessThan(paramCount(zeroed));
  for (const p of producers) {
    const n = cut.requireNode(p);
    const s = cut.info(n.outputs[0]!).shape;
    expect(s[s.length - 1], label).toBe(keep.length);
  }
  x.dispose();
  return cut;
}

describe('cutChannels', () => {
  it('cuts a Conv into BN, pooling and a Conv consumer, and a Conv into Flatten -> Gemm', async () => {
    const b = new GraphBuilder({ seed: 1 });
    let h = b.conv(b.input('x', [null, 8, 8, 3]), { filters: 8, kernel: 3, padding: 'same', name: 'c1' });
    h = b.maxPool(b.relu(b.batchNorm(h, { name: 'bn1' })), 2);
    h = b.relu(b.conv(h, { filters: 6, kernel: 3, padding: 'same', name: 'c2' }));
    h = b.flatten(h);
    b.output(b.dense(h, 5, { name: 'fc' }));
    const g = randomizeBnStats(b.build());
    const cut = await expectNoLeak(() => checkCut(g, ['c1'], [0, 2, 3, 6, 7], [2, 8, 8, 3]));
    expect(cut.param('c1.weight')!.shape).toEqual([3, 3, 3, 5]);
    expect(cut.param('bn1.mean')!.shape).toEqual([5]);
    expect(cut.param('c2.weight')!.shape).toEqual([3, 3, 5, 6]);
    const cut2 = checkCut(g, ['c2'], [1, 4], [2, 8, 8, 3]);
    expect(cut2.param('fc.weight')!.shape).toEqual([4 * 4 * 2, 5]);
  });

  it('cuts Gemm producers into BN on [N, C], Gemm and MatMul consumers', () => {
    const b = new GraphBuilder({ seed: 2 });
    const x = b.input('x', [null, 10]);
    const h = b.relu(b.batchNorm(b.dense(x, 8, { name: 'fc1' }), { name: 'bn' }));
    const y = b.dense(h, 4, { name: 'fc2' });
    const w = b.param('mm.weight', [8, 3], 'glorot');
    const z = b.node('MatMul', [h, w], {}, { name: 'mm' })[0]!;
    b.output(b.concat([y, z], -1, 'cat'));
    const g = randomizeBnStats(b.build());
    const cut = checkCut(g, ['fc1'], [1, 2, 5], [3, 10]);
    expect(cut.param('fc1.weight')!.shape).toEqual([10, 3]);
    expect(cut.param('fc2.weight')!.shape).toEqual([3, 4]);
    expect(cut.param('mm.weight')!.shape).toEqual([3, 3]);
  });

  it('shifts a cut through a Concat to its offset', () => {
    const b = new GraphBuilder({ seed: 3 });
    const x = b.input('x', [null, 6, 6, 2]);
    const a = b.relu(b.conv(x, { filters: 4, kernel: 3, padding: 'same', name: 'ca' }));
    const c = b.relu(b.batchNorm(b.conv(x, { filters: 3, kernel: 1, name: 'cb' }), { name: 'bnb' }));
    let h = b.concat([a, c], -1, 'cat');
    h = b.batchNorm(h, { name: 'bn_cat' });
    h = b.conv(h, { filters: 5, kernel: 3, name: 'cc' });
    b.output(b.dense(b.flatten(b.globalAvgPool(h)), 3, { name: 'fc' }));
    const g = randomizeBnStats(b.build());
    const cut = checkCut(g, ['cb'], [0, 2], [2, 6, 6, 2]);
    expect(cut.param('cc.weight')!.shape).toEqual([3, 3, 6, 5]);
    expect(cut.param('bn_cat.gamma')!.shape).toEqual([6]);
    checkCut(g, ['ca'], [1, 3], [2, 6, 6, 2]);
  });

  it('removes whole channels of a depthwise consumer and follows its output', () => {
    const b = new GraphBuilder({ seed: 4 });
    let h = b.relu6(b.batchNorm(b.conv(b.input('x', [null, 6, 6, 3]), { filters: 6, kernel: 1, name: 'expand' }), { name: 'bn1' }));
    h = b.relu6(b.batchNorm(b.depthwiseConv(h, { kernel: 3, padding: 'same', multiplier: 2, name: 'dw' }), { name: 'bn2' }));
    h = b.conv(h, { filters: 4, kernel: 1, name: 'project' });
    b.output(b.dense(b.flatten(b.globalAvgPool(h)), 2, { name: 'fc' }));
    const g = randomizeBnStats(b.build());
    const cut = checkCut(g, ['expand'], [0, 2, 3, 5], [2, 6, 6, 3]);
    expect(cut.param('dw.weight')!.shape).toEqual([3, 3, 1, 8]);
    expect(cut.param('dw.bias')!.shape).toEqual([8]);
    expect(cut.requireNode('dw').attrs['group']).toBe(4);
    expect(cut.param('bn2.var')!.shape).toEqual([8]);
    expect(cut.param('project.weight')!.shape).toEqual([1, 1, 8, 4]);
  });

  it('cuts every producer of an Add group together', () => {
    const b = new GraphBuilder({ seed: 5 });
    const x = b.input('x', [null, 6, 6, 3]);
    const a = b.relu(b.batchNorm(b.conv(x, { filters: 6, kernel: 3, padding: 'same', name: 'ca' }), { name: 'bna' }));
    const c = b.batchNorm(b.conv(x, { filters: 6, kernel: 1, name: 'cb' }), { name: 'bnb' });
    let h = b.relu(b.add(a, c, 'add'));
    h = b.conv(h, { filters: 4, kernel: 3, name: 'cc' });
    b.output(b.dense(b.flatten(h), 2, { name: 'fc' }));
    const g = randomizeBnStats(b.build());
    const cut = checkCut(g, ['ca', 'cb'], [1, 2, 4], [2, 6, 6, 3]);
    expect(cut.param('cc.weight')!.shape).toEqual([3, 3, 3, 4]);
    const e = errorOf(() => cutChannels(g, { producers: ['ca'], keep: [1, 2, 4] }));
    expect(e.code).toBe('TRANSFORM_INVALID');
    expect(e.message).toMatch(/node "add" \(Add\).*"cb".*must be in the producers/);
    expect(channelDependencies(g, 'ca').producers).toEqual(['ca', 'cb']);
  });

  it('slices a constant operand of a join', () => {
    const b = new GraphBuilder({ seed: 6 });
    const x = b.input('x', [null, 4, 4, 2]);
    const h = b.conv(x, { filters: 5, kernel: 1, name: 'c' });
    const s = b.param('scale', [1, 1, 1, 5], 'glorot');
    const one = b.param('one', [1], 'ones');
    const m = b.node('Mul', [h, s], {}, { name: 'mul' })[0]!;
    const y = b.node('Mul', [m, one], {}, { name: 'mul1' })[0]!;
    b.output(b.dense(b.flatten(b.conv(y, { filters: 3, kernel: 1, name: 'c2' })), 2));
    const g = randomizeBnStats(b.build());
    const cut = checkCut(g, ['c'], [0, 3], [2, 4, 4, 2]);
    expect(cut.param('scale')!.shape).toEqual([1, 1, 1, 2]);
    expect(cut.param('one')!.shape).toEqual([1]);
  });

  it('drops input channels of a grouped Conv evenly per group', () => {
    const b = new GraphBuilder({ seed: 7 });
    let h = b.relu(b.conv(b.input('x', [null, 6, 6, 2]), { filters: 8, kernel: 3, padding: 'same', name: 'c1' }));
    h = b.conv(h, { filters: 6, kernel: 3, group: 2, name: 'g' });
    b.output(b.dense(b.flatten(b.globalAvgPool(h)), 2, { name: 'fc' }));
    const g = randomizeBnStats(b.build());
    const cut = checkCut(g, ['c1'], [0, 3, 5, 6], [2, 6, 6, 2]);
    expect(cut.param('g.weight')!.shape).toEqual([3, 3, 2, 6]);
    const e = errorOf(() => cutChannels(g, { producers: ['c1'], keep: [0, 1, 2, 5] }));
    expect(e.message).toMatch(/group=2.*\[3, 1\] per group/);
  });

  it('cuts grouped and depthwise producers evenly per group', () => {
    const b = new GraphBuilder({ seed: 8 });
    const x = b.input('x', [null, 6, 6, 4]);
    let h = b.relu(b.conv(x, { filters: 8, kernel: 3, group: 2, padding: 'same', name: 'g' }));
    h = b.relu(b.depthwiseConv(h, { kernel: 3, multiplier: 2, padding: 'same', name: 'dw' }));
    b.output(b.dense(b.flatten(b.conv(h, { filters: 3, kernel: 1, name: 'pw' })), 2, { name: 'fc' }));
    const g = randomizeBnStats(b.build());
    const cut = checkCut(g, ['g'], [0, 2, 5, 7], [2, 6, 6, 4]);
    expect(cut.param('g.weight')!.shape).toEqual([3, 3, 2, 4]);
    expect(cut.requireNode('dw').attrs['group']).toBe(4);
    expect(cut.param('pw.weight')!.shape).toEqual([1, 1, 8, 3]);
    // dw has 8 groups of 2 outputs: keep one of each pair.
    const cut2 = checkCut(g, ['dw'], [1, 2, 5, 7, 8, 10, 13, 15], [2, 6, 6, 4]);
    expect(cut2.param('dw.weight')!.shape).toEqual([3, 3, 1, 8]);
    expect(cut2.requireNode('dw').attrs['group']).toBe(8);
    expect(() => cutChannels(g, { producers: ['g'], keep: [0, 1, 2, 5] })).toThrowError(/group=2/);
    expect(() => cutChannels(g, { producers: ['dw'], keep: [0, 1, 2, 4] })).toThrowError(/group=8/);
  });

  it('cuts through a Reshape to [N, F] and rewrites its shape', () => {
    for (const shape of [
      [-1, 64],
      [0, -1],
    ]) {
      const b = new GraphBuilder({ seed: 9 });
      const h = b.relu(b.conv(b.input('x', [null, 6, 6, 2]), { filters: 4, kernel: 3, name: 'c' }));
      const r = b.node('Reshape', [h], { shape }, { name: 'reshape' })[0]!;
      b.output(b.dense(r, 3, { name: 'fc' }));
      const g = randomizeBnStats(b.build());
      const cut = checkCut(g, ['c'], [0, 1, 3], [2, 6, 6, 2], `reshape ${shape.join(',')}`);
      expect(cut.param('fc.weight')!.shape).toEqual([48, 3]);
      expect(cut.requireNode('reshape').attrs['shape']).toEqual(shape[1] === 64 ? [-1, 48] : [0, -1]);
    }
  });

  it('is a no-op when every channel is kept', () => {
    const g = referenceModels.mlp({ inputShape: [6], seed: 1 });
    expect(cutChannels(g, { producers: ['fc1'], keep: [...Array(256).keys()] })).toBe(g);
  });

  it('refuses graph outputs, channel-mixing ops and bad arguments', () => {
    const b = new GraphBuilder({ seed: 10 });
    const x = b.input('x', [null, 4, 4, 2]);
    const c1 = b.conv(x, { filters: 4, kernel: 1, name: 'c1' });
    const c2 = b.conv(x, { filters: 4, kernel: 1, name: 'c2' });
    const c3 = b.conv(x, { filters: 4, kernel: 1, name: 'c3' });
    const c4 = b.conv(x, { filters: 4, kernel: 1, name: 'c4' });
    const c5 = b.conv(x, { filters: 4, kernel: 1, name: 'c5' });
    const sm = b.node('Softmax', [c2], { axis: -1 }, { name: 'softmax' })[0]!;
    const tr = b.node('Transpose', [c3], { perm: [0, 3, 1, 2] }, { name: 'transpose' })[0]!;
    const pad = b.node('Pad', [c4], { pads: [0, 0, 0, 1, 0, 0, 0, 1] }, { name: 'pad' })[0]!;
    const rs = b.node('Reshape', [c5], { shape: [0, 8, 4, 2] }, { name: 'rs' })[0]!;
    b.output(b.relu(c1, 'out'), sm, tr, pad, rs);
    const g = b.build();
    const cut = (p: string, keep = [0, 2]): TensorpressError => errorOf(() => cutChannels(g, { producers: [p], keep }));
    expect(cut('c1').message).toMatch(/"out" \(Relu\).*graph output/);
    expect(cut('c2').message).toMatch(/"softmax".*channel axis/);
    expect(cut('c3').message).toMatch(/"transpose" \(Transpose\).*cannot drop channels/);
    expect(cut('c4').message).toMatch(/"pad".*pads the channel axis/);
    expect(cut('c5').message).toMatch(/"rs".*mixes channels/);
    expect(cut('c1').code).toBe('TRANSFORM_INVALID');
    expect(cut('out').message).toMatch(/only Conv, ConvTranspose and Gemm/);
    expect(cut('nope').message).toMatch(/no node/);
    expect(cut('c1', []).message).toMatch(/keep is empty/);
    expect(cut('c1', [2, 0]).message).toMatch(/sorted ascending/);
    expect(cut('c1', [0, 4]).message).toMatch(/\[0, 4\)/);
    expect(errorOf(() => cutChannels(g, { producers: ['c1', 'c1'], keep: [0] })).message).toMatch(/twice/);
  });

  it('refuses a weight shared with another node', () => {
    const b = new GraphBuilder({ seed: 11 });
    const x = b.input('x', [null, 4, 4, 3]);
    const h = b.relu(b.conv(x, { filters: 3, kernel: 1, name: 'c1' }));
    const w = b.param('shared.w', [1, 1, 3, 3], 'he');
    const y1 = b.node('Conv', [h, w], { kernel_shape: [1, 1] }, { name: 'u1' })[0]!;
    const y2 = b.node('Conv', [x, w], { kernel_shape: [1, 1] }, { name: 'u2' })[0]!;
    b.output(b.add(y1, y2));
    expect(() => cutChannels(b.build(), { producers: ['c1'], keep: [0, 1] })).toThrowError(/"shared.w" is shared with node "u2"/);
  });

  it('keeps eval outputs of the four reference models when removed channels contribute zero', () => {
    const shapes: Record<string, number[]> = { plainCnn: [10, 10, 1], residualCnn: [12, 12, 2], mobileNetCnn: [10, 10, 3], mlp: [12] };
    for (const [name, make] of Object.entries(referenceModels)) {
      const g = randomizeBnStats(make({ inputShape: shapes[name]!, seed: 2, width: 0.5 }), 31);
      const seen = new Set<string>();
      let cuts = 0;
      for (const n of g.nodes) {
        if ((n.op !== 'Conv' && n.op !== 'Gemm') || seen.has(n.name)) continue;
        const deps = channelDependencies(g, n.name);
        deps.producers.forEach((p) => seen.add(p));
        if (deps.blockers.length > 0) continue;
        const keep = [...Array(deps.channels).keys()].filter((c) => c % 3 !== 1);
        checkCut(g, [...deps.producers], keep, [2, ...shapes[name]!], `${name}: ${deps.producers.join('+')}`);
        cuts++;
      }
      expect(cuts, name).toBeGreaterThanOrEqual(2);
    }
  });
});

describe('channelDependencies', () => {
  it('groups the producers of residual joins and lists blockers', () => {
    const g = referenceModels.residualCnn({ inputShape: [12, 12, 1], seed: 1 });
    expect(channelDependencies(g, 'block1.conv2').producers).toEqual(['stem.conv', 'block1.conv2']);
    expect(channelDependencies(g, 'block2.down').producers).toEqual(['block2.conv2', 'block2.down']);
    const inner = channelDependencies(g, 'block2.conv1');
    expect(inner.producers).toEqual(['block2.conv1']);
    expect(inner.blockers).toEqual([]);
    expect(inner.steps.map((s) => `${s.node}:${s.role}`)).toEqual([
      'block2.conv1:producer',
      'block2.bn1:batchnorm',
      'block2.relu1:passthrough',
      'block2.conv2:consumer',
    ]);
    const fc = channelDependencies(g, 'fc');
    expect(fc.blockers[0]!.reason).toMatch(/graph output/);
  });

  it('reports depthwise producers and grouped consumers', () => {
    const g = referenceModels.mobileNetCnn({ inputShape: [10, 10, 3], seed: 1 });
    const dw = channelDependencies(g, 'ds1.dw');
    expect(dw.blockers[0]!.reason).toMatch(/single output channel/);
    const ds1 = channelDependencies(g, 'ds1.pw');
    expect(ds1.producers).toEqual(['ds1.pw', 'ir1.project']);
    expect(ds1.steps.filter((s) => s.role === 'depthwise').map((s) => s.node)).toEqual(['ds2.dw']);
    expect(ds1.blockers).toEqual([]);
  });
});

describe('cutChannels (as a layout rewrite)', () => {
  /** conv "c" + BN "bn" + relu -> conv "c2" -> output. */
  function convNet(): Graph {
    const b = new GraphBuilder({ seed: 2 });
    let h = b.conv(b.input('x', [null, 5, 5, 2]), { filters: 4, kernel: 3, padding: 'same', name: 'c' });
    h = b.relu(b.batchNorm(h, { name: 'bn' }), 'relu');
    b.output(b.conv(h, { filters: 3, kernel: 1, name: 'c2' }));
    return randomizeBnStats(b.build());
  }

  const double = (x: tf.Tensor): tf.Tensor => tf.mul(x, 2);

  it('cuts channels before folding BN and checks hooks against the final graph', () => {
    const g = convNet();
    const snap = snapshotParams(g);
    const cut = (producers: string[], keep: number[]) =>
      ({
        kind: 'rewrite',
        description: `cut channels of ${producers.map((p) => `"${p}"`).join(', ')}`,
        apply: (graph: Graph) => cutChannels(graph, { producers, keep }),
        algorithm: 'pruning',
        priority: PRIORITY.pruning,
      }) as const;
    const layout = new TransformationLayout()
      .add({ kind: 'fold-batchnorm', node: 'bn', algorithm: 'quantization', priority: PRIORITY.quantization })
      .add(cut(['c'], [0, 2, 3]))
      .addHook({ type: 'weight', node: 'c', input: 1 }, double, { algorithm: 'quantization', priority: PRIORITY.quantization, id: 'w' });
    const res = applyLayout(g, layout);
    expect(res.graph.node('bn')).toBeUndefined();
    expect(res.graph.param('c.weight')!.shape).toEqual([3, 3, 2, 3]);
    expect(res.graph.param('c2.weight')!.shape).toEqual([1, 1, 3, 3]);
    expect(snapshotParams(g)).toEqual(snap);

    const e = errorOf(() => applyLayout(g, new TransformationLayout().add(cut(['c2'], [0, 1]))));
    expect(e.code).toBe('TRANSFORM_INVALID');
    expect(e.message).toMatch(/^pruning: cannot cut channels of "c2": cannot cut output channels of "c2": .*graph output/);
    expect(e.details['algorithm']).toBe('pruning');
  });
});
