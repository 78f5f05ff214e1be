import { knowledgeDistillationDefinition } from './knowledge-distillation.js';

/** Every algorithm definition of this package: what the CLI discovers, and what `parsePipelineConfig` / `createBuilders` take. */
export const distillAlgorithms = [knowledgeDistillationDefinition] as const;
