/**
 * @tensorpress/sparsity: weight sparsity. Magnitude sparsity with schedules (polynomial, exponential,
 * multistep, adaptive, constant), N:M structured sparsity, L0 hard-concrete gates and the RB
 * variant; `strip()` leaves zeros in the weights and drops the masks.
 */
export { magnitudeSparsity, magnitudeSparsityDefinition, magnitudeSparsitySchema } from './magnitude.js';
export type { MagnitudeSparsityOptions, MagnitudeSparsityParams } from './magnitude.js';
export { nmSparsity, nmSparsityDefinition, nmSparsitySchema, nmKeptAt } from './nm.js';
export type { NmSparsityOptions, NmSparsityParams } from './nm.js';
export { l0Sparsity, rbSparsity, l0SparsityDefinition, rbSparsityDefinition, l0SparsitySchema, rbSparsitySchema } from './l0.js';
export type { L0SparsityOptions, L0SparsityParams, RbSparsityOptions, RbSparsityParams } from './l0.js';
export { sampleGate, evalGate, nonZeroProbability, HARD_CONCRETE } from './hard-concrete.js';
export type { HardConcreteParams } from './hard-concrete.js';
export { sparseSize } from './size.js';
export type { SparseSize } from './size.js';
export { sparsityAlgorithms } from './algorithms.js';
export { SparsityScheduler, scheduleLevel, scheduleFreezeEpoch, scheduleSchema, levelSchema, reportAccuracy } from './schedule.js';
export type { SparsitySchedule, SparsityScheduleInput, SchedulePosition } from './schedule.js';
