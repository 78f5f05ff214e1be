/**
 * Kernels written as one pass over typed arrays, for the backends whose tensors are plain memory
 * (wasm: the module's heap; cpu: JS arrays). Method packages use this for fused elementwise work
 * that would otherwise be a chain of full-size tensor ops (every op one more pass over memory and
 * one more allocation), e.g. quant's fake quantization and its gradient.
 *
 * A kernel registered here runs untaped like any backend kernel: wrap the call in `tf.customGrad`
 * (or register a gradient) to differentiate through it. Use {@link hasArrayKernel} to fall back to
 * tensor ops on other backends (webgl, webgpu, tensorflow). heap-module.ts lets such a kernel run
 * hand-written WebAssembly on its views of the wasm heap.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DataType, KernelFunc, NamedAttrMap, TensorInfo, TypedArray } from '@tensorflow/tfjs-core';
import { Scope, need } from './internal/scope.js';

/** The backends {@link registerArrayKernel} registers on. */
export const ARRAY_KERNEL_BACKENDS: readonly string[] = ['wasm', 'cpu'];

/** One output of an array kernel. */
export interface ArrayKernelOutput {
  readonly shape: number[];
  readonly dtype: DataType;
}

/** A kernel as typed-array code: output shapes first, then one call that fills them. */
export interface ArrayKernelSpec {
  /** The kernel name (use a prefix of your package, e.g. `TensorpressFakeQuantize`). */
  readonly kernelName: string;
  /** Input names, in the order {@link compute} receives them. */
  readonly inputs: readonly string[];
  /** The outputs' shapes and dtypes, from the inputs' shapes and the attributes. */
  outputs(shapes: readonly (readonly number[])[], attrs: NamedAttrMap): ArrayKernelOutput[];
  /**
   * Fills `outputs` (uninitialised) from `inputs`. The arrays are views of backend memory, valid
   * only during the call; inputs must not be written.
   */
  compute(inputs: readonly TypedArray[], outputs: readonly TypedArray[], shapes: readonly (readonly number[])[], attrs: NamedAttrMap): void;
}

/** Marks configs registered here, so registering again (another copy of the package) is a no-op. */
const MARK: unique symbol = Symbol.for('@tensorpress/kernels/array-kernel') as never;

function kernelFunc(spec: ArrayKernelSpec, backendName: string): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const ins: TensorInfo[] = spec.inputs.map((n) => need(inputs, n));
    const shapes = ins.map((t) => t.shape);
    const a = attrs ?? {};
    const scope = new Scope(backend, backendName);
    try {
      const outs = spec.outputs(shapes, a).map((o) => scope.output(o.shape, o.dtype).info);
      // Views after every allocation: growing the wasm heap detaches earlier ones.
      spec.compute(
        ins.map((t) => scope.values(t)),
        outs.map((t) => scope.values(t)),
        shapes,
        a,
      );
      return outs.length === 1 ? outs[0]! : outs;
    } catch (e) {
      scope.disposeAll();
      throw e;
    }
  };
}

/**
 * Registers `spec` on the wasm and cpu backends (whether or not they are loaded yet). Idempotent
 * for kernels registered here; throws if another kernel already has the name. Note that wasm's
 * SIMD elementwise ops beat a JavaScript loop on large tensors: callers may prefer tensor ops there.
 */
export function registerArrayKernel(spec: ArrayKernelSpec): void {
  for (const backendName of ARRAY_KERNEL_BACKENDS) {
    const existing = tf.getKernel(spec.kernelName, backendName) as (tf.KernelConfig & { [MARK]?: true }) | undefined;
    if (existing != null) {
      if (existing[MARK] === true) continue;
      throw new Error(`kernel '${spec.kernelName}' is already registered on '${backendName}' by someone else`);
    }
    const config: tf.KernelConfig & { [MARK]?: true } = { kernelName: spec.kernelName, backendName, kernelFunc: kernelFunc(spec, backendName) };
    config[MARK] = true;
    tf.registerKernel(config);
  }
}

/** Whether the active backend has `kernelName` (false before any backend is initialised). */
export function hasArrayKernel(kernelName: string): boolean {
  const backend = tf.getBackend();
  return backend != null && tf.getKernel(kernelName, backend) != null;
}
