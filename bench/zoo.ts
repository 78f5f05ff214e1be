/**
 * `npm run bench -- zoo [--only name,name] [--resume] [--quick] [--reimport]`: the model zoo of issue 22, one row
 * per model and exported opset. bench/zoo/make-zoo.py (Debian's torch 1.13 / torchvision 0.14)
 * exports the models with random weights and batch-norm statistics re-estimated on random data
 * into bench/.cache/zoo; this suite runs it for any model whose files are missing.
 *
 * Per model and opset: does the in-process reader import the file (`fromOnnx`; else the model is
 * "ORT-backed only"), and if so the in-process FP32 executor against onnxruntime (max |diff|,
 * relative to the largest |output|) and @tensorpress/pruning's prunable groups. At the primary opset
 * (13): PTQ in onnxruntime (`quantizeOnnx`: min-max, per-channel int8 weights, uint8 activations)
 * on 256 inputs for ResNet-50 and 64 for the others, timed; INT8 parity and top-1 agreement with FP32 on EVAL other inputs; INT8 and
 * FP32 ORT latency at batch 1 and 8 (1 thread, alternated rounds, medians); the file-size ratio.
 * Other opsets: PTQ on a few inputs and its agreement on a few more (the file runs and quantizes).
 *
 * Inputs are random N(0, 1) values (seeded), the distribution the batch-norm statistics were
 * estimated on; calibration and evaluation inputs are disjoint draws. Rows are saved as they finish
 * (bench/.cache/zoo-rows.json) so `--resume` continues an interrupted run. `--reimport` measures
 * only the in-process import columns again (after reader changes), keeping the rest of results/zoo.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { Executor, useBackend } from '@tensorpress/core-tensor';
import { fromOnnx, ortCompare, ortLatency, quantizeOnnx } from '@tensorpress/export-onnx';
import { pruningGroups } from '@tensorpress/pruning';
import * as ort from 'onnxruntime-node';
import { loadPartialRows, median, round, savePartialRows } from './common.js';
import type { SuiteResult } from './run.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const ZOO_DIR = path.join(here, '.cache', 'zoo');
const PRIMARY_OPSET = '13';

interface ZooEntry {
  task: 'classification' | 'segmentation';
  input: number[];
  inputLayout: string;
  params: number;
  inputSensitivity: number;
  files: Record<string, string>;
  errors: Record<string, string>;
}

/** Seeded N(0, 1) values (Box–Muller over an LCG). */
function gaussian(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = (): number => ((s = (s * 1664525 + 1013904223) >>> 0) + 1) / 2 ** 32;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()));
    const t = 2 * Math.PI * u();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** `count` examples in batches of `batch`, each batch drawn from its own seed (nothing kept). */
function* batches(per: number, count: number, batch: number, seed: number): Generator<Float32Array> {
  for (let i = 0, k = 0; i < count; i += batch, k++) yield gaussian(Math.min(batch, count - i) * per, seed * 100_003 + k);
}

function cpuFlags(): string[] {
  try {
    const flags = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? [];
    return ['avx2', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'avx_vnni', 'amx_int8'].filter((f) => flags.includes(f));
  } catch {
    return [];
  }
}

function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/\s+/g, ' ').slice(0, 200);
}

/** In-process FP32 (tfjs executor) against onnxruntime on the same inputs: max |diff| and its share of the largest |ORT output|. */
async function inProcessDiff(bytes: Uint8Array, graph: ReturnType<typeof fromOnnx>, dims: number[], seed: number): Promise<{ maxAbsDiff: number; relDiff: number }> {
  const x = gaussian(dims.reduce((p, d) => p * d, 1), seed);
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  let ref: Float32Array;
  let refDims: readonly number[];
  try {
    const o = (await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, dims) }))[s.outputNames[0]!]!;
    ref = o.data as Float32Array;
    refDims = o.dims;
  } finally {
    await s.release();
  }
  const ex = new Executor(graph);
  try {
    const y = tf.tidy(() => {
      const t = tf.tensor(x, dims);
      const input = dims.length === 4 ? tf.transpose(t, [0, 2, 3, 1]) : t;
      const out = ex.run(input)[0]!;
      return out.rank === 4 && refDims.length === 4 ? tf.transpose(out, [0, 3, 1, 2]) : out;
    });
    const mine = y.dataSync() as Float32Array;
    y.dispose();
    if (mine.length !== ref.length) throw new Error(`in-process output has ${mine.length} values, onnxruntime ${ref.length}`);
    let d = 0;
    let m = 0;
    for (let i = 0; i < ref.length; i++) {
      d = Math.max(d, Math.abs(mine[i]! - ref[i]!));
      m = Math.max(m, Math.abs(ref[i]!));
    }
    return { maxAbsDiff: d, relDiff: m > 0 ? d / m : d };
  } finally {
    ex.dispose();
  }
}

const IMPORT_KEYS = ['import', 'importError', 'fp32MaxAbsDiff', 'fp32RelDiff', 'fp32Error', 'prunableGroups', 'groups', 'groupsError'];

/** In-process import (fromOnnx), FP32 executor vs onnxruntime, prunable groups. */
async function importColumns(bytes: Uint8Array, entry: ZooEntry, primary: boolean): Promise<Record<string, unknown>> {
  const row: Record<string, unknown> = {};
  try {
    const graph = fromOnnx(bytes, { onWarning: () => undefined });
    row['import'] = 'in-process';
    try {
      const d = await inProcessDiff(bytes, graph, [primary ? 2 : 1, ...entry.input.slice(1)], 11);
      row['fp32MaxAbsDiff'] = Number(d.maxAbsDiff.toPrecision(3));
      row['fp32RelDiff'] = Number(d.relDiff.toPrecision(3));
    } catch (e) {
      row['fp32Error'] = firstLine(e);
    }
    try {
      const g = pruningGroups(graph);
      row['prunableGroups'] = g.groups.filter((x) => x.prunable).length;
      row['groups'] = g.groups.length;
    } catch (e) {
      row['groupsError'] = firstLine(e);
    }
  } catch (e) {
    row['import'] = 'ORT-backed only';
    row['importError'] = firstLine(e);
  }
  return row;
}

/** Rows in zoo order, the primary opset first, then by opset. */
function sortRows(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  const key = (r: Record<string, unknown>): [number, number, number] => [ALL.indexOf(String(r['model'])), String(r['opset']) === PRIMARY_OPSET ? 0 : 1, Number(r['opset'] ?? 0)];
  return [...rows].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
}

/** FP32 and INT8 ORT latency medians, alternated over `rounds` rounds. */
async function latencyPair(fp32: Uint8Array, int8: Uint8Array, batch: number, runs: number, rounds: number): Promise<{ fp32Ms: number; int8Ms: number }> {
  const s: number[][] = [[], []];
  for (let r = 0; r < rounds; r++) {
    for (const [i, b] of [fp32, int8].entries()) s[i]!.push((await ortLatency(b, { batch, threads: 1, runs, warmup: 2 })).medianMs);
  }
  return { fp32Ms: round(median(s[0]!), 3), int8Ms: round(median(s[1]!), 3) };
}

function loadManifest(): { models: Record<string, ZooEntry>; torch?: string; torchvision?: string } {
  const f = path.join(ZOO_DIR, 'zoo.json');
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as { models: Record<string, ZooEntry> }) : { models: {} };
}

const ALL = [
  'resnet18',
  'resnet50',
  'mobilenet_v2',
  'mobilenet_v3_large',
  'shufflenet_v2_x1_0',
  'squeezenet1_1',
  'googlenet',
  'efficientnet_b0',
  'densenet121',
  'regnet_y_400mf',
  'lraspp_mobilenet_v3_large',
  'unet',
  'vit_tiny',
  'transformer_encoder',
];

export default async function zoo(args: string[]): Promise<SuiteResult> {
  const quick = args.includes('--quick');
  const onlyArg = args.indexOf('--only');
  const only = onlyArg >= 0 ? (args[onlyArg + 1] ?? '').split(',').filter(Boolean) : ALL;
  const CALIB = quick ? 16 : 256;
  const EVAL = quick ? 16 : 256;
  // 256 calibration inputs for ResNet-50 (the timed target), 64 for the others (min-max ranges settle early; the bench's time budget).
  const CALIB_OTHERS = quick ? 16 : 64;
  await useBackend(['wasm', 'cpu']);

  // Export what is missing.
  let manifest = loadManifest();
  const missing = only.filter((m) => {
    const e = manifest.models[m];
    return !e || Object.values(e.files).length === 0 || Object.values(e.files).some((f) => !existsSync(path.join(ZOO_DIR, f)));
  });
  if (missing.length > 0) {
    console.log(`exporting ${missing.join(', ')} with /usr/bin/python3 bench/zoo/make-zoo.py`);
    const r = spawnSync('/usr/bin/python3', [path.join(here, 'zoo', 'make-zoo.py'), '--only', missing.join(',')], { stdio: 'inherit' });
    if (r.status !== 0) console.error(`make-zoo.py exited with ${r.status}; models it did not write are reported as missing`);
    manifest = loadManifest();
  }

  if (args.includes('--reimport')) {
    // The import columns again (after reader changes), keeping the PTQ and latency columns of the last run.
    const last = JSON.parse(await readFile(path.join(here, 'results', 'zoo.json'), 'utf8')) as { rows: Record<string, unknown>[]; notes?: string[] };
    for (const row of last.rows) {
      const entry = manifest.models[String(row['model'])];
      const f = entry?.files[String(row['opset'])];
      if (!entry || !f || !only.includes(String(row['model']))) continue;
      for (const k of IMPORT_KEYS) delete row[k];
      const primary = String(row['opset']) === (Object.keys(entry.files).includes(PRIMARY_OPSET) ? PRIMARY_OPSET : Object.keys(entry.files)[0]);
      Object.assign(row, await importColumns(new Uint8Array(await readFile(path.join(ZOO_DIR, f))), entry, primary));
      console.log(JSON.stringify({ model: row['model'], opset: row['opset'], import: row['import'], fp32RelDiff: row['fp32RelDiff'], prunableGroups: row['prunableGroups'] }));
    }
    return { rows: sortRows(last.rows), backend: `${tf.getBackend()} (in-process FP32), onnxruntime-node CPU EP 1 thread`, notes: [...(last.notes ?? []), `Import columns re-measured on ${new Date().toISOString().slice(0, 16)}Z (--reimport) after reader changes; PTQ and latency columns from the full run.`] };
  }
  const rows: Record<string, unknown>[] = args.includes('--resume') ? await loadPartialRows('zoo') : [];
  const done = new Set(rows.map((r) => `${String(r['model'])}@${String(r['opset'])}`));
  for (const name of only) {
    const entry = manifest.models[name];
    if (!entry) {
      rows.push({ model: name, error: 'not exported (see make-zoo.py output)' });
      continue;
    }
    const opsets = Object.keys(entry.files).sort((a, b) => (a === PRIMARY_OPSET ? -1 : b === PRIMARY_OPSET ? 1 : Number(a) - Number(b)));
    for (const [opset, msg] of Object.entries(entry.errors)) {
      if (!done.has(`${name}@${opset}`)) rows.push({ model: name, opset: Number(opset), exportError: msg });
    }
    for (const opset of opsets) {
      if (done.has(`${name}@${opset}`)) continue;
      const primary = opset === opsets[0];
      const file = path.join(ZOO_DIR, entry.files[opset]!);
      const bytes = new Uint8Array(await readFile(file));
      const per = entry.input.slice(1).reduce((p, d) => p * d, 1);
      const row: Record<string, unknown> = { model: name, opset: Number(opset), task: entry.task, input: entry.input.slice(1).join('×'), params: entry.params, inputSensitivity: entry.inputSensitivity };
      const t0 = performance.now();
      Object.assign(row, await importColumns(bytes, entry, primary));
      // PTQ in onnxruntime.
      try {
        const calib = primary ? (name === 'resnet50' ? CALIB : CALIB_OTHERS) : 8;
        const batch = per > 100_000 ? 4 : 8;
        const tq = performance.now();
        const cpu0 = process.cpuUsage();
        const load0 = os.loadavg()[0]!;
        const q = await quantizeOnnx(bytes, batches(per, calib, batch, 1), { perChannel: true });
        const cpu = process.cpuUsage(cpu0);
        row['ptqSeconds'] = round((performance.now() - tq) / 1000, 1);
        // CPU time of this process (onnxruntime's threads included) and the 1-minute load average: the machine is shared.
        row['ptqCpuSeconds'] = round((cpu.user + cpu.system) / 1e6, 1);
        row['loadAvg'] = round((load0 + os.loadavg()[0]!) / 2, 1);
        row['calibExamples'] = q.examples;
        row['quantizedNodes'] = q.quantized.length;
        row['skippedNodes'] = q.skipped.length;
        row['sizeRatio'] = round(q.bytes.length / bytes.length, 3);
        const c = await ortCompare(bytes, q.bytes, batches(per, primary ? EVAL : 16, batch, 2));
        row['evalExamples'] = c.examples;
        row['int8RelMaxDiff'] = Number(c.relMaxAbsDiff.toPrecision(3));
        row['int8MeanAbsDiff'] = Number(c.meanAbsDiff.toPrecision(3));
        row['top1Agreement'] = c.top1Agreement === null ? null : round(c.top1Agreement, 4);
        if (primary) {
          const b1 = await latencyPair(bytes, q.bytes, 1, quick ? 3 : 10, 2);
          const b8 = await latencyPair(bytes, q.bytes, 8, quick ? 2 : 4, 2);
          row['fp32MsB1'] = b1.fp32Ms;
          row['int8MsB1'] = b1.int8Ms;
          row['speedupB1'] = round(b1.fp32Ms / b1.int8Ms, 2);
          row['fp32MsB8'] = b8.fp32Ms;
          row['int8MsB8'] = b8.int8Ms;
          row['speedupB8'] = round(b8.fp32Ms / b8.int8Ms, 2);
        }
      } catch (e) {
        row['ptqError'] = firstLine(e);
      }
      row['seconds'] = round((performance.now() - t0) / 1000, 1);
      console.log(JSON.stringify(row));
      rows.push(row);
      await savePartialRows('zoo', rows);
    }
  }
  const flags = cpuFlags();
  return {
    rows: sortRows(rows),
    backend: `${tf.getBackend()} (in-process FP32), onnxruntime-node CPU EP 1 thread`,
    notes: [
      `Models: bench/zoo/make-zoo.py (torch ${manifest.torch ?? '?'}, torchvision ${manifest.torchvision ?? '?'}), random weights, BN statistics re-estimated on random N(0,1) inputs; inputSensitivity = mean std of outputs across random inputs over mean |output|.`,
      `Inputs: random N(0,1) (seeded), calibration and evaluation draws disjoint; PTQ = export-onnx quantizeOnnx (min-max, per-channel int8 weights, uint8 activations) on ${CALIB} inputs for ResNet-50 and ${CALIB_OTHERS} for the other models at the primary opset 13, 8 at the other opsets (agreement there on 16 inputs); parity and top-1 agreement at the primary opset on ${EVAL} inputs.`,
      'fp32RelDiff: in-process tfjs executor vs onnxruntime on 2 inputs, max |diff| over max |ORT output|. int8RelMaxDiff: INT8 vs FP32 in onnxruntime, same normalisation. top1Agreement: arg-max per row (classification) or per pixel (segmentation).',
      'ptqSeconds: wall time of quantizeOnnx (calibration runs, ranges, rewrite); ptqCpuSeconds: CPU time of the bench process meanwhile (onnxruntime threads included); loadAvg: 1-minute load average around it, on 2 cores shared with other agents.',
      'Latency: ortLatency, 1 intra-op thread, FP32 and INT8 alternated over 2 rounds (medians of medians); 10 runs at batch 1, 4 at batch 8. The 2-core machine is shared with other agents: absolute times are noisy, the side-by-side ratios less so.',
      `CPU flags: ${flags.join(' ') || 'unknown'}.`,
    ],
  };
}
