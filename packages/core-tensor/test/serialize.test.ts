import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GraphBuilder, runGraph, type Graph, type Param } from '@tensorpress/core-tensor';
import { errorOf, rejectionOf, seededArray, seededTensor } from '@tensorpress/test-utils';
import { loadGraph, readGraph, saveGraph, writeGraph } from '@tensorpress/core-tensor';

let dir: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'tensorpress-serialize-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** conv, BN, relu, pool, dense, plus integer params behind a DequantizeLinear and an infinite Clip bound. */
function sampleGraph(seed = 1): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input('input', [null, 8, 8, 3]);
  let h = b.conv(x, { filters: 4, kernel: 3, padding: 'same', name: 'conv' });
  h = b.batchNorm(h, { name: 'bn' });
  h = b.relu(h, 'relu');
  h = b.maxPool(h, 2, { name: 'pool' });
  h = b.depthwiseConv(h, { kernel: 3, padding: [1, 0, 1, 2], name: 'dw' });
  h = b.flatten(h, 'flat');
  h = b.dense(h, 5, { name: 'fc' });
  b.output(h);
  const g = b.build();
  // Bit patterns JSON and float conversion would lose: a NaN payload, -0, a denormal.
  const fcBias = g.param('fc.bias')!;
  const biasBits = new Uint32Array(fcBias.data.length);
  biasBits.set([0x7fc00123, 0x80000000, 0x00000001, 0x3f800000, 0xff800000]);
  const codes: Param = { name: 'codes', shape: [2, 3], dtype: 'int8', data: Int8Array.from([-128, -1, 0, 1, 7, 127]), trainable: false };
  const scale: Param = { name: 'scale', shape: [3], dtype: 'float32', data: Float32Array.from(seededArray(3, seed + 9, 0.01, 0.1)), trainable: false };
  const zp: Param = { name: 'zp', shape: [3], dtype: 'int8', data: Int8Array.from([0, -3, 5]), trainable: false };
  const idx: Param = { name: 'table', shape: [3], dtype: 'int32', data: Int32Array.from([-2147483648, 0, 2147483647]), trainable: false };
  const u8: Param = { name: 'u8', shape: [1], dtype: 'uint8', data: Uint8Array.from([255]), trainable: false };
  return g.with({
    params: [...g.params.map((p) => (p.name === 'fc.bias' ? { ...p, data: new Float32Array(biasBits.buffer) } : p)), u8, codes, scale, zp, idx],
    nodes: [
      ...g.nodes,
      { name: 'clip', op: 'Clip', inputs: [h], outputs: ['clip'], attrs: { min: -Infinity, max: 3.5 } },
      { name: 'deq', op: 'DequantizeLinear', inputs: ['codes', 'scale', 'zp'], outputs: ['deq'], attrs: { axis: 1 } },
    ],
    outputs: ['clip', 'deq'],
  });
}

function bytesOf(p: Param): Uint8Array {
  return new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength);
}

function expectSameGraph(a: Graph, b: Graph): void {
  expect(b.inputs).toEqual(a.inputs);
  expect(b.outputs).toEqual(a.outputs);
  expect(b.nodes).toEqual(a.nodes);
  expect(b.params.map((p) => [p.name, p.dtype, p.shape, p.trainable, p.data.constructor])).toEqual(
    a.params.map((p) => [p.name, p.dtype, p.shape, p.trainable, p.data.constructor]),
  );
  a.params.forEach((p, i) => expect(bytesOf(b.params[i]!), p.name).toEqual(bytesOf(p)));
}

/** The parts of a saved graph's JSON the tests edit. */
interface Doc {
  version: number;
  outputs: string[];
  inputs: { shape: unknown[] }[];
  nodes: { name: string; op: string; inputs: string[]; attrs?: Record<string, unknown>; extra?: unknown }[];
  params: { name: string; dtype: string; shape: number[]; byteOffset: number; byteLength: number }[];
}

/** The saved JSON of the sample graph, edited. */
function edited(edit: (doc: Doc) => void): { json: string; weights: Uint8Array } {
  const saved = saveGraph(sampleGraph());
  const doc = JSON.parse(saved.json) as Doc;
  edit(doc);
  return { json: JSON.stringify(doc), weights: saved.weights };
}

describe('saveGraph', () => {
  test('round trip is bit-exact and runs the same', () => {
    const g = sampleGraph();
    const saved = saveGraph(g);
    const doc = JSON.parse(saved.json) as Doc;
    expect(doc).toMatchObject({ format: 'tensorpress.graph', version: 1, weightsByteLength: saved.weights.byteLength });
    expect(doc.nodes.find((n) => n.name === 'clip')!.attrs).toEqual({ min: { $float: '-Infinity' }, max: 3.5 });
    // Every parameter starts at a multiple of its element size.
    for (const p of doc.params) {
      expect(p.byteOffset % (p.dtype === 'float32' || p.dtype === 'int32' ? 4 : 1)).toBe(0);
    }
    const back = loadGraph(saved.json, saved.weights);
    expectSameGraph(g, back);
    expect(back.requireNode('clip').attrs['min']).toBe(-Infinity);
    // Saving the loaded graph gives the same bytes and JSON.
    const again = saveGraph(back);
    expect(again.json).toBe(saved.json);
    expect(again.weights).toEqual(saved.weights);
    // Loaded data is owned, not a view of the caller's buffer.
    expect(back.params[0]!.data.buffer).not.toBe(saved.weights.buffer);

    const x = seededTensor([2, 8, 8, 3], 3);
    const before = tf.memory().numTensors;
    const ya = runGraph(g, x);
    const yb = runGraph(back, x);
    ya.forEach((t, i) => expect(yb[i]!.dataSync()).toEqual(t.dataSync()));
    tf.dispose([...ya, ...yb]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  test('accepts an ArrayBuffer, an unaligned view and a parsed object', () => {
    const g = sampleGraph(2);
    const saved = saveGraph(g);
    expectSameGraph(g, loadGraph(saved.json, saved.weights.slice().buffer));
    const shifted = new Uint8Array(saved.weights.byteLength + 1);
    shifted.set(saved.weights, 1);
    expectSameGraph(g, loadGraph(JSON.parse(saved.json) as object, shifted.subarray(1)));
  });
});

describe('loadGraph', () => {
  test('truncated weights name the parameter and its byte range', () => {
    const g = sampleGraph();
    const saved = saveGraph(g);
    const doc = JSON.parse(saved.json) as { params: { name: string; byteOffset: number; byteLength: number }[] };
    const last = doc.params[doc.params.length - 1]!;
    const e = errorOf(() => loadGraph(saved.json, saved.weights.subarray(0, saved.weights.byteLength - 2)));
    expect(e.code).toBe('SAVED_GRAPH_INVALID');
    expect(e.message).toContain(`parameter "${last.name}" needs bytes ${last.byteOffset}..${last.byteOffset + last.byteLength}`);
    expect(e.message).toContain(`but the weights hold ${saved.weights.byteLength - 2} bytes`);
    expect(e.details).toMatchObject({ param: last.name, byteOffset: last.byteOffset, byteLength: last.byteLength });
    // Extra bytes: not this graph's weights.
    const longer = new Uint8Array(saved.weights.byteLength + 4);
    longer.set(saved.weights);
    expect(errorOf(() => loadGraph(saved.json, longer)).message).toMatch(/hold \d+ bytes but the graph declares \d+/);
  });

  test('damaged weights fail the checksum', () => {
    const saved = saveGraph(sampleGraph());
    const w = saved.weights.slice();
    w[10]! ^= 1;
    const e = errorOf(() => loadGraph(saved.json, w));
    expect(e.code).toBe('SAVED_GRAPH_INVALID');
    expect(e.message).toMatch(/checksum mismatch/);
  });

  test('malformed JSON gives the position', () => {
    const { weights } = saveGraph(sampleGraph());
    const text = '{\n "format": "tensorpress.graph",\n "version": 1,\n "inputs": [,]\n}';
    const e = errorOf(() => loadGraph(text, weights));
    expect(e.code).toBe('SAVED_GRAPH_INVALID');
    expect(e.message).toMatch(/malformed at line 4, column 13 \(position 61\)/);
    expect(text[61]).toBe(',');
    expect(e.details).toMatchObject({ position: 61, line: 4, column: 13 });
    expect(errorOf(() => loadGraph('{"format": "tensorpress.graph"', weights)).message).toMatch(/position 30\): expected ',' or '}'/);
    expect(errorOf(() => loadGraph('[1, 2] x', weights)).message).toMatch(/position 7\): unexpected data after the JSON value/);
    expect(errorOf(() => loadGraph('"abc', weights)).message).toMatch(/unterminated string/);
  });

  test('format and version are checked first', () => {
    const { weights } = saveGraph(sampleGraph());
    expect(errorOf(() => loadGraph('{"format": "onnx"}', weights)).message).toMatch(/\$\.format: not a tensorpress graph .*got "onnx"/);
    const newer = edited((d) => {
      d.version = 7;
    });
    expect(errorOf(() => loadGraph(newer.json, newer.weights)).message).toMatch(/format version 7; .* reads up to 1: upgrade/);
    expect(errorOf(() => loadGraph('[]', weights)).message).toMatch(/must be an object/);
  });

  test.each([
    ['wrong dtype', (d: Doc) => (d.params[0]!.dtype = 'float64'), /\$\.params\[0\]\.dtype: /],
    ['negative dim', (d: Doc) => (d.params[1]!.shape[0] = -3), /\$\.params\[1\]\.shape\[0\]: .*>=0/],
    ['fractional dim', (d: Doc) => (d.inputs[0]!.shape[1] = 2.5), /\$\.inputs\[0\]\.shape\[1\]: /],
    ['unsafe dim', (d: Doc) => (d.params[0]!.shape[0] = 1e300), /\$\.params\[0\]\.shape\[0\]: /],
    ['missing field', (d: Doc) => delete d.nodes[2]!.attrs, /\$\.nodes\[2\]\.attrs: /],
    ['unknown field', (d: Doc) => (d.nodes[0]!.extra = 1), /\$\.nodes\[0\]: .*extra/],
    ['bad attr', (d: Doc) => (d.nodes[0]!.attrs!['strides'] = [1, 'a']), /\$\.nodes\[0\]\.attrs\.strides: /],
    ['empty name', (d: Doc) => (d.params[0]!.name = ''), /\$\.params\[0\]\.name: /],
  ])('schema errors name the JSON path: %s', (_label, edit, message) => {
    const bad = edited(edit);
    const e = errorOf(() => loadGraph(bad.json, bad.weights));
    expect(e.code).toBe('SAVED_GRAPH_INVALID');
    expect(e.message).toMatch(message);
  });

  test('huge dims are refused before anything is allocated', () => {
    const bad = edited((d) => {
      d.params[0]!.shape = [2 ** 40, 2 ** 40];
    });
    const e = errorOf(() => loadGraph(bad.json, bad.weights));
    expect(e.code).toBe('SAVED_GRAPH_INVALID');
    expect(e.message).toMatch(/\$\.params\[0\]\.shape: parameter "conv\.weight" of shape \[1099511627776, 1099511627776\] is larger than the limit/);
    const small = saveGraph(sampleGraph());
    expect(errorOf(() => loadGraph(small.json, small.weights, { maxBytes: 100 })).message).toMatch(/larger than the limit of 100 bytes|more than the limit of 100 bytes/);
  });

  test('byte ranges must match the shape and alignment', () => {
    const len = edited((d) => {
      d.params[0]!.byteLength -= 4;
    });
    expect(errorOf(() => loadGraph(len.json, len.weights)).message).toMatch(/\$\.params\[0\]\.byteLength: parameter "conv\.weight" \(float32 \[3, 3, 3, 4\]\) needs 432 bytes, the file declares 428/);
    const off = edited((d) => {
      d.params[1]!.byteOffset += 2;
    });
    expect(errorOf(() => loadGraph(off.json, off.weights)).message).toMatch(/\$\.params\[1\]\.byteOffset: .* not aligned to its 4-byte elements/);
  });

  test('unknown ops and cycles are structural errors', () => {
    const unknown = edited((d) => {
      d.nodes[1]!.op = 'Frobnicate';
    });
    const e1 = errorOf(() => loadGraph(unknown.json, unknown.weights));
    expect(e1.code).toBe('UNKNOWN_OP');
    expect(e1.message).toMatch(/\$\.nodes\[1\]\.op: node "bn" has unknown op "Frobnicate"/);
    const cycle = edited((d) => {
      // conv reads relu's output: conv -> bn -> relu -> conv.
      d.nodes[0]!.inputs[0] = 'relu';
      d.inputs[0]!.shape = [null, 8, 8, 4];
    });
    const e2 = errorOf(() => loadGraph(cycle.json, cycle.weights));
    expect(e2.code).toBe('GRAPH_CYCLE');
    expect(e2.message).toMatch(/cycle: .*conv.*relu/);
    const dangling = edited((d) => {
      d.outputs = ['nowhere'];
    });
    expect(errorOf(() => loadGraph(dangling.json, dangling.weights)).code).toBe('GRAPH_DANGLING_EDGE');
  });
});

describe('writeGraph', () => {
  test('writes model.json and model.bin that readGraph loads bit-exactly, leaving no temp file', async () => {
    const g = sampleGraph(4);
    const sub = await mkdtemp(join(dir, 'rw-'));
    const files = await writeGraph(join(sub, 'model.json'), g);
    expect(files).toEqual({ jsonPath: join(sub, 'model.json'), weightsPath: join(sub, 'model.bin') });
    expect((await readdir(sub)).sort()).toEqual(['model.bin', 'model.json']);
    const saved = saveGraph(g);
    expect(await readFile(files.jsonPath, 'utf8')).toBe(saved.json);
    expect(new Uint8Array(await readFile(files.weightsPath))).toEqual(saved.weights);
    expectSameGraph(g, await readGraph(files.jsonPath));
    // A directory target holds graph.json and graph.bin.
    const d2 = await mkdtemp(join(dir, 'dir-'));
    await writeGraph(d2, g);
    expect((await readdir(d2)).sort()).toEqual(['graph.bin', 'graph.json']);
    expectSameGraph(g, await readGraph(d2));
  });

  test('never overwrites without the option', async () => {
    const sub = await mkdtemp(join(dir, 'ow-'));
    const target = join(sub, 'model.json');
    await writeGraph(target, sampleGraph(1));
    const before = await readFile(join(sub, 'model.bin'));
    const e = await rejectionOf(writeGraph(target, sampleGraph(2)));
    expect(e.code).toBe('IO_ERROR');
    expect(e.message).toMatch(/model\.bin already exists: pass \{ overwrite: true \}/);
    expect(await readFile(join(sub, 'model.bin'))).toEqual(before);
    expect((await readdir(sub)).sort()).toEqual(['model.bin', 'model.json']);
    // Only the JSON exists: still refused, and the weights are not written either.
    const lone = join(sub, 'lone.json');
    await writeFile(lone, 'keep me');
    expect((await rejectionOf(writeGraph(lone, sampleGraph(2)))).message).toMatch(/lone\.json already exists/);
    expect(await readFile(lone, 'utf8')).toBe('keep me');
    expect((await readdir(sub)).sort()).toEqual(['lone.json', 'model.bin', 'model.json']);
    await writeGraph(target, sampleGraph(2), { overwrite: true });
    expectSameGraph(sampleGraph(2), await readGraph(target));
    expect((await readdir(sub)).sort()).toEqual(['lone.json', 'model.bin', 'model.json']);
  });

  test('a missing directory is an error and leaves nothing behind', async () => {
    const sub = await mkdtemp(join(dir, 'missing-'));
    const e = await rejectionOf(writeGraph(join(sub, 'nope', 'model.json'), sampleGraph()));
    expect(e.code).toBe('IO_ERROR');
    expect(e.message).toMatch(/cannot write .*nope.*model\.bin: the file or its directory does not exist/);
    expect(await readdir(sub)).toEqual([]);
    const e2 = await rejectionOf(writeGraph(join(sub, 'nodir'), sampleGraph()));
    expect(e2.code).toBe('IO_ERROR');
    expect(await readdir(sub)).toEqual([]);
  });
});

describe('readGraph', () => {
  test('a truncated weights file names the file, the parameter and the byte range', async () => {
    const sub = await mkdtemp(join(dir, 'trunc-'));
    const files = await writeGraph(join(sub, 'm.json'), sampleGraph());
    const bytes = await readFile(files.weightsPath);
    await writeFile(files.weightsPath, bytes.subarray(0, 100));
    const e = await rejectionOf(readGraph(files.jsonPath));
    expect(e.code).toBe('SAVED_GRAPH_INVALID');
    expect(e.message).toMatch(/m\.json: weights truncated: parameter "conv\.weight" needs bytes 0\.\.432 \(432 bytes at offset 0\) but the weights hold 100 bytes/);
    expect((await stat(files.jsonPath)).isFile()).toBe(true);
  });

  test('missing files are IO errors', async () => {
    const e = await rejectionOf(readGraph(join(dir, 'absent.json')));
    expect(e.code).toBe('IO_ERROR');
    expect(e.message).toMatch(/cannot read .*absent\.json: the file or its directory does not exist/);
    const sub = await mkdtemp(join(dir, 'nobin-'));
    const files = await writeGraph(join(sub, 'm.json'), sampleGraph());
    await rm(files.weightsPath);
    const e2 = await rejectionOf(readGraph(files.jsonPath));
    expect(e2.code).toBe('IO_ERROR');
    expect(e2.message).toMatch(/cannot read .*m\.bin/);
  });
});
