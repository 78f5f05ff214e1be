/**
 * What {@link fit} puts in a checkpoint and takes back from one: the run's fingerprint (compared on
 * resume, naming the first field that differs), and the capture and restore of every piece of
 * state a step depends on.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CheckpointTensor, FitCheckpoint, FitFingerprint, NamedCheckpointTensor } from '../checkpoint.js';
import type { Json } from '../compression-types.js';
import { TensorpressError } from '../errors.js';
import type { Executor } from '../executor.js';
import type { FitController, LrSchedule } from '../train.js';
import { loadOptimizer, saveOptimizer } from './optimizers.js';

/** The live objects of a run that a checkpoint covers. */
export interface FitRun {
  readonly ex: Executor;
  /** The trained variables in the order the optimizer sees them. */
  readonly vars: readonly tf.Variable[];
  readonly controller: FitController | undefined;
  readonly optimizer: tf.Optimizer;
  readonly fingerprint: FitFingerprint;
}

/** Where a run is, between two steps. */
export type FitPosition = Pick<FitCheckpoint, 'epoch' | 'step' | 'globalStep' | 'history' | 'epochProgress' | 'learningRate'>;

/** The parts of a run's fingerprint that fit knows before looking at the model. */
export type FingerprintParts = Pick<FitFingerprint, 'epochs' | 'batchSize' | 'seed' | 'dropRemainder' | 'dataSize' | 'stepsPerEpoch' | 'optimizer'> & {
  readonly lrSchedule: LrSchedule;
  readonly extra: Readonly<Record<string, Json>> | undefined;
};

function controllerKind(c: FitController | undefined): FitFingerprint['controller'] {
  if (!c) return 'none';
  return typeof c.state === 'function' && typeof c.loadState === 'function' ? 'stateful' : 'stateless';
}

/** The fingerprint of a run over `ex` training `vars`. */
export function fingerprintOf(p: FingerprintParts, ex: Executor, vars: readonly tf.Variable[], controller: FitController | undefined): FitFingerprint {
  const nameOf = new Map<tf.Variable, string>([...ex.variables()].map(([name, v]) => [v, name]));
  return {
    epochs: p.epochs,
    batchSize: p.batchSize,
    seed: p.seed,
    dropRemainder: p.dropRemainder,
    dataSize: p.dataSize,
    stepsPerEpoch: p.stepsPerEpoch,
    optimizer: p.optimizer,
    lrSchedule: typeof p.lrSchedule === 'function' ? 'function' : p.lrSchedule,
    controller: controllerKind(controller),
    parameters: [...ex.variables()].map(([name, v]) => ({ name, shape: [...v.shape] })),
    trained: vars.map((v) => ({ parameter: nameOf.get(v) ?? null, shape: [...v.shape] })),
    extra: p.extra ?? {},
  };
}

const show = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v));

/** The first difference between two JSON-like values: its path and both sides. */
function firstDifference(a: unknown, b: unknown, path: string, owner?: string): { path: string; a: unknown; b: unknown; owner?: string } | undefined {
  if (Object.is(a, b)) return undefined;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return { path: `${path}.length`, a: a.length, b: b.length, ...(owner ? { owner } : {}) };
    for (let i = 0; i < a.length; i++) {
      const named = a[i] as { name?: unknown; parameter?: unknown } | null;
      const label = typeof named?.name === 'string' ? named.name : typeof named?.parameter === 'string' ? named.parameter : owner;
      const d = firstDifference(a[i], b[i], `${path}[${i}]`, label);
      if (d) return d;
    }
    return undefined;
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`, owner);
      if (d) return d;
    }
    return undefined;
  }
  return { path, a, b, ...(owner ? { owner } : {}) };
}

/**
 * Throws `CHECKPOINT_MISMATCH` naming the first field in which the checkpoint's run differs from
 * this one: a checkpoint continues only the run it was taken from.
 */
export function checkFingerprint(saved: FitFingerprint, current: FitFingerprint): void {
  const d = firstDifference(saved, current, 'fingerprint');
  if (!d) return;
  const of = d.owner ? ` (of "${d.owner}")` : '';
  throw new TensorpressError(
    'CHECKPOINT_MISMATCH',
    `resumeFrom: the checkpoint was taken from a different run: ${d.path}${of} is ${show(d.a)} in the checkpoint, ${show(d.b)} here. ` +
      'Resume with the model, data and settings of the interrupted run, or start again without resumeFrom.',
    { field: d.path, checkpoint: d.a, run: d.b },
  );
}

/** A copy of a variable's values, refused when they are no longer finite. */
async function finiteCopy(v: tf.Variable, what: string): Promise<CheckpointTensor> {
  const values = await v.data();
  const data = Float32Array.from(values as Float32Array);
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      throw new TensorpressError(
        'LOSS_NOT_FINITE',
        `fit: ${what} holds ${data[i]} (element ${i}): training diverged, so no checkpoint was written. Lower the learning rate or check the data for NaN/Inf.`,
        { variable: what },
      );
    }
  }
  return { shape: [...v.shape], data };
}

/** A checkpoint of the run at `pos`; throws `LOSS_NOT_FINITE` rather than capture non-finite weights. */
export async function captureCheckpoint(run: FitRun, pos: FitPosition): Promise<FitCheckpoint> {
  const parameters: NamedCheckpointTensor[] = [];
  for (const [name, v] of run.ex.variables()) parameters.push({ name, ...(await finiteCopy(v, `parameter "${name}"`)) });
  const own = new Set(run.ex.variables().values());
  const controllerVariables: CheckpointTensor[] = [];
  for (const [i, v] of run.vars.entries()) if (!own.has(v)) controllerVariables.push(await finiteCopy(v, `trained variable ${i} of the controller`));
  const state = run.controller?.state;
  return {
    epoch: pos.epoch,
    step: pos.step,
    globalStep: pos.globalStep,
    history: pos.history.map((h) => ({ ...h })),
    epochProgress: { ...pos.epochProgress },
    learningRate: pos.learningRate,
    rngState: run.ex.rngState(),
    parameters,
    controllerVariables,
    controllerState: state && run.controller?.loadState ? state.call(run.controller) : null,
    optimizer: await saveOptimizer(run.optimizer, run.vars),
    fingerprint: run.fingerprint,
  };
}

function assign(v: tf.Variable, t: CheckpointTensor, what: string): void {
  if (t.data.length !== v.size) {
    throw new TensorpressError('CHECKPOINT_INVALID', `checkpoint: ${what} holds ${t.data.length} values, the variable has ${v.size}`);
  }
  tf.tidy(() => v.assign(tf.tensor(t.data, [...t.shape], v.dtype)));
}

/**
 * Puts a checkpoint's state into a fresh run (after the fingerprint matched): the controller's
 * state first (it may rebuild masks), then every parameter and controller variable, the random
 * stream and the optimizer.
 */
export async function restoreCheckpoint(run: FitRun, c: FitCheckpoint): Promise<void> {
  checkFingerprint(c.fingerprint, run.fingerprint);
  if (c.controllerState !== null) run.controller!.loadState!(c.controllerState);
  const vars = run.ex.variables();
  for (const p of c.parameters) assign(vars.get(p.name)!, p, `parameter "${p.name}"`);
  const own = new Set(vars.values());
  const extra = run.vars.filter((v) => !own.has(v));
  extra.forEach((v, i) => assign(v, c.controllerVariables[i]!, `controller variable ${i}`));
  run.ex.setRngState(c.rngState);
  await loadOptimizer(run.optimizer, run.vars, c.optimizer);
}
