/**
 * The main job (`npm start`) until the CLI lands: trains the plain reference CNN on the embedded
 * MNIST split and prints test accuracy and model statistics.
 */
import {
  evaluate,
  fit,
  formatStatistics,
  graphStatistics,
  referenceModels,
  useBackend,
  type BackendName,
} from '@tensorpress/core-tensor';
import { loadMnist } from '@tensorpress/datasets';

async function main(): Promise<void> {
  const backend = await useBackend((process.env['TENSORPRESS_BACKEND'] as BackendName | undefined) ?? ['wasm', 'cpu']);
  console.log(`backend: ${backend.name}`);
  const { train, test } = await loadMnist();
  console.log(`MNIST split: ${train.size} train / ${test.size} test images`);
  const graph = referenceModels.plainCnn({ seed: 0 });
  const started = Date.now();
  const { graph: trained } = await fit(graph, train, {
    epochs: 3,
    batchSize: 32,
    optimizer: { type: 'adam', learningRate: 2e-3 },
    progress: true,
    lrSchedule: 'cosine',
    seed: 0,
    validation: test,
  });
  const seconds = (Date.now() - started) / 1000;
  const result = await evaluate(trained, test, { batchSize: 256 });
  console.log('');
  console.log(formatStatistics(graphStatistics(trained)));
  console.log('');
  console.log(`plain CNN, 3 epochs in ${seconds.toFixed(1)} s on ${backend.name}`);
  console.log(`test accuracy: ${(result.accuracy * 100).toFixed(2)}% on ${result.count} MNIST test digits`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  process.exit(1);
});
