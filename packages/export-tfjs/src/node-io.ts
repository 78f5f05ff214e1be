/**
 * tfjs layers models on disk (Node.js): write model.json + shards into a folder, each file
 * atomically, and read them back (every weight format tfjs writes). `node:fs` and `node:path` load
 * lazily, so importing the package in a browser pulls in no Node built-in.
 */
import { TensorpressError, writeFileAtomic, type Graph } from '@tensorpress/core-tensor';
import type * as NodeFs from 'node:fs/promises';
import type * as NodePath from 'node:path';
import { importLayersModel, type ImportLayersOptions } from './import-layers.js';
import { parseModelJson, tfjsArtifacts, toTfjsModel, type TfjsArtifacts, type TfjsModelOptions } from './model-json.js';

/** Size limits checked before reading. */
export interface TfjsReadLimits {
  /** Largest model.json. Default 64 MiB. */
  readonly maxJsonBytes?: number;
  /** Largest total of the weight shards. Default 1 GiB. */
  readonly maxWeightBytes?: number;
}

/** Default {@link TfjsReadLimits}. */
export const DEFAULT_TFJS_READ_LIMITS: Readonly<Required<TfjsReadLimits>> = Object.freeze({ maxJsonBytes: 64 * 1024 * 1024, maxWeightBytes: 1024 * 1024 * 1024 });

/** Options of {@link writeTfjsModel}. */
export interface WriteTfjsModelOptions extends TfjsModelOptions {
  /** Replace an existing model.json (and remove the shards it listed that the new one does not). Default false. */
  readonly overwrite?: boolean;
}

/** What {@link writeTfjsModel} wrote. */
export interface WrittenTfjsModel {
  /** Absolute path of model.json. */
  readonly modelJson: string;
  /** Absolute paths of the shard files, in manifest order. */
  readonly shards: readonly string[];
  /** Bytes of model.json plus the shards. */
  readonly bytes: number;
  /** Bytes of the shards alone. */
  readonly weightBytes: number;
}

interface Files {
  fs: typeof NodeFs;
  path: typeof NodePath;
}

async function nodeFiles(): Promise<Files> {
  // process.getBuiltinModule (Node >= 20.16), not import(): browser bundlers then see no node: module at all.
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  if (proc?.getBuiltinModule == null) {
    throw new TensorpressError('IO_ERROR', 'reading and writing model files needs Node.js; in a browser use toTfjsModel and fromTfjsModel with bytes');
  }
  const fs = proc.getBuiltinModule('node:fs/promises') as typeof NodeFs;
  const path = proc.getBuiltinModule('node:path') as typeof NodePath;
  return await Promise.resolve({ fs, path });
}

function ioError(action: string, file: string, e: unknown): TensorpressError {
  if (e instanceof TensorpressError) return e;
  const code = (e as { code?: string }).code;
  const reason = code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (e as Error).message;
  return new TensorpressError('IO_ERROR', `cannot ${action} ${file}: ${reason}`, { path: file, cause: code });
}

/** The shard paths an existing model.json lists (none when it is missing or unreadable). */
async function listedShards({ fs }: Files, file: string): Promise<string[]> {
  try {
    return parseModelJson(await fs.readFile(file, 'utf8')).manifest.flatMap((g) => g.paths);
  } catch {
    return [];
  }
}

/**
 * Writes a graph as a tfjs layers model into folder `dir` (created if needed): the weight shards
 * first, then model.json, each atomically, so a reader never sees a model.json whose shards are
 * missing. `tf.loadLayersModel` loads the folder served over http://, or its files read back with
 * {@link readTfjsArtifacts} and `tf.io.fromMemory`.
 *
 * @throws TensorpressError `IO_ERROR` when model.json exists and `overwrite` is not set, or a
 *   write fails (files this call created are removed again); what {@link toTfjsModel} throws.
 */
export async function writeTfjsModel(dir: string, graph: Graph, options: WriteTfjsModelOptions = {}): Promise<WrittenTfjsModel> {
  const files = toTfjsModel(graph, options);
  const io = await nodeFiles();
  const { fs, path } = io;
  const root = path.resolve(dir);
  const target = path.join(root, 'model.json');
  const exists = async (f: string): Promise<boolean> => fs.stat(f).then(() => true, () => false);
  if (!options.overwrite && (await exists(target))) {
    throw new TensorpressError('IO_ERROR', `${target} already exists: pass { overwrite: true } to replace it`, { path: target, cause: 'EEXIST' });
  }
  try {
    await fs.mkdir(root, { recursive: true });
  } catch (e) {
    throw ioError('create folder', root, e);
  }
  const previous = options.overwrite ? await listedShards(io, target) : [];
  const created: string[] = [];
  const shards: string[] = [];
  try {
    for (const s of files.shards) {
      const f = path.join(root, s.path);
      if (!(await exists(f))) created.push(f);
      await writeFileAtomic(f, s.data);
      shards.push(f);
    }
    const json = JSON.stringify(files.modelJson);
    if (!(await exists(target))) created.push(target);
    await writeFileAtomic(target, json);
    // Shards only the replaced model.json listed are now garbage; paths outside the folder are never touched.
    const kept = new Set(files.shards.map((s) => s.path));
    for (const p of previous) {
      const f = path.resolve(root, p);
      if (!kept.has(p) && path.dirname(f) === root) await fs.rm(f, { force: true }).catch(() => undefined);
    }
    const weightBytes = files.shards.reduce((n, s) => n + s.data.byteLength, 0);
    return { modelJson: target, shards, bytes: weightBytes + new TextEncoder().encode(json).byteLength, weightBytes };
  } catch (e) {
    for (const f of created) await fs.rm(f, { force: true }).catch(() => undefined);
    throw e;
  }
}

async function readBounded({ fs }: Files, file: string, max: number, what: string): Promise<Uint8Array> {
  let size: number;
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) throw new TensorpressError('IO_ERROR', `${what} ${file} is not a file`, { path: file });
    size = st.size;
  } catch (e) {
    throw ioError(`read ${what}`, file, e);
  }
  if (size > max) throw new TensorpressError('INPUT_INVALID', `${what} ${file} has ${size} bytes, over the limit of ${max}`, { path: file, bytes: size, limit: max });
  try {
    return new Uint8Array(await fs.readFile(file));
  } catch (e) {
    throw ioError(`read ${what}`, file, e);
  }
}

/**
 * Reads a tfjs layers model from disk: `file` is its model.json or a folder holding model.json.
 * Returns the artifacts (topology, weight specs, the shards concatenated), which
 * `tf.loadLayersModel(tf.io.fromMemory(artifacts))` loads and {@link importLayersModel} imports.
 * Sizes are checked before reading; shard paths may not leave the model's folder.
 *
 * @throws TensorpressError `IO_ERROR` for a missing file, `INPUT_INVALID` for a malformed
 *   model.json (naming the JSON path), a shard path outside the folder or a file over the limits.
 */
export async function readTfjsArtifacts(file: string, limits: TfjsReadLimits = {}): Promise<TfjsArtifacts> {
  const io = await nodeFiles();
  const { fs, path } = io;
  const max = { ...DEFAULT_TFJS_READ_LIMITS, ...limits };
  let jsonFile = path.resolve(file);
  const st = await fs.stat(jsonFile).catch((e: unknown) => {
    throw ioError('read model', jsonFile, e);
  });
  if (st.isDirectory()) jsonFile = path.join(jsonFile, 'model.json');
  const text = await readBounded(io, jsonFile, max.maxJsonBytes, 'model.json');
  const { manifest } = parseModelJson(text);
  const dir = path.dirname(jsonFile);
  const shards: Uint8Array[] = [];
  let total = 0;
  for (const p of manifest.flatMap((g) => g.paths)) {
    const shard = path.resolve(dir, p);
    const rel = path.relative(dir, shard);
    if (rel.startsWith('..') || path.isAbsolute(rel) || path.isAbsolute(p)) {
      throw new TensorpressError('INPUT_INVALID', `${jsonFile}: weight path "${p}" leaves the model's folder`, { path: jsonFile, shard: p });
    }
    const data = await readBounded(io, shard, max.maxWeightBytes - total, 'weight file');
    total += data.byteLength;
    shards.push(data);
  }
  return tfjsArtifacts(text, shards);
}

/**
 * Reads and imports a tfjs layers model from disk (model.json or its folder) in any weight format
 * tfjs writes: uint8/uint16 affine and float16 weights are dequantized as tfjs does.
 *
 * @throws what {@link readTfjsArtifacts} and {@link importLayersModel} throw.
 */
export async function readTfjsModel(file: string, options: ImportLayersOptions & { readonly limits?: TfjsReadLimits } = {}): Promise<Graph> {
  const { limits, ...importOptions } = options;
  return importLayersModel(await readTfjsArtifacts(file, limits), importOptions);
}
