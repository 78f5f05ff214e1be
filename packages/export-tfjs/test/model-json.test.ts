import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type * as tfl from '@tensorflow/tfjs-layers';
import { ConfigError, GraphBuilder, runGraph, type Graph } from '@tensorpress/core-tensor';
import {
  DEFAULT_SHARD_BYTES,
  exportLayersArtifacts,
  fromTfjsModel,
  readTfjsArtifacts,
  readTfjsModel,
  tfjsArtifacts,
  toTfjsModel,
  writeTfjsModel,
  type TfjsModelFiles,
} from '@tensorpress/export-tfjs';
import { expectClose, seededTensor } from '@tensorpress/test-utils';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

let L: typeof tfl;
let tmp: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  L = await import('@tensorflow/tfjs-layers');
  tmp = await mkdtemp(path.join(os.tmpdir(), 'export-tfjs-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A small CNN with BN statistics that are not the identity. */
function cnn(seed: number): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input('image', [null, 8, 8, 2]);
  let h = b.conv(x, { filters: 6, kernel: 3, padding: 'same', name: 'conv' });
  h = b.batchNorm(h, { name: 'bn' });
  h = b.relu(h, 'relu');
  h = b.maxPool(h, 2, { name: 'pool' });
  b.output(b.dense(b.flatten(h, 'flat'), 4, { name: 'fc' }));
  const g = b.build();
  return g.withParams(new Map([['bn.var', { data: Float32Array.from([0.5, 2, 1, 1.5, 0.7, 3]) }]]));
}

/** tfjs's in-memory loader over the files, as its http and file loaders concatenate them. */
async function load(files: TfjsModelFiles): Promise<tfl.LayersModel> {
  return L.loadLayersModel(tf.io.fromMemory(tfjsArtifacts(files.modelJson, files.shards.map((s) => s.data))));
}

function expectPredicts(model: tfl.LayersModel, graph: Graph, atol: number): void {
  const x = seededTensor([3, ...(graph.inputs[0]!.shape.slice(1) as number[])], 5, -2, 2);
  const [want] = runGraph(graph, x);
  const got = model.predict(x) as tf.Tensor;
  expectClose(got, want!, { atol, rtol: 0 });
  tf.dispose([x, want!, got]);
}

describe('toTfjsModel', () => {
  test('model.json and shards of at most shardBytes, named as tfjs-converter names them', async () => {
    const g = cnn(1);
    const files = toTfjsModel(g, { shardBytes: 300 });
    const artifacts = exportLayersArtifacts(g);
    const total = artifacts.weightData.byteLength;
    const n = Math.ceil(total / 300);
    expect(files.shards.map((s) => s.path)).toEqual(Array.from({ length: n }, (_, i) => `group1-shard${i + 1}of${n}.bin`));
    expect(files.shards.every((s) => s.data.byteLength <= 300)).toBe(true);
    const joined = new Uint8Array(total);
    let off = 0;
    for (const s of files.shards) {
      joined.set(s.data, off);
      off += s.data.byteLength;
    }
    expect(joined).toEqual(new Uint8Array(artifacts.weightData));
    expect(files.modelJson).toMatchObject({ format: 'layers-model', generatedBy: '@tensorpress/export-tfjs', convertedBy: null });
    expect(files.modelJson.weightsManifest).toEqual([{ paths: files.shards.map((s) => s.path), weights: artifacts.weightSpecs }]);
    const m = await load(files);
    expectPredicts(m, g, 1e-4);
    m.dispose();
  });

  test('the default shard is 4 MiB', () => {
    const b = new GraphBuilder({ seed: 2 });
    b.output(b.dense(b.input('x', [null, 1100]), 1000, { name: 'big' }));
    const files = toTfjsModel(b.build());
    expect(DEFAULT_SHARD_BYTES).toBe(4194304);
    expect(files.shards.map((s) => s.data.byteLength)).toEqual([4194304, 1100 * 1000 * 4 + 4000 - 4194304]);
  });

  test.each(['float16', 'uint16', 'uint8'] as const)('%s weights: tfjs loads them, and reading them back gives what tf.io.decodeWeights gives', async (weights) => {
    const g = cnn(3);
    const files = toTfjsModel(g, { weights, shardBytes: 256 });
    const specs = files.modelJson.weightsManifest[0]!.weights;
    expect(specs.every((s) => s.quantization?.dtype === weights)).toBe(true);
    const back = fromTfjsModel(JSON.stringify(files.modelJson), Object.fromEntries(files.shards.map((s) => [s.path, s.data])));
    const decoded = tf.io.decodeWeights(tfjsArtifacts(files.modelJson, files.shards.map((s) => s.data)).weightData, specs as tf.io.WeightsManifestEntry[]);
    for (const s of specs) {
      const p = back.params.find((q) => q.name === s.name);
      expect(p, s.name).toBeDefined();
      expect(p!.data, s.name).toEqual(decoded[s.name]!.dataSync());
    }
    tf.dispose(Object.values(decoded));
    // The model tfjs loads is the graph with those weights: the format's rounding, nothing else.
    const m = await load(files);
    expectPredicts(m, back, 1e-4);
    m.dispose();
    const bytes = files.shards.reduce((n, s) => n + s.data.byteLength, 0);
    expect(bytes).toBe((exportLayersArtifacts(g).weightData.byteLength / 4) * (weights === 'uint8' ? 1 : 2));
  });

  test('bad options are ConfigErrors naming the option', () => {
    const g = cnn(4);
    expect(() => toTfjsModel(g, { shardBytes: 0 })).toThrow(ConfigError);
    expect(() => toTfjsModel(g, { shardBytes: 0 })).toThrow(/options\.shardBytes: expected a positive integer, got 0/);
    expect(() => toTfjsModel(g, { weights: 'int4' as never })).toThrow(/options\.weights: expected one of float32, float16, uint16, uint8, got "int4"/);
    expect(() => toTfjsModel(g, { activations: 'int' as never })).toThrow(/options\.activations: expected "fake-quant" or "float"/);
  });
});

describe('tfjsArtifacts / fromTfjsModel', () => {
  test('shards by path or in order; a missing or extra shard and a graph model are refused', () => {
    const files = toTfjsModel(cnn(5), { shardBytes: 500 });
    const list = files.shards.map((s) => s.data);
    expect(() => tfjsArtifacts(files.modelJson, list.slice(1))).toThrow(/the manifest lists \d+ shard file\(s\) \(group1-shard1of\d+\.bin, .*\) but \d+ were given/);
    const first = files.shards[0]!.path;
    expect(() => tfjsArtifacts(files.modelJson, { [first]: list[0]! })).toThrow(/shard "group1-shard2of\d+\.bin" that the manifest lists was not given \(given: group1-shard1of\d+\.bin\)/);
    expect(() => fromTfjsModel('{ "format": "graph-model", "modelTopology": null }', [])).toThrow(
      /\$\.modelTopology: a layers model\.json needs "modelTopology" \(a graph model from tfjs-converter has no Keras topology/,
    );
    expect(() => fromTfjsModel('{ nope', [])).toThrow(expect.objectContaining({ code: 'INPUT_INVALID', message: expect.stringMatching(/model\.json is not valid JSON/) }));
    const truncated = [...list.slice(0, -1), list[list.length - 1]!.slice(0, 3)];
    expect(() => fromTfjsModel(files.modelJson, truncated)).toThrow(/needs bytes \d+\.\.\d+ of weightData, which holds \d+: the weights are truncated/);
  });
});

describe('writeTfjsModel / readTfjsModel', () => {
  test('writes atomically into a folder, refuses to replace without overwrite, replaces and cleans up with it', async () => {
    const dir = path.join(tmp, 'write');
    const g = cnn(6);
    const w = await writeTfjsModel(dir, g, { shardBytes: 200 });
    const names = (await readdir(dir)).sort();
    expect(names).toEqual(['model.json', ...w.shards.map((s) => path.basename(s))].sort());
    expect(w.modelJson).toBe(path.join(dir, 'model.json'));
    expect(w.weightBytes).toBe(exportLayersArtifacts(g).weightData.byteLength);
    await expect(writeTfjsModel(dir, g)).rejects.toThrow(expect.objectContaining({ code: 'IO_ERROR', message: expect.stringMatching(/model\.json already exists: pass \{ overwrite: true \}/) }));
    // Fewer, larger shards: the old ones the new model.json does not list are removed.
    const again = await writeTfjsModel(dir, g, { overwrite: true, weights: 'uint8' });
    expect((await readdir(dir)).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);
    expect(again.shards).toEqual([path.join(dir, 'group1-shard1of1.bin')]);
    const art = await readTfjsArtifacts(dir);
    const m = await L.loadLayersModel(tf.io.fromMemory(art));
    const back = await readTfjsModel(path.join(dir, 'model.json'));
    expectPredicts(m, back, 1e-4);
    m.dispose();
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  test('tf.loadLayersModel loads the folder over http://', async () => {
    const dir = path.join(tmp, 'served');
    const g = cnn(7);
    await writeTfjsModel(dir, g, { shardBytes: 256 });
    const server: Server = createServer((req, res) => {
      readFile(path.join(dir, path.basename(req.url ?? '')))
        .then((body) => res.writeHead(200).end(body))
        .catch(() => res.writeHead(404).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const m = await L.loadLayersModel(`http://127.0.0.1:${port}/model.json`);
      expectPredicts(m, g, 1e-4);
      m.dispose();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('bad files: missing model, a shard path leaving the folder, a missing shard, limits', async () => {
    const dir = path.join(tmp, 'bad');
    await mkdir(dir, { recursive: true });
    await expect(readTfjsModel(path.join(tmp, 'nope'))).rejects.toThrow(expect.objectContaining({ code: 'IO_ERROR', message: expect.stringMatching(/cannot read model .*nope: it does not exist/) }));
    const files = toTfjsModel(cnn(8));
    const json = (paths: string[]): string => JSON.stringify({ ...files.modelJson, weightsManifest: [{ ...files.modelJson.weightsManifest[0]!, paths }] });
    await writeFile(path.join(dir, 'model.json'), json(['../outside.bin']));
    await expect(readTfjsModel(dir)).rejects.toThrow(/weight path "\.\.\/outside\.bin" leaves the model's folder/);
    await writeFile(path.join(dir, 'model.json'), json(['gone.bin']));
    await expect(readTfjsModel(dir)).rejects.toThrow(expect.objectContaining({ code: 'IO_ERROR', message: expect.stringMatching(/cannot read weight file .*gone\.bin: it does not exist/) }));
    await writeFile(path.join(dir, 'w.bin'), files.shards[0]!.data);
    await writeFile(path.join(dir, 'model.json'), json(['w.bin']));
    await expect(readTfjsModel(dir, { limits: { maxWeightBytes: 100 } })).rejects.toThrow(/weight file .*w\.bin has \d+ bytes, over the limit of 100/);
    await expect(readTfjsModel(dir, { limits: { maxJsonBytes: 10 } })).rejects.toThrow(/model\.json .* bytes, over the limit of 10/);
    expect((await readTfjsModel(dir)).nodes.map((n) => n.name)).toEqual(fromTfjsModel(files.modelJson, files.shards.map((s) => s.data)).nodes.map((n) => n.name));
  });
});
