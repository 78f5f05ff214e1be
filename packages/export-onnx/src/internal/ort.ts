import { TensorpressError } from '@tensorpress/core-tensor';

/** onnxruntime-node's module type (an optional peer dependency, loaded on first use). */
export type Ort = typeof import('onnxruntime-node');

let cached: Promise<Ort> | undefined;

// A non-literal specifier: browser bundlers must not try to bundle the native module (pass
// onnxruntime-web's module as `runtime` to checkParity there).
const ORT_NODE = 'onnxruntime-node';

/** Loads onnxruntime-node, or throws ONNX_RUNTIME_UNAVAILABLE saying how to install it. */
export function loadOrt(): Promise<Ort> {
  cached ??= (import(/* @vite-ignore */ /* webpackIgnore: true */ ORT_NODE) as Promise<Ort>).catch((e: unknown) => {
    cached = undefined;
    throw new TensorpressError(
      'ONNX_RUNTIME_UNAVAILABLE',
      `onnxruntime-node could not be loaded (${(e as Error).message}); install it with \`npm i onnxruntime-node\` to run parity checks and latency benchmarks`,
    );
  });
  return cached;
}
