import type { Graph } from '@tensorpress/core-tensor';
import { toTfjsModel, type WeightFormat } from '@tensorpress/export-tfjs';
import type { OutputFile } from '../output-dir.js';

/** The name of the tfjs model.json in an output folder. */
export const TFJS_MODEL_FILE = 'model.json';

/**
 * A graph as the output files of a tfjs-layers model: the weight shards first, then model.json, so
 * that {@link commitOutputs} publishes model.json only once its shards are in place.
 */
export function tfjsOutputFiles(graph: Graph, weights: WeightFormat): { files: OutputFile[]; bytes: number; shards: number } {
  const model = toTfjsModel(graph, { weights });
  const json = JSON.stringify(model.modelJson);
  const files: OutputFile[] = [...model.shards.map((s) => ({ name: s.path, data: s.data })), { name: TFJS_MODEL_FILE, data: json }];
  const bytes = model.shards.reduce((n, s) => n + s.data.byteLength, new TextEncoder().encode(json).byteLength);
  return { files, bytes, shards: model.shards.length };
}
