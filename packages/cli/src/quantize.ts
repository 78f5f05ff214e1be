import * as fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend, writeFileAtomic, type BackendName, type ProgressMode } from '@tensorpress/core-tensor';
import { readIdx } from '@tensorpress/datasets';
import { DEFAULT_READ_LIMITS, OnnxError, fromOnnx, graphInputs, ortCompare, ortLatency, quantizeOnnx, type GraphInput } from '@tensorpress/export-onnx';
import { createCollector, type CalibrationMethod } from '@tensorpress/quant';
import { CliError, EXIT_CODES } from './exit-codes.js';
import { throwIfAborted } from './internal/abort.js';
import { readNpy } from './internal/npy.js';
import { terminalProgress } from './internal/progress-bar.js';
import type { QuantizeReport } from './report.js';

/** Calibration methods of `tensorpress quantize`. */
export const QUANTIZE_METHODS = ['minmax', 'percentile', 'kl', 'mse'] as const;

/** Options of {@link runQuantize}. */
export interface RunQuantizeOptions {
  /** The FP32 .onnx file (never modified). */
  model: string;
  /** A .npy file, an IDX image file, or a folder of .npy files or with an IDX image file. */
  data: string;
  /** The .onnx file to write (atomically). */
  out: string;
  force?: boolean;
  method?: (typeof QUANTIZE_METHODS)[number];
  perChannel?: boolean;
  activationType?: 'uint8' | 'int8';
  /** Calibration examples (the first ones of the data). Default 256. */
  samples?: number;
  /** Held-out examples for parity (the ones after the calibration examples). Default 256. */
  evalSamples?: number;
  /** Examples per onnxruntime run. Default 8. */
  batchSize?: number;
  /** Bilinear-resize images whose height and width differ from the model's. Default false. */
  resize?: boolean;
  /** onnxruntime timed runs per model and round (3 rounds); 0 skips latency. Default 20. */
  latencyRuns?: number;
  /** Lowest top-1 agreement with FP32 that passes. Default 0.9. */
  minAgreement?: number;
  backend?: BackendName | readonly BackendName[];
  progress?: ProgressMode;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** Examples as loaded: float values, their shape (first axis: examples) and whether they were bytes. */
interface RawData {
  shape: number[];
  data: Float32Array;
  fromUint8: boolean;
  source: string;
}

async function readData(spec: string): Promise<RawData> {
  const file = path.resolve(spec);
  const st = await fs.stat(file).catch(() => null);
  if (!st) throw new CliError(EXIT_CODES.input, 'DATASET_MISSING', `--data ${spec}: ${file} does not exist; give a .npy file, an IDX image file or a folder of them`);
  if (st.isDirectory()) {
    const names = (await fs.readdir(file)).sort();
    const npys = names.filter((n) => n.endsWith('.npy'));
    if (npys.length > 0) {
      const parts = await Promise.all(npys.map(async (n) => readNpy(new Uint8Array(await fs.readFile(path.join(file, n))), path.join(spec, n))));
      const rank = Math.max(...parts.map((p) => p.shape.length));
      const shaped = parts.map((p) => (p.shape.length < rank ? { ...p, shape: [1, ...p.shape] } : p));
      const rest = shaped[0]!.shape.slice(1).join(',');
      const odd = shaped.findIndex((p) => p.shape.slice(1).join(',') !== rest);
      if (odd >= 0) {
        throw new CliError(EXIT_CODES.input, 'DATA_INVALID', `--data ${spec}: ${npys[odd]} holds examples of shape [${shaped[odd]!.shape.slice(1).join(', ')}], ${npys[0]} of [${rest}]; every file must hold examples of one shape`);
      }
      const data = new Float32Array(shaped.reduce((p, s) => p + s.data.length, 0));
      let at = 0;
      for (const p of shaped) {
        data.set(p.data, at);
        at += p.data.length;
      }
      return { shape: [shaped.reduce((p, s) => p + s.shape[0]!, 0), ...shaped[0]!.shape.slice(1)], data, fromUint8: shaped.every((p) => p.fromUint8), source: `${npys.length} .npy file(s) in ${spec}` };
    }
    const idx = names.find((n) => /train-images-idx3-ubyte(\.gz)?$/.test(n)) ?? names.find((n) => /images-idx3-ubyte(\.gz)?$/.test(n));
    if (!idx) throw new CliError(EXIT_CODES.input, 'DATASET_MISSING', `--data ${spec}: the folder holds no .npy files and no *-images-idx3-ubyte[.gz] file`);
    return readIdxFile(path.join(file, idx), path.join(spec, idx));
  }
  if (spec.endsWith('.npy')) {
    const a = readNpy(new Uint8Array(await fs.readFile(file)), spec);
    return { ...a, source: spec };
  }
  return readIdxFile(file, spec);
}

async function readIdxFile(file: string, name: string): Promise<RawData> {
  const a = readIdx(new Uint8Array(await fs.readFile(file)), name);
  return { shape: a.shape, data: Float32Array.from(a.data), fromUint8: true, source: name };
}

/**
 * Fits the examples to the model's input (NCHW images or any float tensor): as they are, grayscale
 * [N, H, W] with a channel axis added (replicated to 3 channels for RGB models), NHWC transposed,
 * and with `resize` bilinear-resized to the model's height and width. uint8 data is divided by 255.
 */
function fitData(raw: RawData, input: GraphInput, spec: string, resize: boolean): { dims: number[]; data: Float32Array; note: string } {
  const want = input.dims.slice(1);
  const have = raw.shape.slice(1);
  const n = raw.shape[0] ?? 0;
  const scale = raw.fromUint8 ? 1 / 255 : 1;
  const notes: string[] = [raw.fromUint8 ? 'uint8 values / 255' : 'float values as stored'];
  const fits = (s: readonly number[]): boolean => s.length === want.length && want.every((d, i) => d === null || d === s[i]);
  const wanted = `[N, ${want.map((d) => d ?? '?').join(', ')}]`;
  const refuse = (): never => {
    throw new CliError(
      EXIT_CODES.input,
      'DATA_INVALID',
      `--data ${spec}: examples of shape [${have.join(', ')}] do not fit input "${input.name}" ${wanted}; give ${wanted} data (NHWC and grayscale [N, H, W] images are converted)${want.length === 3 && !resize ? ', or pass --resize to resize images' : ''}`,
    );
  };
  if (n === 0) throw new CliError(EXIT_CODES.input, 'DATA_INVALID', `--data ${spec}: holds no examples`);
  if (fits(have)) return { dims: [n, ...have], data: scale === 1 ? raw.data : raw.data.map((v) => v * scale), note: notes.join(', ') };
  if (want.length !== 3 || want.some((d) => d === null)) return refuse();
  const [c, h, w] = want as [number, number, number];
  // to NHWC first
  let nhwc: number[];
  if (have.length === 2) nhwc = [n, have[0]!, have[1]!, 1];
  else if (have.length === 3 && have[2] === c) nhwc = [n, have[0]!, have[1]!, c];
  else if (have.length === 3 && (have[0] === c || have[0] === 1)) nhwc = [-1];
  else return refuse();
  return tf.tidy(() => {
    let x = nhwc[0] === -1 ? tf.transpose(tf.tensor(raw.data, [n, ...have]), [0, 2, 3, 1]) : tf.tensor(raw.data, nhwc);
    if (nhwc[0] === -1) notes.push('NCHW');
    else if (have.length === 3) notes.push('NHWC transposed');
    if (x.shape[3] === 1 && c !== 1) {
      x = tf.tile(x, [1, 1, 1, c]);
      notes.push(`grayscale replicated to ${c} channels`);
    } else if (x.shape[3] !== c) refuse();
    if (x.shape[1] !== h || x.shape[2] !== w) {
      if (!resize) refuse();
      notes.push(`resized bilinearly from ${x.shape[1]}×${x.shape[2]} to ${h}×${w}`);
      x = tf.image.resizeBilinear(x as tf.Tensor4D, [h, w]);
    }
    const y = tf.mul(tf.transpose(x, [0, 3, 1, 2]), scale);
    return { dims: [n, c, h, w], data: y.dataSync() as Float32Array, note: notes.join(', ') };
  });
}

function* batchesOf(data: Float32Array, dims: readonly number[], from: number, to: number, batch: number): Generator<Float32Array> {
  const per = dims.slice(1).reduce((p, d) => p * d, 1);
  for (let i = from; i < to; i += batch) yield data.subarray(i * per, Math.min(to, i + batch) * per);
}

/**
 * onnxruntime refused the model: say whether the in-process path reads it (then `compress` quantizes
 * it there) or neither path handles it.
 */
function otherPath(e: unknown, bytes: Uint8Array, file: string): unknown {
  if (!(e instanceof OnnxError) || e.details['ortRefused'] !== true) return e;
  let reads = true;
  try {
    fromOnnx(bytes);
  } catch {
    reads = false;
  }
  const way = reads
    ? `tensorpress reads ${file} in-process: quantize it there with \`tensorpress compress --model ${file}\` and a quantization config`
    : 'the in-process reader does not read it either: re-export the model with ops onnxruntime implements';
  return new OnnxError('ONNX_UNSUPPORTED', `${e.message.replace(/; re-export the model.*$/, '')}; ${way}`, { ...e.details });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * `tensorpress quantize`: post-training INT8 quantization of any ONNX model onnxruntime runs
 * (export-onnx's `quantizeOnnx`, with @tensorpress/quant's range collectors), checked against the
 * FP32 model in onnxruntime on held-out examples. The input file is only read; the output is
 * written atomically (an existing file only with `force`).
 */
export async function runQuantize(options: RunQuantizeOptions): Promise<{ report: QuantizeReport; file: string }> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const modelFile = path.resolve(options.model);
  const out = path.resolve(options.out);
  if (out === modelFile) throw new CliError(EXIT_CODES.usage, 'OUTPUT_IS_INPUT', `-o ${options.out} is the input model; the input is never modified: give another file`);
  const st = await fs.stat(out).catch(() => null);
  if (st?.isDirectory()) throw new CliError(EXIT_CODES.usage, 'OUTPUT_NOT_A_FILE', `-o ${options.out} is a folder; give the .onnx file to write`);
  if (st && !options.force) throw new CliError(EXIT_CODES.usage, 'OUTPUT_EXISTS', `${options.out} exists; pass --force to replace it`);
  if (!(await fs.stat(path.dirname(out)).catch(() => null))?.isDirectory()) throw new CliError(EXIT_CODES.usage, 'OUTPUT_NOT_A_FOLDER', `folder ${path.dirname(out)} does not exist`);
  const method = options.method ?? 'minmax';
  if (!QUANTIZE_METHODS.includes(method)) throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', `--method ${String(method)}: expected one of ${QUANTIZE_METHODS.join(', ')}`);
  const samples = options.samples ?? 256;
  const evalSamples = options.evalSamples ?? 256;
  const batch = options.batchSize ?? 8;
  const minAgreement = options.minAgreement ?? 0.9;
  await useBackend((options.backend ?? ['wasm', 'cpu']) as BackendName | BackendName[]);

  const mst = await fs.stat(modelFile).catch(() => null);
  if (!mst?.isFile()) throw new CliError(EXIT_CODES.input, 'IO_ERROR', `${options.model}: no such file; give an .onnx model`);
  if (mst.size > DEFAULT_READ_LIMITS.maxBytes) {
    throw new CliError(EXIT_CODES.input, 'ONNX_INVALID', `${options.model} is ${mst.size} bytes, above the ${DEFAULT_READ_LIMITS.maxBytes}-byte limit on ONNX models (external-data models are not supported): quantize a smaller model`);
  }
  const fp32 = new Uint8Array(await fs.readFile(modelFile));
  const inputs = graphInputs(fp32);
  const input = inputs[0];
  if (!input) throw new CliError(EXIT_CODES.input, 'ONNX_INVALID', `${options.model}: the model has no graph input`);
  if (inputs.length !== 1) throw new CliError(EXIT_CODES.input, 'DATA_INVALID', `${options.model} has ${inputs.length} inputs (${inputs.map((i) => `"${i.name}"`).join(', ')}); --data feeds one float input: quantize it with export-onnx's quantizeOnnx and named feeds`);
  if (input.dtype !== 'float32') throw new CliError(EXIT_CODES.input, 'DATA_INVALID', `input "${input.name}" is ${input.dtype}, not float32; --data feeds float tensors: use export-onnx's quantizeOnnx with named feeds`);
  const raw = await readData(options.data);
  const fitted = fitData(raw, input, options.data, options.resize ?? false);
  const total = fitted.dims[0]!;
  const nCal = Math.min(samples, total);
  const heldOut = total > nCal;
  const evalFrom = heldOut ? nCal : 0;
  const evalTo = heldOut ? Math.min(total, nCal + evalSamples) : Math.min(total, evalSamples);
  throwIfAborted(options.signal);

  const bar = terminalProgress(options.progress ?? true, process.stdout);
  if (typeof bar === 'object') await bar.start('calibrate', nCal);
  const t0 = Date.now();
  const result = await quantizeOnnx(fp32, batchesOf(fitted.data, fitted.dims, 0, nCal, batch), {
    collector: (name, o) => createCollector(method as CalibrationMethod, { name, symmetric: o.symmetric, bits: o.bits }),
    ...(options.perChannel ? { perChannel: true } : {}),
    ...(options.activationType ? { activationType: options.activationType } : {}),
    onProgress: (done) => {
      if (typeof bar === 'object') bar.update(done, `${method}`);
      throwIfAborted(options.signal);
    },
  }).catch((e: unknown) => {
    throw otherPath(e, fp32, options.model);
  });
  const calibSeconds = (Date.now() - t0) / 1000;
  const line = `calibrated ${result.examples} examples (${method}) in ${calibSeconds.toFixed(1)} s: ${result.quantized.length} nodes quantized, ${result.skipped.length} left in float`;
  if (typeof bar === 'object') bar.end(line);
  else if (options.progress !== false) log(line);

  const parity = await ortCompare(fp32, result.bytes, batchesOf(fitted.data, fitted.dims, evalFrom, evalTo, batch));
  throwIfAborted(options.signal);
  const runs = options.latencyRuns ?? 20;
  let latency: [number | null, number | null] = [null, null];
  if (runs > 0) {
    const s: number[][] = [[], []];
    for (let round = 0; round < 3; round++) {
      for (const [i, b] of [fp32, result.bytes].entries()) {
        throwIfAborted(options.signal);
        s[i]!.push((await ortLatency(b, { batch: 1, threads: 1, runs, warmup: 3 })).medianMs);
      }
    }
    latency = [median(s[0]!), median(s[1]!)];
  }
  const passed = parity.top1Agreement === null ? parity.relMaxAbsDiff <= 0.1 : parity.top1Agreement >= minAgreement;
  await writeFileAtomic(out, result.bytes);
  const report: QuantizeReport = {
    format: 'tensorpress.quantize-report',
    version: 1,
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, node: process.version, backend: tf.getBackend() },
    model: options.model,
    output: options.out,
    data: { source: raw.source, examples: total, preprocessing: fitted.note },
    method,
    perChannel: options.perChannel ?? false,
    activationType: options.activationType ?? 'uint8',
    calibration: { examples: result.examples, batches: result.batches, seconds: calibSeconds },
    fp32: { onnxBytes: fp32.length, latencyMs: latency[0] },
    int8: { onnxBytes: result.bytes.length, latencyMs: latency[1] },
    ratios: { onnxBytes: result.bytes.length / fp32.length, latency: latency[0] && latency[1] ? latency[1] / latency[0] : null },
    parity: {
      examples: parity.examples,
      heldOut,
      maxAbsDiff: parity.maxAbsDiff,
      relMaxAbsDiff: parity.relMaxAbsDiff,
      meanAbsDiff: parity.meanAbsDiff,
      top1Agreement: parity.top1Agreement,
      passed,
      criterion: parity.top1Agreement === null ? 'max |diff| ≤ 10% of max |FP32 output|' : `top-1 agreement with FP32 ≥ ${(minAgreement * 100).toFixed(0)}%`,
    },
    quantized: result.quantized.length,
    weights: result.weights,
    skipped: result.skipped,
    seconds: (Date.now() - started) / 1000,
  };
  return { report, file: out };
}
