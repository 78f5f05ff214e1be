/**
 * Plumbing shared by tensorpress' replacement kernels: running a backend's own kernels directly
 * (untaped, so nothing lands on the gradient tape) with their intermediates released afterwards,
 * and raw access to tensor data for the few kernels written as typed-array loops.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DataType, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo, TypedArray } from '@tensorflow/tfjs-core';

/** What every tfjs backend offers for releasing data (KernelBackend.disposeData). */
export interface DisposingBackend {
  disposeData(dataId: object, force?: boolean): boolean;
}

/** The wasm backend: tensors live in the wasm heap. */
interface HeapBackend {
  typedArrayFromHeap(info: TensorInfo): TypedArray;
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
}

/** The cpu backend (and any backend whose readSync hands out its own storage). */
interface ArrayBackend {
  readSync(dataId: object): TypedArray;
  makeTensorInfo(shape: number[], dtype: DataType, values?: TypedArray): TensorInfo;
}

/** A kernel body: inputs and attributes in, one output out, intermediates through `s`. */
export type Impl = (s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap) => TensorInfo;

/** Wraps an {@link Impl} as a tfjs kernel function for `backendName`. */
export function kernelFunc(impl: Impl, backendName: string): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const scope = new Scope(backend, backendName);
    try {
      return scope.finish(impl(scope, inputs, attrs ?? {}));
    } catch (e) {
      scope.disposeAll();
      throw e;
    }
  };
}

/** Runs a backend's own kernels directly and releases the intermediates afterwards. */
export class Scope {
  private readonly temps: TensorInfo[] = [];

  constructor(
    readonly backend: object,
    readonly backendName: string,
  ) {}

  /** Runs the backend's registered `kernelName` kernel; the result is released by {@link finish}. */
  run(kernelName: string, inputs: NamedTensorInfoMap | TensorInfo[], attrs: NamedAttrMap): TensorInfo {
    const config = tf.getKernel(kernelName, this.backendName);
    if (config == null) throw new Error(`backend '${this.backendName}' has no '${kernelName}' kernel`);
    return this.track(config.kernelFunc({ inputs: inputs as NamedTensorInfoMap, backend: this.backend, attrs }));
  }

  /** Runs a kernel function that is not the registered one (e.g. the original we replaced). */
  call(fn: KernelFunc, inputs: NamedTensorInfoMap, attrs: NamedAttrMap): TensorInfo {
    return this.track(fn({ inputs, backend: this.backend, attrs }));
  }

  /** A view of `t` with another shape: same data, no copy, nothing to release. */
  view(t: TensorInfo, shape: number[]): TensorInfo {
    return { dataId: t.dataId, shape, dtype: t.dtype };
  }

  /** A new output of `shape` and a writable typed array over its storage. */
  output(shape: number[], dtype: DataType): { info: TensorInfo; values: TypedArray } {
    const size = shape.reduce((a, b) => a * b, 1);
    const heap = this.backend as Partial<HeapBackend>;
    if (typeof heap.typedArrayFromHeap === 'function' && typeof heap.makeOutput === 'function') {
      const info = this.track(heap.makeOutput(shape, dtype));
      return { info, values: heap.typedArrayFromHeap(info) };
    }
    const values = tf.util.getTypedArrayFromDType(dtype as 'float32', size);
    const info = this.track((this.backend as ArrayBackend).makeTensorInfo(shape, dtype, values));
    return { info, values };
  }

  /**
   * The values of `t` without copying where the backend allows. On wasm the view dies when the
   * heap grows, so take it after allocating outputs.
   */
  values(t: TensorInfo): TypedArray {
    const heap = this.backend as Partial<HeapBackend>;
    if (typeof heap.typedArrayFromHeap === 'function') return heap.typedArrayFromHeap(t);
    return (this.backend as ArrayBackend).readSync(t.dataId);
  }

  finish(out: TensorInfo): TensorInfo {
    let kept = false;
    for (const t of this.temps) {
      if (!kept && t.dataId === out.dataId) {
        kept = true;
        continue;
      }
      (this.backend as DisposingBackend).disposeData(t.dataId);
    }
    this.temps.length = 0;
    return out;
  }

  disposeAll(): void {
    for (const t of this.temps) (this.backend as DisposingBackend).disposeData(t.dataId);
    this.temps.length = 0;
  }

  private track(out: TensorInfo | TensorInfo[]): TensorInfo {
    if (Array.isArray(out)) {
      for (const t of out) this.temps.push(t);
      if (out.length !== 1) throw new Error('kernel returned several outputs');
      return out[0]!;
    }
    this.temps.push(out);
    return out;
  }
}

/** `[v, v]` for a number, the first two entries of an array, `fallback` when absent. */
export function pair(v: unknown, fallback: number): [number, number] {
  if (v == null) return [fallback, fallback];
  if (typeof v === 'number') return [v, v];
  const a = v as number[];
  return [a[0] ?? fallback, a[1] ?? a[0] ?? fallback];
}

/** An input by name, or a clear error. */
export function need(inputs: NamedTensorInfoMap, name: string): TensorInfo {
  const t = inputs[name];
  if (t == null) throw new Error(`missing input '${name}'`);
  return t;
}

/** Geometry of a float32 `Sum` / `Mean` over a leading run of axes, seen as `[rows, cols]`. */
export interface LeadingReduceArgs {
  x: TensorInfo;
  rows: number;
  cols: number;
  outShape: number[];
}

/** Parses a `Sum` / `Mean` call; null unless x is float32 and the axes are a proper leading run. */
export function leadingReduceArgs(inputs: NamedTensorInfoMap, attrs: NamedAttrMap): LeadingReduceArgs | null {
  const x = need(inputs, 'x');
  const rank = x.shape.length;
  const axes = [...tf.util.parseAxisParam(attrs['axis'] as number | number[], x.shape)].sort((p, q) => p - q);
  const leading = axes.length > 0 && axes.length < rank && axes.every((ax, i) => ax === i);
  if (x.dtype !== 'float32' || !leading) return null;
  const rows = x.shape.slice(0, axes.length).reduce((p, q) => p * q, 1);
  const kept = x.shape.slice(axes.length);
  const cols = kept.reduce((p, q) => p * q, 1);
  const outShape = attrs['keepDims'] === true ? [...axes.map(() => 1), ...kept] : kept;
  return { x, rows, cols, outShape };
}
