import type { AlgorithmStatistics, Json, PipelineConfig } from '@tensorpress/core-tensor';

/** Measurements of one model (FP32 or compressed) in a {@link CompressReport}. */
export interface ModelMeasurements {
  /** Top-1 accuracy on the test split, 0..1. */
  readonly accuracy: number;
  readonly loss: number;
  readonly params: number;
  /** Per example. */
  readonly flops: number;
  readonly macs: number;
  /** Parameter storage from core statistics (int8 weights count 1 byte). */
  readonly paramBytes: number;
  /** Size of the exported ONNX file. */
  readonly onnxBytes: number;
  /** Median onnxruntime-node latency, batch 1, 1 thread; null when not measured. */
  readonly latencyMs: number | null;
}

/** How the exported file compared with the in-process graph. */
export interface ParitySummary {
  readonly passed: boolean;
  /** The rule applied, in words. */
  readonly criterion: string;
  readonly examples: number;
  readonly maxAbsDiff: number;
  readonly top1Agreement: number | null;
  /** One output quantization step (quantized models), else null. */
  readonly outputStep: number | null;
  readonly beyondStep: number | null;
}

/** What `tensorpress compress` writes to report.json. */
export interface CompressReport {
  readonly format: 'tensorpress.compress-report';
  readonly version: 1;
  readonly date: string;
  readonly machine: { readonly cpus: number; readonly node: string; readonly backend: string };
  readonly model: { readonly source: string; readonly kind: string };
  readonly data: { readonly name: string; readonly trainExamples: number; readonly testExamples: number };
  readonly pipeline: PipelineConfig;
  readonly training: {
    readonly epochs: number;
    readonly batchSize: number;
    readonly optimizer: string;
    readonly learningRate: number;
    readonly lrSchedule: 'cosine';
    readonly seconds: number;
    readonly history: readonly Json[];
  };
  readonly fp32: ModelMeasurements;
  readonly compressed: ModelMeasurements;
  /** Compressed over FP32 (accuracy: difference in points). */
  readonly ratios: { readonly deltaPts: number; readonly params: number; readonly flops: number; readonly onnxBytes: number; readonly latency: number | null };
  readonly algorithms: readonly AlgorithmStatistics[];
  readonly parity: ParitySummary;
  /** File names in the output folder (`tfjs`: the model.json, when asked for). */
  readonly files: { readonly onnx: string; readonly reportMd: string; readonly reportJson: string; readonly chart: string; readonly tfjs?: string };
  /** The tfjs-layers model written beside the ONNX file, when asked for. */
  readonly tfjs?: { readonly weights: string; readonly bytes: number; readonly shards: number };
  readonly seconds: number;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
const ratio = (x: number | null): string => (x === null || !Number.isFinite(x) ? '' : `${x.toFixed(3)}×`);
const ms = (x: number | null): string => (x === null ? 'n/a' : `${x.toFixed(3)} ms`);

function bytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** The FP32-vs-compressed table rows: metric, FP32, compressed, compressed/FP32. */
export function comparisonRows(r: CompressReport): string[][] {
  const sign = r.ratios.deltaPts >= 0 ? '+' : '−';
  return [
    ['accuracy', pct(r.fp32.accuracy), pct(r.compressed.accuracy), `${sign}${Math.abs(r.ratios.deltaPts).toFixed(2)} pts`],
    ['params', int(r.fp32.params), int(r.compressed.params), ratio(r.ratios.params)],
    ['FLOPs / example', int(r.fp32.flops), int(r.compressed.flops), ratio(r.ratios.flops)],
    ['ONNX bytes', `${int(r.fp32.onnxBytes)} (${bytes(r.fp32.onnxBytes)})`, `${int(r.compressed.onnxBytes)} (${bytes(r.compressed.onnxBytes)})`, ratio(r.ratios.onnxBytes)],
    ['ORT latency (batch 1, 1 thread)', ms(r.fp32.latencyMs), ms(r.compressed.latencyMs), ratio(r.ratios.latency)],
  ];
}

/** A plain-text table with aligned columns (what the terminal shows). */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function mdTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  return [`| ${header.map(esc).join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

function jsonCell(v: Json | undefined): string {
  if (typeof v === 'number') return Number.isInteger(v) ? int(v) : v.toPrecision(4);
  return v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
}

/** The parity result in one line. */
export function paritySentence(p: ParitySummary): string {
  const top1 = p.top1Agreement === null ? '' : `, top-1 agreement ${pct(p.top1Agreement)}`;
  const step = p.outputStep === null ? '' : `, output step ${p.outputStep.toPrecision(3)}, ${p.beyondStep ?? 0} value(s) beyond one step`;
  return `${p.passed ? 'passed' : 'FAILED'} on ${p.examples} test examples: max |diff| ${p.maxAbsDiff.toExponential(2)}${top1}${step} (rule: ${p.criterion})`;
}

/** report.md: the table, each algorithm's totals and skipped layers, parity and how the run was made. */
export function reportMarkdown(r: CompressReport): string {
  const out: string[] = [];
  out.push(`# tensorpress compress report`, '');
  out.push(`Model \`${r.model.source}\` (${r.model.kind}) on \`${r.data.name}\` (${int(r.data.trainExamples)} train / ${int(r.data.testExamples)} test examples).`);
  out.push(`Pipeline: ${r.pipeline.compression.map((c) => `\`${c.algorithm}\``).join(' + ')}; fine-tuned ${r.training.epochs} epoch(s), ${r.training.optimizer} ${r.training.learningRate}, batch ${r.training.batchSize}, cosine, in ${r.training.seconds.toFixed(1)} s.`, '');
  out.push(mdTable(['', 'FP32', 'compressed', 'compressed / FP32'], comparisonRows(r)), '');
  out.push('![accuracy against model bytes](chart.svg)', '');
  out.push('## ONNX parity', '', `\`${r.files.onnx}\` in onnxruntime-node against the in-process graph: ${paritySentence(r.parity)}.`, '');
  if (r.tfjs && r.files.tfjs) {
    out.push('## tfjs-layers model', '', `\`${r.files.tfjs}\` and ${r.tfjs.shards} weight shard(s), ${r.tfjs.bytes.toLocaleString('en-US')} bytes, weights stored as ${r.tfjs.weights}: \`tf.loadLayersModel\` loads it.`, '');
  }
  out.push('## Algorithms', '');
  for (const a of r.algorithms) {
    out.push(`### ${a.algorithm}`, '');
    const totals = Object.entries(a.total);
    if (totals.length > 0) out.push(mdTable(['total', 'value'], totals.map(([k, v]) => [k, jsonCell(v)])), '');
    if (a.layers.length > 0) {
      const keys = [...new Set(a.layers.flatMap((l) => Object.keys(l).filter((k) => k !== 'node' && k !== 'op')))].slice(0, 6);
      out.push(mdTable(['node', 'op', ...keys], a.layers.map((l) => [l.node, l.op, ...keys.map((k) => jsonCell(l[k]))])), '');
    }
    if (a.skipped.length > 0) out.push('Left out:', '', ...a.skipped.map((s) => `- \`${s.node}\`: ${s.reason}`), '');
  }
  out.push('## Run', '');
  out.push(`${r.date}, ${r.machine.cpus} CPU(s), Node ${r.machine.node}, tfjs backend \`${r.machine.backend}\`, ${r.seconds.toFixed(1)} s in all.`, '');
  return `${out.join('\n')}\n`;
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * chart.svg: accuracy (y) against ONNX file bytes (x, linear from 0) for the FP32 and the
 * compressed model, two labelled points. Hand-written SVG: no charting dependency.
 */
export function reportChart(r: CompressReport): string {
  const W = 480;
  const H = 320;
  const m = { l: 64, r: 24, t: 36, b: 52 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const pts = [
    { label: 'FP32', bytes: r.fp32.onnxBytes, acc: r.fp32.accuracy, color: '#4e79a7' },
    { label: 'compressed', bytes: r.compressed.onnxBytes, acc: r.compressed.accuracy, color: '#e15759' },
  ];
  const xMax = Math.max(...pts.map((p) => p.bytes)) * 1.45 || 1;
  const lo = Math.min(...pts.map((p) => p.acc));
  const hi = Math.max(...pts.map((p) => p.acc));
  const pad = Math.max((hi - lo) * 0.5, 0.005);
  const yMin = Math.max(0, lo - pad);
  const yMax = Math.min(1, hi + pad);
  const x = (b: number): number => m.l + (b / xMax) * pw;
  const y = (a: number): number => m.t + (1 - (a - yMin) / Math.max(yMax - yMin, 1e-9)) * ph;
  const ticks = (n: number, f: (i: number) => string): string => Array.from({ length: n + 1 }, (_, i) => f(i)).join('');
  const f = (v: number): string => v.toFixed(1);
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>Accuracy against model bytes: FP32 and compressed</title>`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${xmlEscape(`${r.model.source} on ${r.data.name.split('/').pop() ?? r.data.name}`)}</text>`,
    `<line x1="${m.l}" y1="${m.t + ph}" x2="${m.l + pw}" y2="${m.t + ph}" stroke="#333"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ph}" stroke="#333"/>`,
    ticks(4, (i) => {
      const v = (xMax * i) / 4;
      return `<line x1="${f(x(v))}" y1="${m.t + ph}" x2="${f(x(v))}" y2="${m.t + ph + 4}" stroke="#333"/><text x="${f(x(v))}" y="${m.t + ph + 18}" text-anchor="middle">${(v / 1024).toFixed(0)}</text>`;
    }),
    ticks(4, (i) => {
      const v = yMin + ((yMax - yMin) * i) / 4;
      return `<line x1="${m.l - 4}" y1="${f(y(v))}" x2="${m.l}" y2="${f(y(v))}" stroke="#333"/><text x="${m.l - 8}" y="${f(y(v) + 4)}" text-anchor="end">${(v * 100).toFixed(1)}</text>`;
    }),
    `<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle">ONNX model size (KiB)</text>`,
    `<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">test accuracy (%)</text>`,
    ...pts.map(
      (p) =>
        `<circle cx="${f(x(p.bytes))}" cy="${f(y(p.acc))}" r="6" fill="${p.color}"><title>${p.label}: ${(p.acc * 100).toFixed(2)}%, ${p.bytes} bytes</title></circle>` +
        `<text x="${f(x(p.bytes) + 10)}" y="${f(y(p.acc) - 8)}" fill="${p.color}">${xmlEscape(`${p.label} ${(p.acc * 100).toFixed(2)}%`)}</text>`,
    ),
    `</svg>`,
  ];
  return `${svg.join('\n')}\n`;
}

/** What `tensorpress quantize` reports (printed, and the JSON of `--json`). */
export interface QuantizeReport {
  readonly format: 'tensorpress.quantize-report';
  readonly version: 1;
  readonly date: string;
  readonly machine: { readonly cpus: number; readonly node: string; readonly backend: string };
  readonly model: string;
  readonly output: string;
  readonly data: { readonly source: string; readonly examples: number; readonly preprocessing: string };
  readonly method: string;
  readonly perChannel: boolean;
  readonly activationType: 'uint8' | 'int8';
  readonly calibration: { readonly examples: number; readonly batches: number; readonly seconds: number };
  readonly fp32: { readonly onnxBytes: number; readonly latencyMs: number | null };
  readonly int8: { readonly onnxBytes: number; readonly latencyMs: number | null };
  /** INT8 over FP32. */
  readonly ratios: { readonly onnxBytes: number; readonly latency: number | null };
  readonly parity: {
    readonly examples: number;
    /** Whether the examples were held out (else the calibration examples, when the data had no more). */
    readonly heldOut: boolean;
    readonly maxAbsDiff: number;
    readonly relMaxAbsDiff: number;
    readonly meanAbsDiff: number;
    readonly top1Agreement: number | null;
    readonly passed: boolean;
    readonly criterion: string;
  };
  readonly quantized: number;
  readonly weights: number;
  readonly skipped: readonly { readonly node: string; readonly op: string; readonly reason: string }[];
  readonly seconds: number;
}

/** The FP32-vs-INT8 table rows of `tensorpress quantize` (the rows `compress` prints for ONNX files). */
export function quantizeRows(r: QuantizeReport): string[][] {
  return [
    ['ONNX bytes', `${int(r.fp32.onnxBytes)} (${bytes(r.fp32.onnxBytes)})`, `${int(r.int8.onnxBytes)} (${bytes(r.int8.onnxBytes)})`, ratio(r.ratios.onnxBytes)],
    ['ORT latency (batch 1, 1 thread)', ms(r.fp32.latencyMs), ms(r.int8.latencyMs), ratio(r.ratios.latency)],
  ];
}

/** The parity of a quantized ONNX file against its FP32 model, in one line. */
export function quantizeParitySentence(r: QuantizeReport): string {
  const p = r.parity;
  const top1 = p.top1Agreement === null ? '' : `, top-1 agreement with FP32 ${pct(p.top1Agreement)}`;
  return `${p.passed ? 'passed' : 'FAILED'} on ${p.examples} ${p.heldOut ? 'held-out' : 'calibration (no held-out data left)'} examples: max |diff| ${p.maxAbsDiff.toExponential(2)} (${pct(p.relMaxAbsDiff)} of max |FP32|)${top1} (rule: ${p.criterion})`;
}
