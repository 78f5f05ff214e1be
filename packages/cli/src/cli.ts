import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { BackendName } from '@tensorpress/core-tensor';
import { ANALYZE_METHODS, formatAnalysis, runAnalyze, type AnalyzeMethod } from './analyze.js';
import { runCompress } from './compress.js';
import { runEval } from './eval.js';
import { EXIT_CODES, exitCodeOf, oneLine } from './exit-codes.js';
import { runExport } from './export.js';
import { formatInspect, runInspect } from './inspect.js';
import { BUILTIN_MODELS } from './load-model.js';
import { WEIGHT_FORMATS, type WeightFormat } from '@tensorpress/export-tfjs';
import { comparisonRows, formatTable, paritySentence, quantizeParitySentence, quantizeRows } from './report.js';
import { QUANTIZE_METHODS, runQuantize } from './quantize.js';

/** Where {@link runCli} writes, and how it is stopped. */
export interface CliIo {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  signal?: AbortSignal;
}

const VERSION = '0.1.0';
const BACKENDS = ['tensorflow', 'webgpu', 'webgl', 'wasm', 'cpu'];

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}
function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected an integer >= 0');
  return n;
}

const EXIT_HELP = `
Exit codes:
  0    success
  1    unexpected error (a bug, or the environment: no backend, onnxruntime-node missing)
  2    usage or config error (bad option, invalid config, unknown or uninstalled algorithm, existing --out,
       a checkpoint of another run or none to --resume, training diverged: lower the learning rate)
  3    input error (missing or malformed model, data or checkpoint)
  4    the exported ONNX model failed the parity check (the report is still written; quantize: the file is)
  130  interrupted (Ctrl-C; with --checkpoint-dir a checkpoint is saved first: rerun with --resume)`;

interface CommonOpts {
  json?: boolean;
  backend?: BackendName;
  cacheDir?: string;
  cache?: boolean;
  limit?: number;
  fp32Epochs?: number;
}

interface CompressOpts extends CommonOpts {
  model?: string;
  data?: string;
  config: string;
  out: string;
  force?: boolean;
  epochs?: number;
  latencyRuns?: number;
  checkpointDir?: string;
  checkpointEvery?: number;
  resume?: boolean;
  tfjs?: WeightFormat | true;
  plan?: string;
}

interface QuantizeOpts extends CommonOpts {
  data: string;
  out: string;
  method: (typeof QUANTIZE_METHODS)[number];
  perChannel?: boolean;
  activationType: 'uint8' | 'int8';
  samples?: number;
  evalSamples?: number;
  batchSize?: number;
  resize?: boolean;
  latencyRuns?: number;
  minAgreement?: number;
  force?: boolean;
}

interface AnalyzeOpts extends CommonOpts {
  model: string;
  data?: string;
  method: AnalyzeMethod;
  levels?: number[];
  samples?: number;
  flopsReduction?: number;
  budget?: { type: 'bops' | 'bytes' | 'averageBits' | 'compressionRatio'; value: number };
  out: string;
  force?: boolean;
}

function numberList(v: string): number[] {
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isFinite(x))) throw new InvalidArgumentError('expected numbers separated by commas, e.g. 0.25,0.5,0.75');
  return xs;
}
function fraction(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n < 1)) throw new InvalidArgumentError('expected a number in (0, 1)');
  return n;
}
const BUDGET_TYPES = ['bops', 'bytes', 'averageBits', 'compressionRatio'] as const;
function budget(v: string): AnalyzeOpts['budget'] {
  const m = /^([A-Za-z]+)=([0-9.eE+-]+)$/.exec(v.trim());
  const type = m?.[1] as (typeof BUDGET_TYPES)[number] | undefined;
  const value = Number(m?.[2]);
  if (!type || !BUDGET_TYPES.includes(type) || !(value > 0)) throw new InvalidArgumentError(`expected TYPE=VALUE with TYPE one of ${BUDGET_TYPES.join(', ')}, e.g. averageBits=4`);
  return { type, value };
}

/**
 * Runs the `tensorpress` command line (`argv` without node and the script) and returns the exit
 * code. Never throws and never calls process.exit: errors become one line on stderr (and a JSON
 * object on stdout with `--json`).
 */
export async function runCli(argv: readonly string[], io: CliIo = {}): Promise<number> {
  const out = io.stdout ?? ((s: string) => void process.stdout.write(s));
  const err = io.stderr ?? ((s: string) => void process.stderr.write(s));
  let json = false;
  /** Human status lines: stdout normally, stderr with --json so stdout stays one JSON document. */
  const info = (line: string): void => (json ? err : out)(`${line}\n`);
  const common = (c: CommonOpts): Record<string, unknown> => {
    json = c.json ?? false;
    return {
      ...(c.backend ? { backend: c.backend } : {}),
      ...(c.cache === false ? { cacheDir: false } : c.cacheDir ? { cacheDir: c.cacheDir } : {}),
      ...(c.limit !== undefined ? { limit: c.limit } : {}),
      ...(c.fp32Epochs !== undefined ? { fp32Epochs: c.fp32Epochs } : {}),
      progress: json ? false : true,
      log: info,
      ...(io.signal ? { signal: io.signal } : {}),
    };
  };
  const emitJson = (value: unknown): void => out(`${JSON.stringify(value, null, 2)}\n`);
  /** The exit code of a command that finished but failed its check (quantize's parity). */
  let exitCode: number = EXIT_CODES.ok;

  const program = new Command('tensorpress')
    .description('Compress neural networks: quantization, pruning and more from one pipeline config, with ONNX out.')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err, outputError: (s, write) => write(`tensorpress: ${s}`) })
    .addHelpText('after', EXIT_HELP);

  const withCommon = (cmd: Command, training: boolean): Command => {
    cmd
      .option('--json', 'print the result as JSON on stdout (status lines go to stderr)')
      .addOption(new Option('--backend <name>', 'tfjs backend (default: wasm, else cpu)').choices(BACKENDS));
    if (training) {
      cmd
        .option('--limit <n>', 'use at most n examples of each data split', positiveInt)
        .option('--fp32-epochs <n>', 'epochs to train a builtin model in FP32 (default 3)', nonNegativeInt)
        .option('--cache-dir <dir>', 'cache of trained builtin models (default $TENSORPRESS_CACHE or node_modules/.cache/tensorpress)')
        .option('--no-cache', 'always train builtin models, do not read or write the cache');
    }
    return cmd.exitOverride().addHelpText('after', EXIT_HELP);
  };
  const modelHelp = `tfjs-layers or tensorpress model.json, file.onnx, or builtin:NAME (${BUILTIN_MODELS.join(', ')})`;

  withCommon(
    program
      .command('compress')
      .description('apply a pipeline config to a model: fine-tune, evaluate, strip, export ONNX, check parity, write a report')
      .option('--model <model>', modelHelp)
      .option('--data <data>', 'mnist, fashion-mnist, or a folder with the four IDX files (default mnist)')
      .requiredOption('--config <file>', 'pipeline config (JSON): { training?, compression: [{ algorithm, params }, ...] }')
      .requiredOption('--out <dir>', 'output folder for model.onnx, report.md, report.json and chart.svg')
      .option('--force', "write into a non-empty output folder (replaces only tensorpress's own files)")
      .option('--epochs <n>', "fine-tuning epochs (overrides the config's training.epochs)", nonNegativeInt)
      .option('--latency-runs <n>', 'onnxruntime timed runs per model and round, 0 to skip (default 30)', nonNegativeInt)
      .option('--checkpoint-dir <dir>', 'write a checkpoint of the fine-tuning there every --checkpoint-every steps and on Ctrl-C (outside --out)')
      .option('--checkpoint-every <n>', 'fine-tuning steps between checkpoints (default 100)', positiveInt)
      .option('--resume', 'continue the interrupted run whose checkpoint is in --checkpoint-dir (same model, data and config)')
      .option('--plan <file>', 'a plan.json of `tensorpress analyze`: its per-layer bits (quant entries) or ratios (filter_pruning) go into the matching config entries')
      .addOption(
        new Option('--tfjs [weights]', 'also write the compressed model as a tfjs-layers model.json + weight shards, weights stored as float32 (default), float16, uint16 or uint8').choices([
          ...WEIGHT_FORMATS,
        ]),
      ),
    true,
  ).action(async (o: CompressOpts) => {
    const r = await runCompress({
      ...common(o),
      ...(o.model ? { model: o.model } : {}),
      ...(o.data ? { data: o.data } : {}),
      config: o.config,
      out: o.out,
      force: o.force ?? false,
      ...(o.epochs !== undefined ? { epochs: o.epochs } : {}),
      ...(o.latencyRuns !== undefined ? { latencyRuns: o.latencyRuns } : {}),
      ...(o.checkpointDir !== undefined ? { checkpointDir: o.checkpointDir } : {}),
      ...(o.checkpointEvery !== undefined ? { checkpointEvery: o.checkpointEvery } : {}),
      ...(o.resume ? { resume: true } : {}),
      ...(o.tfjs !== undefined ? { tfjs: o.tfjs === true ? 'float32' : o.tfjs } : {}),
      ...(o.plan !== undefined ? { plan: o.plan } : {}),
    });
    if (json) return emitJson({ ...r.report, outDir: r.outDir });
    info('');
    info(formatTable(['', 'FP32', 'compressed', 'compressed / FP32'], comparisonRows(r.report)));
    info('');
    info(`ONNX parity ${paritySentence(r.report.parity)}`);
    info(`ONNX model: ${r.outDir}/${r.report.files.onnx}`);
    if (r.report.tfjs && r.report.files.tfjs) {
      info(`tfjs model: ${r.outDir}/${r.report.files.tfjs} (${r.report.tfjs.bytes.toLocaleString('en-US')} bytes with ${r.report.tfjs.shards} shard(s), ${r.report.tfjs.weights} weights)`);
    }
    info(`report:     ${r.outDir}/${r.report.files.reportMd} (and report.json, chart.svg)`);
  });

  withCommon(
    program
      .command('quantize')
      .description('post-training INT8 quantization of any ONNX model onnxruntime runs (QDQ, ranges measured in onnxruntime), checked against FP32')
      .argument('<model>', 'the FP32 .onnx file (only read)')
      .requiredOption('--data <data>', 'calibration data: a .npy file, an IDX image file, or a folder of .npy files or with an IDX image file (uint8 values are divided by 255)')
      .requiredOption('-o, --out <file>', 'the .onnx file to write (atomically)')
      .addOption(new Option('--method <method>', 'range calibration method').choices([...QUANTIZE_METHODS]).default('minmax'))
      .option('--per-channel', 'per-output-channel weight scales')
      .addOption(new Option('--activation-type <type>', 'activation type').choices(['uint8', 'int8']).default('uint8'))
      .option('--samples <n>', 'calibration examples, the first ones of --data (default 256)', positiveInt)
      .option('--eval-samples <n>', 'held-out examples (after the calibration ones) for the parity check (default 256)', positiveInt)
      .option('--batch-size <n>', 'examples per onnxruntime run (default 8)', positiveInt)
      .option('--resize', "bilinear-resize images to the model's height and width")
      .option('--latency-runs <n>', 'onnxruntime timed runs per model and round, 0 to skip (default 20)', nonNegativeInt)
      .option('--min-agreement <x>', 'lowest top-1 agreement with FP32 that passes (default 0.9)', fraction)
      .option('--force', 'replace an existing output file'),
    false,
  ).action(async (model: string, o: QuantizeOpts) => {
    const r = await runQuantize({
      ...common(o),
      model,
      data: o.data,
      out: o.out,
      force: o.force ?? false,
      method: o.method,
      perChannel: o.perChannel ?? false,
      activationType: o.activationType,
      ...(o.samples !== undefined ? { samples: o.samples } : {}),
      ...(o.evalSamples !== undefined ? { evalSamples: o.evalSamples } : {}),
      ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
      ...(o.resize ? { resize: true } : {}),
      ...(o.latencyRuns !== undefined ? { latencyRuns: o.latencyRuns } : {}),
      ...(o.minAgreement !== undefined ? { minAgreement: o.minAgreement } : {}),
    });
    if (json) emitJson(r.report);
    else {
      info('');
      info(formatTable(['', 'FP32', 'INT8', 'INT8 / FP32'], quantizeRows(r.report)));
      info('');
      info(`${r.report.quantized} nodes quantized, ${r.report.weights} weights stored as int8${r.report.skipped.length ? `, left in float: ${r.report.skipped.map((s) => `${s.node} (${s.reason})`).join('; ')}` : ''}`);
      info(`ONNX parity ${quantizeParitySentence(r.report)}`);
      info(`INT8 model: ${r.file}`);
    }
    if (!r.report.parity.passed) {
      err(`tensorpress: the INT8 model was written to ${r.file}, but its parity check failed (exit code ${EXIT_CODES.parity})\n`);
      exitCode = EXIT_CODES.parity;
    }
  });

  withCommon(
    program
      .command('analyze')
      .description('per-layer sensitivity to a method (accuracy drop with one layer compressed at each level), or a HAWQ-v2 bit plan; writes analysis.json, an SVG chart and plan.json')
      .requiredOption('--model <model>', modelHelp)
      .option('--data <data>', 'mnist, fashion-mnist, or a folder with the four IDX files (default mnist)')
      .addOption(new Option('--method <method>', 'what to analyse').choices([...ANALYZE_METHODS]).makeOptionMandatory())
      .option('--levels <list>', 'levels, comma-separated: bits (quantization, hawq), ratios (filter_pruning), levels (sparsity), 1/2 = binary/ternary (binarization)', numberList)
      .option('--samples <n>', 'held-out training examples (default 1000; hawq: calibration examples, default 256)', positiveInt)
      .option('--flops-reduction <r>', 'filter_pruning: also write plan.json, the sensitivity-pruning plan that removes this FLOPs share', fraction)
      .option('--budget <type=value>', 'hawq: bops=, bytes=, averageBits= or compressionRatio= (default: the BOPs of uniform W4A8)', budget)
      .requiredOption('--out <dir>', 'output folder for analysis.json, the chart and plan.json')
      .option('--force', "write into a non-empty output folder (replaces only tensorpress's own files)"),
    true,
  ).action(async (o: AnalyzeOpts) => {
    const r = await runAnalyze({
      ...common(o),
      model: o.model,
      ...(o.data ? { data: o.data } : {}),
      method: o.method,
      ...(o.levels ? { levels: o.levels } : {}),
      ...(o.samples !== undefined ? { samples: o.samples } : {}),
      ...(o.flopsReduction !== undefined ? { flopsReduction: o.flopsReduction } : {}),
      ...(o.budget ? { budget: o.budget } : {}),
      out: o.out,
      force: o.force ?? false,
    });
    if (json) return emitJson({ method: r.method, outDir: r.outDir, files: r.files, sensitivity: r.sensitivity, hawq: r.hawq, pruningPlan: r.pruningPlan, plan: r.plan });
    info('');
    info(formatAnalysis(r));
    info('');
    info(`wrote ${r.files.filter((f) => !f.endsWith('.tensorpress-output')).map((f) => path.basename(f)).join(', ')} to ${r.outDir}`);
  });

  withCommon(
    program
      .command('eval')
      .description('test accuracy and loss of a model (builtin models are trained first, then cached)')
      .requiredOption('--model <model>', modelHelp)
      .option('--data <data>', 'mnist, fashion-mnist, or a folder with the four IDX files (default mnist)'),
    true,
  ).action(async (o: CommonOpts & { model: string; data?: string }) => {
    const r = await runEval({ ...common(o), model: o.model, ...(o.data ? { data: o.data } : {}) });
    if (json) return emitJson(r);
    info(`${r.model} on ${r.data}: accuracy ${(r.accuracy * 100).toFixed(2)}% (${r.count} examples), loss ${r.loss.toFixed(4)}, params ${r.params.toLocaleString('en-US')}, FLOPs/example ${r.flops.toLocaleString('en-US')}`);
  });

  withCommon(
    program
      .command('export')
      .description('write a model as ONNX, or as a tfjs-layers model.json + weight shards (builtin models are trained first, then cached)')
      .requiredOption('--model <model>', modelHelp)
      .requiredOption('--out <path>', 'the .onnx file to write (--format tfjs: the folder for model.json and its shards)')
      .option('--data <data>', 'data to train a builtin model on (default mnist)')
      .option('--force', "replace an existing file (--format tfjs: write into a non-empty folder, replacing only tensorpress's own files)")
      .option('--opset <n>', 'ONNX opset 13..21 (default 13)', positiveInt)
      .addOption(new Option('--format <format>', 'ONNX with quantized graphs as QDQ (default) or QOperator, or tfjs (tf.loadLayersModel loads it)').choices(['qdq', 'qoperator', 'tfjs']))
      .addOption(new Option('--weights <format>', 'tfjs weight storage (default float32; uint8/uint16: tfjs-converter\'s affine quantization)').choices([...WEIGHT_FORMATS])),
    true,
  ).action(
    async (o: CommonOpts & { model: string; out: string; data?: string; force?: boolean; opset?: number; format?: 'qdq' | 'qoperator' | 'tfjs'; weights?: WeightFormat }) => {
      const r = await runExport({
        ...common(o),
        model: o.model,
        out: o.out,
        force: o.force ?? false,
        ...(o.data ? { data: o.data } : {}),
        ...(o.opset !== undefined ? { opset: o.opset } : {}),
        ...(o.format ? { format: o.format } : {}),
        ...(o.weights ? { weights: o.weights } : {}),
      });
      if (json) return emitJson(r);
      info(`wrote ${r.file} (${r.bytes.toLocaleString('en-US')} bytes${r.files.length > 1 ? `, ${r.files.length} files` : ''})`);
    },
  );

  withCommon(
    program
      .command('inspect')
      .description('ops, params, FLOPs, quantizable nodes and pruning groups (with reasons) of a model')
      .argument('<model>', modelHelp),
    false,
  ).action(async (model: string, o: CommonOpts) => {
    common(o);
    const r = await runInspect({ model, ...(o.backend ? { backend: o.backend } : {}) });
    if (json) return emitJson(r);
    info(formatInspect(r));
  });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are "errors" to exitOverride; commander already printed its message.
      return e.exitCode === 0 ? EXIT_CODES.ok : EXIT_CODES.usage;
    }
    const code = exitCodeOf(e);
    const message = oneLine(e);
    if (json) emitJson({ error: { code: (e as { code?: unknown }).code ?? 'UNEXPECTED', message, exitCode: code } });
    err(`tensorpress: ${code === EXIT_CODES.interrupted ? message : `error: ${message}`}\n`);
    return code;
  }
}
