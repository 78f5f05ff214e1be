/**
 * tensorpress' fast training kernels for the wasm and cpu backends, installed per backend by
 * {@link registerFastGradients} and removed by {@link unregisterFastGradients}.
 *
 * Why: tfjs' wasm backend has no `Conv2DBackpropFilter` and no depthwise backprop kernels, and its
 * `Conv2DBackpropInput`, `MaxPoolGrad`, `Tile` and transposed `BatchMatMul` are scalar loops; the
 * cpu backend's kernels of a conv/BN training step are slow JavaScript loops (its backprop
 * kernels walk memory with large strides). The convolution gradients are rewritten onto the
 * backend's own (XNNPACK on wasm) forward kernels (internal/wasm-conv-gradients.ts); on cpu they
 * are register-blocked loops (internal/cpu-conv.ts, internal/cpu-depthwise.ts). MaxPoolGrad and
 * Tile are memory-bound and run as typed-array loops on both (internal/max-pool-grad.ts,
 * internal/tile.ts); BatchMatMul is one kernel for both (internal/matmul.ts): XNNPACK's fast path
 * on wasm, a register-blocked loop on cpu.
 *
 * Kernel functions obtained with `tf.getKernel` run untaped, so nothing here is recorded for
 * higher-order gradients; intermediates are raw backend data released with `disposeData`.
 *
 * The convolution kernels accept an extra `dilations` attribute (the stock attrs of
 * `Conv2DBackprop*` have none), which dilated-conv-gradients.ts uses.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { cpuConv2d, cpuConv2dBackpropFilter, cpuConv2dBackpropInput } from './internal/cpu-conv.js';
import { cpuDepthwiseBackpropFilter } from './internal/cpu-depthwise.js';
import { ARITHMETIC_KERNELS, BROADCAST_BINARY_KERNELS, arithmetic, broadcastBinary, cpuRelu, cpuStep, leadingReduce } from './internal/cpu-elementwise.js';
import { cpuMaxPool } from './internal/cpu-max-pool.js';
import { batchMatMul } from './internal/matmul.js';
import { maxPoolGrad } from './internal/max-pool-grad.js';
import type { Impl, Scope } from './internal/scope.js';
import { kernelFunc, need } from './internal/scope.js';
import { tile } from './internal/tile.js';
import { conv2dBackpropFilter, conv2dBackpropInput, depthwiseBackpropFilter, depthwiseBackpropInput } from './internal/wasm-conv-gradients.js';
import { wasmLeadingReduce } from './internal/wasm-reduce.js';

/** Marks kernel configs we registered, so re-registration is idempotent across package copies. */
const FAST_MARK: unique symbol = Symbol.for('@tensorpress/kernels/fast-kernel') as never;

type MarkedConfig = KernelConfig & { [FAST_MARK]?: true };

/** A replacement that calls the kernel it replaces for the cases it does not handle itself. */
type Wrapper = (s: Scope, inputs: Parameters<Impl>[1], attrs: Parameters<Impl>[2], original: KernelFunc) => TensorInfo;

interface Spec {
  /** Backend kernels the replacement is built from; it is skipped if one is missing. */
  requires: readonly string[];
  /** Standalone body, or a wrapper around the original (which must then exist). */
  impl: Impl | { wraps: Wrapper };
}

/** Every kernel this module can provide. */
export const FAST_GRADIENT_KERNELS = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'MaxPoolGrad',
  'Tile',
  'BatchMatMul',
  'Conv2D',
  'MaxPool',
  'Relu',
  'Step',
  'Sum',
  'Mean',
  'OneHot',
  'Identity',
  ...BROADCAST_BINARY_KERNELS,
] as const;

/** Name of a kernel this module can provide. */
export type FastGradientKernel = (typeof FAST_GRADIENT_KERNELS)[number];

/**
 * Which kernels to install per backend, from measurements on a 2-core x86 machine (numbers in the
 * module docs of each kernel file). wasm lacks three convolution gradients, its
 * Conv2DBackpropInput, MaxPoolGrad, Tile and transposed/batched BatchMatMul are scalar loops, and
 * its Sum/Mean over leading axes (batch-norm statistics) transpose first.
 * On cpu every hot kernel of a conv/BN training step is a slow JS loop: Conv2D, its two
 * gradients and BatchMatMul get register-blocked loops; MaxPool(Grad), Tile, depthwise dW, Relu,
 * Step, the broadcasting binary ops and leading-axis reductions get typed-array fast paths.
 */
const PLAN: Readonly<Record<string, readonly FastGradientKernel[]>> = {
  wasm: [
    'Conv2DBackpropFilter',
    'Conv2DBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
    'DepthwiseConv2dNativeBackpropInput',
    'MaxPoolGrad',
    'Tile',
    'BatchMatMul',
    'Sum',
    'Mean',
    'OneHot',
    'Identity',
  ],
  cpu: [
    'Conv2D',
    'Conv2DBackpropFilter',
    'Conv2DBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
    'MaxPoolGrad',
    'Tile',
    'BatchMatMul',
    'MaxPool',
    'Relu',
    'Step',
    'Sum',
    'Mean',
    ...BROADCAST_BINARY_KERNELS,
  ],
};

const wraps = (w: Wrapper) => ({ wraps: w });

/** Original kernel configs we replaced, keyed `backend/kernel`, so they can be put back. */
const originals = new Map<string, KernelConfig>();

/** True when `config` is one of the kernels this module registered. */
export function isFastGradientKernel(config: KernelConfig | undefined): boolean {
  return config != null && (config as MarkedConfig)[FAST_MARK] === true;
}

/**
 * Installs tensorpress' fast training kernels on `backendName` and returns the names of the
 * kernels now served by them: the convolution gradients (built from the backend's own Conv2D /
 * DepthwiseConv2dNative), MaxPoolGrad, Tile, and per backend the other measured hot spots (see
 * PLAN: BatchMatMul, Sum and Mean on wasm; Conv2D, broadcasting binary ops, Sum and Mean on cpu).
 * Only wasm and cpu have a plan; `kernels` overrides it. Missing kernels are added; slow ones are
 * replaced (the original is kept for {@link unregisterFastGradients}). Idempotent.
 */
export function registerFastGradients(backendName: string, kernels?: readonly FastGradientKernel[]): FastGradientKernel[] {
  const plan = kernels ?? PLAN[backendName] ?? [];
  const installed: FastGradientKernel[] = [];
  for (const name of plan) {
    const spec = BACKEND_SPECS[backendName]?.[name] ?? SPECS[name];
    if (!spec.requires.every((dep) => tf.getKernel(dep, backendName) != null)) continue;
    const existing = tf.getKernel(name, backendName);
    if (isFastGradientKernel(existing)) {
      installed.push(name);
      continue;
    }
    const impl = spec.impl;
    let fn: KernelFunc;
    if (typeof impl === 'function') {
      fn = kernelFunc(impl, backendName);
    } else {
      if (existing == null) continue;
      const original = existing.kernelFunc;
      fn = kernelFunc((s, inputs, attrs) => impl.wraps(s, inputs, attrs, original), backendName);
    }
    if (existing != null) {
      originals.set(`${backendName}/${name}`, existing);
      tf.unregisterKernel(name, backendName);
    }
    const config: MarkedConfig = { kernelName: name, backendName, kernelFunc: fn };
    config[FAST_MARK] = true;
    tf.registerKernel(config);
    installed.push(name);
  }
  return installed;
}

/**
 * Removes the kernels {@link registerFastGradients} installed on `backendName` and puts back the
 * backend's originals where there were any. Used to measure before/after and by tests.
 */
export function unregisterFastGradients(backendName: string): void {
  for (const name of FAST_GRADIENT_KERNELS) {
    if (!isFastGradientKernel(tf.getKernel(name, backendName))) continue;
    tf.unregisterKernel(name, backendName);
    const original = originals.get(`${backendName}/${name}`);
    if (original != null) tf.registerKernel(original);
    originals.delete(`${backendName}/${name}`);
  }
}

const SPECS: Readonly<Record<FastGradientKernel, Spec>> = {
  Conv2DBackpropFilter: { requires: ['Conv2D', 'Transpose', 'Slice'], impl: conv2dBackpropFilter },
  Conv2DBackpropInput: { requires: ['Conv2D', 'DepthwiseConv2dNative', 'Sum', 'Transpose', 'Reverse', 'PadV2', 'Slice'], impl: conv2dBackpropInput },
  DepthwiseConv2dNativeBackpropFilter: {
    requires: ['DepthwiseConv2dNative', 'PadV2', 'Slice'],
    impl: depthwiseBackpropFilter,
  },
  DepthwiseConv2dNativeBackpropInput: {
    requires: ['DepthwiseConv2dNative', 'Reverse', 'PadV2', 'Slice', 'Sum'],
    impl: depthwiseBackpropInput,
  },
  MaxPoolGrad: { requires: [], impl: maxPoolGrad },
  Tile: { requires: [], impl: wraps((s, inputs, attrs, original) => (need(inputs, 'x').dtype === 'string' ? s.call(original, inputs, attrs) : tile(s, inputs, attrs))) },
  BatchMatMul: { requires: ['Transpose', 'Slice', 'Concat'], impl: wraps(batchMatMul) },
  Conv2D: { requires: [], impl: wraps(cpuConv2d) },
  MaxPool: { requires: [], impl: wraps(cpuMaxPool) },
  Relu: { requires: [], impl: wraps(cpuRelu) },
  Step: { requires: [], impl: wraps(cpuStep) },
  Sum: { requires: [], impl: wraps(leadingReduce(false)) },
  Mean: { requires: [], impl: wraps(leadingReduce(true)) },
  // tfjs-backend-wasm 4.22's OneHot ignores its dtype attribute and writes int32 bits into a
  // float32 tensor (a 1 reads as 1.4e-45): make it in int32 and cast with the backend's own kernel.
  OneHot: {
    requires: ['Cast'],
    impl: wraps((s, inputs, attrs, original) =>
      attrs['dtype'] === undefined || attrs['dtype'] === 'int32'
        ? s.call(original, inputs, attrs)
        : s.run('Cast', { x: s.call(original, inputs, { ...attrs, dtype: 'int32' }) }, { dtype: attrs['dtype'] }),
    ),
  },
  // While recording gradients, tfjs clones every tensor a kernel saves for its backward pass
  // (engine.saveTensorsForBackwardMode), and tf.customGrad clones what `save` gets. The cpu backend's
  // Identity shares the data (tensors are immutable; a variable's assign swaps data ids); wasm's
  // copies it, a full pass over every saved activation of a training step. Share it on wasm too,
  // as wasm's own Reshape does.
  Identity: {
    requires: [],
    impl: wraps((s, inputs, attrs, original) => {
      const x = need(inputs, 'x');
      if (x.dtype === 'string') return s.call(original, inputs, attrs);
      (s.backend as { incRef(dataId: object): void }).incRef(x.dataId);
      return s.view(x, x.shape);
    }),
  },
  ...binarySpecs(),
};

/** cpu-specific replacements: direct typed-array loops instead of the conv rewrites. */
const CPU_SPECS: Partial<Record<FastGradientKernel, Spec>> = {
  Conv2DBackpropFilter: { requires: [], impl: wraps(cpuConv2dBackpropFilter) },
  Conv2DBackpropInput: { requires: [], impl: wraps(cpuConv2dBackpropInput) },
  DepthwiseConv2dNativeBackpropFilter: { requires: [], impl: cpuDepthwiseBackpropFilter },
};

/** wasm-specific replacements. */
const WASM_SPECS: Partial<Record<FastGradientKernel, Spec>> = {
  Sum: { requires: ['AvgPool'], impl: wraps(wasmLeadingReduce(false)) },
  Mean: { requires: ['AvgPool'], impl: wraps(wasmLeadingReduce(true)) },
};

const BACKEND_SPECS: Readonly<Record<string, Partial<Record<FastGradientKernel, Spec>>>> = { cpu: CPU_SPECS, wasm: WASM_SPECS };

function binarySpecs(): Record<(typeof BROADCAST_BINARY_KERNELS)[number], Spec> {
  const out = {} as Record<(typeof BROADCAST_BINARY_KERNELS)[number], Spec>;
  for (const k of BROADCAST_BINARY_KERNELS) out[k] = { requires: [], impl: wraps(broadcastBinary) };
  for (const k of ARITHMETIC_KERNELS) out[k] = { requires: [], impl: wraps(arithmetic(k)) };
  return out;
}
