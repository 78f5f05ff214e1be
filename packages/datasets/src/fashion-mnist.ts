import { TensorpressError, nodeBuiltin } from '@tensorpress/core-tensor';
import { envVar } from './internal/node.js';
import { loadIdxDataset } from './load-idx-dataset.js';
import type { DatasetSplit } from './types.js';

/** The four standard Fashion-MNIST file names; each may also be present gzipped, with `.gz` appended. */
export const FASHION_MNIST_FILES = Object.freeze({
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
});

/** Class names of Fashion-MNIST labels 0..9. */
export const FASHION_MNIST_CLASSES = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const);

/** Where Debian's `dataset-fashion-mnist` package installs the files. */
export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Environment variable naming a folder with the four files; used when `dir` is not given. */
export const FASHION_MNIST_DIR_ENV = 'TENSORPRESS_FASHION_MNIST_DIR';

/** Options of {@link loadFashionMnist}. */
export interface FashionMnistOptions {
  /** Folder with the four IDX files. Default: `$TENSORPRESS_FASHION_MNIST_DIR`, else `/usr/share/datasets/fashion-mnist`. */
  dir?: string;
  /** Examples as `[784]` vectors instead of `[28, 28, 1]` images. Default false. */
  flatten?: boolean;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await nodeBuiltin('node:fs/promises', 'loadFashionMnist', 'readIdx on fetched bytes').stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Picks `name` or `name.gz` in `dir`; the plain file wins when both exist. */
async function locate(dir: string, name: string): Promise<string | null> {
  const plain = nodeBuiltin('node:path', 'loadFashionMnist', 'readIdx on fetched bytes').join(dir, name);
  if (await isFile(plain)) return plain;
  const gz = `${plain}.gz`;
  return (await isFile(gz)) ? gz : null;
}

/**
 * Loads Fashion-MNIST (60,000 train / 10,000 test, 28×28 grey images, 10 classes) from the
 * four standard IDX files, plain or gzipped, in the standard split and order (use
 * `batches(n, { shuffle: true, seed })` to shuffle). Pixels are float32 `k / 255` in [0, 1],
 * examples `[28, 28, 1]`, labels 0..9 (see {@link FASHION_MNIST_CLASSES}).
 * When the files are absent it throws `DATASET_MISSING` saying how to install them.
 */
export async function loadFashionMnist(options: FashionMnistOptions = {}): Promise<DatasetSplit> {
  const envDir = envVar(FASHION_MNIST_DIR_ENV);
  const dir = nodeBuiltin('node:path', 'loadFashionMnist', 'readIdx on fetched bytes').resolve(options.dir ?? (envDir !== undefined && envDir !== '' ? envDir : DEFAULT_FASHION_MNIST_DIR));
  const names = Object.values(FASHION_MNIST_FILES);
  const found = await Promise.all(names.map((n) => locate(dir, n)));
  const missing = names.filter((_, i) => found[i] === null);
  if (missing.length > 0) {
    throw new TensorpressError(
      'DATASET_MISSING',
      `Fashion-MNIST not found in ${dir}: missing ${missing.join(', ')} (plain or .gz). ` +
        `Install it with \`apt-get install -y dataset-fashion-mnist\` (files go to ${DEFAULT_FASHION_MNIST_DIR}), ` +
        `or pass \`dir\` / set ${FASHION_MNIST_DIR_ENV} to a folder holding ${names.join(', ')} (each optionally .gz).`,
      { dir, missing },
    );
  }
  const [trainImages, trainLabels, testImages, testLabels] = found as [string, string, string, string];
  const opts = { numClasses: 10, flatten: options.flatten ?? false };
  const [train, test] = await Promise.all([
    loadIdxDataset(trainImages, trainLabels, opts),
    loadIdxDataset(testImages, testLabels, opts),
  ]);
  for (const [ds, file] of [
    [train, trainImages],
    [test, testImages],
  ] as const) {
    const shape = ds.exampleShape;
    const ok = options.flatten ? shape[0] === 784 : shape[0] === 28 && shape[1] === 28 && shape[2] === 1;
    if (!ok || shape.length !== (options.flatten ? 1 : 3)) {
      throw new TensorpressError('DATA_INVALID', `${file}: Fashion-MNIST images are 28×28, got examples of shape [${shape.join(', ')}]`, {
        file,
      });
    }
  }
  return { train, test };
}
