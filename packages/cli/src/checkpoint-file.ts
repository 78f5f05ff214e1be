/**
 * The file format of the training checkpoints core-tensor's `fit` takes (a `FitCheckpoint`): a
 * fixed 24-byte prefix (magic, header length, blob length), a JSON header (format, version,
 * position, history, fingerprint, tensor specs with byte ranges), the tensors' little-endian bytes
 * each 8-byte aligned, and a CRC-32 of everything before it. `encodeCheckpoint` / `decodeCheckpoint`
 * are pure (they run in a browser); `writeCheckpoint` / `readCheckpoint` are Node.js only.
 */
import {
  TensorpressError,
  asBytes,
  crc32,
  fromLeBytes,
  ioError,
  jsonPath,
  leBytes,
  nodeBuiltin,
  parseJsonText,
  stringifyExact,
  untagNumbers,
  writeFileAtomic,
  type CheckpointTensor,
  type EpochStats,
  type FitCheckpoint,
  type FitFingerprint,
  type Json,
} from '@tensorpress/core-tensor';
import { z } from 'zod';

/** The `format` field of a checkpoint's header. */
export const CHECKPOINT_FORMAT = 'tensorpress.fit-checkpoint';
/** The version this code writes and the highest it reads. */
export const CHECKPOINT_FORMAT_VERSION = 1;

/** Limits of {@link decodeCheckpoint} and {@link readCheckpoint}. */
export interface DecodeCheckpointOptions {
  /** Most tensor bytes a checkpoint may declare (default 2 GiB). */
  readonly maxBytes?: number;
}

const MAGIC = [0x89, 0x54, 0x50, 0x43, 0x4b, 0x0d, 0x0a, 0x1a]; // \x89 T P C K \r \n \x1a: text-mode transfers show
const PREFIX = 24;
const ALIGN = 8;
const DEFAULT_MAX_BYTES = 2 ** 31;
const MAX_HEADER_BYTES = 256 * 2 ** 20;

const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

// ---------------------------------------------------------------- header schema

const num = z.union([z.number(), z.strictObject({ $float: z.enum(['Infinity', '-Infinity', 'NaN', '-0']) })]);
const count = z.number().int().nonnegative();
const shape = z.array(count);
const tensorSpec = z.strictObject({ shape, dtype: z.enum(['float32', 'int32']), byteOffset: count, byteLength: count });
const namedSpec = tensorSpec.extend({ name: z.string().min(1) });
const epochStats = z.strictObject({
  epoch: count,
  loss: num,
  accuracy: num,
  valLoss: num.optional(),
  valAccuracy: num.optional(),
  learningRate: num,
  ms: num,
});

const headerSchema = z.strictObject({
  format: z.literal(CHECKPOINT_FORMAT),
  version: z.literal(CHECKPOINT_FORMAT_VERSION),
  producer: z.string().optional(),
  epoch: count,
  step: count,
  globalStep: count,
  history: z.array(epochStats),
  epochProgress: z.strictObject({ lossSum: num, correct: count, examples: count, learningRate: num, ms: num }),
  learningRate: num,
  rngState: count.max(0xffffffff),
  parameters: z.array(namedSpec),
  controllerVariables: z.array(tensorSpec),
  controllerState: z.unknown(),
  optimizer: z.strictObject({
    kind: z.enum(['adam', 'sgd', 'momentum', 'weights']),
    className: z.string(),
    iterations: count,
    packed: z.array(count),
    slots: z.array(namedSpec),
  }),
  fingerprint: z.strictObject({
    epochs: count,
    batchSize: count.min(1),
    seed: z.number().int(),
    dropRemainder: z.boolean(),
    dataSize: count,
    stepsPerEpoch: count.min(1),
    optimizer: z.strictObject({ type: z.string(), learningRate: num, momentum: num.nullable(), weightDecay: num }),
    lrSchedule: z.string(),
    controller: z.enum(['none', 'stateless', 'stateful']),
    parameters: z.array(z.strictObject({ name: z.string(), shape })),
    trained: z.array(z.strictObject({ parameter: z.string().nullable(), shape })),
    extra: z.record(z.string(), z.unknown()),
  }),
});

type Header = z.infer<typeof headerSchema>;
type Spec = z.infer<typeof tensorSpec>;

function invalid(message: string, details: Record<string, unknown> = {}): never {
  throw new TensorpressError('CHECKPOINT_INVALID', `checkpoint: ${message}`, details);
}

// ---------------------------------------------------------------- encode

/**
 * The bytes of a checkpoint (see the module comment for the layout). Pure: no I/O. The round trip
 * through {@link decodeCheckpoint} is bit-exact, numbers in the header included (Infinity, NaN
 * and -0 are tagged).
 */
export function encodeCheckpoint(c: FitCheckpoint): Uint8Array {
  let offset = 0;
  const blobs: { at: number; bytes: Uint8Array }[] = [];
  const spec = (t: CheckpointTensor): Spec => {
    const bytes = leBytes(t.data);
    offset = align(offset);
    blobs.push({ at: offset, bytes });
    const s: Spec = { shape: [...t.shape], dtype: t.data instanceof Int32Array ? 'int32' : 'float32', byteOffset: offset, byteLength: bytes.byteLength };
    offset += bytes.byteLength;
    return s;
  };
  const header = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_FORMAT_VERSION,
    producer: '@tensorpress/cli',
    epoch: c.epoch,
    step: c.step,
    globalStep: c.globalStep,
    history: c.history.map((h) => ({ ...h })),
    epochProgress: { ...c.epochProgress },
    learningRate: c.learningRate,
    rngState: c.rngState,
    parameters: c.parameters.map((p) => ({ name: p.name, ...spec(p) })),
    controllerVariables: c.controllerVariables.map(spec),
    controllerState: c.controllerState,
    optimizer: { ...c.optimizer, packed: [...c.optimizer.packed], slots: c.optimizer.slots.map((s) => ({ name: s.name, ...spec(s) })) },
    fingerprint: c.fingerprint,
  };
  const json = new TextEncoder().encode(stringifyExact(header));
  const blobStart = align(PREFIX + json.byteLength);
  const blobLength = align(offset);
  const out = new Uint8Array(blobStart + blobLength + 4);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, json.byteLength, true);
  view.setUint32(12, 0, true);
  view.setBigUint64(16, BigInt(blobLength), true);
  out.set(json, PREFIX);
  for (const b of blobs) out.set(b.bytes, blobStart + b.at);
  view.setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

// ---------------------------------------------------------------- decode

/** Prefix, lengths and checksum: returns where the header and the blobs lie. */
function frame(bytes: Uint8Array): { headerLength: number; blobStart: number; blobLength: number } {
  if (bytes.byteLength < PREFIX + 4) {
    invalid(`truncated: ${bytes.byteLength} bytes, less than the ${PREFIX + 4}-byte frame`, { byteOffset: bytes.byteLength });
  }
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) invalid(`not a tensorpress checkpoint (wrong magic bytes at byte ${i})`, { byteOffset: i });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(8, true);
  if (view.getUint32(12, true) !== 0) invalid('reserved bytes 12..16 are not zero', { byteOffset: 12 });
  const blobLength = Number(view.getBigUint64(16, true));
  if (headerLength > MAX_HEADER_BYTES) invalid(`the header declares ${headerLength} bytes, over the limit of ${MAX_HEADER_BYTES}`, { byteOffset: 8 });
  const blobStart = align(PREFIX + headerLength);
  const expected = blobStart + blobLength + 4;
  if (bytes.byteLength < expected) {
    invalid(`truncated: ${bytes.byteLength} bytes, the frame declares ${expected} (header ${headerLength}, tensors ${blobLength})`, {
      byteOffset: bytes.byteLength,
      expected,
    });
  }
  if (bytes.byteLength > expected) invalid(`${bytes.byteLength - expected} unexpected bytes after the end at byte ${expected}`, { byteOffset: expected });
  const stored = view.getUint32(expected - 4, true);
  const actual = crc32(bytes.subarray(0, expected - 4));
  if (stored !== actual) {
    invalid(`checksum mismatch (crc32 ${actual.toString(16)}, stored ${stored.toString(16)} at byte ${expected - 4}): the file is damaged`, {
      byteOffset: expected - 4,
    });
  }
  return { headerLength, blobStart, blobLength };
}

function parseHeader(bytes: Uint8Array, headerLength: number): Header {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PREFIX, PREFIX + headerLength));
  } catch {
    invalid('the header is not valid UTF-8', { byteOffset: PREFIX });
  }
  const doc = parseJsonText(text, (what, { position }) => invalid(`the header JSON is malformed at position ${position}: ${what}`, { byteOffset: PREFIX + Math.max(position, 0) }));
  const d = doc as Record<string, unknown> | null;
  if (d && typeof d === 'object' && d['format'] !== CHECKPOINT_FORMAT) {
    invalid(`$.format: expected "${CHECKPOINT_FORMAT}", got ${JSON.stringify(d['format']) ?? 'none'}`, { path: '$.format' });
  }
  const v = d?.['version'];
  if (typeof v === 'number' && Number.isInteger(v) && v > CHECKPOINT_FORMAT_VERSION) {
    invalid(`$.version: written in format version ${v}; this @tensorpress/cli reads up to ${CHECKPOINT_FORMAT_VERSION}: upgrade it`, { path: '$.version' });
  }
  const r = headerSchema.safeParse(doc);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 5).map((iss) => `${jsonPath(iss.path)}: ${iss.message}`);
    invalid(`the header is invalid: ${issues.join('; ')}`, { path: jsonPath(r.error.issues[0]!.path) });
  }
  return r.data;
}

/** Every tensor's byte range against its shape, the blob region and the size limit. */
function checkSpecs(h: Header, blobLength: number, maxBytes: number): void {
  let total = 0;
  const check = (s: Spec, path: string): void => {
    let n = 1;
    for (const d of s.shape) {
      n *= d;
      if (n * 4 > maxBytes) invalid(`${path}.shape: [${s.shape.join(', ')}] is larger than the limit of ${maxBytes} bytes`, { path: `${path}.shape` });
    }
    total += n * 4;
    if (total > maxBytes) invalid(`${path}: the tensors need more than the limit of ${maxBytes} bytes`, { path });
    if (s.byteLength !== n * 4) invalid(`${path}.byteLength: [${s.shape.join(', ')}] ${s.dtype} needs ${n * 4} bytes, the header declares ${s.byteLength}`, { path: `${path}.byteLength` });
    if (s.byteOffset % 4 !== 0) invalid(`${path}.byteOffset: ${s.byteOffset} is not aligned to 4-byte elements`, { path: `${path}.byteOffset` });
    if (s.byteOffset + s.byteLength > blobLength) {
      invalid(`${path}: bytes ${s.byteOffset}..${s.byteOffset + s.byteLength} lie beyond the ${blobLength} tensor bytes`, { path, byteOffset: s.byteOffset });
    }
  };
  h.parameters.forEach((s, i) => check(s, `$.parameters[${i}]`));
  h.controllerVariables.forEach((s, i) => check(s, `$.controllerVariables[${i}]`));
  h.optimizer.slots.forEach((s, i) => check(s, `$.optimizer.slots[${i}]`));
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** The header's parts against each other: position, fingerprint, tensors. */
function checkConsistency(h: Header): void {
  const f = h.fingerprint;
  if (h.step > f.stepsPerEpoch) invalid(`$.step: ${h.step} is past the ${f.stepsPerEpoch} steps of an epoch`, { path: '$.step' });
  if (h.epoch >= Math.max(f.epochs, 1)) invalid(`$.epoch: ${h.epoch} is not below the run's ${f.epochs} epochs`, { path: '$.epoch' });
  if (h.globalStep !== h.epoch * f.stepsPerEpoch + h.step) {
    invalid(`$.globalStep: ${h.globalStep}, but epoch ${h.epoch} step ${h.step} of ${f.stepsPerEpoch} is step ${h.epoch * f.stepsPerEpoch + h.step}`, { path: '$.globalStep' });
  }
  if (h.history.length !== h.epoch) invalid(`$.history: ${h.history.length} epochs recorded, the position says ${h.epoch}`, { path: '$.history' });
  if (h.parameters.length !== f.parameters.length) {
    invalid(`$.parameters: ${h.parameters.length} tensors, the fingerprint lists ${f.parameters.length}`, { path: '$.parameters' });
  }
  h.parameters.forEach((p, i) => {
    const want = f.parameters[i]!;
    if (p.name !== want.name || !sameShape(p.shape, want.shape) || p.dtype !== 'float32') {
      invalid(`$.parameters[${i}]: "${p.name}" [${p.shape.join(', ')}] ${p.dtype}, the fingerprint lists "${want.name}" [${want.shape.join(', ')}] float32`, {
        path: `$.parameters[${i}]`,
      });
    }
  });
  const own = f.trained.filter((t) => t.parameter === null);
  if (h.controllerVariables.length !== own.length) {
    invalid(`$.controllerVariables: ${h.controllerVariables.length} tensors, the fingerprint lists ${own.length}`, { path: '$.controllerVariables' });
  }
  h.controllerVariables.forEach((v, i) => {
    if (!sameShape(v.shape, own[i]!.shape)) invalid(`$.controllerVariables[${i}].shape: [${v.shape.join(', ')}], the fingerprint lists [${own[i]!.shape.join(', ')}]`, { path: `$.controllerVariables[${i}].shape` });
  });
  h.optimizer.packed.forEach((p, i) => {
    if (p >= f.trained.length) invalid(`$.optimizer.packed[${i}]: position ${p} of ${f.trained.length} trained variables`, { path: `$.optimizer.packed[${i}]` });
  });
}

/**
 * Reads {@link encodeCheckpoint}'s bytes. Everything is checked before any tensor is allocated:
 * the frame (magic, lengths: a truncated file names the byte where it ends), the CRC-32, the
 * header's JSON and schema (errors name the JSON path), every tensor's byte range and the total
 * against `maxBytes`, and the header's parts against each other.
 *
 * @throws TensorpressError `CHECKPOINT_INVALID` with `details.byteOffset` or `details.path`.
 */
export function decodeCheckpoint(bytes: Uint8Array | ArrayBuffer, options: DecodeCheckpointOptions = {}): FitCheckpoint {
  const b = asBytes(bytes) ?? invalid('expected a Uint8Array or an ArrayBuffer');
  const { headerLength, blobStart, blobLength } = frame(b);
  const tagged = parseHeader(b, headerLength);
  checkSpecs(tagged, blobLength, options.maxBytes ?? DEFAULT_MAX_BYTES);
  checkConsistency(tagged);
  const h = untagNumbers(tagged) as typeof tagged & { learningRate: number };
  const tensor = (s: Spec): CheckpointTensor => ({
    shape: s.shape,
    data: fromLeBytes(b.subarray(blobStart + s.byteOffset, blobStart + s.byteOffset + s.byteLength), s.dtype, s.byteLength / 4) as Float32Array | Int32Array,
  });
  return {
    epoch: h.epoch,
    step: h.step,
    globalStep: h.globalStep,
    history: h.history as unknown as EpochStats[],
    epochProgress: h.epochProgress as FitCheckpoint['epochProgress'],
    learningRate: h.learningRate,
    rngState: h.rngState,
    parameters: h.parameters.map((p) => ({ name: p.name, ...tensor(p) })),
    controllerVariables: h.controllerVariables.map(tensor),
    controllerState: (h.controllerState ?? null) as Json | null,
    optimizer: { ...h.optimizer, slots: h.optimizer.slots.map((s) => ({ name: s.name, ...tensor(s) })) },
    fingerprint: h.fingerprint as unknown as FitFingerprint,
  };
}

// ---------------------------------------------------------------- files

/**
 * Writes a checkpoint atomically (a temp file beside `file`, synced, renamed into place): a crash
 * leaves the previous checkpoint or the new one, never a torn file. Node.js only.
 *
 * @throws TensorpressError `IO_ERROR` naming the file.
 */
export async function writeCheckpoint(file: string, checkpoint: FitCheckpoint): Promise<void> {
  await writeFileAtomic(file, encodeCheckpoint(checkpoint));
}

/**
 * Reads and decodes a checkpoint file (its size is checked against the limit before it is read).
 * Node.js only.
 *
 * @throws TensorpressError `IO_ERROR` for a missing or unreadable file, `CHECKPOINT_INVALID`
 *   (the file named in the message) as {@link decodeCheckpoint}.
 */
export async function readCheckpoint(file: string, options: DecodeCheckpointOptions = {}): Promise<FitCheckpoint> {
  const fs = nodeBuiltin('node:fs/promises', 'readCheckpoint', 'decodeCheckpoint with the bytes');
  let bytes: Uint8Array;
  try {
    const st = await fs.stat(file);
    const max = (options.maxBytes ?? DEFAULT_MAX_BYTES) + MAX_HEADER_BYTES + PREFIX + ALIGN + 4;
    if (st.size > max) invalid(`${file} has ${st.size} bytes, over the limit of ${max}`, { path: file });
    bytes = await fs.readFile(file);
  } catch (e) {
    throw ioError('read', file, e);
  }
  try {
    return decodeCheckpoint(bytes, options);
  } catch (e) {
    if (e instanceof TensorpressError) e.message = `${file}: ${e.message}`;
    throw e;
  }
}

