/** Checks and messages shared by everything that reads a layers model's JSON. */
import { TensorpressError, jsonPath } from '@tensorpress/core-tensor';

/** A JSON object. */
export type Json = Record<string, unknown>;
/** One step of a JSON path: a key or an index. */
export type PathPart = string | number;

/** A plain object (not null, not an array). */
export function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Throws `INPUT_INVALID` naming the JSON path in the model. */
export function invalid(path: readonly PathPart[], message: string, details: Record<string, unknown> = {}): never {
  const p = jsonPath(path);
  throw new TensorpressError('INPUT_INVALID', `layers model ${p}: ${message}`, { ...details, path: p });
}

/** Short JSON of a value for messages. */
export function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
