import * as tf from '@tensorflow/tfjs-core';
import { GraphBuilder, arrayDataset, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { seededArray } from '@tensorpress/test-utils';

/** conv 3×3 4→8 + Relu → conv 1×1 8→8 + Relu → GAP → Flatten → fc 8→4 → fc2 4→2 (8 weights). */
export function smallGraph(seed = 1): Graph {
  const b = new GraphBuilder({ seed });
  let h = b.input('input', [null, 5, 5, 4]);
  h = b.relu(b.conv(h, { filters: 8, kernel: 3, padding: 'same', name: 'conv1' }), 'relu1');
  h = b.relu(b.conv(h, { filters: 8, kernel: 1, name: 'conv2' }), 'relu2');
  h = b.flatten(b.globalAvgPool(h, 'gap'), 'flatten');
  h = b.relu(b.dense(h, 4, { name: 'fc1' }), 'relu3');
  b.output(b.dense(h, 2, { name: 'fc2' }));
  return b.build();
}

/** Seeded random images and labels for `smallGraph`. */
export function smallData(n = 32, seed = 2): Dataset {
  const x = seededArray(n * 5 * 5 * 4, seed);
  const y = Int32Array.from({ length: n }, (_, i) => (x[i * 100]! > 0 ? 1 : 0));
  return arrayDataset({ x, y, exampleShape: [5, 5, 4], numClasses: 2 });
}

/** A batch of inputs for `smallGraph`. */
export function smallInput(n = 3, seed = 3): tf.Tensor {
  return tf.tensor(seededArray(n * 5 * 5 * 4, seed), [n, 5, 5, 4]);
}

/** Values of a parameter as a plain array. */
export function paramArray(graph: Graph, name: string): number[] {
  return Array.from(graph.param(name)!.data as Float32Array);
}
