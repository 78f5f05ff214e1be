import * as tf from '@tensorflow/tfjs-core';
import {
  Executor,
  GraphBuilder,
  PRIORITY,
  runGraph,
  useBackend,
  type Graph,
  type Hook,
  type Node,
} from '@tensorpress/core-tensor';
import { errorOf, expectClose, expectNoLeak, seededArray, seededTensor, snapshotParams } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { TransformationLayout, applyLayout, removeNode, replaceNode, type Command } from '@tensorpress/core-tensor';

beforeAll(async () => {
  await useBackend('cpu');
});

/** x [N, 4] -> fc (Gemm 4x3) -> relu "r" -> dropout "drop" -> output. */
function mlp(): Graph {
  const b = new GraphBuilder({ seed: 1 });
  const x = b.input('x', [null, 4]);
  const h = b.relu(b.dense(x, 3, { name: 'fc' }), 'r');
  b.output(b.dropout(h, 0.3, 'drop'));
  return b.build();
}

/** conv "c" + BN "bn" + relu -> conv "c2" -> output. */
function convNet(): Graph {
  const b = new GraphBuilder({ seed: 2 });
  let h = b.conv(b.input('x', [null, 5, 5, 2]), { filters: 4, kernel: 3, padding: 'same', name: 'c' });
  h = b.relu(b.batchNorm(h, { name: 'bn' }), 'relu');
  b.output(b.conv(h, { filters: 3, kernel: 1, name: 'c2' }));
  const g = b.build();
  return g.withParams(
    new Map([
      ['bn.mean', { data: seededArray(4, 1, -0.5, 0.5) }],
      ['bn.var', { data: seededArray(4, 2, 0.5, 2) }],
      ['bn.gamma', { data: seededArray(4, 3, 0.5, 1.5) }],
      ['c2.bias', { data: seededArray(3, 4, -0.5, 0.5) }],
    ]),
  );
}

function run(graph: Graph, x: tf.Tensor, hooks: readonly Hook[] = []): Float32Array {
  const ex = new Executor(graph, { hooks });
  const [y] = ex.run(x);
  const d = y!.dataSync() as Float32Array;
  y!.dispose();
  ex.dispose();
  return d;
}

const double = (x: tf.Tensor): tf.Tensor => tf.mul(x, 2);
const plusOne = (x: tf.Tensor): tf.Tensor => tf.add(x, 1);

describe('TransformationLayout', () => {
  it('keeps commands in registration order and merges layouts', () => {
    const a = new TransformationLayout();
    a.addHook({ type: 'weight', node: 'fc', input: 1 }, double, { algorithm: 'quantization', priority: PRIORITY.quantization, id: 'w' });
    const b = new TransformationLayout().add({ kind: 'remove-node', node: 'drop', algorithm: 'pruning', priority: PRIORITY.pruning });
    expect(a.merge(b)).toBe(a);
    const cmds = a.commands();
    expect(cmds.map((c) => c.kind)).toEqual(['hook', 'remove-node']);
    expect(cmds[0]!.kind === 'hook' && cmds[0]!.hook.id).toBe('w');
    // commands() is a copy: callers cannot reorder the layout.
    (cmds as Command[]).pop();
    expect(a.commands()).toHaveLength(2);
    expect(b.commands()).toHaveLength(1);
  });

  it('rejects malformed commands', () => {
    const l = new TransformationLayout();
    expect(errorOf(() => l.add({ kind: 'remove-node', node: 'x', algorithm: '', priority: 1 })).code).toBe('TRANSFORM_INVALID');
    expect(() => l.add({ kind: 'remove-node', node: 'x', algorithm: 'a', priority: Number.NaN })).toThrowError(/finite/);
    const hook: Hook = { point: { type: 'input', name: 'x' }, fn: double, priority: 1, algorithm: 'a', id: 'h' };
    expect(() => l.add({ kind: 'hook', hook, algorithm: 'a', priority: 2 })).toThrowError(/priority/);
    expect(l.commands()).toHaveLength(0);
  });
});

describe('applyLayout', () => {
  it('returns the same graph and no hooks for an empty layout', () => {
    const g = mlp();
    const res = applyLayout(g, new TransformationLayout());
    expect(res.graph).toBe(g);
    expect(res.hooks).toEqual([]);
  });

  it('keeps hooks of two algorithms at one weight, lower priority first', async () => {
    const g = mlp();
    const layout = new TransformationLayout();
    const w = { type: 'weight', node: 'fc', input: 1 } as const;
    // Registered quantization first: priority, not registration, decides.
    layout.addHook(w, plusOne, { algorithm: 'quantization', priority: PRIORITY.quantization, id: 'fq' });
    layout.addHook({ type: 'post', node: 'r', output: 0 }, plusOne, { algorithm: 'quantization', priority: PRIORITY.quantization, id: 'act' });
    layout.addHook(w, double, { algorithm: 'sparsity', priority: PRIORITY.sparsity, id: 'mask' });
    layout.addHook({ type: 'input', name: 'x' }, double, { algorithm: 'sparsity', priority: PRIORITY.sparsity, id: 'in' });
    const res = applyLayout(g, layout);
    expect(res.graph).toBe(g);
    expect(res.hooks.map((h) => `${h.algorithm}/${h.id}`)).toEqual(['sparsity/mask', 'sparsity/in', 'quantization/fq', 'quantization/act']);

    const x = seededTensor([3, 4], 4);
    const got = await expectNoLeak(() => run(res.graph, x, res.hooks));
    // Reference: the weight becomes 2W + 1 (mask then fake-quant), the input 2x, relu output + 1.
    const wp = g.param('fc.weight')!;
    const w2 = Float32Array.from(wp.data as Float32Array, (v) => 2 * v + 1);
    const ref = g.withParams(new Map([['fc.weight', { data: w2 }]]));
    const x2 = tf.mul(x, 2);
    const [relu] = runGraph(ref, x2, { outputs: ['r'] });
    expectClose(got, tf.add(relu!, 1));
    tf.dispose([x, x2, relu!]);
  });

  it('applies structural commands by priority, stable within one priority', () => {
    const g = mlp();
    const clip: Node = { name: 'r', op: 'Clip', inputs: ['fc'], outputs: ['r'], attrs: { min: 0 } };
    const replace = { kind: 'replace-node', node: 'r', replacement: { nodes: [clip] } } as const;
    const remove = { kind: 'remove-node', node: 'r' } as const;
    // Removing first would leave nothing to replace: priority puts the replacement first.
    const ok = new TransformationLayout()
      .add({ ...remove, algorithm: 'b', priority: 300 })
      .add({ ...replace, algorithm: 'a', priority: 100 });
    const res = applyLayout(g, ok);
    expect(res.graph.node('r')).toBeUndefined();
    expect(res.graph.requireNode('drop').inputs).toEqual(['fc']);
    // Same priority: registration order.
    const same = new TransformationLayout().add({ ...replace, algorithm: 'a', priority: 100 }).add({ ...remove, algorithm: 'b', priority: 100 });
    expect(applyLayout(g, same).graph.node('r')).toBeUndefined();
    const wrong = new TransformationLayout().add({ ...remove, algorithm: 'b', priority: 100 }).add({ ...replace, algorithm: 'a', priority: 100 });
    const e = errorOf(() => applyLayout(g, wrong));
    expect(e.code).toBe('TRANSFORM_INVALID');
    expect(e.message).toMatch(/^a: cannot replace node "r": .*no node/);
    expect(e.details['algorithm']).toBe('a');
  });

  it('applies a rewrite in priority order, before folding BN, and checks hooks against the final graph', () => {
    const g = convNet();
    const snap = snapshotParams(g);
    let sawBn = false;
    const layout = new TransformationLayout()
      .add({ kind: 'fold-batchnorm', node: 'bn', algorithm: 'quantization', priority: PRIORITY.quantization })
      .add({
        kind: 'rewrite',
        description: 'bypass "relu"',
        algorithm: 'pruning',
        priority: PRIORITY.pruning,
        apply: (graph) => {
          sawBn = graph.node('bn') !== undefined;
          return removeNode(graph, 'relu');
        },
      })
      .addHook({ type: 'weight', node: 'c', input: 1 }, double, { algorithm: 'quantization', priority: PRIORITY.quantization, id: 'w' });
    const res = applyLayout(g, layout);
    expect(sawBn).toBe(true);
    expect(res.graph.node('bn')).toBeUndefined();
    expect(res.graph.node('relu')).toBeUndefined();
    expect(res.graph.requireNode('c2').inputs[0]).toBe(res.graph.requireNode('c').outputs[0]);
    expect(res.hooks.map((h) => h.id)).toEqual(['w']);
    expect(snapshotParams(g)).toEqual(snap);

    const failing = new TransformationLayout().add({
      kind: 'rewrite',
      description: 'cut channels of "c"',
      algorithm: 'pruning',
      priority: PRIORITY.pruning,
      apply: (graph) => removeNode(graph, 'missing'),
    });
    const f = errorOf(() => applyLayout(g, failing));
    expect(f.code).toBe('TRANSFORM_INVALID');
    expect(f.message).toMatch(/^pruning: cannot cut channels of "c": removing node "missing": no node/);
    expect(f.details['algorithm']).toBe('pruning');
    const noApply = { kind: 'rewrite', description: 'nothing', algorithm: 'pruning', priority: PRIORITY.pruning } as unknown as Command;
    expect(errorOf(() => new TransformationLayout().add(noApply)).message).toMatch(/^pruning: a rewrite command needs a description and an apply/);

    const bad = new TransformationLayout()
      .add({ kind: 'fold-batchnorm', node: 'bn', algorithm: 'quantization', priority: PRIORITY.quantization })
      .addHook({ type: 'post', node: 'bn', output: 0 }, double, { algorithm: 'sparsity', priority: PRIORITY.sparsity, id: 'bn-out' });
    const e = errorOf(() => applyLayout(g, bad));
    expect(e.code).toBe('TRANSFORM_INVALID');
    expect(e.message).toMatch(/^sparsity: hook "bn-out" at insertion point post:bn:0 names no node/);
  });

  it('rejects hook points that do not exist and reused hook ids', () => {
    const g = mlp();
    const cases: [Parameters<TransformationLayout['addHook']>[0], RegExp][] = [
      [{ type: 'input', name: 'y' }, /input:y names no graph input/],
      [{ type: 'weight', node: 'fc', input: 0 }, /weight:fc:0 input 0 of Gemm reads "x", which is not a parameter/],
      [{ type: 'pre', node: 'fc', input: 5 }, /Gemm has no input 5/],
      [{ type: 'post', node: 'r', output: 1 }, /Relu has no output 1/],
    ];
    for (const [point, re] of cases) {
      const l = new TransformationLayout().addHook(point, double, { algorithm: 'quantization', priority: 300, id: 'h' });
      const e = errorOf(() => applyLayout(g, l));
      expect(e.code).toBe('TRANSFORM_INVALID');
      expect(e.message).toMatch(/^quantization: /);
      expect(e.message).toMatch(re);
    }
    const dup = new TransformationLayout()
      .addHook({ type: 'input', name: 'x' }, double, { algorithm: 'q', priority: 300, id: 'h' })
      .addHook({ type: 'post', node: 'r', output: 0 }, double, { algorithm: 'q', priority: 300, id: 'h' });
    expect(() => applyLayout(g, dup)).toThrowError(/hook id "h" is used twice/);
  });
});

describe('replaceNode', () => {
  it('swaps a node for a subgraph with the same output names', () => {
    const g = convNet();
    const snap = snapshotParams(g);
    // c2 -> Conv with a new weight (the old one is dropped) followed by Mul by a scale.
    const w = g.param('c2.weight')!;
    const half = Float32Array.from(w.data as Float32Array, (v) => v / 2);
    const nodes: Node[] = [
      { name: 'c2', op: 'Conv', inputs: ['relu', 'c2.w_half', 'c2.bias'], outputs: ['c2.pre'], attrs: g.requireNode('c2').attrs },
      { name: 'c2.scale', op: 'Mul', inputs: ['c2.pre', 'two'], outputs: ['c2'], attrs: {} },
    ];
    const params = [
      { name: 'c2.w_half', shape: w.shape, dtype: 'float32' as const, data: half, trainable: true },
      { name: 'two', shape: [1], dtype: 'float32' as const, data: new Float32Array([2]), trainable: false },
    ];
    const r = replaceNode(g, 'c2', { nodes, params });
    expect(r.param('c2.weight')).toBeUndefined();
    expect(r.param('c2.bias')).toBeDefined();
    expect(r.outputs).toEqual(['c2']);
    const x = seededTensor([2, 5, 5, 2], 1);
    // 2 * (conv(x, W/2) + b) = conv(x, W) + 2b.
    const b2 = Float32Array.from(g.param('c2.bias')!.data as Float32Array, (v) => 2 * v);
    expectClose(run(r, x), run(g.withParams(new Map([['c2.bias', { data: b2 }]])), x), { atol: 1e-5, rtol: 1e-4 });
    expect(snapshotParams(g)).toEqual(snap);
    x.dispose();
  });

  it('lets a new parameter take the name of one only the old node read', () => {
    const g = mlp();
    const old = g.requireNode('fc');
    const w = g.param('fc.weight')!;
    const neg = Float32Array.from(w.data as Float32Array, (v) => -v);
    const r = replaceNode(g, 'fc', { nodes: [old], params: [{ ...w, data: neg }] });
    expect(r.param('fc.weight')!.data).toBe(neg);
    expect(g.param('fc.weight')!.data).not.toBe(neg);
  });

  it('refuses a replacement that drops an output, reads other activations or is invalid', () => {
    const g = convNet();
    const relu = g.requireNode('relu');
    expect(() => replaceNode(g, 'relu', { nodes: [{ ...relu, outputs: ['other'] }] })).toThrowError(/does not produce "relu"/);
    expect(() => replaceNode(g, 'relu', { nodes: [{ ...relu, inputs: ['c'] }] })).toThrowError(/reads "c", which is neither/);
    expect(() => replaceNode(g, 'nope', { nodes: [] })).toThrowError(/no node/);
    const e = errorOf(() => replaceNode(g, 'relu', { nodes: [{ ...relu, op: 'Gemm' }] }));
    expect(e.code).toBe('TRANSFORM_INVALID');
  });
});

describe('removeNode', () => {
  it('bypasses a node for its consumers and the graph outputs', () => {
    const g = mlp();
    const r = removeNode(g, 'drop');
    expect(r.outputs).toEqual(['r']);
    const x = seededTensor([2, 4], 3);
    expectClose(run(r, x), run(g, x));
    const r2 = removeNode(g, 'r');
    expect(r2.requireNode('drop').inputs).toEqual(['fc']);
    x.dispose();
  });

  it('drops the parameters only the removed node read', () => {
    const g = convNet();
    const r = removeNode(g, 'bn');
    expect(r.params.map((p) => p.name).filter((n) => n.startsWith('bn.'))).toEqual([]);
    expect(r.requireNode('relu').inputs).toEqual(['c']);
  });

  it('refuses nodes with several activation inputs', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [null, 3]);
    b.output(b.add(x, b.relu(x), 'add'));
    expect(() => removeNode(b.build(), 'add')).toThrowError(/this Add has 2 activation inputs and 1 outputs/);
  });
});
