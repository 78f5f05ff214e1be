/**
 * The fuzz harness in `npm test`: its classification (accepted, typed, untyped, crash, hang) on a
 * target whose every case is known, and a seeded slice of the ONNX fuzz (`npm run fuzz -- onnx`
 * runs the 10,000-case version) that must find no untyped error, crash or hang.
 */
import { createRng } from '@tensorpress/core-tensor';
import { describe, expect, it } from 'vitest';
import faulty from './fixtures/faulty-target.js';
import { caseSeed, runFuzz, totals } from './harness.js';
import onnxTarget from './onnx-target.js';

describe('runFuzz', () => {
  it('counts accepted cases, typed errors by code, untyped errors, crashes (a killed child) and hangs, and goes on after each', async () => {
    // Seed 4 draws each class once in five cases: one crash and one hang to recover from.
    const cases = 5;
    const seed = 4;
    const kinds = Array.from({ length: cases }, (_, i) => faulty.mutate({ name: 'only', bytes: new Uint8Array(1) }, createRng(caseSeed(seed, i))).bytes[0]! % 5);
    const count = (k: number): number => kinds.filter((x) => x === k).length;
    // The draw covers every class, so each path of the harness is taken.
    expect(new Set(kinds).size).toBe(5);
    const report = await runFuzz(faulty, { cases, seed, timeoutMs: 1500 });
    expect(report.rows).toEqual([
      { target: 'faulty', model: 'only', mutations: cases, accepted: count(0), typedErrors: count(1), untypedErrors: count(2), crashes: count(3), hangs: count(4), typedByCode: { INPUT_INVALID: count(1) } },
    ]);
    expect(report.findings.filter((f) => f.kind === 'crash').every((f) => /signal SIGKILL/.test(f.detail))).toBe(true);
    expect(report.findings.find((f) => f.kind === 'untyped')?.detail).toMatch(/^TypeError: untyped/);
    expect(report.findings.map((f) => f.index)).toEqual(kinds.flatMap((k, i) => (k >= 2 ? [i] : [])).sort((a, b) => a - b));
  });
});

describe('npm run fuzz -- onnx (a seeded slice)', () => {
  it('200 mutated FP32, QDQ and QOperator files: no untyped error, crash or hang', async () => {
    const report = await runFuzz(onnxTarget, { cases: 200, seed: 20, timeoutMs: 30_000 });
    expect(report.findings).toEqual([]);
    const t = totals(report);
    expect(t.untyped + t.crashes + t.hangs).toBe(0);
    // Both ways out are taken: some files read and run, most are refused with a typed error.
    expect(t.ok).toBeGreaterThan(10);
    expect(t.typed).toBeGreaterThan(100);
    expect(report.rows.map((r) => r.model)).toEqual(['residualCnn/fp32', 'residualCnn/qdq', 'residualCnn/qoperator']);
  });
});
