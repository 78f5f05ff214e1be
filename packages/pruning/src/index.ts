/**
 * @tensorpress/pruning: filter pruning (L1, L2, FPGM, Slim, OptSlim) over pruning groups computed
 * from the graph, with masks during fine-tuning and physical channel removal in `strip()`.
 */
export { filterPruning, filterPruningDefinition, filterPruningSchema } from './filter-pruning.js';
export type { FilterPruningOptions, FilterPruningParams } from './filter-pruning.js';
export { pruningAlgorithms } from './algorithms.js';
export { cutChannels, channelDependencies } from './channel-cut.js';
export type { ChannelCutSpec, ChannelDependencies, ChannelRole, ChannelStep } from './channel-cut.js';
export { pruningGroups } from './groups.js';
export type { NodeGroupInfo, PrunableOp, PruningGroup, PruningGroupsOptions, PruningGroupsResult, PruningMode } from './groups.js';
export { l1Importance, l2Importance, fpgmImportance, slimImportance, optSlimPrunedCount, BN_CRITERIA } from './criteria.js';
export type { PruningCriterion } from './criteria.js';
export { selectFilters, normalizeScores, roundedKeep, keepHighest } from './selection.js';
export type { GroupScores, SelectionOptions } from './selection.js';
export { pruningLevel, freezeEpoch, PruningScheduler } from './schedule.js';
export type { PruningScheduleConfig, PruningScheduleType } from './schedule.js';
