import type { Dataset } from '@tensorpress/core-tensor';
import { idxPairToDataset } from './internal/idx-pair.js';
import { sourceBytes, sourceName, type ByteSource } from './internal/source.js';
import { checkNumClasses } from './internal/shape.js';
import { IDX_MAX_BYTES, readIdx } from './read-idx.js';

/** Options of {@link loadIdxDataset}. */
export interface LoadIdxOptions {
  /** Number of classes; labels at or above it are rejected. Default: largest label + 1. */
  numClasses?: number;
  /** Examples as flat vectors instead of `[H, W, 1]` images. Default false. */
  flatten?: boolean;
  /** Largest file, and largest inflated payload, accepted. Default 1 GiB. */
  maxBytes?: number;
}

/**
 * Loads a labelled dataset from an IDX pair: an images file `[N, H, W]` (or `[N, ...]`) of
 * unsigned bytes and a labels file `[N]`, each plain or gzipped, each given as a file path (Node),
 * a `URL` (fetched: browsers and Node) or the bytes (`Uint8Array` / `ArrayBuffer`). Pixels become float32
 * `k / 255` in [0, 1]; `[H, W]` examples become `[H, W, 1]` (NHWC). The counts of images
 * and labels must match. A missing file is `DATASET_MISSING`; a malformed one `DATA_INVALID`
 * naming the file and byte offset.
 */
export async function loadIdxDataset(imagesSource: ByteSource, labelsSource: ByteSource, options: LoadIdxOptions = {}): Promise<Dataset> {
  checkNumClasses(options.numClasses);
  const maxBytes = options.maxBytes ?? IDX_MAX_BYTES;
  const imagesPath = sourceName(imagesSource, 'images');
  const labelsPath = sourceName(labelsSource, 'labels');
  const [imageBytes, labelBytes] = await Promise.all([sourceBytes(imagesSource, 'images', maxBytes), sourceBytes(labelsSource, 'labels', maxBytes)]);
  const images = readIdx(imageBytes, imagesPath, { maxBytes });
  const labels = readIdx(labelBytes, labelsPath, { maxBytes });
  return idxPairToDataset(images, labels, { images: imagesPath, labels: labelsPath }, options);
}
