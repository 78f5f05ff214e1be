import type { Dataset } from '@tensorpress/core-tensor';

/** A train and a test dataset. */
export interface DatasetSplit {
  train: Dataset;
  test: Dataset;
}
