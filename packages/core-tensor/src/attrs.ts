import { GraphError } from './errors.js';
import type { AttrValue, Dim, Node } from './graph.js';

/** Throws the GraphError `GRAPH_INVALID` of a node: its name and op first, then `message`. */
function invalid(node: Node, message: string, details: Record<string, unknown> = {}): never {
  throw new GraphError('GRAPH_INVALID', `node "${node.name}" (${node.op}): ${message}`, { node: node.name, ...details });
}

/** Reads a numeric attribute, with a default. */
export function numAttr(node: Node, key: string, fallback: number): number {
  const v = node.attrs[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || Number.isNaN(v)) invalid(node, `attribute ${key} must be a number`, { attr: key });
  return v;
}

/** Reads an integer-list attribute, with a default. */
export function intsAttr(node: Node, key: string, fallback: readonly number[]): number[] {
  const v: AttrValue | undefined = node.attrs[key];
  if (v === undefined) return [...fallback];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x))) invalid(node, `attribute ${key} must be a list of integers`, { attr: key });
  return [...(v as number[])];
}

/** Reads a string attribute, with a default. */
export function strAttr(node: Node, key: string, fallback: string): string {
  const v = node.attrs[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'string') invalid(node, `attribute ${key} must be a string`, { attr: key });
  return v;
}

/** Spatial window geometry of Conv and pooling ops (NHWC, 2-D). */
export interface Window2D {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  /** [top, left, bottom, right], resolved against the input size. */
  pads: [number, number, number, number];
  /** True when the pads are what TensorFlow's 'same' produces (SAME_UPPER) for this input. */
  same: boolean;
}

function samePads(size: number, k: number, s: number, d: number): [number, number] {
  const eff = (k - 1) * d + 1;
  const out = Math.ceil(size / s);
  const total = Math.max(0, (out - 1) * s + eff - size);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/**
 * Resolves a node's window attributes (`kernel_shape`, `strides`, `dilations`, `pads`, `auto_pad`)
 * for an input of spatial size [h, w].
 */
export function window2d(node: Node, h: Dim, w: Dim, kernel: [number, number]): Window2D {
  const strides = intsAttr(node, 'strides', [1, 1]);
  const dilations = intsAttr(node, 'dilations', [1, 1]);
  const autoPad = strAttr(node, 'auto_pad', 'NOTSET');
  if (strides.length !== 2 || dilations.length !== 2 || !strides.every((s) => s >= 1) || !dilations.every((s) => s >= 1)) {
    invalid(node, 'strides and dilations must be two positive integers');
  }
  const st: [number, number] = [strides[0]!, strides[1]!];
  const dl: [number, number] = [dilations[0]!, dilations[1]!];
  let pads: [number, number, number, number];
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    if (h === null || w === null) invalid(node, 'auto_pad SAME needs static spatial sizes');
    const [t, b] = samePads(h, kernel[0], st[0], dl[0]);
    const [l, r] = samePads(w, kernel[1], st[1], dl[1]);
    pads = autoPad === 'SAME_UPPER' ? [t, l, b, r] : [b, r, t, l];
  } else if (autoPad === 'VALID' || autoPad === 'NOTSET') {
    const p = intsAttr(node, 'pads', [0, 0, 0, 0]);
    if (p.length !== 4 || !p.every((x) => x >= 0)) invalid(node, 'pads must be [top, left, bottom, right] >= 0');
    pads = autoPad === 'VALID' ? [0, 0, 0, 0] : [p[0]!, p[1]!, p[2]!, p[3]!];
  } else {
    invalid(node, `unknown auto_pad "${autoPad}"`);
  }
  let same = false;
  if (h !== null && w !== null) {
    const [t, b] = samePads(h, kernel[0], st[0], dl[0]);
    const [l, r] = samePads(w, kernel[1], st[1], dl[1]);
    same = pads[0] === t && pads[1] === l && pads[2] === b && pads[3] === r;
  }
  return { kernel, strides: st, dilations: dl, pads, same };
}

/** Output spatial size of a window op. */
export function windowOut(size: Dim, k: number, s: number, d: number, padBefore: number, padAfter: number): Dim {
  if (size === null) return null;
  return Math.floor((size + padBefore + padAfter - d * (k - 1) - 1) / s) + 1;
}
