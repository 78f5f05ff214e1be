import * as fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '@tensorpress/core-tensor';
import { CliError, EXIT_CODES } from './exit-codes.js';

/** The file tensorpress leaves in every output folder it writes, so a rerun can recognise its own folder. */
export const OUTPUT_MARKER = '.tensorpress-output';

async function statOrNull(p: string): Promise<import('node:fs').Stats | null> {
  try {
    return await fs.stat(p);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Checks `--out` before any work: a missing folder is fine (it is created at the end), an empty one
 * too; a non-empty one is refused unless `force`. Nothing is created or deleted here.
 */
export async function checkOutputDir(dir: string, force: boolean): Promise<void> {
  const st = await statOrNull(dir);
  if (st && !st.isDirectory()) throw new CliError(EXIT_CODES.usage, 'OUTPUT_NOT_A_FOLDER', `--out ${dir} exists and is not a folder`);
  if (st) {
    const entries = await fs.readdir(dir);
    if (entries.length > 0 && !force) {
      throw new CliError(
        EXIT_CODES.usage,
        'OUTPUT_EXISTS',
        `output folder ${dir} exists and is not empty; choose another --out or pass --force (which replaces only tensorpress's own files there)`,
      );
    }
    await fs.access(dir, fs.constants.W_OK).catch(() => {
      throw new CliError(EXIT_CODES.usage, 'OUTPUT_NOT_WRITABLE', `output folder ${dir} is not writable`);
    });
    return;
  }
  // The nearest existing ancestor must be a writable folder, or the run would fail only at the end.
  let parent = path.dirname(path.resolve(dir));
  for (;;) {
    const pst = await statOrNull(parent);
    if (pst) {
      if (!pst.isDirectory()) throw new CliError(EXIT_CODES.usage, 'OUTPUT_NOT_A_FOLDER', `cannot create --out ${dir}: ${parent} is not a folder`);
      await fs.access(parent, fs.constants.W_OK).catch(() => {
        throw new CliError(EXIT_CODES.usage, 'OUTPUT_NOT_WRITABLE', `cannot create --out ${dir}: ${parent} is not writable`);
      });
      return;
    }
    const up = path.dirname(parent);
    if (up === parent) return;
    parent = up;
  }
}

/** What the marker says: the outputs are being written (`in-progress`) or all written (`complete`). */
export type OutputState = 'in-progress' | 'complete';

/**
 * The state of a folder tensorpress writes to: `complete` when a run finished writing it,
 * `in-progress` when a run was writing it and may have been killed (the marker is written first and
 * completed last), null when it holds no marker (not tensorpress's, or never written).
 */
export async function outputState(dir: string): Promise<OutputState | null> {
  const file = path.join(dir, OUTPUT_MARKER);
  if (!(await statOrNull(file))?.isFile()) return null;
  try {
    const state = (JSON.parse(await fs.readFile(file, 'utf8')) as { state?: unknown }).state;
    // Markers written before the state field existed were written last: complete.
    return state === 'in-progress' ? 'in-progress' : 'complete';
  } catch {
    return 'in-progress';
  }
}

/** True when `dir` is a folder that tensorpress wrote (it holds the marker file, complete or in progress). */
export async function isTensorpressOutput(dir: string): Promise<boolean> {
  return (await outputState(dir)) !== null;
}

/** One output file: its name inside the folder and its contents. */
export interface OutputFile {
  readonly name: string;
  readonly data: string | Uint8Array;
}

function marker(state: OutputState): string {
  return `${JSON.stringify({ tool: '@tensorpress/cli', state, pid: process.pid, [state === 'complete' ? 'written' : 'started']: new Date().toISOString() })}\n`;
}

/**
 * Writes every output at the end of a run, each atomically (temp file + rename). The marker comes
 * first, saying `in-progress`, and is completed last: a run killed in between (SIGKILL) leaves a
 * folder that a rerun still recognises as tensorpress's. If a write fails or `shouldStop` says so
 * midway, the files this call created are removed again (and the folder, when this call created it
 * and it is empty); files that existed before are never deleted.
 */
export async function commitOutputs(dir: string, files: readonly OutputFile[], shouldStop: () => void = () => undefined): Promise<string[]> {
  const existedDir = (await statOrNull(dir)) !== null;
  await fs.mkdir(dir, { recursive: true });
  const created: string[] = [];
  const written: string[] = [];
  const all: OutputFile[] = [{ name: OUTPUT_MARKER, data: marker('in-progress') }, ...files, { name: OUTPUT_MARKER, data: marker('complete') }];
  try {
    for (const f of all) {
      shouldStop();
      const target = path.join(dir, f.name);
      const existed = (await statOrNull(target)) !== null;
      await writeFileAtomic(target, f.data);
      if (!existed) created.push(target);
      if (!written.includes(target)) written.push(target);
    }
  } catch (e) {
    for (const f of created) await fs.rm(f, { force: true }).catch(() => undefined);
    if (!existedDir) await fs.rmdir(dir).catch(() => undefined);
    throw e;
  }
  return [...written.slice(1), written[0]!];
}
