import { binarizationDefinition } from './binarization.js';

/** Every algorithm definition of this package: what the CLI discovers, and what `parsePipelineConfig` / `createBuilders` take. */
export const binaryAlgorithms = [binarizationDefinition] as const;
