/**
 * Node.js file plumbing shared by every package that writes outputs: `node:fs` loaded lazily (the
 * package also runs in browsers), typed I/O errors, and atomic writes (a temp file beside the
 * target, synced, renamed into place), with the temp files in flight tracked so a signal handler
 * can remove them.
 */
import type * as NodeFs from 'node:fs/promises';
import type * as NodePath from 'node:path';
import { TensorpressError } from './errors.js';

/** `node:fs/promises` and `node:path`. */
export interface Fs {
  fs: typeof NodeFs;
  path: typeof NodePath;
}

let removeSync: ((file: string) => void) | undefined;
/** Temp files being written right now. */
const pending = new Set<string>();

/** The Node built-ins {@link nodeBuiltin} hands out. */
export interface NodeBuiltins {
  'node:fs': typeof import('node:fs');
  'node:fs/promises': typeof NodeFs;
  'node:path': typeof NodePath;
  'node:zlib': typeof import('node:zlib');
  'node:module': typeof import('node:module');
}

/**
 * A Node built-in fetched with `process.getBuiltinModule` (Node >= 20.16) instead of an `import`, so
 * browser bundlers never see it. For the functions of a package that take file paths: in a browser
 * it throws `INPUT_INVALID` naming `caller` and the byte- or URL-taking function to use `instead`.
 */
export function nodeBuiltin<K extends keyof NodeBuiltins>(id: K, caller: string, instead: string): NodeBuiltins[K] {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = proc?.getBuiltinModule?.(id) as NodeBuiltins[K] | undefined;
  if (mod == null) {
    throw new TensorpressError('INPUT_INVALID', `${caller} reads files and needs Node (>= 20.16); in a browser use ${instead}`, { caller });
  }
  return mod;
}

/** Loads `node:fs` lazily; `IO_ERROR` where there is none (browsers). */
export async function nodeFs(): Promise<Fs> {
  // process.getBuiltinModule (Node >= 20.16), not import(): browser bundlers then see no node: module at all.
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  if (proc?.getBuiltinModule == null) {
    throw new TensorpressError('IO_ERROR', 'writing and reading files needs Node.js file access; in a browser use saveGraph/loadGraph and bytes');
  }
  const fs = proc.getBuiltinModule('node:fs/promises') as typeof NodeFs;
  const path = proc.getBuiltinModule('node:path') as typeof NodePath;
  const sync = proc.getBuiltinModule('node:fs') as typeof import('node:fs');
  removeSync ??= (file) => sync.rmSync(file, { force: true });
  return await Promise.resolve({ fs, path });
}

/** A TensorpressError `IO_ERROR` naming the file and what was being done (a TensorpressError passes through). */
export function ioError(action: string, file: string, e: unknown): TensorpressError {
  if (e instanceof TensorpressError) return e;
  const code = (e as { code?: string }).code;
  const reason =
    code === 'ENOENT' ? 'the file or its directory does not exist' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (e as Error).message;
  return new TensorpressError('IO_ERROR', `cannot ${action} ${file}: ${reason}`, { path: file, cause: code });
}

/**
 * Writes `data` to a new temp file beside `file` and syncs it; returns the temp path (tracked until
 * {@link releaseTemp}). The caller publishes it (rename or link) and releases it.
 */
export async function writeTemp({ fs, path }: Fs, file: string, data: string | Uint8Array): Promise<string> {
  const tag = `${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${tag}.tmp`);
  pending.add(tmp);
  let fh: Awaited<ReturnType<typeof fs.open>> | undefined;
  try {
    fh = await fs.open(tmp, 'wx');
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh?.close().catch(() => undefined);
    fh = undefined;
    await releaseTemp(fs, tmp);
    throw ioError('write', file, e);
  } finally {
    await fh?.close();
  }
  return tmp;
}

/** Removes a temp file (if still there) and stops tracking it. */
export async function releaseTemp(fs: Fs['fs'], tmp: string): Promise<void> {
  await fs.rm(tmp, { force: true }).catch(() => undefined);
  pending.delete(tmp);
}

/**
 * Writes `data` to `file` atomically: readers see the old file or the whole new one, and a failure
 * leaves no partial file. Node.js only.
 *
 * @throws TensorpressError `IO_ERROR` naming the file.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const files = await nodeFs();
  const tmp = await writeTemp(files, file, data);
  try {
    await files.fs.rename(tmp, file);
  } catch (e) {
    throw ioError('write', file, e);
  } finally {
    await releaseTemp(files.fs, tmp);
  }
}

/** Removes every temp file still being written, synchronously (for a signal handler before exit). */
export function removePendingTempFiles(): void {
  for (const f of pending) {
    try {
      removeSync?.(f);
    } catch {
      // Best effort: the process is exiting.
    }
  }
  pending.clear();
}

/** `.<name>.<pid>-<time>-<random>.tmp`: the names {@link writeTemp} gives its temp files. */
const TEMP_NAME = /^\..+\.(\d+)-[0-9a-z]+-[0-9a-z]+\.tmp$/;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as { code?: string }).code === 'EPERM';
  }
}

/**
 * Removes the temp files that tensorpress writers left in `dir` (`.<name>.<pid>-….tmp`) when the
 * process that wrote them is no longer running: a SIGKILL or a crash mid-write leaves them, and
 * nothing else would. A running process's temp files (this one's included) are kept. Returns the
 * removed paths; a missing folder has none. Node.js only.
 *
 * @throws TensorpressError `IO_ERROR` when the folder cannot be read.
 */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  const { fs, path } = await nodeFs();
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw ioError('read', dir, e);
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = Number(TEMP_NAME.exec(name)?.[1] ?? NaN);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || isAlive(pid)) continue;
    const file = path.join(dir, name);
    const st = await fs.lstat(file).catch(() => undefined);
    if (!st?.isFile()) continue;
    await fs.rm(file, { force: true }).catch((e: unknown) => {
      throw ioError('remove', file, e);
    });
    removed.push(file);
  }
  return removed;
}
