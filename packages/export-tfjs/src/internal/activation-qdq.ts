/**
 * Activation QuantizeLinear → DequantizeLinear pairs as tfjs-layers layers. tfjs-layers has no
 * quantize, divide or round layer, so a pair becomes stock layers (anyone's `tf.loadLayersModel`
 * loads it, no custom class) that compute the same thing:
 *
 *   BatchNormalization            x / s: zero mean and variance, epsilon s² (sqrt(s²) = s exactly)
 *   Rescaling(1, +M)              the nearest integer, ties to even: float32 itself rounds v + 1.5·2^23
 *   Rescaling(1, zp − lo − M)     q − lo, exactly (integers below 2^24)
 *   ReLU(max_value = hi − lo)     clip to the integer range
 *   Rescaling(1, lo − zp)         q − zp (left out when lo = zp)
 *   Rescaling(s, 0)               (q − zp)·s, one float32 rounding as in DequantizeLinear
 *
 * A division, not a multiplication by 1/s, because x·float32(1/s) can land on the other side of a
 * rounding tie than x/s and move an activation a whole step. tfjs's cpu backend computes the
 * normalization as `(x − 0)·1 / sqrt(0 + s²)` in float64, which rounds to the float32 x/s that
 * QuantizeLinear computes; backends that normalize with a float32 reciprocal square root (webgl)
 * may still differ at ties, rarely.
 */
import { qRange, type Graph, type Node } from '@tensorpress/core-tensor';

/** 1.5·2^23: float32 values in [2^23, 2^24) are exactly the integers. */
const ROUNDER = 12582912;

/** One layer of the fake-quant chain. */
export interface FakeQuantLayer {
  /** Appended to the QuantizeLinear's name: `<q>/<suffix>`. */
  readonly suffix: string;
  readonly className: 'BatchNormalization' | 'Rescaling' | 'ReLU';
  readonly config: Record<string, unknown>;
  /** The layer's weights, in the order tfjs-layers creates them. */
  readonly weights?: readonly { readonly short: string; readonly values: Float32Array }[];
}

/** A per-tensor activation quantizer and the DequantizeLinear nodes that undo it. */
export interface ActivationQdq {
  readonly scale: number;
  readonly zeroPoint: number;
  readonly lo: number;
  readonly hi: number;
  readonly dequantizers: readonly Node[];
}

function scalarParam(graph: Graph, value: string | undefined): { value: number; dtype: string } | undefined | 'not-scalar' {
  if (value === undefined || value === '') return undefined;
  const p = graph.param(value);
  if (!p) return 'not-scalar';
  return p.data.length === 1 ? { value: p.data[0]!, dtype: p.dtype } : 'not-scalar';
}

/**
 * Reads a QuantizeLinear whose every reader is a DequantizeLinear with the same scale and zero
 * point; returns why not (a sentence) when it is not such a pair.
 */
export function readActivationQdq(graph: Graph, q: Node): ActivationQdq | string {
  const s = scalarParam(graph, q.inputs[1]);
  const z = scalarParam(graph, q.inputs[2]);
  if (s === 'not-scalar' || s === undefined || z === 'not-scalar') {
    return 'only per-tensor activation quantization (a scalar scale and zero point parameter) has a tfjs-layers form';
  }
  if (!(s.value > 0) || !Number.isFinite(s.value)) return `scale ${s.value} is not a positive finite number`;
  const out = q.outputs[0]!;
  if (graph.outputs.includes(out)) return 'its integer output is a graph output; tfjs-layers models output float32';
  const readers = graph.consumers(out);
  if (readers.length === 0) return 'nothing reads its output';
  const same = (v: string | undefined, want: number): boolean => {
    const p = scalarParam(graph, v);
    return p === undefined ? want === 0 : p !== 'not-scalar' && p.value === want;
  };
  for (const r of readers) {
    const n = r.node;
    if (n.op !== 'DequantizeLinear' || r.input !== 0) return `its output is read by ${n.op} "${n.name}"; only DequantizeLinear readers are supported`;
    if (!same(n.inputs[1], s.value) || !same(n.inputs[2], z?.value ?? 0)) {
      return `DequantizeLinear "${n.name}" uses another scale or zero point than the QuantizeLinear it reads`;
    }
  }
  const [lo, hi] = qRange(z?.dtype === 'int8' ? 'int8' : 'uint8');
  return { scale: s.value, zeroPoint: z?.value ?? 0, lo, hi, dequantizers: readers.map((r) => r.node) };
}

/** The stock layers that compute DequantizeLinear(QuantizeLinear(x)) for one pair over `channels` channels (the last axis). */
export function fakeQuantLayers(p: ActivationQdq, channels: number): FakeQuantLayer[] {
  const zeros = new Float32Array(channels);
  const layers: FakeQuantLayer[] = [
    {
      suffix: 'divide',
      className: 'BatchNormalization',
      config: { axis: -1, epsilon: p.scale * p.scale, momentum: 0.99, center: false, scale: false },
      weights: [
        { short: 'moving_mean', values: zeros },
        { short: 'moving_variance', values: zeros },
      ],
    },
    { suffix: 'to_integer', className: 'Rescaling', config: { scale: 1, offset: ROUNDER } },
    // Kept apart from the first offset: its parity would decide ties if it were folded in there.
    { suffix: 'round', className: 'Rescaling', config: { scale: 1, offset: p.zeroPoint - p.lo - ROUNDER } },
    { suffix: 'clip', className: 'ReLU', config: { max_value: p.hi - p.lo } },
  ];
  if (p.lo !== p.zeroPoint) layers.push({ suffix: 'zero_point', className: 'Rescaling', config: { scale: 1, offset: p.lo - p.zeroPoint } });
  layers.push({ suffix: 'dequantize', className: 'Rescaling', config: { scale: p.scale, offset: 0 } });
  return layers;
}
