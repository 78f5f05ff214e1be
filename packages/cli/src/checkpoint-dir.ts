/**
 * `--checkpoint-dir` and `--resume` of `tensorpress compress`: where the fine-tuning checkpoint
 * lives, whether a run may start or resume there, and the run's identity (model, data, config,
 * FP32 weights) that a resumed run must share with the interrupted one.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import {
  TensorpressError,
  removeStaleTempFiles,
  saveGraph,
  type FitCheckpoint,
  type FitCheckpointOptions,
  type Graph,
  type Json,
  type PipelineConfig,
} from '@tensorpress/core-tensor';
import { readCheckpoint, writeCheckpoint } from './checkpoint-file.js';
import { CliError, EXIT_CODES, InterruptedError } from './exit-codes.js';

/** The checkpoint's file name inside `--checkpoint-dir`. */
export const CHECKPOINT_FILE = 'fine-tune.ckpt';
/** Default of `--checkpoint-every`: often enough to lose little, rarely enough to cost little. */
export const DEFAULT_CHECKPOINT_EVERY = 100;

/** Checkpointing of one compress run. */
export interface CheckpointPlan {
  readonly dir: string;
  readonly file: string;
  readonly everySteps: number;
  /** The checkpoint to continue from (`--resume`). */
  readonly resumeFrom?: FitCheckpoint;
}

const usage = (code: string, message: string): CliError => new CliError(EXIT_CODES.usage, code, message);

const inside = (dir: string, parent: string): boolean => {
  const rel = path.relative(parent, dir);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/**
 * Checks the options and the folder before any work: `--resume` needs a checkpoint there (and
 * reads it, validated), a fresh run refuses to overwrite one, the folder must lie outside `--out`.
 * Temp files of killed runs are removed from it. Returns undefined without `--checkpoint-dir`.
 */
export async function prepareCheckpoints(o: { dir?: string; every?: number; resume?: boolean; outDir: string }): Promise<CheckpointPlan | undefined> {
  if (o.dir === undefined) {
    if (o.resume) throw usage('CHECKPOINT_MISSING', '--resume needs --checkpoint-dir (the folder holding the checkpoint of the interrupted run)');
    return undefined;
  }
  const everySteps = o.every ?? DEFAULT_CHECKPOINT_EVERY;
  if (!(Number.isInteger(everySteps) && everySteps >= 1)) throw usage('CONFIG_INVALID', `--checkpoint-every: expected an integer >= 1, got ${everySteps}`);
  const dir = path.resolve(o.dir);
  if (inside(dir, o.outDir) || inside(o.outDir, dir)) {
    throw usage('CONFIG_INVALID', `--checkpoint-dir ${dir} must lie outside --out ${o.outDir} (the output folder holds only the outputs)`);
  }
  const st = await fs.stat(dir).catch(() => null);
  if (st && !st.isDirectory()) throw usage('OUTPUT_NOT_A_FOLDER', `--checkpoint-dir ${dir} exists and is not a folder`);
  await removeStaleTempFiles(dir);
  const file = path.join(dir, CHECKPOINT_FILE);
  const exists = (await fs.stat(file).catch(() => null)) !== null;
  if (o.resume) {
    if (!exists) throw usage('CHECKPOINT_MISSING', `--resume: ${dir} holds no checkpoint (${CHECKPOINT_FILE}); run without --resume to start`);
    return { dir, file, everySteps, resumeFrom: await readCheckpoint(file) };
  }
  if (exists) {
    throw usage('CHECKPOINT_EXISTS', `${file} holds the checkpoint of an interrupted run: pass --resume to continue it, or delete the file to start over`);
  }
  return { dir, file, everySteps };
}

const sha256 = (...parts: (string | Uint8Array)[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

/** What a run is, for the checkpoint's fingerprint: the model and data as named, the config and the FP32 weights hashed. */
export function runIdentity(model: string, data: string, limit: number | undefined, config: PipelineConfig, fp32?: Graph): Record<string, Json> {
  const saved = fp32 ? saveGraph(fp32) : undefined;
  return {
    command: 'compress',
    model,
    data,
    limit: limit ?? null,
    config: sha256(JSON.stringify(config)),
    ...(saved ? { fp32: sha256(saved.json, saved.weights) } : {}),
  };
}

/**
 * Before the model is loaded (an FP32 builtin may train first): the model, data, limit and config
 * of the checkpoint's run against this one. The rest (FP32 weights, epochs, batch size ...) is
 * checked by `fit` when it resumes.
 */
export function checkIdentity(plan: CheckpointPlan, identity: Record<string, Json>): void {
  const saved = plan.resumeFrom?.fingerprint.extra;
  if (!saved) return;
  for (const [key, value] of Object.entries(identity)) {
    if (JSON.stringify(saved[key]) === JSON.stringify(value)) continue;
    const what = key === 'config' ? 'a different config file content' : `${key} ${JSON.stringify(saved[key] ?? null)}`;
    throw usage(
      'CHECKPOINT_MISMATCH',
      `--resume: ${plan.file} was taken with ${what}, this run has ${key === 'config' ? 'another' : JSON.stringify(value)}; ` +
        'rerun with the model, data, config and options of the interrupted run, or delete the checkpoint to start over',
    );
  }
}

/** fit's `checkpoint` option: every N steps and on Ctrl-C, atomically into the folder (silent: a progress bar may be drawing). */
export function checkpointOption(plan: CheckpointPlan): FitCheckpointOptions {
  return {
    everySteps: plan.everySteps,
    save: async (c) => {
      await fs.mkdir(plan.dir, { recursive: true });
      await writeCheckpoint(plan.file, c);
    },
  };
}

/** After a run that finished: its checkpoint would only restart what is done. */
export async function removeCheckpoint(plan: CheckpointPlan | undefined): Promise<void> {
  if (plan) await fs.rm(plan.file, { force: true });
}

/** fit's `ABORTED` as the CLI's interruption (exit 130), saying where the checkpoint is; anything else unchanged. */
export function interruption(e: unknown, plan: CheckpointPlan | undefined): unknown {
  if (!(e instanceof TensorpressError) || e.code !== 'ABORTED') return e;
  const step = e.details['globalStep'];
  return new InterruptedError(plan ? `interrupted at fine-tuning step ${String(step)}; checkpoint saved to ${plan.file}: rerun with --resume to continue` : 'interrupted');
}
