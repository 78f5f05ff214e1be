import { GraphBuilder, scopeFilter, useBackend, type Graph } from '@tensorpress/core-tensor';
import { mobileNetCnn, plainCnn, residualCnn } from '@tensorpress/models';
import { AGNOSTIC_OPS, POOL_OPS, UNIFIED_OPS, WEIGHT_OPS, placeQuantizers, type Placement } from '@tensorpress/quant';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const small = { inputShape: [8, 8, 1], width: 0.25, numClasses: 3 } as const;

/** The value a quantizer for `v` must sit on: up through single-consumer agnostic ops. */
function sourceOf(graph: Graph, v: string): string {
  let cur = v;
  for (;;) {
    const p = graph.producer(cur);
    if (!p || !AGNOSTIC_OPS.has(p.node.op)) return cur;
    const up = p.node.inputs[0]!;
    if (graph.consumers(up).length !== 1 || graph.outputs.includes(up)) return cur;
    cur = up;
  }
}

/** Checks the invariants every placement must satisfy on a graph with everything in scope. */
function checkInvariants(graph: Graph, pl: Placement): void {
  // one weight quantizer per Conv/Gemm/MatMul weight
  const weightNodes = graph.nodes.filter((n) => WEIGHT_OPS.has(n.op) && graph.isParam(n.inputs[1]!));
  expect(pl.weights.map((w) => w.node).sort()).toEqual(weightNodes.map((n) => n.name).sort());
  for (const w of pl.weights) {
    const node = graph.requireNode(w.node);
    expect(w.param).toBe(node.inputs[1]);
    expect(w.id).toBe(`${w.node}.w`);
    expect(w.axis).toBe(node.op === 'Conv' ? 3 : 1);
    expect(w.channels).toBe(graph.param(w.param)!.shape[w.axis]);
  }
  // one quantizer per value: no value in two placements
  const owner = new Map<string, string>();
  for (const a of pl.activations) {
    expect(a.points.length).toBe(a.values.length);
    for (const v of a.values) {
      expect(owner.has(v), `value ${v} quantized twice`).toBe(false);
      owner.set(v, a.id);
      expect(graph.outputs.includes(v), `graph output ${v} quantized`).toBe(false);
    }
    expect(a.id).toBe(`act:${a.values[0]}`);
  }
  // every activation input of a quantized op is covered exactly once, by the quantizer of its source
  for (const n of graph.nodes) {
    if (!WEIGHT_OPS.has(n.op) && !UNIFIED_OPS.has(n.op)) continue;
    const acts = n.inputs.filter((v, i) => v && !graph.isParam(v) && (WEIGHT_OPS.has(n.op) ? i === 0 : true));
    const ids = new Set<string>();
    for (const v of acts) {
      const src = sourceOf(graph, v);
      const id = owner.get(src);
      expect(id, `input ${v} of ${n.name} (source ${src}) not quantized`).toBeDefined();
      const a = pl.activations.find((x) => x.id === id)!;
      expect(a.consumers).toContain(n.name);
      if (src !== v) expect(a.carriers).toContain(v);
      ids.add(id!);
    }
    // Add / Concat: one unified quantizer for all inputs
    if (UNIFIED_OPS.has(n.op)) expect(ids.size).toBe(1);
  }
  // one hook per value: on the graph input, or after the producer of the value or of one of its
  // carriers (a monotonic quantizer commutes with MaxPool/Flatten, so either place is exact)
  for (const a of pl.activations) {
    a.values.forEach((v, i) => {
      const p = a.points[i]!;
      if (graph.inputs.some((x) => x.name === v) && a.carriers.length === 0) expect(p).toEqual({ type: 'input', name: v });
      else {
        const allowed = [v, ...a.carriers].filter((c) => graph.producer(c)).map((c) => ({ type: 'post', node: graph.producer(c)!.node.name, output: 0 }));
        expect(allowed).toContainEqual(p);
      }
    });
  }
  expect(pl.skipped).toEqual([]);
}

describe('placeQuantizers', () => {
  it('plainCnn: weights, inputs, carriers through MaxPool and Flatten', () => {
    const g = plainCnn(small);
    const pl = placeQuantizers(g);
    checkInvariants(g, pl);
    expect(pl.weights.map((w) => w.node)).toEqual(['conv1', 'conv2', 'conv3', 'fc1', 'fc2']);
    const byValue = (v: string) => pl.activations.find((a) => a.values.includes(v));
    expect(byValue('input')!.points).toEqual([{ type: 'input', name: 'input' }]);
    // conv2 reads pool1 = MaxPool(relu1): the quantizer moves up to relu1, pool1 is a carrier
    const pool1 = g.requireNode('conv2').inputs[0]!;
    const relu1 = g.producer(pool1)!.node.inputs[0]!;
    expect(byValue(pool1)).toBeUndefined();
    expect(byValue(relu1)!.carriers).toEqual([pool1]);
    expect(byValue(relu1)!.consumers).toEqual(['conv2']);
    // fc1 reads flatten(pool3(relu3)): two carriers
    const flat = g.requireNode('fc1').inputs[0]!;
    const pool3 = g.producer(flat)!.node.inputs[0]!;
    const relu3 = g.producer(pool3)!.node.inputs[0]!;
    expect(byValue(relu3)!.carriers).toEqual([flat, pool3]);
    // calibration observes what each hook rounds: the bottom of the chain (the value the Conv/Gemm reads)
    expect(byValue(relu1)!.observed).toEqual([pool1]);
    expect(byValue(relu3)!.observed).toEqual([flat]);
    expect(byValue('input')!.observed).toEqual(['input']);
    // 5 quantized ops read 5 distinct values
    expect(pl.activations.length).toBe(5);
  });

  it('residualCnn: Add inputs share one unified quantizer; one quantizer for a value read twice', () => {
    const g = residualCnn(small);
    const pl = placeQuantizers(g);
    checkInvariants(g, pl);
    expect(pl.weights.length).toBe(g.nodes.filter((n) => n.op === 'Conv' || n.op === 'Gemm').length);
    // block1: the block input (stem.pool, read by conv1 and by the add) is one quantizer shared with bn2's output
    const add = g.requireNode('block1.add');
    const owners = add.inputs.map((v) => pl.activations.find((a) => a.values.includes(sourceOf(g, v)))!);
    expect(owners[0]).toBe(owners[1]);
    expect(owners[0]!.values.length).toBe(2);
    expect(owners[0]!.consumers).toEqual(expect.arrayContaining(['block1.conv1', 'block1.add']));
    // block2: conv1 and the down-sampling shortcut read the same value: one quantizer, two consumers
    const x2 = g.requireNode('block2.conv1').inputs[0]!;
    expect(g.requireNode('block2.down').inputs[0]).toBe(x2);
    const q2 = pl.activations.find((a) => a.values.includes(x2))!;
    expect(q2.consumers).toEqual(expect.arrayContaining(['block2.conv1', 'block2.down']));
    // the Add output feeds only Relu: the relu output is what the next block reads
    expect(pl.activations.some((a) => a.values.includes(add.outputs[0]!))).toBe(false);
  });

  it('mobileNetCnn: depthwise convs are weight ops; the inverted residual Add unifies its inputs', () => {
    const g = mobileNetCnn(small);
    const pl = placeQuantizers(g);
    checkInvariants(g, pl);
    expect(pl.weights.find((w) => w.node === 'ir1.dw')).toBeDefined();
    const add = g.requireNode('ir1.add');
    const a = pl.activations.find((x) => x.values.includes(add.inputs[0]!))!;
    expect(a.values).toEqual(expect.arrayContaining([add.inputs[0], add.inputs[1]]));
  });

  it('Concat inputs are unified, even when they are also read by convs', () => {
    const b = new GraphBuilder({ seed: 1 });
    const x = b.input('x', [null, 4, 4, 2]);
    const c1 = b.relu(b.conv(x, { filters: 2, kernel: 1, name: 'c1' }), 'r1');
    const c2 = b.relu(b.conv(x, { filters: 3, kernel: 1, name: 'c2' }), 'r2');
    const c3 = b.conv(c2, { filters: 2, kernel: 1, name: 'c3' });
    const cat = b.concat([c1, c2, c3], -1, 'cat');
    b.output(b.conv(cat, { filters: 1, kernel: 1, name: 'head' }));
    const g = b.build();
    const pl = placeQuantizers(g);
    checkInvariants(g, pl);
    const u = pl.activations.find((a) => a.values.includes(c1))!;
    expect([...u.values].sort()).toEqual([c1, c2, c3].sort());
    expect(u.consumers).toEqual(expect.arrayContaining(['cat', 'c3']));
    // x is read by two convs: one quantizer
    const qx = pl.activations.filter((a) => a.values.includes(x));
    expect(qx.length).toBe(1);
    expect(qx[0]!.consumers).toEqual(['c1', 'c2']);
  });

  it('never quantizes a graph output, even when a conv also reads it', () => {
    const b = new GraphBuilder({ seed: 2 });
    const x = b.input('x', [null, 4, 4, 1]);
    const r = b.relu(b.conv(x, { filters: 2, kernel: 1, name: 'c1' }), 'r');
    const y = b.conv(r, { filters: 2, kernel: 1, name: 'c2' });
    b.output(r, y);
    const g = b.build();
    const pl = placeQuantizers(g);
    expect(pl.activations.map((a) => a.values)).toEqual([[x]]);
    expect(pl.weights.map((w) => w.node)).toEqual(['c1', 'c2']);
  });

  it('does not move through an agnostic op whose input has other consumers', () => {
    const b = new GraphBuilder({ seed: 3 });
    const x = b.input('x', [null, 4, 4, 1]);
    const r = b.relu(b.conv(x, { filters: 2, kernel: 1, name: 'c1' }), 'r');
    const p = b.maxPool(r, 2, { name: 'pool' });
    const f = b.flatten(p, 'flat');
    const f2 = b.flatten(r, 'flat_r');
    const y1 = b.dense(f, 2, { name: 'fc1' });
    const y2 = b.dense(f2, 2, { name: 'fc2' });
    b.output(b.add(y1, y2, 'sum'));
    const g = b.build();
    const pl = placeQuantizers(g);
    // r has two consumers (pool, flat_r): the quantizers stay on pool's and flat_r's outputs
    const a1 = pl.activations.find((a) => a.consumers.includes('fc1'))!;
    expect(a1.values).toEqual([p]);
    expect(a1.carriers).toEqual([f]);
    const a2 = pl.activations.find((a) => a.consumers.includes('fc2'))!;
    expect(a2.values).toEqual([f2]);
    expect(a2.carriers).toEqual([]);
    expect(pl.activations.some((a) => a.values.includes(r))).toBe(false);
    // the Add before the output: its inputs (Gemm outputs) share one quantizer
    const s = pl.activations.find((a) => a.consumers.includes('sum'))!;
    expect([...s.values].sort()).toEqual([y1, y2].sort());
  });

  it('MatMul with two activations quantizes both inputs and has no weight', () => {
    const b = new GraphBuilder({ seed: 4 });
    const x = b.input('x', [null, 3, 4]);
    const t = b.node('Transpose', [x], { perm: [0, 2, 1] }, { name: 't' })[0]!;
    const r = b.relu(x, 'r');
    const m = b.node('MatMul', [r, t], {}, { name: 'mm' })[0]!;
    b.output(m);
    const g = b.build();
    const pl = placeQuantizers(g);
    expect(pl.weights).toEqual([]);
    expect(pl.activations.flatMap((a) => a.consumers)).toEqual(['mm', 'mm']);
    expect(pl.activations.map((a) => a.values[0])).toEqual([r, t]);
  });

  it('ignoredScopes (names and {re} regexes) put nodes into skipped with a reason', () => {
    const g = residualCnn(small);
    const pl = placeQuantizers(g, { inScope: scopeFilter({ ignoredScopes: ['{re}block2\\..*', 'fc'] }) });
    const skippedNodes = pl.skipped.map((s) => s.node).sort();
    expect(skippedNodes).toEqual(['block2.add', 'block2.conv1', 'block2.conv2', 'block2.down', 'fc'].sort());
    for (const s of pl.skipped) {
      expect(s.reason).toContain('ignoredScopes');
      expect(s.op).toBe(g.requireNode(s.node).op);
    }
    expect(pl.weights.some((w) => w.node.startsWith('block2.') || w.node === 'fc')).toBe(false);
    expect(pl.activations.some((a) => a.consumers.some((c) => c.startsWith('block2.') || c === 'fc'))).toBe(false);
    // targetScopes restrict to the named nodes
    const only = placeQuantizers(g, { inScope: scopeFilter({ targetScopes: ['stem.conv'] }) });
    expect(only.weights.map((w) => w.node)).toEqual(['stem.conv']);
    expect(only.skipped.length).toBe(g.nodes.filter((n) => WEIGHT_OPS.has(n.op) || UNIFIED_OPS.has(n.op) || POOL_OPS.has(n.op)).length - 1);
  });

  it('options: weights only, inputs left in float, no unified scales, a custom op set', () => {
    const g = residualCnn(small);
    expect(placeQuantizers(g, { activations: false }).activations).toEqual([]);
    const noIn = placeQuantizers(g, { quantizeInputs: false });
    expect(noIn.activations.some((a) => a.values.includes('input'))).toBe(false);
    const split = placeQuantizers(g, { unifiedScales: 'none' });
    expect(split.activations.every((a) => a.values.length === 1)).toBe(true);
    // 'concat': Add inputs keep their own quantizers (the stem's ReLU output stays apart from block1's conv2)
    expect(placeQuantizers(g, { unifiedScales: 'concat' }).activations.every((a) => a.values.length === 1)).toBe(true);
    expect(placeQuantizers(g).activations.some((a) => a.values.length > 1)).toBe(true);
    // average pools read quantized values (QLinearGlobalAveragePool in onnxruntime)
    const gap = g.nodes.find((n) => n.op === 'GlobalAveragePool')!;
    expect(placeQuantizers(g).activations.find((a) => a.consumers.includes(gap.name))?.values).toEqual([gap.inputs[0]]);
    const gemmOnly = placeQuantizers(g, { activationOps: new Set(['Gemm']) });
    expect(gemmOnly.activations.flatMap((a) => a.consumers)).toEqual(['fc']);
    // the gap → flatten chain feeding fc: the quantizer sits on the GlobalAveragePool output, flatten is a carrier
    const fcIn = g.requireNode('fc').inputs[0]!;
    expect(gemmOnly.activations[0]!.carriers).toEqual([fcIn]);
  });

  it('skips a weight op whose weight is computed by the graph, with the reason', () => {
    const b = new GraphBuilder({ seed: 5 });
    const x = b.input('x', [null, 3]);
    const w = b.param('w', [3, 2], 'glorot');
    const wr = b.relu(w, 'wr');
    b.output(b.node('Gemm', [x, wr], {}, { name: 'g' })[0]!);
    const pl = placeQuantizers(b.build());
    expect(pl.weights).toEqual([]);
    expect(pl.skipped).toEqual([{ node: 'g', op: 'Gemm', reason: expect.stringContaining('computed by the graph') }]);
  });
});
