/**
 * Typed errors. Every error tensorpress throws on purpose is a {@link TensorpressError}
 * with a stable `code` and a message a user can act on (JSON path, node name, op, offset).
 */

/** Stable error codes. Append only: users may switch on them. */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'GRAPH_INVALID'
  | 'GRAPH_CYCLE'
  | 'GRAPH_DANGLING_EDGE'
  | 'GRAPH_DUPLICATE_NAME'
  | 'SHAPE_MISMATCH'
  | 'UNKNOWN_OP'
  | 'UNSUPPORTED_OP'
  | 'UNSUPPORTED_LAYER'
  | 'SAVED_GRAPH_INVALID'
  | 'INPUT_INVALID'
  | 'DATA_INVALID'
  | 'DATASET_MISSING'
  | 'BACKEND_UNAVAILABLE'
  | 'TRANSFORM_INVALID'
  | 'STATE_INVALID'
  | 'ALGORITHM_UNKNOWN'
  | 'NUMERIC_INVALID'
  | 'IO_ERROR'
  | 'ONNX_INVALID'
  | 'ONNX_UNSUPPORTED'
  | 'ONNX_RUNTIME_UNAVAILABLE'
  | 'TARGET_UNREACHABLE'
  | 'NOTHING_PRUNABLE'
  | 'QUANT_NONFINITE'
  | 'OP_CONFLICT'
  | 'ABORTED'
  | 'LOSS_NOT_FINITE'
  | 'CHECKPOINT_INVALID'
  | 'CHECKPOINT_MISMATCH'
  | 'EXECUTION_FAILED';

/** Base class of every error tensorpress throws on purpose. */
export class TensorpressError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** Structured details (node name, JSON path, offset, ...). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'TensorpressError';
    this.code = code;
    this.details = details;
  }
}

/** The codes of errors a config alone decides (found on parsing it, or on applying it to a graph before training). */
export type ConfigErrorCode = 'CONFIG_INVALID' | 'TARGET_UNREACHABLE' | 'NOTHING_PRUNABLE';

/**
 * A configuration value failed validation; `path` is the JSON path, e.g. `$.compression[0].params.ratio`.
 * The code is `CONFIG_INVALID` unless a more specific one applies (an unreachable FLOPs target,
 * nothing prunable in the graph).
 */
export class ConfigError extends TensorpressError {
  readonly path: string;
  constructor(path: string, message: string, details: Record<string, unknown> = {}, code: ConfigErrorCode = 'CONFIG_INVALID') {
    super(code, `${path}: ${message}`, { ...details, path });
    this.name = 'ConfigError';
    this.path = path;
  }
}

/** The graph is structurally wrong (cycle, dangling edge, unknown op, shape mismatch). */
export class GraphError extends TensorpressError {
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = 'GraphError';
  }
}

/** Formats a path of keys and indices as a JSON path: `$.a[0].b`. */
export function jsonPath(parts: ReadonlyArray<string | number | symbol>): string {
  let out = '$';
  for (const p of parts) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_$][\w$]*$/.test(p)) out += `.${p}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out;
}
