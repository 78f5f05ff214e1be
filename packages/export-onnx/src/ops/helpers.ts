/** Checks shared by export-onnx's op families: core's {@link opChecks} and two of their own. */
import { opChecks, type Node } from '@tensorpress/core-tensor';

// Core's op checks (typed errors naming the node, required inputs, broadcasting), as core's ops use
// them; explicitly typed so that `fail` (never) narrows at its call sites.
export const fail: typeof opChecks.fail = opChecks.fail;
export const need: typeof opChecks.need = opChecks.need;
export const needFloat: typeof opChecks.needFloat = opChecks.needFloat;
export const req: typeof opChecks.req = opChecks.req;
export const fmt: typeof opChecks.fmt = opChecks.fmt;
export const broadcast: typeof opChecks.broadcast = opChecks.broadcast;
export const normAxis: typeof opChecks.normAxis = opChecks.normAxis;

/** Every axis of `axes` normalised, checked and sorted (all axes when empty). */
export function normAxes(node: Node, axes: readonly number[], rank: number): number[] {
  const out = (axes.length === 0 ? [...Array(rank).keys()] : axes.map((a) => normAxis(node, a, rank))).sort((p, q) => p - q);
  if (new Set(out).size !== out.length) fail(node, `axes [${axes.join(', ')}] repeat an axis`, 'GRAPH_INVALID');
  return out;
}

/** A list-of-numbers attribute (floats allowed), with a default. */
export function floatsAttr(node: Node, key: string, fallback: readonly number[]): number[] {
  const v = node.attrs[key];
  if (v === undefined) return [...fallback];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) fail(node, `attribute ${key} must be a list of numbers`, 'GRAPH_INVALID');
  return [...(v as number[])];
}
