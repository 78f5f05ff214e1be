import { TensorpressError, type ErrorCode } from '@tensorpress/core-tensor';

/** Exit codes of the `tensorpress` command (also the `exitCode` of a {@link CliError}). */
export const EXIT_CODES = Object.freeze({
  /** Success. */
  ok: 0,
  /** An unexpected failure (a bug, or the environment: no backend, onnxruntime missing). */
  unexpected: 1,
  /** Bad usage or configuration: unknown option, invalid pipeline config, unknown or uninstalled algorithm, existing output folder. */
  usage: 2,
  /** Bad input: a missing or malformed model or data file, a model the tools cannot handle. */
  input: 3,
  /** The exported ONNX model does not agree with the in-process graph. */
  parity: 4,
  /** Interrupted (Ctrl-C / SIGINT, SIGTERM). */
  interrupted: 130,
});

/** One of {@link EXIT_CODES}' values. */
export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

/** Why a command stopped, with the exit code the `tensorpress` binary returns for it. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  /** Stable reason, e.g. `OUTPUT_EXISTS`, `PARITY_FAILED`, or the underlying {@link ErrorCode}. */
  readonly code: string;
  constructor(exitCode: ExitCode, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.code = code;
  }
}

/** The run was stopped by a signal or an aborted `AbortSignal`. */
export class InterruptedError extends CliError {
  constructor(message = 'interrupted') {
    super(EXIT_CODES.interrupted, 'INTERRUPTED', message);
    this.name = 'InterruptedError';
  }
}

const USAGE_CODES = new Set<ErrorCode>([
  'CONFIG_INVALID',
  'ALGORITHM_UNKNOWN',
  'TARGET_UNREACHABLE',
  'NOTHING_PRUNABLE',
  'STATE_INVALID',
  // A checkpoint of another run, and a learning rate that makes training diverge: both the options' doing.
  'CHECKPOINT_MISMATCH',
  'LOSS_NOT_FINITE',
]);
const INPUT_CODES = new Set<ErrorCode>([
  'GRAPH_INVALID',
  'GRAPH_CYCLE',
  'GRAPH_DANGLING_EDGE',
  'GRAPH_DUPLICATE_NAME',
  'SHAPE_MISMATCH',
  'UNKNOWN_OP',
  'UNSUPPORTED_OP',
  'UNSUPPORTED_LAYER',
  'SAVED_GRAPH_INVALID',
  'INPUT_INVALID',
  'DATA_INVALID',
  'DATASET_MISSING',
  'IO_ERROR',
  'ONNX_INVALID',
  'ONNX_UNSUPPORTED',
  'CHECKPOINT_INVALID',
]);

/** The exit code for any thrown value: CliError's own, a TensorpressError's by its code class, else 1. */
export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof TensorpressError) {
    if (error.code === 'ABORTED') return EXIT_CODES.interrupted;
    if (USAGE_CODES.has(error.code)) return EXIT_CODES.usage;
    if (INPUT_CODES.has(error.code)) return EXIT_CODES.input;
    return EXIT_CODES.unexpected;
  }
  return EXIT_CODES.unexpected;
}

/** The error's message on one line (no stack trace, no line breaks). */
export function oneLine(error: unknown): string {
  const raw = error instanceof Error ? error.message : String(error);
  return raw.replace(/\s*\n\s*/g, ' ').trim() || (error instanceof Error ? error.name : 'unknown error');
}
