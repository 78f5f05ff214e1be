/**
 * Reader conversions of Resize (opsets 10, 11, 13, 18, 19) and Upsample (opsets 7 to 9) into
 * core's NHWC Resize with a static output size: scales or sizes (constants, folded shape
 * arithmetic included), the coordinate transformation and nearest rounding each opset defines.
 */
import type { onnx } from 'onnx-proto';
import { RESIZE_COORDINATE_MODES, RESIZE_NEAREST_MODES } from '../ops/resize.js';
import { intListOf, numAttrOf, skip, type NodeAttrs, type ReadContext } from './read-context.js';

function floatsOf(r: ReadContext, v: string, what: string): number[] {
  const k = r.konst(v);
  if (!k) skip(`${what} must be a constant`);
  if (k.dtype !== 'float32') r.fail(`${what} must be float, got ${k.dtype}`);
  return Array.from(k.data as Float32Array);
}

/** Resize or Upsample of a rank-4 map over H and W. */
export function resize(r: ReadContext, n: onnx.INodeProto, op: string, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const x = r.asNhwc(r.val(ins[0]!));
  if (x.info.shape.length !== 4) skip('only rank-4 (NCHW) inputs are supported');
  const [, h, w, c] = x.info.shape as [number | null, number, number, number];
  const old = op === 'Upsample' || r.opset < 11;
  let scales: number[] | undefined;
  let sizes: number[] | undefined;
  if (op === 'Upsample' && r.opset < 9) scales = intListOf(a, 'scales') ?? (Array.isArray(a['scales']) ? (a['scales'] as number[]) : undefined);
  else if (old) scales = floatsOf(r, ins[1]!, 'scales');
  else {
    if (ins[1] && r.konst(ins[1])?.data.length) {
      if (a['coordinate_transformation_mode'] === 'tf_crop_and_resize') skip('tf_crop_and_resize is not supported');
    }
    const sc = ins[2] ? r.konst(ins[2]) : undefined;
    if (ins[2] && !sc) skip('scales must be a constant');
    if (sc && sc.data.length > 0) scales = floatsOf(r, ins[2]!, 'scales');
    else if (ins[3]) sizes = r.ints(ins[3], 'sizes').map((d, i) => d ?? (i === 0 ? -1 : skip('sizes depend on a run-time size'))) as number[];
  }
  if (!scales && !sizes) r.fail('needs scales or sizes');
  // Opset 18's axes name the axes that scales or sizes describe.
  const axes = (intListOf(a, 'axes') ?? [0, 1, 2, 3]).map((ax) => (ax < 0 ? ax + 4 : ax));
  const full = (vals: number[], fill: (i: number) => number): number[] => {
    if (vals.length !== axes.length) r.fail(`${scales ? 'scales' : 'sizes'} holds ${vals.length} values for ${axes.length} axes`, { input: scales ? 2 : 3 });
    const out = [0, 1, 2, 3].map(fill);
    axes.forEach((ax, i) => (out[ax] = vals[i]!));
    return out;
  };
  const fileDims = [null, c, h, w];
  let sh: number;
  let sw: number;
  let oh: number;
  let ow: number;
  if (scales) {
    const s = full(scales, () => 1);
    if (s[0] !== 1 || s[1] !== 1) skip('only the spatial axes (H, W) may be scaled');
    if (s.some((v) => !(v > 0 && Number.isFinite(v)))) r.fail(`scales [${scales.join(', ')}] must be positive and finite`);
    [sh, sw] = [s[2]!, s[3]!];
    [oh, ow] = [Math.floor(h * sh), Math.floor(w * sw)];
  } else {
    const s = full(sizes!, (i) => (i === 0 ? -1 : fileDims[i]!));
    if (s[1] !== c || (s[0] !== -1 && x.info.shape[0] !== null && s[0] !== x.info.shape[0])) skip('only the spatial axes (H, W) may be resized');
    [oh, ow] = [s[2]!, s[3]!];
    const policy = typeof a['keep_aspect_ratio_policy'] === 'string' ? a['keep_aspect_ratio_policy'] : 'stretch';
    if (policy !== 'stretch') skip(`keep_aspect_ratio_policy "${policy}" is not supported`);
    [sh, sw] = [Math.fround(oh / h), Math.fround(ow / w)];
  }
  if (oh < 1 || ow < 1) r.fail(`the output would be empty (${oh}×${ow})`);
  const rawMode = typeof a['mode'] === 'string' ? a['mode'] : 'nearest';
  const mode = rawMode === 'bilinear' ? 'linear' : rawMode;
  if (mode !== 'nearest' && mode !== 'linear') skip(`mode "${rawMode}" is not supported (nearest, linear)`);
  let coord: string;
  let nearest: string;
  if (old) {
    // Upsample and Resize-10: x_original = x_resized / scale; nearest takes the floor when enlarging.
    coord = 'asymmetric';
    nearest = sh >= 1 && sw >= 1 ? 'floor' : 'ceil';
  } else {
    coord = typeof a['coordinate_transformation_mode'] === 'string' ? a['coordinate_transformation_mode'] : 'half_pixel';
    nearest = typeof a['nearest_mode'] === 'string' ? a['nearest_mode'] : 'round_prefer_floor';
    if (!RESIZE_COORDINATE_MODES.has(coord)) skip(`coordinate_transformation_mode "${coord}" is not supported`);
    if (!RESIZE_NEAREST_MODES.has(nearest)) r.fail(`nearest_mode "${nearest}" is not an ONNX nearest mode`, { attribute: 'nearest_mode' });
    if (numAttrOf(a, 'antialias', 0) !== 0 && (sh < 1 || sw < 1)) skip('antialiased downscaling is not supported');
  }
  return r.emit(n, 'Resize', [x.name], { sizes: [oh, ow], scales: [sh, sw], mode, coordinate_transformation_mode: coord, nearest_mode: nearest }, 'nhwc', [n.output![0]!]);
}
