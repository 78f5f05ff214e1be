/**
 * MaxPool and AveragePool forms core's pools do not run directly, made exact from core ops:
 * `ceil_mode=1` (PyTorch's and onnxruntime's output size: the last window must start inside the
 * input or its leading pad) and average pools whose divisor is not the full window
 * (`count_include_pad=0` with explicit pads, or windows cut short by ceil mode). The map is padded
 * (with zeros, or −3.4e38 for max) to cover every window, pooled without padding, and an average
 * is rescaled by a constant `[1, oh, ow, 1]` map of kernel size / true divisor.
 */
import type { AttrValue } from '@tensorpress/core-tensor';
import type { onnx } from 'onnx-proto';
import type { ReadContext, Val } from './read-context.js';

/** Output size along one axis, with PyTorch's ceil-mode rule. */
export function pooledSize(size: number, k: number, s: number, pBegin: number, pEnd: number, ceil: boolean): number {
  const span = size + pBegin + pEnd - k;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= size + pBegin) out--;
  return out;
}

/** Per output position along one axis: [window cells inside the padded input, cells inside the input]. */
function counts(size: number, k: number, s: number, pBegin: number, pEnd: number, out: number): [number, number][] {
  return Array.from({ length: out }, (_, o) => {
    const start = o * s - pBegin;
    const end = Math.min(start + k, size + pEnd);
    return [end - start, Math.min(end, size) - Math.max(start, 0)];
  });
}

/**
 * Emits the exact form of a pool over `x` (NHWC, static H and W) for `n`; `attrs` are the
 * window attributes read from the file (kernel_shape, strides, pads).
 */
export function exactPool(r: ReadContext, n: onnx.INodeProto, op: string, x: Val, attrs: Record<string, AttrValue>, ceil: boolean, includePad: boolean): void {
  const [, h, w] = x.info.shape as [number | null, number, number, number];
  const k = (attrs['kernel_shape'] as number[] | undefined) ?? [1, 1];
  const s = (attrs['strides'] as number[] | undefined) ?? [1, 1];
  const p = (attrs['pads'] as number[] | undefined) ?? [0, 0, 0, 0];
  if (((attrs['dilations'] as number[] | undefined) ?? [1, 1]).some((d) => d !== 1)) r.fail('dilated pooling is not supported');
  const oh = pooledSize(h, k[0]!, s[0]!, p[0]!, p[2]!, ceil);
  const ow = pooledSize(w, k[1]!, s[1]!, p[1]!, p[3]!, ceil);
  if (oh < 1 || ow < 1) r.fail(`the input ${h}×${w} is smaller than the window`);
  // Pad so that the last window fits: its end may lie past the file's own end pad.
  const endH = Math.max(0, (oh - 1) * s[0]! + k[0]! - h - p[0]!);
  const endW = Math.max(0, (ow - 1) * s[1]! + k[1]! - w - p[1]!);
  const base = n.name || op.toLowerCase();
  const padded = r.unique(`${n.output![0]!}.padded`);
  const max = op === 'MaxPool';
  r.emitCore({ name: r.unique(`${base}/pad`), op: 'Pad', inputs: [x.name], outputs: [padded], attrs: { pads: [0, p[0]!, p[1]!, 0, 0, endH, endW, 0], mode: 'constant', value: max ? -3.4e38 : 0 } });
  const poolAttrs: Record<string, AttrValue> = { kernel_shape: k, strides: s };
  if (max) return r.emit(n, op, [padded], poolAttrs, 'nhwc', [n.output![0]!]);
  const ch = counts(h, k[0]!, s[0]!, p[0]!, p[2]!, oh);
  const cw = counts(w, k[1]!, s[1]!, p[1]!, p[3]!, ow);
  const scale = new Float32Array(oh * ow);
  let plain = true;
  for (let i = 0; i < oh; i++) {
    for (let j = 0; j < ow; j++) {
      const divisor = includePad ? ch[i]![0] * cw[j]![0] : ch[i]![1] * cw[j]![1];
      scale[i * ow + j] = (k[0]! * k[1]!) / divisor;
      if (scale[i * ow + j] !== 1) plain = false;
    }
  }
  if (plain) return r.emit(n, op, [padded], poolAttrs, 'nhwc', [n.output![0]!]);
  const pooled = r.unique(`${n.output![0]!}.sum`);
  r.emitCore({ name: r.unique(`${base}/pool`), op, inputs: [padded], outputs: [pooled], attrs: poolAttrs });
  const divisor = r.param(r.unique(`${base}.divisor`), { dims: [1, oh, ow, 1], dtype: 'float32', data: scale }, 'none');
  r.params.set(divisor, { ...r.params.get(divisor)!, trainable: false });
  return r.emit(n, 'Mul', [pooled, divisor], {}, 'nhwc', [n.output![0]!]);
}
