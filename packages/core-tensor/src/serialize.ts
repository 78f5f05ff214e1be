/**
 * Save and load of a graph with its weights: a JSON description (format, version, inputs, outputs,
 * nodes with attributes, parameter specs with byte ranges) and one binary holding every parameter's
 * little-endian bytes, each aligned to its element size.
 *
 * `saveGraph` / `loadGraph` are pure (no Node APIs) so the package loads in a browser; `writeGraph`
 * / `readGraph` import `node:fs` lazily. Loading checks everything it can before allocating (format,
 * version, JSON shape, dtypes, dims, sizes, byte ranges, checksum) and then lets {@link Graph}
 * validate the structure.
 */
import { z } from 'zod';
import { GraphError, TensorpressError, jsonPath } from './errors.js';
import { ioError, nodeFs, releaseTemp, writeTemp, type Fs } from './files.js';
import { asBytes, crc32, fromLeBytes, leBytes } from './internal/bytes.js';
import { encodeNumber, parseJsonText, untagNumbers } from './internal/json-text.js';
import { Graph, dtypeBytes, type AttrValue, type Node, type Param } from './graph.js';
import { getOp } from './ops/registry.js';

/** The `format` field of a saved graph. */
export const GRAPH_FORMAT = 'tensorpress.graph';
/** The version this code writes and the highest it reads. */
export const GRAPH_FORMAT_VERSION = 1;

/** A serialised graph: the JSON description and the parameter bytes it points into. */
export interface SavedGraph {
  readonly json: string;
  readonly weights: Uint8Array;
}

/** Limits of {@link loadGraph} and {@link readGraph}. */
export interface LoadGraphOptions {
  /** Most parameter bytes a graph may declare in all (default 2 GiB). */
  readonly maxBytes?: number;
}

/** Options of {@link readGraph}. */
export interface ReadGraphOptions extends LoadGraphOptions {
  /** Largest JSON file read (default 256 MiB). */
  readonly maxJsonBytes?: number;
}

/** Options of {@link writeGraph}. */
export interface WriteGraphOptions {
  /** Replace existing files. Default false: an existing file is an error and nothing is written. */
  readonly overwrite?: boolean;
}

/** Where {@link writeGraph} put the two files. */
export interface WrittenGraph {
  readonly jsonPath: string;
  readonly weightsPath: string;
}

const DEFAULT_MAX_BYTES = 2 ** 31;
const DEFAULT_MAX_JSON_BYTES = 256 * 2 ** 20;

// ---------------------------------------------------------------- attributes

function encodeAttr(v: AttrValue): unknown {
  if (typeof v === 'number') return encodeNumber(v);
  if (Array.isArray(v)) return v.map((x: number | string) => (typeof x === 'number' ? encodeNumber(x) : x));
  return v;
}

// ---------------------------------------------------------------- schema

const dtypeSchema = z.enum(['float32', 'int32', 'int8', 'uint8']);
const nameSchema = z.string().min(1);
const floatTag = z.strictObject({ $float: z.enum(['Infinity', '-Infinity', 'NaN', '-0']) });
const numberSchema = z.union([z.number(), floatTag]);
const attrSchema = z.union([numberSchema, z.string(), z.boolean(), z.array(numberSchema), z.array(z.string())]);
const dimSchema = z.number().int().nonnegative();

const savedGraphSchema = z.strictObject({
  format: z.literal(GRAPH_FORMAT),
  version: z.literal(GRAPH_FORMAT_VERSION),
  producer: z.string().optional(),
  inputs: z.array(z.strictObject({ name: nameSchema, shape: z.array(dimSchema.nullable()), dtype: dtypeSchema })),
  outputs: z.array(nameSchema),
  nodes: z.array(
    z.strictObject({
      name: nameSchema,
      op: nameSchema,
      inputs: z.array(z.string()),
      outputs: z.array(nameSchema).min(1),
      attrs: z.record(z.string(), attrSchema),
    }),
  ),
  params: z.array(
    z.strictObject({
      name: nameSchema,
      shape: z.array(dimSchema),
      dtype: dtypeSchema,
      trainable: z.boolean(),
      byteOffset: z.number().int().nonnegative(),
      byteLength: z.number().int().nonnegative(),
    }),
  ),
  weightsByteLength: z.number().int().nonnegative(),
  weightsCrc32: z.number().int().nonnegative().max(0xffffffff),
});

type SavedGraphJson = z.infer<typeof savedGraphSchema>;

function invalid(message: string, details: Record<string, unknown> = {}): never {
  throw new TensorpressError('SAVED_GRAPH_INVALID', message, details);
}

function parseJson(text: string): unknown {
  return parseJsonText(text, (what, { position, line, column }) => {
    const where = position >= 0 ? ` at line ${line}, column ${column} (position ${position})` : '';
    return invalid(`saved graph JSON is malformed${where}: ${what}`, { position, line, column });
  });
}

// ---------------------------------------------------------------- save

/**
 * Serialises a graph: the JSON (format, version, inputs, outputs, nodes, parameter specs) and the
 * weights, each parameter's little-endian bytes at an offset aligned to its element size. Pure: no
 * I/O. The round trip through {@link loadGraph} is bit-exact.
 */
export function saveGraph(graph: Graph): SavedGraph {
  let offset = 0;
  const layout = graph.params.map((p) => {
    const size = dtypeBytes(p.dtype);
    offset = Math.ceil(offset / size) * size;
    const entry = { p, byteOffset: offset, byteLength: p.data.length * size };
    offset += entry.byteLength;
    return entry;
  });
  const weights = new Uint8Array(offset);
  for (const { p, byteOffset } of layout) weights.set(leBytes(p.data), byteOffset);
  const doc: SavedGraphJson = {
    format: GRAPH_FORMAT,
    version: GRAPH_FORMAT_VERSION,
    producer: '@tensorpress/core-tensor',
    inputs: graph.inputs.map((t) => ({ name: t.name, shape: [...t.shape], dtype: t.dtype })),
    outputs: [...graph.outputs],
    nodes: graph.nodes.map((n) => ({
      name: n.name,
      op: n.op,
      inputs: [...n.inputs],
      outputs: [...n.outputs],
      attrs: Object.fromEntries(Object.entries(n.attrs).map(([k, v]) => [k, encodeAttr(v)])) as SavedGraphJson['nodes'][number]['attrs'],
    })),
    params: layout.map(({ p, byteOffset, byteLength }) => ({
      name: p.name,
      shape: [...p.shape],
      dtype: p.dtype,
      trainable: p.trainable,
      byteOffset,
      byteLength,
    })),
    weightsByteLength: weights.byteLength,
    weightsCrc32: crc32(weights),
  };
  return { json: JSON.stringify(doc, null, 1), weights };
}

// ---------------------------------------------------------------- load

function checkHeader(doc: unknown): SavedGraphJson {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) invalid('saved graph JSON must be an object');
  const d = doc as Record<string, unknown>;
  if (d['format'] !== GRAPH_FORMAT) {
    invalid(`$.format: not a tensorpress graph (expected format "${GRAPH_FORMAT}", got ${JSON.stringify(d['format']) ?? 'none'})`, { path: '$.format' });
  }
  const v = d['version'];
  if (typeof v === 'number' && Number.isInteger(v) && v > GRAPH_FORMAT_VERSION) {
    invalid(`$.version: the graph was written in format version ${v}; this @tensorpress/core-tensor reads up to ${GRAPH_FORMAT_VERSION}: upgrade it`, {
      path: '$.version',
    });
  }
  const r = savedGraphSchema.safeParse(doc);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 5).map((iss) => `${jsonPath(iss.path)}: ${iss.message}`);
    const more = r.error.issues.length > 5 ? ` (and ${r.error.issues.length - 5} more)` : '';
    invalid(`saved graph JSON is invalid: ${issues.join('; ')}${more}`, { path: jsonPath(r.error.issues[0]!.path), issues: issues });
  }
  return r.data;
}

interface Planned {
  readonly spec: SavedGraphJson['params'][number];
  readonly count: number;
}

/** Sizes and byte ranges of every parameter, checked against the limits and the weights' length. */
function planParams(doc: SavedGraphJson, weightsLength: number, maxBytes: number): Planned[] {
  let total = 0;
  const planned = doc.params.map((spec, i) => {
    const path = `$.params[${i}]`;
    const size = dtypeBytes(spec.dtype);
    let count = 1;
    for (const d of spec.shape) {
      count *= d;
      if (count * size > maxBytes) {
        invalid(`${path}.shape: parameter "${spec.name}" of shape [${spec.shape.join(', ')}] is larger than the limit of ${maxBytes} bytes`, {
          path: `${path}.shape`,
          param: spec.name,
        });
      }
    }
    total += count * size;
    if (total > maxBytes) invalid(`$.params: the parameters need more than the limit of ${maxBytes} bytes`, { path: '$.params', param: spec.name });
    if (spec.byteLength !== count * size) {
      invalid(`${path}.byteLength: parameter "${spec.name}" (${spec.dtype} [${spec.shape.join(', ')}]) needs ${count * size} bytes, the file declares ${spec.byteLength}`, {
        path: `${path}.byteLength`,
        param: spec.name,
      });
    }
    if (spec.byteOffset % size !== 0) {
      invalid(`${path}.byteOffset: parameter "${spec.name}" starts at byte ${spec.byteOffset}, which is not aligned to its ${size}-byte elements`, {
        path: `${path}.byteOffset`,
        param: spec.name,
      });
    }
    if (spec.byteOffset + spec.byteLength > weightsLength) {
      invalid(
        `weights truncated: parameter "${spec.name}" needs bytes ${spec.byteOffset}..${spec.byteOffset + spec.byteLength} ` +
          `(${spec.byteLength} bytes at offset ${spec.byteOffset}) but the weights hold ${weightsLength} bytes`,
        { param: spec.name, byteOffset: spec.byteOffset, byteLength: spec.byteLength, available: weightsLength },
      );
    }
    return { spec, count };
  });
  if (doc.weightsByteLength !== weightsLength) {
    invalid(`the weights hold ${weightsLength} bytes but the graph declares ${doc.weightsByteLength}: they belong to another graph or are damaged`, {
      expected: doc.weightsByteLength,
      available: weightsLength,
    });
  }
  return planned;
}

function checkOps(doc: SavedGraphJson): void {
  doc.nodes.forEach((n, i) => {
    if (!getOp(n.op)) {
      throw new GraphError('UNKNOWN_OP', `$.nodes[${i}].op: node "${n.name}" has unknown op "${n.op}" (a newer tensorpress or a technique package may define it)`, {
        node: n.name,
        op: n.op,
        path: `$.nodes[${i}].op`,
      });
    }
  });
}

function validated(json: string | object, weightsLength: number, options: LoadGraphOptions): { doc: SavedGraphJson; planned: Planned[] } {
  const doc = checkHeader(typeof json === 'string' ? parseJson(json) : json);
  const planned = planParams(doc, weightsLength, options.maxBytes ?? DEFAULT_MAX_BYTES);
  checkOps(doc);
  return { doc, planned };
}

function materialize(doc: SavedGraphJson, planned: readonly Planned[], bytes: Uint8Array): Graph {
  const crc = crc32(bytes);
  if (crc !== doc.weightsCrc32) {
    invalid(`weights checksum mismatch (crc32 ${crc.toString(16)}, the graph expects ${doc.weightsCrc32.toString(16)}): the weights are damaged or belong to another graph`, {
      expected: doc.weightsCrc32,
      actual: crc,
    });
  }
  const params: Param[] = planned.map(({ spec, count }) => ({
    name: spec.name,
    shape: spec.shape,
    dtype: spec.dtype,
    trainable: spec.trainable,
    data: fromLeBytes(bytes.subarray(spec.byteOffset, spec.byteOffset + spec.byteLength), spec.dtype, count),
  }));
  const nodes: Node[] = doc.nodes.map((n) => ({
    name: n.name,
    op: n.op,
    inputs: n.inputs,
    outputs: n.outputs,
    attrs: Object.fromEntries(Object.entries(n.attrs).map(([k, v]) => [k, untagNumbers(v) as AttrValue])),
  }));
  return new Graph({ inputs: doc.inputs, outputs: doc.outputs, nodes, params });
}

/**
 * Rebuilds a graph from {@link saveGraph}'s output. Validates before allocating: JSON syntax (the
 * error gives line, column and position), format and version, the JSON's shape (errors name the
 * JSON path), dtypes, dims, a total size limit, every byte range against the weights and their
 * checksum; then {@link Graph} validates the structure (unknown ops, dangling edges, cycles, shapes).
 *
 * @throws TensorpressError `SAVED_GRAPH_INVALID` for a malformed file or truncated/mismatched weights;
 *   a {@link GraphError} (`UNKNOWN_OP`, `GRAPH_CYCLE`, ...) for a structurally invalid graph.
 */
export function loadGraph(json: string | object, weights: Uint8Array | ArrayBuffer, options: LoadGraphOptions = {}): Graph {
  const bytes = asBytes(weights) ?? invalid('weights must be a Uint8Array or an ArrayBuffer');
  const { doc, planned } = validated(json, bytes.byteLength, options);
  return materialize(doc, planned, bytes);
}

// ---------------------------------------------------------------- files

/** `x.json` names the JSON (weights beside it in `x.bin`); any other path is a directory holding graph.json and graph.bin. */
function filesOf(path: Fs['path'], target: string): WrittenGraph {
  if (target.toLowerCase().endsWith('.json')) return { jsonPath: target, weightsPath: `${target.slice(0, -5)}.bin` };
  return { jsonPath: path.join(target, 'graph.json'), weightsPath: path.join(target, 'graph.bin') };
}

async function exists(fs: Fs['fs'], file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return false;
    throw ioError('inspect', file, e);
  }
}

function existsError(file: string): TensorpressError {
  return new TensorpressError('IO_ERROR', `${file} already exists: pass { overwrite: true } to replace it`, { path: file, cause: 'EEXIST' });
}

/**
 * Writes a graph to `target`: `model.json` (with weights in `model.bin` beside it) or a directory
 * (graph.json and graph.bin inside; the directory must exist). Each file is written to a temp file
 * in its directory, synced and renamed into place, so a failure leaves no partial file; existing
 * files are kept unless `overwrite` is set. Node.js only.
 *
 * @throws TensorpressError `IO_ERROR` naming the file (missing directory, existing file, permissions).
 */
export async function writeGraph(target: string, graph: Graph, options: WriteGraphOptions = {}): Promise<WrittenGraph> {
  const files = await nodeFs();
  const { fs, path } = files;
  const paths = filesOf(path, target);
  const { json, weights } = saveGraph(graph);
  const overwrite = options.overwrite ?? false;
  // Weights first: a reader that sees the new JSON finds its weights (the checksum catches the rest).
  const jobs = [
    { file: paths.weightsPath, data: weights, tmp: '' },
    { file: paths.jsonPath, data: new TextEncoder().encode(json), tmp: '' },
  ];
  if (!overwrite) {
    for (const j of jobs) if (await exists(fs, j.file)) throw existsError(j.file);
  }
  const published: string[] = [];
  try {
    for (const j of jobs) j.tmp = await writeTemp(files, j.file, j.data);
    for (const j of jobs) {
      if (overwrite) {
        await fs.rename(j.tmp, j.file).catch((e: unknown) => {
          throw ioError('write', j.file, e);
        });
      } else {
        // link() refuses an existing target atomically, unlike rename().
        try {
          await fs.link(j.tmp, j.file);
        } catch (e) {
          const code = (e as { code?: string }).code;
          if (code === 'EEXIST') throw existsError(j.file);
          if (await exists(fs, j.file)) throw existsError(j.file);
          await fs.rename(j.tmp, j.file).catch((err: unknown) => {
            throw ioError('write', j.file, err);
          });
        }
        published.push(j.file);
      }
      await releaseTemp(fs, j.tmp);
      j.tmp = '';
    }
  } catch (e) {
    for (const j of jobs) if (j.tmp) await releaseTemp(fs, j.tmp);
    // Without overwrite, files published so far are ours: take them back.
    for (const f of published) await fs.rm(f, { force: true }).catch(() => undefined);
    throw e instanceof TensorpressError ? e : ioError('write', target, e);
  }
  return paths;
}

/**
 * Reads a graph written by {@link writeGraph} (`model.json` with `model.bin` beside it, or a
 * directory holding graph.json and graph.bin). The JSON is validated, and the weights file's size
 * checked, before the weights are read. Node.js only.
 *
 * @throws TensorpressError `IO_ERROR` for a missing or unreadable file; otherwise as {@link loadGraph},
 *   with the file named in the message.
 */
export async function readGraph(target: string, options: ReadGraphOptions = {}): Promise<Graph> {
  const { fs, path } = await nodeFs();
  const files = filesOf(path, target);
  // Name the file, keeping the error's class and code.
  const withFile = (file: string, e: unknown): unknown => {
    if (e instanceof TensorpressError && e.code !== 'IO_ERROR') e.message = `${file}: ${e.message}`;
    return e;
  };
  let text: string;
  try {
    const st = await fs.stat(files.jsonPath);
    const max = options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES;
    if (st.size > max) invalid(`the graph JSON has ${st.size} bytes, over the limit of ${max}`, { available: st.size });
    text = await fs.readFile(files.jsonPath, 'utf8');
  } catch (e) {
    throw withFile(files.jsonPath, ioError('read', files.jsonPath, e));
  }
  let bytes: Uint8Array;
  let checked: { doc: SavedGraphJson; planned: Planned[] };
  try {
    const size = (await fs.stat(files.weightsPath).catch((e: unknown) => {
      throw ioError('read', files.weightsPath, e);
    })).size;
    checked = validated(text, size, options);
  } catch (e) {
    throw withFile(files.jsonPath, e);
  }
  try {
    bytes = await fs.readFile(files.weightsPath);
  } catch (e) {
    throw ioError('read', files.weightsPath, e);
  }
  try {
    if (bytes.byteLength !== checked.doc.weightsByteLength) planParams(checked.doc, bytes.byteLength, options.maxBytes ?? DEFAULT_MAX_BYTES);
    return materialize(checked.doc, checked.planned, bytes);
  } catch (e) {
    throw withFile(files.weightsPath, e);
  }
}
