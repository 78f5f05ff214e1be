import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CHECKPOINT_FORMAT, decodeCheckpoint, encodeCheckpoint, readCheckpoint, writeCheckpoint } from '@tensorpress/cli';
import { crc32, useBackend, type FitCheckpoint } from '@tensorpress/core-tensor';
import { errorOf, rejectionOf } from '@tensorpress/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

/** A checkpoint by hand, with the numbers JSON cannot hold in its header. */
function sample(): FitCheckpoint {
  return {
    epoch: 1,
    step: 2,
    globalStep: 5,
    history: [{ epoch: 0, loss: 0.5, accuracy: 0.25, valLoss: Infinity, valAccuracy: NaN, learningRate: 0.01, ms: 12.5 }],
    epochProgress: { lossSum: 1.2345678806304932, correct: 3, examples: 16, learningRate: -0, ms: 4 },
    learningRate: 0.009755282581475769,
    rngState: 0xfffffffe,
    parameters: [
      { name: 'fc.weight', shape: [2, 3], data: Float32Array.from([1, -0, 3.5, NaN, 1e-45, -2]) },
      { name: 'fc.bias', shape: [3], data: Float32Array.from([0.1, 0.2, 0.3]) },
    ],
    controllerVariables: [{ shape: [], data: Float32Array.from([1.5]) }],
    controllerState: { t: 4, mask: [1, 0, 1], scale: -0, bound: -Infinity, nested: [{ x: null, ok: true, name: 'é' }] },
    optimizer: {
      kind: 'weights',
      className: 'RMSProp',
      iterations: 5,
      packed: [0, 1],
      slots: [
        { name: 'iter', shape: [], data: Int32Array.from([5]) },
        { name: 'fc.weight/rms', shape: [2, 3], data: new Float32Array(6).fill(0.25) },
      ],
    },
    fingerprint: {
      epochs: 3,
      batchSize: 8,
      seed: -4,
      dropRemainder: false,
      dataSize: 20,
      stepsPerEpoch: 3,
      optimizer: { type: 'RMSProp', learningRate: 0.01, momentum: null, weightDecay: 0 },
      lrSchedule: 'cosine',
      controller: 'stateful',
      parameters: [
        { name: 'fc.weight', shape: [2, 3] },
        { name: 'fc.bias', shape: [3] },
      ],
      trained: [
        { parameter: 'fc.weight', shape: [2, 3] },
        { parameter: 'fc.bias', shape: [3] },
        { parameter: null, shape: [] },
      ],
      extra: { model: 'builtin:mlp', hash: 'abc' },
    },
  };
}

const PREFIX = 24;

/** Rewrites the header JSON of checkpoint bytes (lengths and checksum recomputed), to build malformed files. */
function withHeader(bytes: Uint8Array, edit: (h: Record<string, unknown>) => void): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(8, true);
  const blobStart = Math.ceil((PREFIX + headerLength) / 8) * 8;
  const blobs = bytes.subarray(blobStart, bytes.length - 4);
  const h = JSON.parse(new TextDecoder().decode(bytes.subarray(PREFIX, PREFIX + headerLength))) as Record<string, unknown>;
  edit(h);
  const json = new TextEncoder().encode(JSON.stringify(h));
  return reframe(json, blobs);
}

function reframe(json: Uint8Array, blobs: Uint8Array): Uint8Array {
  const start = Math.ceil((PREFIX + json.length) / 8) * 8;
  const out = new Uint8Array(start + blobs.length + 4);
  const v = new DataView(out.buffer);
  out.set([0x89, 0x54, 0x50, 0x43, 0x4b, 0x0d, 0x0a, 0x1a]);
  v.setUint32(8, json.length, true);
  v.setBigUint64(16, BigInt(blobs.length), true);
  out.set(json, PREFIX);
  out.set(blobs, start);
  v.setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

const bits = (a: Float32Array | Int32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

describe('encodeCheckpoint / decodeCheckpoint', () => {
  it('round-trips bit-exactly: tensors (NaN, -0, denormals, int32), header numbers (Infinity, NaN, -0) and the controller state', () => {
    const c = sample();
    const bytes = encodeCheckpoint(c);
    const d = decodeCheckpoint(bytes);
    for (const [i, p] of c.parameters.entries()) {
      expect(d.parameters[i]!.name).toBe(p.name);
      expect(d.parameters[i]!.shape).toEqual(p.shape);
      expect(bits(d.parameters[i]!.data)).toBe(bits(p.data));
    }
    expect(d.optimizer.slots[0]!.data).toBeInstanceOf(Int32Array);
    expect(bits(d.optimizer.slots[1]!.data)).toBe(bits(c.optimizer.slots[1]!.data));
    expect(d.history[0]!.valLoss).toBe(Infinity);
    expect(d.history[0]!.valAccuracy).toBeNaN();
    expect(Object.is(d.epochProgress.learningRate, -0)).toBe(true);
    expect(d.epochProgress.lossSum).toBe(c.epochProgress.lossSum);
    expect(d.controllerState).toEqual(c.controllerState);
    expect(Object.is((d.controllerState as { scale: number }).scale, -0)).toBe(true);
    expect(d.fingerprint).toEqual(c.fingerprint);
    expect(d.rngState).toBe(0xfffffffe);
    // Deterministic bytes: encoding the decoded checkpoint gives the same file.
    expect(Buffer.from(encodeCheckpoint(d)).equals(Buffer.from(bytes))).toBe(true);
    // Every tensor blob is 8-byte aligned in the file.
    const h = JSON.parse(new TextDecoder().decode(bytes.subarray(PREFIX, PREFIX + new DataView(bytes.buffer).getUint32(8, true)))) as {
      format: string;
      parameters: { byteOffset: number }[];
    };
    expect(h.format).toBe(CHECKPOINT_FORMAT);
    expect(h.parameters.map((p) => p.byteOffset % 8)).toEqual([0, 0]);
  });

  it('every truncation is a typed error naming the byte where the file ends', () => {
    const bytes = encodeCheckpoint(sample());
    for (const n of [0, 10, PREFIX + 3, Math.floor(bytes.length / 2), bytes.length - 1]) {
      const e = errorOf(() => decodeCheckpoint(bytes.subarray(0, n)));
      expect(e.code).toBe('CHECKPOINT_INVALID');
      expect(e.message).toMatch(/^checkpoint: truncated: /);
      expect(e.details['byteOffset']).toBe(n);
    }
    const longer = new Uint8Array(bytes.length + 3);
    longer.set(bytes);
    expect(errorOf(() => decodeCheckpoint(longer)).message).toMatch(/3 unexpected bytes after the end at byte \d+/);
  });

  it('damaged bytes: wrong magic, a flipped bit (checksum), a malformed header, a bad schema, byte ranges and limits', () => {
    const good = encodeCheckpoint(sample());
    const magic = good.slice();
    magic[1] = 0x55;
    expect(errorOf(() => decodeCheckpoint(magic)).message).toMatch(/not a tensorpress checkpoint \(wrong magic bytes at byte 1\)/);
    const flipped = good.slice();
    flipped[flipped.length - 10]! ^= 0x04;
    const crc = errorOf(() => decodeCheckpoint(flipped));
    expect(crc.message).toMatch(/checksum mismatch .* the file is damaged/);
    expect(crc.details['byteOffset']).toBe(good.length - 4);
    const brokenJson = reframe(new TextEncoder().encode('{"format": "tensorpress.fit-checkpoint", '), new Uint8Array(8));
    expect(errorOf(() => decodeCheckpoint(brokenJson)).message).toMatch(/the header JSON is malformed at position \d+/);
    const cases: [(h: Record<string, unknown>) => void, RegExp, string][] = [
      [(h) => void (h['format'] = 'something.else'), /\$\.format: expected "tensorpress\.fit-checkpoint", got "something\.else"/, '$.format'],
      [(h) => void (h['version'] = 9), /\$\.version: written in format version 9; .* upgrade it/, '$.version'],
      [(h) => void (h['epoch'] = -1), /\$\.epoch: /, '$.epoch'],
      [(h) => void (h['typo'] = 1), /the header is invalid: \$: Unrecognized key/, '$'],
      [(h) => void ((h['parameters'] as { byteLength: number }[])[1]!.byteLength = 8), /\$\.parameters\[1\]\.byteLength: \[3\] float32 needs 12 bytes, the header declares 8/, '$.parameters[1].byteLength'],
      [(h) => void ((h['parameters'] as { byteOffset: number }[])[1]!.byteOffset = 4096), /\$\.parameters\[1\]: bytes 4096\.\.4108 lie beyond the \d+ tensor bytes/, '$.parameters[1]'],
      [(h) => void ((h['parameters'] as { byteOffset: number }[])[1]!.byteOffset = 2), /\$\.parameters\[1\]\.byteOffset: 2 is not aligned/, '$.parameters[1].byteOffset'],
      [
        (h) => void ((h['parameters'] as { shape: number[] }[])[0]!.shape = [2 ** 20, 2 ** 20]),
        /\$\.parameters\[0\]\.shape: \[1048576, 1048576\] is larger than the limit of \d+ bytes/,
        '$.parameters[0].shape',
      ],
      [(h) => void (h['globalStep'] = 4), /\$\.globalStep: 4, but epoch 1 step 2 of 3 is step 5/, '$.globalStep'],
      [(h) => void (h['step'] = 7), /\$\.step: 7 is past the 3 steps of an epoch/, '$.step'],
      [(h) => void ((h['parameters'] as { name: string }[])[0]!.name = 'other'), /\$\.parameters\[0\]: "other" .* the fingerprint lists "fc\.weight"/, '$.parameters[0]'],
      [(h) => void (h['controllerVariables'] = []), /\$\.controllerVariables: 0 tensors, the fingerprint lists 1/, '$.controllerVariables'],
    ];
    for (const [edit, message, at] of cases) {
      const e = errorOf(() => decodeCheckpoint(withHeader(good, edit)));
      expect(e.code, String(message)).toBe('CHECKPOINT_INVALID');
      expect(e.message).toMatch(message);
      expect(e.details['path']).toBe(at);
    }
    const small = errorOf(() => decodeCheckpoint(good, { maxBytes: 16 }));
    expect(small.message).toMatch(/limit of 16 bytes/);
  });
});

describe('writeCheckpoint / readCheckpoint', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tensorpress-ckpt-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes atomically (no temp file left), replaces the previous checkpoint, reads it back; errors name the file', async () => {
    const file = path.join(dir, 'run.ckpt');
    await writeCheckpoint(file, sample());
    const second = { ...sample(), globalStep: 4, step: 1 };
    await writeCheckpoint(file, second);
    expect(await readdir(dir)).toEqual(['run.ckpt']);
    expect((await readCheckpoint(file)).globalStep).toBe(4);
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, 100));
    const e = await rejectionOf(readCheckpoint(file));
    expect(e.code).toBe('CHECKPOINT_INVALID');
    expect(e.message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: checkpoint: truncated`));
    const missing = await rejectionOf(readCheckpoint(path.join(dir, 'none.ckpt')));
    expect(missing.code).toBe('IO_ERROR');
    expect(missing.message).toMatch(/cannot read .*none\.ckpt: the file or its directory does not exist/);
    expect(existsSync(path.join(dir, 'none.ckpt'))).toBe(false);
  });
});
