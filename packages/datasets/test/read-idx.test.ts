import { gzipSync } from 'node:zlib';
import { readIdx } from '@tensorpress/datasets';
import { errorOf } from '@tensorpress/test-utils';
import { describe, expect, it } from 'vitest';
import { idxBytes } from './idx-fixtures.js';

describe('readIdx', () => {
  it('parses a valid ubyte file: shape, values, and a view without copy', () => {
    const bytes = idxBytes([2, 3], [1, 2, 3, 4, 5, 255]);
    const before = bytes.slice();
    const arr = readIdx(bytes, 'a.idx');
    expect(arr.dtype).toBe('uint8');
    expect(arr.shape).toEqual([2, 3]);
    expect(Array.from(arr.data)).toEqual([1, 2, 3, 4, 5, 255]);
    expect(arr.data.buffer).toBe(bytes.buffer);
    expect(bytes).toEqual(before);
  });

  it('reads big-endian dimensions above 255', () => {
    const arr = readIdx(idxBytes([300, 1], new Uint8Array(300)));
    expect(arr.shape).toEqual([300, 1]);
  });

  it('inflates gzip input', () => {
    const arr = readIdx(gzipSync(idxBytes([4], [9, 8, 7, 6])), 'a.idx.gz');
    expect(arr.shape).toEqual([4]);
    expect(Array.from(arr.data)).toEqual([9, 8, 7, 6]);
  });

  it('reports truncated data with the file name and byte offset', () => {
    const bytes = idxBytes([2, 3], [1, 2, 3, 4, 5, 6]).subarray(0, 12);
    const e = errorOf(() => readIdx(bytes, 'images.idx'));
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toContain('images.idx');
    expect(e.message).toContain('truncated');
    expect(e.message).toContain('needs 18 bytes');
    expect(e.message).toContain('byte offset 12');
    expect(e.details).toMatchObject({ file: 'images.idx', offset: 12, expected: 18 });
  });

  it('reports a truncated header', () => {
    const e = errorOf(() => readIdx(idxBytes([2, 3], [1, 2, 3, 4, 5, 6]).subarray(0, 9), 'h.idx'));
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toMatch(/h\.idx: truncated: the header of 2 dimensions needs 12 bytes, the data ends at byte offset 9/);
    expect(errorOf(() => readIdx(new Uint8Array([0, 0]), 'x')).details).toMatchObject({ offset: 2 });
  });

  it('reports trailing bytes', () => {
    const bytes = new Uint8Array([...idxBytes([2], [1, 2]), 0, 0]);
    const e = errorOf(() => readIdx(bytes, 't.idx'));
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toContain('2 unexpected trailing bytes from byte offset 10');
  });

  it('reports a truncated gzip stream', () => {
    const gz = gzipSync(idxBytes([100], new Uint8Array(100).fill(7)));
    const e = errorOf(() => readIdx(gz.subarray(0, gz.length - 10), 'g.idx.gz'));
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toContain('g.idx.gz: gzip data is corrupt or truncated');
  });

  it('rejects a bad magic number', () => {
    const bytes = idxBytes([1], [0]);
    bytes[0] = 0x50;
    const e = errorOf(() => readIdx(bytes, 'm.idx'));
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toContain('bad magic number at byte offset 0');
    expect(e.message).toContain('0x50 0x00');
  });

  it('rejects dtypes other than unsigned byte', () => {
    const bytes = idxBytes([1], [0, 0, 0, 0]).subarray(0, 9);
    bytes[2] = 0x0d;
    const e = errorOf(() => readIdx(bytes, 'f.idx'));
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toContain('unsupported dtype 0x0d (float32) at byte offset 2');
    bytes[2] = 0x42;
    expect(errorOf(() => readIdx(bytes)).message).toContain('unknown dtype 0x42');
  });

  it('rejects zero dimensions', () => {
    const e = errorOf(() => readIdx(new Uint8Array([0, 0, 8, 0]), 'z.idx'));
    expect(e.message).toContain('0 dimensions at byte offset 3');
  });

  it('checks maxBytes against the header before allocating', () => {
    // claims 2^32 - 1 elements with 8 bytes present: must fail on size, not try to allocate
    const bytes = new Uint8Array([0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff]);
    const e = errorOf(() => readIdx(bytes, 'huge.idx', { maxBytes: 1000 }));
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toContain('more than maxBytes (1000)');
    // under the cap, the same lie is caught as truncation
    const e2 = errorOf(() => readIdx(new Uint8Array([0, 0, 8, 1, 0, 0, 0xff, 0xff]), 'short.idx'));
    expect(e2.message).toContain('truncated: shape [65535] needs 65543 bytes');
  });

  it('caps what gzip input inflates to', () => {
    const gz = gzipSync(idxBytes([5000], new Uint8Array(5000)));
    const e = errorOf(() => readIdx(gz, 'bomb.gz', { maxBytes: 1000 }));
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toContain('bomb.gz: inflates to more than maxBytes (1000 bytes)');
  });
});
