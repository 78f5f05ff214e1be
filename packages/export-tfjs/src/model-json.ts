/**
 * The tfjs layers-model file format as bytes, both ways: a graph to `model.json` plus weight shards
 * (what `tf.loadLayersModel` fetches over http:// or reads from files), and model.json plus shard
 * bytes back to artifacts or a graph. No Node built-ins here: this runs in a browser; files on disk
 * are node-io.ts's business.
 */
import type { io } from '@tensorflow/tfjs-core';
import { ConfigError, TensorpressError, type Graph } from '@tensorpress/core-tensor';
import { exportLayersArtifacts, type ExportLayersOptions, type LayersArtifacts, type LayersWeightSpec } from './export-layers.js';
import { importLayersModel, type ImportLayersOptions } from './import-layers.js';
import { invalid, isObj, show } from './internal/json.js';

/** tfjs-converter's shard size: 4 MiB. */
export const DEFAULT_SHARD_BYTES = 4 * 1024 * 1024;

/** One group of a model.json's `weightsManifest`: shard paths and the weights they hold, in order. */
export interface WeightsManifestGroup {
  readonly paths: readonly string[];
  readonly weights: readonly LayersWeightSpec[];
}

/** A layers-model `model.json` as tfjs writes it. */
export interface LayersModelJson {
  readonly format: 'layers-model';
  readonly generatedBy: string;
  readonly convertedBy: string | null;
  readonly modelTopology: Record<string, unknown>;
  readonly weightsManifest: readonly WeightsManifestGroup[];
}

/** A model as files: model.json and its weight shards (paths relative to model.json). */
export interface TfjsModelFiles {
  readonly modelJson: LayersModelJson;
  readonly shards: readonly { readonly path: string; readonly data: Uint8Array }[];
}

/** Options of {@link toTfjsModel}: the export options plus the shard size. */
export interface TfjsModelOptions extends ExportLayersOptions {
  /** Largest shard file in bytes (a weight may span two shards, as in tfjs-converter's files). Default {@link DEFAULT_SHARD_BYTES}. */
  readonly shardBytes?: number;
}

function checkShardBytes(shardBytes: number): void {
  if (!Number.isSafeInteger(shardBytes) || shardBytes < 1) throw new ConfigError('options.shardBytes', `expected a positive integer, got ${show(shardBytes)}`);
}

/** Splits artifacts' weight data into shards of at most `shardBytes`, named as tfjs-converter names them. */
export function artifactsToFiles(artifacts: LayersArtifacts, shardBytes: number = DEFAULT_SHARD_BYTES): TfjsModelFiles {
  checkShardBytes(shardBytes);
  const bytes = new Uint8Array(artifacts.weightData);
  const n = Math.max(1, Math.ceil(bytes.byteLength / shardBytes));
  const shards = Array.from({ length: n }, (_, i) => ({
    path: `group1-shard${i + 1}of${n}.bin`,
    data: bytes.slice(i * shardBytes, Math.min(bytes.byteLength, (i + 1) * shardBytes)),
  }));
  return {
    modelJson: {
      format: 'layers-model',
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: shards.map((s) => s.path), weights: artifacts.weightSpecs }],
    },
    shards,
  };
}

/**
 * A graph as the files of a tfjs layers model: `model.json` (serialize `modelJson` with
 * `JSON.stringify`) and weight shards of at most `shardBytes` each. Serve them from one folder and
 * `tf.loadLayersModel('http://…/model.json')` loads the model.
 *
 * @throws what {@link exportLayersArtifacts} throws; ConfigError for a bad `shardBytes`.
 */
export function toTfjsModel(graph: Graph, options: TfjsModelOptions = {}): TfjsModelFiles {
  // Checked before the export's work.
  checkShardBytes(options.shardBytes ?? DEFAULT_SHARD_BYTES);
  return artifactsToFiles(exportLayersArtifacts(graph, options), options.shardBytes);
}

/**
 * Model artifacts read from model.json and its shards (the shards' bytes concatenated in manifest
 * order): a `tf.io.ModelArtifacts`, so `tf.io.fromMemory` takes it, and so does {@link importLayersModel}.
 */
export type TfjsArtifacts = io.ModelArtifacts & { readonly weightSpecs: io.WeightsManifestEntry[]; readonly weightData: ArrayBuffer };

/** Shard bytes: in manifest order (every group's paths, in turn), or by path as written in the manifest. */
export type ShardBytes = readonly (Uint8Array | ArrayBuffer)[] | Readonly<Record<string, Uint8Array | ArrayBuffer>>;

/** A model.json's text or bytes parsed, or an already parsed object, checked to be a layers model. */
export function parseModelJson(modelJson: string | Uint8Array | object): { modelTopology: unknown; manifest: { paths: string[]; weights: unknown[] }[]; json: Record<string, unknown> } {
  let json: unknown = modelJson;
  if (typeof modelJson === 'string' || modelJson instanceof Uint8Array) {
    const text = typeof modelJson === 'string' ? modelJson : new TextDecoder().decode(modelJson);
    try {
      json = JSON.parse(text) as unknown;
    } catch (e) {
      invalid([], `model.json is not valid JSON (${(e as Error).message})`);
    }
  }
  if (!isObj(json)) invalid([], `expected a model.json object, got ${show(json)}`);
  if (json['modelTopology'] === undefined || json['modelTopology'] === null) {
    invalid(['modelTopology'], 'a layers model.json needs "modelTopology" (a graph model from tfjs-converter has no Keras topology and cannot be imported)');
  }
  const manifest = json['weightsManifest'] ?? [];
  if (!Array.isArray(manifest)) invalid(['weightsManifest'], `expected a list of { paths, weights } groups, got ${show(manifest)}`);
  const groups = manifest.map((g: unknown, i) => {
    if (!isObj(g) || !Array.isArray(g['paths']) || !Array.isArray(g['weights'])) invalid(['weightsManifest', i], 'a group needs "paths" and "weights" arrays');
    const paths = g['paths'] as unknown[];
    paths.forEach((p, j) => {
      if (typeof p !== 'string' || p === '') invalid(['weightsManifest', i, 'paths', j], `expected a file path, got ${show(p)}`);
    });
    return { paths: paths as string[], weights: g['weights'] as unknown[] };
  });
  return { modelTopology: json['modelTopology'], manifest: groups, json };
}

function bytesOf(b: Uint8Array | ArrayBuffer | undefined, what: string): Uint8Array {
  if (b instanceof ArrayBuffer) return new Uint8Array(b);
  if (b instanceof Uint8Array) return b;
  throw new TensorpressError('INPUT_INVALID', `${what}: expected a Uint8Array or an ArrayBuffer of the shard`, { shard: what });
}

/**
 * Artifacts from a model.json and its shard bytes (the weight data concatenated in manifest order,
 * as tfjs's loaders do). Browser-friendly: fetch the files, pass the bytes.
 *
 * @throws TensorpressError `INPUT_INVALID` for a malformed model.json (naming the JSON path) or a
 *   missing shard.
 */
export function tfjsArtifacts(modelJson: string | Uint8Array | object, shards: ShardBytes): TfjsArtifacts {
  const { modelTopology, manifest, json } = parseModelJson(modelJson);
  const paths = manifest.flatMap((g) => g.paths);
  let parts: Uint8Array[];
  if (Array.isArray(shards)) {
    const list = shards as readonly (Uint8Array | ArrayBuffer)[];
    if (list.length !== paths.length) {
      throw new TensorpressError('INPUT_INVALID', `the manifest lists ${paths.length} shard file(s) (${paths.join(', ')}) but ${list.length} were given`, {
        expected: paths.length,
        given: list.length,
      });
    }
    parts = list.map((b, i) => bytesOf(b, paths[i]!));
  } else {
    const byPath = shards as Readonly<Record<string, Uint8Array | ArrayBuffer>>;
    parts = paths.map((p) => {
      if (!Object.prototype.hasOwnProperty.call(byPath, p)) {
        throw new TensorpressError('INPUT_INVALID', `shard "${p}" that the manifest lists was not given (given: ${Object.keys(byPath).join(', ') || 'none'})`, { shard: p });
      }
      return bytesOf(byPath[p], p);
    });
  }
  const weightData = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    weightData.set(p, off);
    off += p.byteLength;
  }
  const str = (k: string): string | undefined => (typeof json[k] === 'string' ? json[k] : undefined);
  return {
    modelTopology: modelTopology as io.ModelArtifacts['modelTopology'],
    ...(str('format') !== undefined ? { format: str('format') } : {}),
    ...(str('generatedBy') !== undefined ? { generatedBy: str('generatedBy') } : {}),
    ...(typeof json['convertedBy'] === 'string' || json['convertedBy'] === null ? { convertedBy: json['convertedBy'] } : {}),
    // Checked field by field when decoded (importLayersModel), as tfjs itself trusts them.
    weightSpecs: manifest.flatMap((g) => g.weights) as io.WeightsManifestEntry[],
    weightData: weightData.buffer,
  };
}

/**
 * Imports a layers model from its model.json and shard bytes: every weight format tfjs writes
 * (float32, int32, bool, uint8/uint16 affine, float16) is decoded as tfjs decodes it.
 *
 * @throws what {@link tfjsArtifacts} and {@link importLayersModel} throw.
 */
export function fromTfjsModel(modelJson: string | Uint8Array | object, shards: ShardBytes, options: ImportLayersOptions = {}): Graph {
  return importLayersModel(tfjsArtifacts(modelJson, shards), options);
}
