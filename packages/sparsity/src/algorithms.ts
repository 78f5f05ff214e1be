import { l0SparsityDefinition, rbSparsityDefinition } from './l0.js';
import { magnitudeSparsityDefinition } from './magnitude.js';
import { nmSparsityDefinition } from './nm.js';

/** Every algorithm definition of this package: what the CLI discovers, and what `parsePipelineConfig` / `createBuilders` take. */
export const sparsityAlgorithms = [magnitudeSparsityDefinition, nmSparsityDefinition, l0SparsityDefinition, rbSparsityDefinition] as const;
