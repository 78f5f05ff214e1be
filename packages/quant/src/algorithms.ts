import { dorefaDefinition } from './dorefa.js';
import { inqDefinition } from './inq.js';
import { int8TrainingDefinition } from './int8-training.js';
import { lsqDefinition } from './lsq.js';
import { pactDefinition } from './pact.js';
import { postTrainingQuantizationDefinition } from './ptq.js';
import { quantizationDefinition } from './quantization.js';
import { tqtDefinition } from './tqt.js';

/** Every algorithm definition of this package: what the CLI discovers, and what `parsePipelineConfig` / `createBuilders` take. */
export const quantAlgorithms = [
  quantizationDefinition,
  dorefaDefinition,
  pactDefinition,
  tqtDefinition,
  lsqDefinition,
  postTrainingQuantizationDefinition,
  inqDefinition,
  int8TrainingDefinition,
] as const;
