/**
 * @tensorpress/distill: knowledge distillation as a compression loss that stacks with every other
 * technique: soft-label KL (T²-scaled), logit MSE, the α blend with the hard labels, hint losses
 * with learned 1×1 adapters; offline (any loaded teacher, or the pipeline's FP32 original),
 * semi-supervised (a teacher labels an unlabelled pool) and self distillation (snapshot or EMA).
 */
export { softTargetKl, logitMse, distillationLoss, distillationTerm, hintLoss, stopGradient } from './losses.js';
export type { DistillationLossKind, DistillationLossOptions } from './losses.js';
export { knowledgeDistillationSchema } from './config.js';
export type { KnowledgeDistillationParams, HintParams, SelfDistillationParams } from './config.js';
export { knowledgeDistillation, knowledgeDistillationDefinition, needsTeacher, DISTILLATION_PRIORITY } from './knowledge-distillation.js';
export type { KnowledgeDistillationOptions, DistillationBuilder } from './knowledge-distillation.js';
export { distillAlgorithms } from './algorithms.js';
export { precomputeTeacherOutputs } from './teacher-outputs.js';
export type { TeacherOutputs, PrecomputeTeacherOptions } from './teacher-outputs.js';
export { pseudoLabel, semiSupervisedData, concatDatasets, withLabels } from './semi-supervised.js';
export type { PseudoLabelOptions, PseudoLabelResult } from './semi-supervised.js';
