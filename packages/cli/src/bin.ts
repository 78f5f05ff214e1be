#!/usr/bin/env node
/**
 * The `tensorpress` executable. Ctrl-C (or SIGTERM) aborts the run: it stops at the next training
 * step or phase (saving a checkpoint first with --checkpoint-dir), removes its temp files and exits
 * with 130; a second Ctrl-C, or a run that does not stop within 3 s (30 s with --checkpoint-dir:
 * a step must finish and the checkpoint be written), exits at once after removing the temp files.
 */
import { runCli } from './cli.js';
import { EXIT_CODES } from './exit-codes.js';
import { removePendingTempFiles } from '@tensorpress/core-tensor';

const controller = new AbortController();
let finished = false;

function hardExit(): void {
  if (finished) return;
  finished = true;
  removePendingTempFiles();
  process.stderr.write('tensorpress: interrupted\n');
  process.exit(EXIT_CODES.interrupted);
}

function onSignal(): void {
  if (controller.signal.aborted) return hardExit();
  controller.abort();
  setTimeout(hardExit, process.argv.some((a) => a === '--checkpoint-dir' || a.startsWith('--checkpoint-dir=')) ? 30_000 : 3000).unref();
}

process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

const code = await runCli(process.argv.slice(2), { signal: controller.signal });
finished = true;
// onnxruntime and the wasm backend may keep handles open; the work is done.
process.exit(code);
