/** Ops the executor cannot run are kept verbatim: the graph reads, writes back unchanged and runs in onnxruntime. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { Executor, useBackend } from '@tensorpress/core-tensor';
import { fromOnnx, toOnnx } from '@tensorpress/export-onnx';
import { errorOf, seededArray } from '@tensorpress/test-utils';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { f32, i64, node, onnxModel, ortRun } from './helpers/onnx-builder.js';

const { onnx } = onnxProto;

beforeAll(async () => {
  await useBackend('cpu');
});

const DIMS = [1, 3, 6, 6];
const KEEP = { unsupportedOps: 'keep' } as const;

function model(valueInfo: boolean): Uint8Array {
  const bytes = onnxModel({
    input: DIMS,
    inits: [f32('w', [4, 3, 3, 3], Array.from(seededArray(108, 1, 0.5))), i64('axis', [2], []), f32('k', [], [2])],
    nodes: [
      node('Conv', ['x', 'w'], ['c'], { pads: { ints: [1, 1, 1, 1] } }),
      node('CumSum', ['c', 'axis'], ['cs'], { reverse: { i: 1 } }),
      node('Hardmax', ['cs'], ['h'], { axis: { i: 1 } }),
      node('Mul', ['h', 'k'], ['m']),
      node('Relu', ['m'], ['y']),
    ],
  });
  if (!valueInfo) return bytes;
  const m = onnx.ModelProto.decode(bytes);
  const info = (name: string): onnxProto.onnx.IValueInfoProto => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [1, 4, 6, 6].map((d) => ({ dimValue: d })) } } } });
  m.graph!.valueInfo = [info('cs'), info('h')];
  return onnx.ModelProto.encode(m).finish();
}

describe('nodes of ops the executor cannot run', () => {
  it.each([false, true])('are kept verbatim and written back unchanged (value_info %s)', async (valueInfo) => {
    const bytes = model(valueInfo);
    const g = fromOnnx(bytes, KEEP);
    const kept = g.nodes.filter((n) => n.op === 'OnnxNode').map((n) => n.attrs['onnxOp']);
    // Without value_info the readers of an unknown shape are kept too; with it, Mul and Relu are core ops again.
    expect(kept).toEqual(valueInfo ? ['CumSum', 'Hardmax'] : ['CumSum', 'Hardmax', 'Mul', 'Relu']);
    const written = toOnnx(g);
    const m = onnx.ModelProto.decode(written);
    const cumsum = m.graph!.node!.find((n) => n.opType === 'CumSum')!;
    expect(cumsum.attribute!.map((a) => [a.name, Number(a.i)])).toEqual([['reverse', 1]]);
    const axis = m.graph!.initializer!.find((t) => t.name === cumsum.input![1])!;
    expect(axis.dataType).toBe(7);
    expect(Array.from(new BigInt64Array(new Uint8Array(axis.rawData!).slice().buffer), Number)).toEqual([2]);
    const x = seededArray(DIMS.reduce((p, d) => p * d, 1), 5, 1);
    const want = await ortRun(bytes, x, DIMS);
    const got = await ortRun(written, x, DIMS);
    if (typeof want === 'string' || typeof got === 'string') throw new Error(String(typeof want === 'string' ? want : got));
    expect(got.length).toBe(want.length);
    expect(Math.max(...Array.from(got, (v, k) => Math.abs(v - want[k]!)))).toBeLessThan(1e-5);
    // Read again, it is the same graph.
    expect(fromOnnx(written, KEEP).nodes.filter((n) => n.op === 'OnnxNode').length).toBe(kept.length);
  });

  it('running or training the graph raises a typed error naming the node, the op and the way around', () => {
    const g = fromOnnx(model(true), KEEP);
    const ex = new Executor(g);
    const x = tf.zeros([1, 6, 6, 3]);
    const e = errorOf(() => ex.run(x));
    expect(e.code).toBe('UNSUPPORTED_OP');
    expect(e.message).toMatch(/node "cumsum" \(ONNX CumSum\) cannot run in tensorpress/);
    expect(e.message).toMatch(/toOnnx.*onnxruntime/);
    expect(errorOf(() => tf.grad((t: tf.Tensor) => tf.sum(ex.run(t)[0]!))(x)).code).toBe('UNSUPPORTED_OP');
    ex.dispose();
    x.dispose();
  });

  it('forms of known ops the executor lacks (cubic Resize, Slice with a step) are kept too', async () => {
    const bytes = onnxModel({
      input: DIMS,
      inits: [f32('sc', [4], [1, 1, 2, 2]), i64('st', [0]), i64('en', [12]), i64('ax', [3]), i64('step', [2])],
      nodes: [
        node('Resize', ['x', '', 'sc'], ['r'], { mode: { s: 'cubic' } }),
        node('Slice', ['r', 'st', 'en', 'ax', 'step'], ['s']),
        node('Relu', ['s'], ['y']),
      ],
    });
    expect(errorOf(() => fromOnnx(bytes)).message).toMatch(/"resize" \(Resize: mode "cubic" is not supported/);
    const g = fromOnnx(bytes, KEEP);
    expect(g.nodes.filter((n) => n.op === 'OnnxNode').map((n) => n.attrs['onnxOp'])).toEqual(['Resize', 'Slice', 'Relu']);
    const x = seededArray(DIMS.reduce((p, d) => p * d, 1), 6, 1);
    const want = await ortRun(bytes, x, DIMS);
    const got = await ortRun(toOnnx(g), x, DIMS);
    if (typeof want === 'string' || typeof got === 'string') throw new Error(String(typeof want === 'string' ? want : got));
    expect(Math.max(...Array.from(got, (v, j) => Math.abs(v - want[j]!)))).toBeLessThan(1e-6);
  });

  it("by default (unsupportedOps: 'error') the file is refused, listing every such node", () => {
    const e = errorOf(() => fromOnnx(model(true)));
    expect(e.code).toBe('ONNX_UNSUPPORTED');
    expect(e.message).toMatch(/2 node\(s\).*"cumsum" \(CumSum: no core equivalent\).*"hardmax" \(Hardmax/);
  });

  it('a torch fixture with three Relus replaced by an unknown op reads, writes back and matches onnxruntime', async () => {
    const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
    const m = onnx.ModelProto.decode(new Uint8Array(readFileSync(path.join(dir, 'resnet-tiny.onnx'))));
    let k = 0;
    for (const n of m.graph!.node!) if (n.opType === 'Relu' && k++ < 3) n.opType = 'Softsign';
    const bytes = onnx.ModelProto.encode(m).finish();
    const g = fromOnnx(bytes, KEEP);
    expect(g.nodes.filter((n) => n.op === 'OnnxNode').length).toBeGreaterThanOrEqual(3);
    const dims = [2, 3, 32, 32];
    const x = seededArray(2 * 3 * 32 * 32, 8, 1);
    const want = await ortRun(bytes, x, dims);
    const got = await ortRun(toOnnx(g), x, dims);
    if (typeof want === 'string' || typeof got === 'string') throw new Error(String(typeof want === 'string' ? want : got));
    expect(Math.max(...Array.from(got, (v, j) => Math.abs(v - want[j]!)))).toBeLessThan(1e-4);
  });
});
