import * as tf from '@tensorflow/tfjs-core';
import {
  ConfigError,
  PRIORITY,
  defineController,
  entryPaths,
  type AlgorithmController,
  type AlgorithmStatistics,
  type Json,
  type CompressedModel,
  type CompressionBuilder,
  type EntryLocation,
  type Graph,
  type Scopes,
  type StackingRule,
} from '@tensorpress/core-tensor';
import { MaskSet } from './masks.js';
import { weightTargets, type Skip, type WeightTarget } from './targets.js';

/**
 * How every algorithm of this package stacks: one sparsifier per pipeline (two would fight over the
 * same masks), after any pruner; quantizers declare that they come after every sparsifier.
 */
export const SPARSIFIER_STACKING: StackingRule = Object.freeze({ group: 'sparsifier', groupAction: 'mask weights', after: Object.freeze(['pruner']) });

/**
 * Refuses a pipeline in which a pruner (hooks at pruning priority) runs before this algorithm: its
 * strip removes channels after this algorithm chose its pattern, which `why` explains. Found when
 * the controllers are built, so `checkCompression` reports it before training, with the entry's path.
 */
export function refusePruner(model: CompressedModel, algorithm: string, entryPath: string, why: string): void {
  const pruner = model.executor.hooks().find((h) => h.priority <= PRIORITY.pruning && h.algorithm !== algorithm);
  if (pruner) {
    throw new ConfigError(entryPath, `${algorithm} cannot be stacked with "${pruner.algorithm}": ${why}`, { algorithm, other: pruner.algorithm });
  }
}

/** What a mask algorithm's controller factory receives. */
export interface MaskContext {
  readonly model: CompressedModel;
  readonly masks: MaskSet;
  readonly targets: readonly WeightTarget[];
  readonly skipped: readonly Skip[];
  /** JSON path of the params object (`$` for a direct builder). */
  readonly paramsPath: string;
  /** JSON path of the config entry (`$` for a direct builder). */
  readonly entryPath: string;
}

/**
 * The builder of a mask algorithm (magnitude, N:M): a weight hook multiplying each target weight by
 * its mask. `check` may narrow the targets (and throw ConfigErrors) once the graph is known.
 */
export function maskBuilder(
  algorithm: string,
  scopes: Scopes,
  location: EntryLocation | undefined,
  check: (graph: Graph, targets: WeightTarget[], skipped: Skip[], paramsPath: string) => { targets: WeightTarget[]; skipped: Skip[] },
  controller: (ctx: MaskContext) => AlgorithmController,
): CompressionBuilder {
  const paths = entryPaths(location);
  let found: { targets: WeightTarget[]; skipped: Skip[] } | undefined;
  let masks: MaskSet | undefined;
  return {
    algorithm,
    priority: PRIORITY.sparsity,
    stacking: SPARSIFIER_STACKING,
    register(graph, layout) {
      masks = undefined;
      const all = weightTargets(graph, scopes, paths.entry);
      found = check(graph, all.targets, all.skipped, paths.params);
      for (const t of found.targets) {
        layout.addHook(
          { type: 'weight', node: t.node, input: 1 },
          (x) => {
            const m = masks?.get(t.param);
            return m ? tf.mul(x, m) : x;
          },
          { algorithm, priority: PRIORITY.sparsity, id: t.param },
        );
      }
    },
    build(model) {
      const f = found!;
      masks = new MaskSet(f.targets, model.executor);
      try {
        return controller({ model, masks, targets: f.targets, skipped: f.skipped, paramsPath: paths.params, entryPath: paths.entry });
      } catch (e) {
        masks.dispose();
        throw e;
      }
    },
  };
}

/** What a mask controller exposes to {@link maskController}. */
export interface MaskControllerParts {
  readonly scheduler: AlgorithmController['scheduler'];
  statistics(): AlgorithmStatistics;
  state(): Json;
  loadState(state: Json): void;
}

/** The controller of a mask-based sparsifier: its schedule, statistics and state; strip and dispose go to the masks. */
export function maskController(algorithm: string, c: MaskControllerParts, ctx: MaskContext): AlgorithmController {
  return defineController(algorithm, {
    scheduler: c.scheduler,
    statistics: () => c.statistics(),
    state: () => c.state(),
    loadState: (s) => c.loadState(s),
    strip: (g) => ctx.masks.strip(g),
    dispose: () => ctx.masks.dispose(),
  });
}
