import * as pruning from '@tensorpress/pruning';
import { expectAlgorithmList } from '@tensorpress/test-utils';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

describe('pruningAlgorithms', () => {
  it('holds every definition of the package, with unique names and valid schemas', () => {
    expectAlgorithmList(pruning, 'pruningAlgorithms', '@tensorpress/pruning');
    expect(pruning.pruningAlgorithms.map((d) => d.algorithm)).toEqual(['filter_pruning']);
  });

  it('builds its schemas with the zod that core validates configs with', () => {
    // One zod in the workspace: the schemas are instances of the zod this package (and core) import.
    for (const d of pruning.pruningAlgorithms) expect(d.schema, d.algorithm).toBeInstanceOf(z.ZodType);
  });
});
