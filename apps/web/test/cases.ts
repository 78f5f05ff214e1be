/**
 * The numerics the browser tests compare: forward logits and parameter gradients of the four
 * reference models (seeded weights, fixed input), computed with the same code in Node (cpu, the
 * reference) and in the page (webgl, webgpu, wasm, cpu). Tiny shapes: SwiftShader is slow.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng, Executor, softmaxCrossEntropy } from '@tensorpress/core-tensor';
import { referenceModels, type ReferenceModelName } from '@tensorpress/models';
import { hasArrayKernel } from '@tensorpress/kernels';
import { fakeQuantize } from '@tensorpress/quant';

export const MODEL_NAMES: readonly ReferenceModelName[] = ['plainCnn', 'residualCnn', 'mobileNetCnn', 'mlp'];

/** One model's numbers: logits, loss and every trainable parameter's gradient, as plain arrays. */
export interface CaseResult {
  model: ReferenceModelName;
  logits: number[];
  loss: number;
  grads: Record<string, number[]>;
}

/** Example shape, batch and width of the models under test. */
export const CASE_SHAPE = { inputShape: [16, 16, 1], batch: 4, width: 0.25, numClasses: 10 } as const;

/** The fixed input and labels (seeded normal pixels, labels 0..batch-1). */
function inputs(): { x: Float32Array; y: Int32Array } {
  const rng = createRng(11);
  const n = CASE_SHAPE.batch * CASE_SHAPE.inputShape.reduce<number>((a, b) => a * b, 1);
  const x = Float32Array.from({ length: n }, () => rng.normal());
  const y = Int32Array.from({ length: CASE_SHAPE.batch }, (_, i) => i % CASE_SHAPE.numClasses);
  return { x, y };
}

/** Forward (train mode: batch statistics) and gradients of one model on the active backend. */
export async function runCase(model: ReferenceModelName): Promise<CaseResult> {
  const graph = referenceModels[model]({
    inputShape: [...CASE_SHAPE.inputShape],
    numClasses: CASE_SHAPE.numClasses,
    width: CASE_SHAPE.width,
    seed: 7,
  });
  const ex = new Executor(graph);
  const { x: xs, y: ys } = inputs();
  const x = tf.tensor(xs, [CASE_SHAPE.batch, ...CASE_SHAPE.inputShape]);
  const y = tf.tensor1d(ys, 'int32');
  try {
    let logits: tf.Tensor | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const out = ex.run(x, { training: true, updateStats: false })[0]!;
      logits = tf.keep(out);
      return softmaxCrossEntropy(out, y);
    }, ex.trainableVariables());
    const result: CaseResult = { model, logits: [...(await logits!.data())], loss: (await value.data())[0]!, grads: {} };
    // Variables get process-unique names: key the gradients by parameter name.
    for (const [param, v] of ex.variables()) {
      const g = grads[v.name];
      if (g != null) result.grads[param] = [...(await g.data())];
    }
    tf.dispose([value, logits!, ...Object.values(grads)]);
    return result;
  } finally {
    tf.dispose([x, y]);
    ex.dispose();
  }
}

/** quant's fake quantization: forward and the gradients of x, scale and zero point, and which path served it. */
export interface FakeQuantResult {
  /** True where quant's fused array kernels served the call (wasm, cpu); false: the tensor-op path (webgl, webgpu). */
  fused: boolean;
  y: number[];
  dx: number[];
  dScale: number[];
  dZeroPoint: number[];
  /** One quantization step per channel. */
  scale: number[];
}

/** Per-channel asymmetric int8 fake quantization of a seeded [4, 6, 8] tensor, learnable scale and zero point. */
export async function runFakeQuant(): Promise<FakeQuantResult> {
  const rng = createRng(5);
  const channels = 8;
  const xs = Float32Array.from({ length: 4 * 6 * channels }, () => rng.normal() * 2);
  const ws = Float32Array.from({ length: xs.length }, () => rng.normal());
  const scales = Float32Array.from({ length: channels }, (_, c) => 0.01 + 0.004 * c);
  const zps = Float32Array.from({ length: channels }, (_, c) => c - 4);
  const [x, w, scale, zp] = [tf.tensor(xs, [4, 6, channels]), tf.tensor(ws, [4, 6, channels]), tf.tensor1d(scales), tf.tensor1d(zps)];
  try {
    const f = (a: tf.Tensor, s: tf.Tensor, z: tf.Tensor): tf.Tensor => fakeQuantize(a, s, z, { range: [-128, 127], learnable: true, learnZeroPoint: true });
    const y = tf.tidy(() => f(x, scale, zp));
    const grads = tf.grads((a: tf.Tensor, s: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(f(a, s, z), w)))([x, scale, zp]);
    const out: FakeQuantResult = {
      fused: hasArrayKernel('TensorpressFakeQuantizeGrad'),
      y: [...(await y.data())],
      dx: [...(await grads[0]!.data())],
      dScale: [...(await grads[1]!.data())],
      dZeroPoint: [...(await grads[2]!.data())],
      scale: [...scales],
    };
    tf.dispose([y, ...grads]);
    return out;
  } finally {
    tf.dispose([x, w, scale, zp]);
  }
}

/**
 * Largest |a - b| over the largest |b| (a relative error per tensor), with `floor` as the least
 * scale: a tensor far below the model's gradient scale (BN-gamma sums of ~1e-6 that are mostly
 * cancellation) is compared at that floor instead of at its own float32 rounding noise.
 */
export function relativeError(a: readonly number[], b: readonly number[], floor = 1e-12): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= diff)) diff = d; // NaN propagates
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / Math.max(scale, floor);
}

/** The largest |gradient| over all parameters of a result. */
export function gradientScale(r: CaseResult): number {
  let m = 0;
  for (const g of Object.values(r.grads)) for (const v of g) m = Math.max(m, Math.abs(v));
  return m;
}
