import type * as tf from '@tensorflow/tfjs-core';
import { GraphBuilder, arrayDataset, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { seededArray } from '@tensorpress/test-utils';

/** input 6 → fc1 5 → fc2 3: smooth in its weights, so finite differences give its exact Hessian. */
export function tinyLinear(): Graph {
  const b = new GraphBuilder({ seed: 11 });
  let h = b.input('input', [null, 6]);
  h = b.dense(h, 5, { name: 'fc1' });
  b.output(b.dense(h, 3, { name: 'fc2' }));
  return b.build();
}

/** input 6 → fc1 5 → Relu → fc2 3: piecewise linear, with second-order gradients in tfjs (exact Hessian by double backprop). */
export function reluMlp(): Graph {
  const b = new GraphBuilder({ seed: 12 });
  let h = b.input('input', [null, 6]);
  h = b.relu(b.dense(h, 5, { name: 'fc1' }), 'relu');
  b.output(b.dense(h, 3, { name: 'fc2' }));
  return b.build();
}

/** conv 4 + BN + Relu → conv 6 + BN + Relu → Flatten → fc 3 on 6×6×1 inputs. */
export function smallCnn(): Graph {
  const b = new GraphBuilder({ seed: 5 });
  let h = b.input('input', [null, 6, 6, 1]);
  h = b.relu(b.batchNorm(b.conv(h, { filters: 4, kernel: 3, padding: 'same', name: 'conv1' }), { name: 'bn1' }), 'relu1');
  h = b.relu(b.batchNorm(b.conv(h, { filters: 6, kernel: 3, padding: 'same', name: 'conv2' }), { name: 'bn2' }), 'relu2');
  h = b.flatten(h, 'flatten');
  b.output(b.dense(h, 3, { name: 'fc' }));
  return b.build();
}

/** `n` seeded examples of `shape` with labels 0..classes-1. */
export function randomData(n: number, shape: number[], classes: number, seed = 1): Dataset {
  const size = shape.reduce((a, d) => a * d, 1);
  const y = Array.from({ length: n }, (_, i) => (i * 7 + seed) % classes);
  return arrayDataset({ x: seededArray(n * size, seed), y, exampleShape: shape, numClasses: classes });
}

/** Labels the data with the graph's own arg-max, so the untouched graph scores 100%. */
export function selfLabelled(graph: Graph, data: Dataset, run: (g: Graph, x: tf.Tensor) => Float32Array): Dataset {
  const [b] = [...data.batches(data.size)];
  const logits = run(graph, b!.x);
  const classes = logits.length / data.size;
  const y: number[] = [];
  for (let i = 0; i < data.size; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[i * classes + c]! > logits[i * classes + best]!) best = c;
    y.push(best);
  }
  const x = b!.x.dataSync() as Float32Array;
  b!.x.dispose();
  b!.y.dispose();
  return arrayDataset({ x: new Float32Array(x), y, exampleShape: data.exampleShape, numClasses: classes });
}

/** Two convs of 4 filters feeding one Add (coupled channels) → Relu → Flatten → fc 3, on 4×4×1 inputs. */
export function addCnn(): Graph {
  const b = new GraphBuilder({ seed: 9 });
  const x = b.input('input', [null, 4, 4, 1]);
  const a = b.conv(x, { filters: 4, kernel: 3, padding: 'same', name: 'a' });
  const c = b.conv(x, { filters: 4, kernel: 1, name: 'b' });
  let h = b.relu(b.add(a, c, 'sum'), 'relu');
  h = b.flatten(h, 'flatten');
  b.output(b.dense(h, 3, { name: 'fc' }));
  return b.build();
}
