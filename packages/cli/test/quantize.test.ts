import { createHash } from 'node:crypto';
import { mkdtemp, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, type QuantizeReport } from '@tensorpress/cli';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeTinyIdx } from './helpers.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'export-onnx', 'test', 'fixtures');
const resnet = path.join(fixtures, 'resnet-tiny.onnx');

/** A .npy file (version 1) of float32 or int64 values. */
function npy(shape: readonly number[], data: Float32Array | BigInt64Array): Uint8Array {
  const descr = data instanceof Float32Array ? '<f4' : '<i8';
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer), 10 + header.length);
  return out;
}

function noise(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1);
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (s) => void (out += s), stderr: (s) => void (err += s) });
  return { code, out, err };
}

const sha = async (f: string): Promise<string> => createHash('sha256').update(await readFile(f)).digest('hex');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tp-quantize-'));
  await writeFile(path.join(dir, 'calib.npy'), npy([40, 3, 32, 32], noise(40 * 3 * 32 * 32, 7)));
  await writeTinyIdx(path.join(dir, 'idx'), 24, 8);
});

describe('tensorpress quantize', () => {
  it('quantizes a PyTorch export from a .npy file, reports size, latency, parity and top-1 agreement, never touches the input', async () => {
    const before = await sha(resnet);
    const out = path.join(dir, 'resnet-int8.onnx');
    const r = await cli(['quantize', resnet, '--data', path.join(dir, 'calib.npy'), '-o', out, '--samples', '16', '--eval-samples', '24', '--per-channel', '--latency-runs', '1', '--json']);
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as QuantizeReport;
    expect(report.format).toBe('tensorpress.quantize-report');
    expect(report.calibration.examples).toBe(16);
    expect(report.parity.examples).toBe(24);
    expect(report.parity.heldOut).toBe(true);
    expect(report.parity.top1Agreement).toBeGreaterThanOrEqual(0.9);
    expect(report.parity.passed).toBe(true);
    expect(report.int8.onnxBytes).toBe((await stat(out)).size);
    expect(report.fp32.latencyMs).toBeGreaterThan(0);
    expect(report.int8.latencyMs).toBeGreaterThan(0);
    expect(report.quantized).toBeGreaterThan(5);
    expect(await sha(resnet)).toBe(before);
  });

  it('prints the FP32/INT8 table and the parity line; an existing output needs --force', async () => {
    const out = path.join(dir, 'resnet-int8-kl.onnx');
    const r = await cli(['quantize', resnet, '--data', path.join(dir, 'calib.npy'), '-o', out, '--method', 'kl', '--samples', '8', '--latency-runs', '1']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ONNX bytes/);
    expect(r.out).toMatch(/ORT latency \(batch 1, 1 thread\)/);
    expect(r.out).toMatch(/ONNX parity passed on 32 held-out examples: .*top-1 agreement with FP32/);
    expect(r.out).toMatch(/calibrated 8 examples \(kl\)/);
    const again = await cli(['quantize', resnet, '--data', path.join(dir, 'calib.npy'), '-o', out, '--samples', '8']);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/exists; pass --force/);
  });

  it('IDX images of another size: one line naming the input and --resize; with --resize they are resized and replicated to RGB', async () => {
    const out = path.join(dir, 'idx-int8.onnx');
    const bad = await cli(['quantize', resnet, '--data', path.join(dir, 'idx'), '-o', out]);
    expect(bad.code).toBe(3);
    expect(bad.err.trim().split('\n')).toHaveLength(1);
    expect(bad.err).toMatch(/examples of shape \[28, 28\] do not fit input "input" \[N, 3, 32, 32\].*--resize/);
    const ok = await cli(['quantize', resnet, '--data', path.join(dir, 'idx', 'train-images-idx3-ubyte'), '-o', out, '--resize', '--samples', '16', '--latency-runs', '0', '--json']);
    expect(ok.code).toBe(0);
    const report = JSON.parse(ok.out) as { data: { preprocessing: string }; fp32: { latencyMs: null } };
    expect(report.data.preprocessing).toMatch(/uint8 values \/ 255.*grayscale replicated to 3 channels.*resized bilinearly from 28×28 to 32×32/);
    expect(report.fp32.latencyMs).toBeNull();
  });

  it('calibration data of the wrong dtype or shape, an op no path runs, the input as output: one line each', async () => {
    await writeFile(path.join(dir, 'ints.npy'), npy([4, 3], BigInt64Array.from({ length: 12 }, (_, i) => BigInt(i))));
    const dtype = await cli(['quantize', resnet, '--data', path.join(dir, 'ints.npy'), '-o', path.join(dir, 'x.onnx')]);
    expect(dtype.code).toBe(3);
    expect(dtype.err).toMatch(/dtype <i8 is not supported .*astype\("float32"\)/);
    await writeFile(path.join(dir, 'flat.npy'), npy([4, 10], noise(40, 1)));
    const shape = await cli(['quantize', resnet, '--data', path.join(dir, 'flat.npy'), '-o', path.join(dir, 'x.onnx')]);
    expect(shape.code).toBe(3);
    expect(shape.err).toMatch(/examples of shape \[10\] do not fit input "input" \[N, 3, 32, 32\]/);
    const self = await cli(['quantize', resnet, '--data', path.join(dir, 'calib.npy'), '-o', resnet]);
    expect(self.code).toBe(2);
    expect(self.err).toMatch(/is the input model/);
    // an op onnxruntime has no kernel for (and the in-process executor neither)
    const bytes = Buffer.from(await readFile(resnet));
    const broken = path.join(dir, 'broken.onnx');
    await writeFile(broken, Buffer.from(bytes.toString('latin1').replaceAll('Relu', 'Relx'), 'latin1'));
    const op = await cli(['quantize', broken, '--data', path.join(dir, 'calib.npy'), '-o', path.join(dir, 'x.onnx'), '--samples', '4']);
    expect(op.code).toBe(3);
    expect(op.err.trim().split('\n')).toHaveLength(1);
    expect(op.err).toMatch(/node "[^"]*Relx[^"]*" \(Relx\): No Op registered for Relx.*the in-process reader does not read it either/);
    await expect(stat(path.join(dir, 'x.onnx'))).rejects.toThrow();
    // over the size limit: refused from its size, before it is read (a sparse file)
    const huge = path.join(dir, 'huge.onnx');
    await truncate(huge, 600 * 2 ** 20).catch(async () => {
      await writeFile(huge, '');
      await truncate(huge, 600 * 2 ** 20);
    });
    const big = await cli(['quantize', huge, '--data', path.join(dir, 'calib.npy'), '-o', path.join(dir, 'x.onnx')]);
    expect(big.code).toBe(3);
    expect(big.err).toMatch(/huge\.onnx is 629145600 bytes, above the 536870912-byte limit/);
    const garbage = path.join(dir, 'garbage.onnx');
    await writeFile(garbage, Uint8Array.of(1, 2, 3, 4, 5));
    const g = await cli(['quantize', garbage, '--data', path.join(dir, 'calib.npy'), '-o', path.join(dir, 'x.onnx')]);
    expect(g.code).toBe(3);
    expect(g.err).toMatch(/malformed ONNX model/);
  });
});
