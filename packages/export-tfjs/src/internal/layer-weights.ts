/**
 * A layers model's weights by name: decoded from artifacts (every storage format tfjs writes) or
 * copied from a live model, and handed to layers by `<layer>/<weight>` with their shapes checked.
 */
import { TensorpressError } from '@tensorpress/core-tensor';
import type { LayersModelLike, LayersTensorLike, ModelArtifactsLike } from '../layers-model-like.js';
import { invalid } from './json.js';
import type { LayerDef } from './keras-topology.js';
import { checkSpec, decodeWeight } from './weight-codec.js';

/** One named weight. */
export interface RawWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  /** Present for float32 weights (a private copy; dequantized when stored quantized). */
  readonly data?: Float32Array;
}

/** The artifacts' weight bytes as one view (shards concatenated). */
export function weightBytes(data: ModelArtifactsLike['weightData']): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) {
    const parts = (data as readonly unknown[]).map((b, i) => {
      if (!(b instanceof ArrayBuffer)) invalid(['weightData', i], 'expected an ArrayBuffer');
      return new Uint8Array(b);
    });
    const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.byteLength;
    }
    return out;
  }
  invalid(['weightData'], 'expected an ArrayBuffer, a list of ArrayBuffers or a typed array');
}

/**
 * Decodes `weightSpecs` over `weightData` as tfjs does (float32, int32, bool; uint8/uint16 affine
 * and float16 storage dequantized to float32), each spec checked before its bytes are read.
 */
export function decodeArtifactWeights(a: ModelArtifactsLike): Map<string, RawWeight> {
  const specs: unknown = a.weightSpecs ?? [];
  if (!Array.isArray(specs)) invalid(['weightSpecs'], 'expected a list of weight specs');
  const bytes = weightBytes(a.weightData);
  const out = new Map<string, RawWeight>();
  let offset = 0;
  specs.forEach((s: unknown, i) => {
    const spec = checkSpec(s, ['weightSpecs', i]);
    const { name, byteLength: len } = spec;
    if (offset + len > bytes.byteLength) {
      throw new TensorpressError(
        'INPUT_INVALID',
        `weight "${name}" needs bytes ${offset}..${offset + len} of weightData, which holds ${bytes.byteLength}: ` +
          'the weights are truncated or belong to another model',
        { weight: name, byteOffset: offset, byteLength: len, available: bytes.byteLength },
      );
    }
    if (!out.has(name)) {
      const values = decodeWeight(spec, bytes.subarray(offset, offset + len));
      out.set(name, { name, shape: spec.shape, dtype: spec.dtype, ...(values instanceof Float32Array ? { data: values } : {}) });
    }
    offset += len;
  });
  return out;
}

/** The weights of a live model, copied. */
export function liveWeights(m: LayersModelLike): Map<string, RawWeight> {
  const vars = m.weights;
  const values: readonly LayersTensorLike[] =
    typeof m.getWeights === 'function'
      ? m.getWeights()
      : vars.map((v) => {
          if (typeof v.read !== 'function') invalid(['weights'], 'a live model needs getWeights() or readable weights');
          return v.read();
        });
  if (values.length !== vars.length) invalid(['weights'], `getWeights() returned ${values.length} tensors for ${vars.length} weights`);
  const out = new Map<string, RawWeight>();
  vars.forEach((v, i) => {
    const t = values[i]!;
    const name = v.originalName ?? v.name;
    const raw = t.dtype === 'float32' ? t.dataSync() : undefined;
    // dataSync may return the backend's own storage: copy it.
    const data = raw instanceof Float32Array ? raw.slice() : undefined;
    if (!out.has(name)) out.set(name, { name, shape: [...t.shape], dtype: t.dtype, ...(data ? { data } : {}) });
  });
  return out;
}

/** Hands each layer its weights. */
export class WeightStore {
  constructor(private readonly weights: ReadonlyMap<string, RawWeight>) {}

  /** The weight `<layer>/<short>` (also found under a name scope or with a `:0` suffix). */
  take(layer: LayerDef, short: string, expected?: readonly (number | null)[]): RawWeight & { data: Float32Array } {
    const key = `${layer.name}/${short}`;
    let w = this.weights.get(key) ?? this.weights.get(`${key}:0`);
    if (!w) {
      const hits = [...this.weights.values()].filter((x) => x.name.endsWith(`/${key}`) || x.name.endsWith(`/${key}:0`));
      if (hits.length === 1) w = hits[0];
    }
    if (!w) {
      const own = [...this.weights.keys()].filter((k) => k.startsWith(`${layer.name}/`));
      throw new TensorpressError(
        'INPUT_INVALID',
        `layer "${layer.name}" (${layer.className}) needs weight "${key}", which the model's weights do not hold` +
          (own.length > 0 ? ` (the layer has: ${own.join(', ')})` : ' (no weight of that layer was found)'),
        { layer: layer.name, weight: key },
      );
    }
    if (!w.data) {
      throw new TensorpressError('INPUT_INVALID', `weight "${w.name}" is ${w.dtype}; layer weights must be float32`, { weight: w.name });
    }
    if (expected && (expected.length !== w.shape.length || expected.some((d, i) => d !== null && d !== w.shape[i]))) {
      throw new TensorpressError(
        'SHAPE_MISMATCH',
        `weight "${w.name}" has shape [${w.shape.join(', ')}] but layer "${layer.name}" (${layer.className}) expects [${expected.map((d) => d ?? '?').join(', ')}]`,
        { layer: layer.name, weight: w.name },
      );
    }
    return w as RawWeight & { data: Float32Array };
  }
}
