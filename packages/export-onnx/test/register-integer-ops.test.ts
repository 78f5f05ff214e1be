import { getOp, listOps } from '@tensorpress/core-tensor';
import { INTEGER_OPS, registerIntegerOps } from '@tensorpress/export-onnx';
import { describe, expect, it } from 'vitest';

describe('registerIntegerOps', () => {
  it("registers exactly INTEGER_OPS with core's executor when called, not when the package is imported; again is a no-op", () => {
    // This file's module graph is fresh (vitest isolates files): importing export-onnx added nothing.
    for (const op of INTEGER_OPS) expect(getOp(op)).toBeUndefined();
    const before = listOps();
    registerIntegerOps();
    expect(listOps().filter((op) => !before.includes(op)).sort()).toEqual([...INTEGER_OPS].sort());
    const specs = [...INTEGER_OPS].map((op) => getOp(op));
    registerIntegerOps();
    expect([...INTEGER_OPS].map((op) => getOp(op))).toEqual(specs);
  });
});
