/**
 * The `onnx` fuzz target: core's residual CNN written three ways (FP32; QDQ INT8 after
 * @tensorpress/quant's post-training quantization; QOperator), mutated by onnx-mutations.ts. A case
 * is accepted when `fromOnnx` reads the file and an Executor runs one batch of it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Executor, arrayDataset, useBackend, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { fromOnnx, toOnnx, type ReadLimits } from '@tensorpress/export-onnx';
import { quantizePostTraining } from '@tensorpress/quant';
import type { FuzzSeed, FuzzTarget } from './harness.js';
import { mutateOnnx } from './onnx-mutations.js';

/**
 * Read limits of the fuzz: 2^22 elements per tensor (16 MiB of float32) keep a case that is
 * accepted fast enough to run, so that a timeout means a hang rather than a big model.
 */
export const FUZZ_LIMITS: Partial<ReadLimits> = { maxTensorElements: 2 ** 22, maxTotalElements: 2 ** 23 };

/** Batch of the one run of an accepted file (2, so that a batch-dependent shape shows). */
const BATCH = 2;

async function seeds(): Promise<FuzzSeed[]> {
  await useBackend(['wasm', 'cpu']);
  const float = referenceModels.residualCnn({ seed: 0, width: 0.5 });
  const n = 64;
  const x = new Float32Array(n * 28 * 28);
  // A fixed pattern rather than an rng: the calibration only has to give the quantizers ranges.
  for (let i = 0; i < x.length; i++) x[i] = ((i * 2654435761) % 1000) / 1000;
  const calib = arrayDataset({ x, y: new Int32Array(n), exampleShape: [28, 28, 1], numClasses: 10 });
  const qdq = (await quantizePostTraining(float, calib, { samples: n, batchSize: 32 })).graph;
  // Plain copies: protobufjs hands out Node Buffers, whose slice() is a view, not a copy.
  return [
    { name: 'residualCnn/fp32', bytes: Uint8Array.from(toOnnx(float)) },
    { name: 'residualCnn/qdq', bytes: Uint8Array.from(toOnnx(qdq)) },
    { name: 'residualCnn/qoperator', bytes: Uint8Array.from(toOnnx(qdq, { format: 'qoperator' })) },
  ];
}

function feeds(graph: Graph): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const inp of graph.inputs) {
    const shape = inp.shape.map((d) => d ?? BATCH);
    out[inp.name] = inp.dtype === 'float32' ? tf.randomUniform(shape, 0, 1, 'float32', 1) : tf.zeros(shape, 'int32');
  }
  return out;
}

async function check(bytes: Uint8Array): Promise<void> {
  const graph = fromOnnx(bytes, { limits: FUZZ_LIMITS });
  const ex = new Executor(graph);
  const xs = feeds(graph);
  try {
    const ys = ex.run(xs);
    // Reading the outputs makes every backend finish the run.
    for (const y of ys) await y.data();
    tf.dispose(ys);
  } finally {
    tf.dispose(Object.values(xs));
    ex.dispose();
  }
}

/** The `onnx` fuzz target. */
const onnxTarget: FuzzTarget = {
  name: 'onnx',
  module: import.meta.url,
  okField: 'readAndRan',
  seeds,
  setup: async () => {
    await useBackend(['wasm', 'cpu']);
  },
  mutate: (seed, rng) => mutateOnnx(seed.bytes, rng),
  check: (bytes) => check(bytes),
};
export default onnxTarget;
