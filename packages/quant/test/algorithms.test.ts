import * as quant from '@tensorpress/quant';
import { expectAlgorithmList } from '@tensorpress/test-utils';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

describe('quantAlgorithms', () => {
  it('holds every definition of the package, with unique names and valid schemas', () => {
    expectAlgorithmList(quant, 'quantAlgorithms', '@tensorpress/quant');
    expect(quant.quantAlgorithms.map((d) => d.algorithm)).toEqual(['quantization', 'dorefa', 'pact', 'tqt', 'lsq', 'post_training_quantization', 'inq', 'int8_training']);
  });

  it('builds its schemas with the zod that core validates configs with', () => {
    // One zod in the workspace: the schemas are instances of the zod this package (and core) import.
    for (const d of quant.quantAlgorithms) expect(d.schema, d.algorithm).toBeInstanceOf(z.ZodType);
  });
});
