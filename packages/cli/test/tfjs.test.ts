import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { EXIT_CODES, OUTPUT_MARKER, type CompressReport } from '@tensorpress/cli';
import { useBackend } from '@tensorpress/core-tensor';
import { importLayersModel, readTfjsArtifacts, toTfjsModel } from '@tensorpress/export-tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, tinyWorkspace } from './helpers.js';

let tmp: string;
let data: string;
let config: string;

beforeAll(async () => {
  await useBackend('cpu');
  ({ tmp, data, config } = await tinyWorkspace('tensorpress-cli-tfjs-'));
});

/** The output shape tf.loadLayersModel's model of a folder gives for an all-zero batch. */
async function loadedOutputShape(dir: string, input: number[]): Promise<number[]> {
  const L = await import('@tensorflow/tfjs-layers');
  const model = await L.loadLayersModel(tf.io.fromMemory(await readTfjsArtifacts(dir)));
  const x = tf.zeros(input);
  const y = model.predict(x) as tf.Tensor;
  const shape = y.shape;
  tf.dispose([x, y]);
  model.dispose();
  return shape;
}

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('tensorpress export --format tfjs', () => {
  it('writes model.json + shards that tf.loadLayersModel loads; --weights uint8 stores a quarter of the bytes', async () => {
    const common = ['--model', 'builtin:mlp', '--data', data, '--fp32-epochs', '0', '--no-cache'];
    const f32 = path.join(tmp, 'tfjs-f32');
    const r = await cli(['export', ...common, '--format', 'tfjs', '--out', f32, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const written = JSON.parse(r.stdout) as { file: string; bytes: number; files: string[] };
    expect(written.file).toBe(path.join(f32, 'model.json'));
    expect((await readdir(f32)).sort()).toEqual([OUTPUT_MARKER, 'group1-shard1of1.bin', 'model.json']);
    const u8 = path.join(tmp, 'tfjs-u8');
    expect((await cli(['export', ...common, '--format', 'tfjs', '--weights', 'uint8', '--out', u8])).code).toBe(0);
    const shard = async (dir: string): Promise<number> => (await readFile(path.join(dir, 'group1-shard1of1.bin'))).byteLength;
    expect(await shard(u8)).toBe((await shard(f32)) / 4);
    const json = JSON.parse(await readFile(path.join(u8, 'model.json'), 'utf8')) as { weightsManifest: { weights: { quantization?: { dtype: string } }[] }[] };
    expect(json.weightsManifest[0]!.weights.every((w) => w.quantization?.dtype === 'uint8')).toBe(true);
    expect(await loadedOutputShape(u8, [2, 28, 28, 1])).toEqual([2, 10]);
  });

  it('usage errors: --weights without tfjs, --opset with tfjs, a non-empty folder without --force', async () => {
    const onnx = await cli(['export', '--model', 'builtin:mlp', '--out', path.join(tmp, 'm.onnx'), '--weights', 'float16', '--no-cache']);
    expect(onnx.code).toBe(EXIT_CODES.usage);
    expect(onnx.stderr).toMatch(/--weights applies to --format tfjs only/);
    const opset = await cli(['export', '--model', 'builtin:mlp', '--out', path.join(tmp, 'never'), '--format', 'tfjs', '--opset', '13', '--no-cache']);
    expect(opset.code).toBe(EXIT_CODES.usage);
    expect(opset.stderr).toMatch(/--opset applies to ONNX only/);
    const full = path.join(tmp, 'full');
    await mkdir(full);
    await writeFile(path.join(full, 'notes.txt'), 'mine');
    const refused = await cli(['export', '--model', 'builtin:mlp', '--out', full, '--format', 'tfjs', '--no-cache']);
    expect(refused.code).toBe(EXIT_CODES.usage);
    expect(refused.stderr).toMatch(/output folder .*full exists and is not empty; .*--force/);
    const bad = await cli(['export', '--model', 'builtin:mlp', '--out', full, '--format', 'tfjs', '--weights', 'int4']);
    expect(bad.code).toBe(EXIT_CODES.usage);
    expect(bad.stderr).toMatch(/argument 'int4' is invalid\. Allowed choices are float32, float16, uint16, uint8/);
  });
});

describe('tensorpress inspect (a tfjs-converter model.json with uint8 weights)', () => {
  it("reads the quantized weights from the shards: no 'load it with tf.loadLayersModel' any more", async () => {
    const L = await import('@tensorflow/tfjs-layers');
    const keras = L.sequential({
      layers: [
        L.layers.conv2d({ inputShape: [12, 12, 1], filters: 4, kernelSize: 3, activation: 'relu', name: 'conv' }),
        L.layers.flatten({ name: 'flat' }),
        L.layers.dense({ units: 3, name: 'fc' }),
      ],
    });
    const topology = keras.toJSON(null, false) as Record<string, unknown>;
    // Weights in tfjs-converter's uint8 form (same names as the Keras weights), inside what the converter writes around a Keras model.
    const files = toTfjsModel(importLayersModel(keras), { weights: 'uint8' });
    keras.dispose();
    const dir = path.join(tmp, 'converted');
    await mkdir(dir);
    const modelJson = {
      format: 'layers-model',
      generatedBy: 'keras v2.15.0',
      convertedBy: 'TensorFlow.js Converter v4.22.0',
      modelTopology: { keras_version: '2.15.0', backend: 'tensorflow', model_config: topology, training_config: { loss: 'categorical_crossentropy' } },
      weightsManifest: files.modelJson.weightsManifest,
    };
    await writeFile(path.join(dir, 'model.json'), JSON.stringify(modelJson));
    for (const s of files.shards) await writeFile(path.join(dir, s.path), s.data);
    const r = await cli(['inspect', path.join(dir, 'model.json'), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { kind: string; ops: Record<string, number>; params: number };
    expect(report.kind).toBe('tfjs-layers');
    expect(report.ops).toMatchObject({ Conv: 1, Relu: 1, Flatten: 1, Gemm: 1 });
    expect(report.params).toBe(3 * 3 * 4 + 4 + 10 * 10 * 4 * 3 + 3);
  });
});

describe('tensorpress compress --tfjs', () => {
  it('also writes the compressed model as a tfjs-layers model (uint8 weights), named in the report', async () => {
    const out = path.join(tmp, 'compress-tfjs');
    const r = await cli([
      'compress', '--model', 'builtin:mlp', '--data', data, '--config', config, '--out', out,
      '--fp32-epochs', '1', '--latency-runs', '0', '--no-cache', '--tfjs', 'uint8',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/tfjs model: .*model\.json \([\d,]+ bytes with 1 shard\(s\), uint8 weights\)/);
    expect((await readdir(out)).sort()).toEqual([OUTPUT_MARKER, 'chart.svg', 'group1-shard1of1.bin', 'model.json', 'model.onnx', 'report.json', 'report.md']);
    const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as CompressReport;
    expect(report.files.tfjs).toBe('model.json');
    expect(report.tfjs).toMatchObject({ weights: 'uint8', shards: 1 });
    expect(await readFile(path.join(out, 'report.md'), 'utf8')).toContain('## tfjs-layers model');
    expect(await loadedOutputShape(out, [1, 28, 28, 1])).toEqual([1, 10]);
    // --tfjs alone stores float32 weights.
    const plain = await cli([
      'compress', '--model', 'builtin:mlp', '--data', data, '--config', config, '--out', path.join(tmp, 'compress-tfjs-f32'),
      '--fp32-epochs', '1', '--latency-runs', '0', '--no-cache', '--tfjs', '--json',
    ]);
    expect(plain.code).toBe(0);
    expect((JSON.parse(plain.stdout) as CompressReport).tfjs).toMatchObject({ weights: 'float32' });
  });
});
