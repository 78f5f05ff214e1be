/**
 * @tensorpress/models: the reference models every tensorpress technique is tested and benchmarked
 * on, built as seeded graphs: a plain CNN, a residual CNN with batch norm and a strided shortcut, a
 * MobileNet-style depthwise-separable CNN with an inverted residual, and an MLP.
 */
export { referenceModels, plainCnn, residualCnn, mobileNetCnn, mlp } from './models.js';
export type { ReferenceModelOptions, ReferenceModelFactory, ReferenceModelName } from './models.js';
