import type { CompressionScheduler, LrScheduleFn } from '@tensorpress/core-tensor';
import type { StageSchedule } from './schema.js';

/** What is binarized at a point of training. */
export interface Stage {
  readonly activations: boolean;
  readonly weights: boolean;
  /** Learning-rate decay has started. */
  readonly decay: boolean;
}

/** The stage at `epoch` / global `step` (see the `schedule` parameters). */
export function stageAt(schedule: StageSchedule, epoch: number, step: number): Stage {
  if (schedule.type !== 'staged') return { activations: true, weights: true, decay: false };
  const at = schedule.unit === 'epochs' ? epoch : step;
  return { activations: at >= schedule.activationsAt, weights: at >= schedule.weightsAt, decay: at >= schedule.decayAt };
}

/**
 * The staged schedule's scheduler: counts epochs and global steps; the binarizers read the stage
 * from it on every forward pass.
 */
export class StagedScheduler implements CompressionScheduler {
  epoch = 0;
  stepInEpoch = 0;
  globalStep = 0;
  constructor(readonly schedule: StageSchedule) {}
  step(): void {
    this.stepInEpoch++;
    this.globalStep++;
  }
  epochStep(): void {
    this.epoch++;
    this.stepInEpoch = 0;
  }
  get stage(): Stage {
    return stageAt(this.schedule, this.epoch, this.globalStep);
  }
}

/**
 * The staged schedule's learning rate for core's `fit` (`lrSchedule`): constant until `decayAt`,
 * then polynomial decay to 0 at the end of training, lr·(1 − p)^power with p the fraction of the
 * decay phase done. With `unit: 'steps'`, `decayAt` counts steps of `fit`'s epochs. Pair it with
 * `weightDecay: 0` (latent weights of a binary net should not be pulled to 0, where signs flip).
 */
export function stagedLearningRate(schedule: StageSchedule, totalEpochs: number): LrScheduleFn {
  return (epoch, stepInEpoch, stepsPerEpoch, baseLr) => {
    if (schedule.type !== 'staged') return baseLr;
    const now = epoch * stepsPerEpoch + stepInEpoch;
    const start = schedule.unit === 'epochs' ? schedule.decayAt * stepsPerEpoch : schedule.decayAt;
    const end = totalEpochs * stepsPerEpoch;
    if (now < start || end <= start) return baseLr;
    const p = Math.min(1, (now - start) / (end - start));
    return baseLr * (1 - p) ** schedule.power;
  };
}
