import { filterPruningDefinition } from './filter-pruning.js';

/** Every algorithm definition of this package: what the CLI discovers, and what `parsePipelineConfig` / `createBuilders` take. */
export const pruningAlgorithms = [filterPruningDefinition] as const;
