import type { CompressionScheduler } from '@tensorpress/core-tensor';

/** How the pruning level grows over epochs (NNCF's filter-pruning schedulers). */
export type PruningScheduleType = 'one_shot' | 'exponential' | 'baseline';

/** A pruning schedule. Levels are ratios or FLOPs reductions, whichever the target is. */
export interface PruningScheduleConfig {
  /** Default `'one_shot'`. */
  readonly type?: PruningScheduleType;
  /** Level during the first `initSteps` epochs (exponential starts from it). Default 0. */
  readonly initialLevel?: number;
  /** Epochs spent at `initialLevel` before pruning starts (sparse training for Slim). Default 0. */
  readonly initSteps?: number;
  /** Exponential: epochs from `initialLevel` to the target. Default 3. */
  readonly steps?: number;
  /**
   * Epoch from which masks stop changing. Default: 0 for one-shot, `initSteps` for baseline,
   * `initSteps + steps` for exponential.
   */
  readonly freezeEpoch?: number;
}

/** The level at `epoch` (0-based, counted by `epochStep`). */
export function pruningLevel(schedule: PruningScheduleConfig, target: number, epoch: number): number {
  const type = schedule.type ?? 'one_shot';
  if (type === 'one_shot') return target;
  const init = schedule.initialLevel ?? 0;
  const initSteps = schedule.initSteps ?? 0;
  if (epoch < initSteps) return init;
  if (type === 'baseline') return target;
  const steps = schedule.steps ?? 3;
  const t = epoch - initSteps;
  if (t >= steps || init >= target) return target;
  // 1 − a·e^(−k·t), through (0, init) and (steps, target).
  const k = Math.log((1 - init) / (1 - target)) / steps;
  return 1 - (1 - init) * Math.exp(-k * t);
}

/** The first epoch at which masks are frozen. */
export function freezeEpoch(schedule: PruningScheduleConfig): number {
  if (schedule.freezeEpoch !== undefined) return schedule.freezeEpoch;
  const type = schedule.type ?? 'one_shot';
  if (type === 'one_shot') return 0;
  const initSteps = schedule.initSteps ?? 0;
  return type === 'baseline' ? initSteps : initSteps + (schedule.steps ?? 3);
}

/**
 * The scheduler of filter pruning: counts steps and epochs and, at every epoch end until the masks
 * freeze, asks for new masks at the schedule's level.
 */
export class PruningScheduler implements CompressionScheduler {
  epoch = 0;
  stepInEpoch = 0;

  constructor(
    readonly schedule: PruningScheduleConfig,
    readonly target: number,
    private readonly onLevel: (level: number, epoch: number) => void,
  ) {}

  /** Current level. */
  get level(): number {
    return pruningLevel(this.schedule, this.target, this.epoch);
  }

  /** True once masks no longer change (from the freeze epoch on, whose masks are final). */
  get frozen(): boolean {
    return this.epoch >= freezeEpoch(this.schedule);
  }

  step(): void {
    this.stepInEpoch++;
  }

  epochStep(): void {
    this.epoch++;
    this.stepInEpoch = 0;
    if (this.epoch <= freezeEpoch(this.schedule)) this.onLevel(this.level, this.epoch);
  }
}
