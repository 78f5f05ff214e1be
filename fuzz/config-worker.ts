/**
 * A worker thread of fuzz/run-config.ts: builds the context once, then runs cases `from` to `to`
 * (exclusive), posting `{ started: index }` before and `{ result }` after each, so that the runner
 * can tell which case a hang or a crash belongs to. A mutation that cannot be built is the
 * harness's bug, not a finding: it is posted as `{ harnessError }` and stops the run.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { useBackend } from '@tensorpress/core-tensor';
import { configFuzzContext, runConfigCase } from './config.js';
import { configMutation, type ConfigMutation } from './config-mutations.js';

interface Job {
  readonly examplesDir: string;
  readonly seed: number;
  readonly from: number;
  readonly to: number;
}

const job = workerData as Job;
await useBackend('cpu');
const ctx = await configFuzzContext(job.examplesDir);
for (let i = job.from; i < job.to; i++) {
  let m: ConfigMutation;
  try {
    m = configMutation(ctx.bases, ctx.mutation, job.seed, i);
  } catch (e) {
    parentPort!.postMessage({ harnessError: `case ${i}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}` });
    break;
  }
  parentPort!.postMessage({ started: i });
  parentPort!.postMessage({ result: await runConfigCase(ctx, m) });
}
