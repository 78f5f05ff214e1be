import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
// Internal: the fast decoder behind loadMnist, checked against JSON.parse as the oracle.
import { decodeDigitJson } from '../src/internal/digit-json.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('decodeDigitJson', () => {
  it('matches JSON.parse on a real digit file', () => {
    const dir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');
    const bytes = readFileSync(join(dir, '5.json'));
    const oracle = new Float32Array((JSON.parse(bytes.toString('utf8')) as { data: number[] }).data);
    const got = decodeDigitJson(bytes, '5.json');
    expect(got.length).toBe(oracle.length);
    // bit-exact, compared as bytes (a deep equal over 680k elements is needlessly slow)
    expect(Buffer.compare(Buffer.from(got.buffer, got.byteOffset, got.byteLength), Buffer.from(oracle.buffer))).toBe(0);
  });

  it('falls back to JSON.parse for layouts the fast path does not take', () => {
    expect(Array.from(decodeDigitJson(enc('{"data":[1e-1, 0.5]}'), 'e'))).toEqual([0.1, 0.5].map(Math.fround));
    expect(Array.from(decodeDigitJson(enc('{"other":1,"data":[0.25]}'), 'o'))).toEqual([0.25]);
    expect(Array.from(decodeDigitJson(enc(' { "data" : [ 0 , 1 ,0.125 ] } \n'), 'ws'))).toEqual([0, 1, 0.125]);
  });

  it('rejects pixels outside [0, 1] and malformed files', () => {
    expect(() => decodeDigitJson(enc('{"data":[0, 2]}'), 'big')).toThrow('big: pixel 1 is 2, outside [0, 1]');
    expect(() => decodeDigitJson(enc('{"data":[0, "a"]}'), 's')).toThrow('pixel 1 is NaN');
    expect(() => decodeDigitJson(enc('{"data":[0,'), 't')).toThrow('t: not valid JSON');
    expect(() => decodeDigitJson(enc('[0]'), 'n')).toThrow('expected an object with a "data" array');
  });
});
