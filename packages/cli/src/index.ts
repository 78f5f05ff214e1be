/**
 * @tensorpress/cli: the `tensorpress` command (compress, quantize, analyze, eval, export, inspect) and the same
 * commands as functions, for scripts and tests; the file format of fit's training checkpoints.
 */
export { runCli } from './cli.js';
export type { CliIo } from './cli.js';
export { runCompress, parityOf } from './compress.js';
export type { RunCompressOptions, RunCompressResult } from './compress.js';
export { runAnalyze, formatAnalysis, ANALYZE_METHODS } from './analyze.js';
export type { RunAnalyzeOptions, RunAnalyzeResult, AnalyzeMethod } from './analyze.js';
export type { PlanFile } from './internal/plan-file.js';
export { runEval } from './eval.js';
export type { RunEvalOptions, RunEvalResult } from './eval.js';
export { runExport } from './export.js';
export { runQuantize, QUANTIZE_METHODS } from './quantize.js';
export type { RunQuantizeOptions } from './quantize.js';
export type { RunExportOptions } from './export.js';
export { runInspect, formatInspect } from './inspect.js';
export type { InspectResult, RunInspectOptions } from './inspect.js';
export { discoverAlgorithms, isAlgorithmDefinition, techniquePackages, algorithmHints, KNOWN_TECHNIQUES } from './discover.js';
export type { DiscoveredAlgorithms, DiscoveredPackage } from './discover.js';
export { loadModel, defaultCacheDir, BUILTIN_MODELS, FP32_RECIPES } from './load-model.js';
export type { LoadedModel, LoadModelOptions } from './load-model.js';
export { loadData } from './load-data.js';
export type { LoadedData, LoadDataOptions } from './load-data.js';
export { EXIT_CODES, CliError, InterruptedError, exitCodeOf } from './exit-codes.js';
export type { ExitCode } from './exit-codes.js';
export { OUTPUT_MARKER, isTensorpressOutput, outputState } from './output-dir.js';
export type { OutputState } from './output-dir.js';
export { CHECKPOINT_FILE, DEFAULT_CHECKPOINT_EVERY } from './checkpoint-dir.js';
export { encodeCheckpoint, decodeCheckpoint, writeCheckpoint, readCheckpoint, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION } from './checkpoint-file.js';
export type { DecodeCheckpointOptions } from './checkpoint-file.js';
export { reportMarkdown, reportChart, comparisonRows, formatTable } from './report.js';
export type { CompressReport, ModelMeasurements, ParitySummary, QuantizeReport } from './report.js';
export { quantizeRows, quantizeParitySentence } from './report.js';
