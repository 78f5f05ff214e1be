import * as binary from '@tensorpress/binary';
import { expectAlgorithmList, looseObjects } from '@tensorpress/test-utils';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

describe('binaryAlgorithms', () => {
  it('holds every definition of the package, with unique names and strict schemas', () => {
    expectAlgorithmList(binary, 'binaryAlgorithms', '@tensorpress/binary');
    expect(binary.binaryAlgorithms.map((d) => d.algorithm)).toEqual(['binarization']);
    for (const d of binary.binaryAlgorithms) {
      expect(d.schema).toBeInstanceOf(z.ZodType);
      expect(looseObjects(d.schema)).toEqual([]);
    }
  });
});
