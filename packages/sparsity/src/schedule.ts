import type { CompressionScheduler } from '@tensorpress/core-tensor';
import { z } from 'zod';

/** A sparsity level: the fraction of weights that are zero, in [0, 1). */
export const levelSchema = z.number().min(0).lt(1);

const freeze = z.number().nonnegative().optional();
const epochs = z.number().nonnegative();

/**
 * Zhu & Gupta's gradual schedule: s(p) = s_f + (s_i − s_f)(1 − p)^power, with p the progress from
 * `beginEpoch` to `targetEpoch` clipped to [0, 1]; per epoch (p moves at epoch ends) or per step
 * (p moves every `updateEvery` optimiser steps, counting fractional epochs).
 */
const polynomial = z
  .object({
    type: z.literal('polynomial'),
    initialLevel: levelSchema.default(0),
    beginEpoch: epochs.default(0),
    /** Epoch (fractional with `perStep`) at which the target is reached. */
    targetEpoch: epochs.default(1),
    power: z.number().positive().default(3),
    perStep: z.boolean().default(false),
    /** Steps per epoch, needed for per-step progress (fractional epochs). */
    stepsPerEpoch: z.number().int().positive().optional(),
    /** Per step: masks are recomputed every this many optimiser steps. */
    updateEvery: z.number().int().positive().default(1),
    freezeEpoch: freeze,
  })
  .strict();

/** 1 − (1 − s_i)·e^(−k·t): through (0, s_i) and (targetEpoch − beginEpoch, s_f). */
const exponential = z
  .object({
    type: z.literal('exponential'),
    initialLevel: levelSchema.default(0),
    beginEpoch: z.number().int().nonnegative().default(0),
    targetEpoch: z.number().int().positive().default(1),
    freezeEpoch: freeze,
  })
  .strict();

/** `levels[0]` before `milestones[0]`, `levels[i]` from `milestones[i − 1]` on (the last is the target unless given). */
const multistep = z
  .object({
    type: z.literal('multistep'),
    milestones: z.array(z.number().int().nonnegative()).min(1),
    levels: z.array(levelSchema).min(1),
    freezeEpoch: freeze,
  })
  .strict();

/**
 * Raises the level by `step` at every epoch end whose reported accuracy stays within `maxDrop` of
 * the first reported (reference) accuracy, up to the target; holds it otherwise (NNCF's adaptive).
 */
const adaptive = z
  .object({
    type: z.literal('adaptive'),
    initialLevel: levelSchema.default(0),
    step: z.number().gt(0).lt(1).default(0.05),
    maxDrop: z.number().nonnegative().default(0.01),
    freezeEpoch: freeze,
  })
  .strict();

/** The target from the start. */
const constant = z.object({ type: z.literal('constant'), freezeEpoch: freeze }).strict();

/** The zod schema of {@link SparsitySchedule}. */
export const scheduleSchema = z
  .discriminatedUnion('type', [polynomial, exponential, multistep, adaptive, constant])
  .superRefine((s, ctx) => {
    if ((s.type === 'polynomial' || s.type === 'exponential') && s.targetEpoch <= s.beginEpoch) {
      ctx.addIssue({ code: 'custom', path: ['targetEpoch'], message: `must come after beginEpoch ${s.beginEpoch} (epochs go forwards)` });
    }
    if (s.type === 'polynomial' && s.perStep && s.stepsPerEpoch === undefined) {
      ctx.addIssue({ code: 'custom', path: ['stepsPerEpoch'], message: 'a per-step polynomial schedule needs stepsPerEpoch' });
    }
    if (s.type === 'multistep') {
      s.milestones.forEach((m, i) => {
        if (i > 0 && m <= s.milestones[i - 1]!) {
          ctx.addIssue({ code: 'custom', path: ['milestones', i], message: `epoch ${m} does not come after ${s.milestones[i - 1]} (epochs go forwards)` });
        }
      });
      if (s.levels.length !== s.milestones.length && s.levels.length !== s.milestones.length + 1) {
        ctx.addIssue({
          code: 'custom',
          path: ['levels'],
          message: `expected ${s.milestones.length} levels (one per milestone, the target before the first is 0) or ${s.milestones.length + 1} (the first before milestones[0])`,
        });
      }
    }
  });

/** A sparsity schedule (validated, defaults applied). */
export type SparsitySchedule = z.output<typeof scheduleSchema>;
/** What a sparsity schedule accepts. */
export type SparsityScheduleInput = z.input<typeof scheduleSchema>;

/** Where training is: epochs done, steps done in the current epoch. */
export interface SchedulePosition {
  readonly epoch: number;
  readonly step: number;
}

function progress(begin: number, end: number, t: number): number {
  return Math.min(1, Math.max(0, (t - begin) / (end - begin)));
}

/**
 * The level a (non-adaptive) schedule gives at `pos` for `target`. Adaptive levels depend on
 * reported accuracy: {@link SparsityScheduler} tracks them; here they are the initial level.
 */
export function scheduleLevel(schedule: SparsitySchedule, target: number, pos: SchedulePosition): number {
  switch (schedule.type) {
    case 'constant':
      return target;
    case 'polynomial': {
      const t = schedule.perStep ? pos.epoch + pos.step / schedule.stepsPerEpoch! : pos.epoch;
      const p = progress(schedule.beginEpoch, schedule.targetEpoch, t);
      return target + (schedule.initialLevel - target) * Math.pow(1 - p, schedule.power);
    }
    case 'exponential': {
      const init = schedule.initialLevel;
      if (init >= target) return target;
      const span = schedule.targetEpoch - schedule.beginEpoch;
      const t = Math.min(span, Math.max(0, pos.epoch - schedule.beginEpoch));
      if (t >= span) return target;
      const k = Math.log((1 - init) / (1 - target)) / span;
      return 1 - (1 - init) * Math.exp(-k * t);
    }
    case 'multistep': {
      const levels = schedule.levels.length === schedule.milestones.length ? [0, ...schedule.levels] : schedule.levels;
      let i = 0;
      while (i < schedule.milestones.length && pos.epoch >= schedule.milestones[i]!) i++;
      return levels[i]!;
    }
    case 'adaptive':
      return Math.min(schedule.initialLevel, target);
  }
}

/** The epoch from which masks stop changing (Infinity: never). */
export function scheduleFreezeEpoch(schedule: SparsitySchedule): number {
  if (schedule.freezeEpoch !== undefined) return schedule.freezeEpoch;
  switch (schedule.type) {
    case 'constant':
      return 0;
    case 'polynomial':
    case 'exponential':
      return schedule.targetEpoch;
    case 'multistep':
      return schedule.milestones[schedule.milestones.length - 1]!;
    case 'adaptive':
      return Number.POSITIVE_INFINITY;
  }
}

/**
 * Counts steps and epochs and tells its owner when the level changes: at every epoch end, and every
 * `updateEvery` steps for a per-step polynomial schedule, until the freeze epoch, whose level is
 * applied once and then kept.
 */
export class SparsityScheduler implements CompressionScheduler {
  epoch = 0;
  stepInEpoch = 0;
  /** Optimiser steps since the start. */
  globalStep = 0;
  private adaptiveLevel: number;
  private reference: number | undefined;
  private lastAccuracy: number | undefined;
  private finalApplied = false;

  constructor(
    readonly schedule: SparsitySchedule,
    readonly target: number,
    private readonly onLevel: (level: number) => void,
    private readonly afterStep: () => void = () => undefined,
  ) {
    this.adaptiveLevel = scheduleLevel(schedule, target, { epoch: 0, step: 0 });
  }

  /** Training position in epochs (fractional for a per-step schedule). */
  get position(): number {
    const s = this.schedule;
    return s.type === 'polynomial' && s.perStep ? this.epoch + this.stepInEpoch / s.stepsPerEpoch! : this.epoch;
  }

  /** The level in force now. */
  get level(): number {
    if (this.schedule.type === 'adaptive') return this.adaptiveLevel;
    return scheduleLevel(this.schedule, this.target, { epoch: this.epoch, step: this.stepInEpoch });
  }

  /** True once masks no longer change. */
  get frozen(): boolean {
    return this.position >= scheduleFreezeEpoch(this.schedule);
  }

  /** Asks for the level that applies at the start (before any step). */
  start(): void {
    this.update(true);
  }

  private update(due: boolean): void {
    if (this.finalApplied) return;
    if (this.frozen) {
      this.finalApplied = true;
      this.onLevel(this.level);
    } else if (due) this.onLevel(this.level);
  }

  /**
   * Adaptive schedule: the accuracy (0..1) measured on held-out data at the end of the current
   * epoch, before `epochStep()`. The first report is the reference; later epochs raise the level
   * only while accuracy stays within `maxDrop` of it. Other schedules ignore it.
   */
  reportAccuracy(accuracy: number): void {
    if (this.reference === undefined) this.reference = accuracy;
    this.lastAccuracy = accuracy;
  }

  step(): void {
    this.stepInEpoch++;
    this.globalStep++;
    const s = this.schedule;
    this.update(s.type === 'polynomial' && s.perStep && this.globalStep % s.updateEvery === 0);
    this.afterStep();
  }

  epochStep(): void {
    const s = this.schedule;
    if (s.type === 'adaptive' && this.lastAccuracy !== undefined && this.reference !== undefined) {
      if (this.lastAccuracy >= this.reference - s.maxDrop) this.adaptiveLevel = Math.min(this.target, this.adaptiveLevel + s.step);
    }
    this.epoch++;
    this.stepInEpoch = 0;
    this.update(true);
  }

  /** Counters and the adaptive state, for resuming. */
  state(): { epoch: number; stepInEpoch: number; globalStep: number; adaptiveLevel: number; reference: number | null; lastAccuracy: number | null; finalApplied: boolean } {
    return {
      epoch: this.epoch,
      stepInEpoch: this.stepInEpoch,
      globalStep: this.globalStep,
      adaptiveLevel: this.adaptiveLevel,
      reference: this.reference ?? null,
      lastAccuracy: this.lastAccuracy ?? null,
      finalApplied: this.finalApplied,
    };
  }

  /** Restores {@link state}. */
  loadState(s: Record<string, unknown>): void {
    const num = (v: unknown, d: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);
    this.epoch = num(s['epoch'], 0);
    this.stepInEpoch = num(s['stepInEpoch'], 0);
    this.globalStep = num(s['globalStep'], 0);
    this.adaptiveLevel = num(s['adaptiveLevel'], this.adaptiveLevel);
    this.reference = typeof s['reference'] === 'number' ? s['reference'] : undefined;
    this.lastAccuracy = typeof s['lastAccuracy'] === 'number' ? s['lastAccuracy'] : undefined;
    this.finalApplied = s['finalApplied'] === true;
  }
}

/**
 * Hands an accuracy (0..1, measured on held-out data at the end of an epoch, before `epochStep()`)
 * to every sparsity scheduler of a compression controller: what an `adaptive` schedule decides on.
 * Returns how many schedulers took it.
 */
export function reportAccuracy(ctrl: { readonly controllers: readonly { readonly scheduler: CompressionScheduler }[] }, accuracy: number): number {
  let n = 0;
  for (const c of ctrl.controllers) {
    if (c.scheduler instanceof SparsityScheduler) {
      c.scheduler.reportAccuracy(accuracy);
      n++;
    }
  }
  return n;
}
