/** Graph assembly of the ONNX reader: from a decoded ModelProto to a validated core graph. */
import { createGraph, type Dim, type DType, type Graph, type TensorInfo } from '@tensorpress/core-tensor';
import type { onnx } from 'onnx-proto';
import { NCHW_TO_NHWC, NHWC_TO_NCHW, permuteShape } from '../layout.js';
import { OnnxError } from '../errors.js';
import { checkDims, decodeSparseTensor, decodeTensor, invalid } from './decode.js';
import { checkNodeSchema } from './op-schema.js';
import { DT, toNum } from './proto.js';
import { expandQOperator } from './qoperator-read.js';
import { ReadContext, Skip, skip, type ReadOptions } from './read-context.js';
import { declaredInfos, keepNode } from './read-opaque.js';
import { SUPPORTED, convertNode } from './read-ops.js';

/**
 * Converts a decoded model into a validated core graph: opset and size checks, initializers,
 * QOperator nodes expanded to QDQ, one topological pass converting every node (each that cannot
 * be converted is collected, then all are reported in one `ONNX_UNSUPPORTED` error), and the
 * graph outputs in NHWC where they are maps.
 */
export function readGraph(model: onnx.ModelProto, ctx: ReadOptions): Graph {
  const r = new ReadContext(ctx);
  const g = model.graph;
  if (!g) invalid('ModelProto.graph', 'the model has no graph');
  const imports = model.opsetImport ?? [];
  const main = imports.find((o) => !o.domain || o.domain === 'ai.onnx');
  if (!main) invalid('ModelProto.opset_import', 'no opset for the default (ai.onnx) domain');
  r.opset = toNum(main.version ?? 0, 'ModelProto.opset_import.version');
  if (r.opset < 7 || r.opset > 21) {
    throw new OnnxError('ONNX_UNSUPPORTED', `opset ${r.opset} is not supported (7 to 21)`, { field: 'opset_import', opset: r.opset });
  }
  for (const o of imports) {
    const d = o.domain ?? '';
    if (d !== '' && d !== 'ai.onnx' && d !== 'com.microsoft' && (g.node ?? []).some((n) => n.domain === d)) {
      throw new OnnxError('ONNX_UNSUPPORTED', `domain "${d}" is not supported (ai.onnx, and com.microsoft's quantized ops): its nodes cannot be read`, { field: 'opset_import', domain: d });
    }
  }
  const gnodes = g.node ?? [];
  if (gnodes.length > r.ctx.limits.maxNodes) invalid('GraphProto.node', `${gnodes.length} nodes, above limits.maxNodes ${r.ctx.limits.maxNodes}`);
  gnodes.forEach((n, i) => {
    const at = ctx.nodeOffsets?.[i];
    if (at !== undefined) r.offsets.set(n, at);
  });
  // Every node of a known op is checked against its schema first, as onnxruntime does on load.
  for (const n of gnodes) checkNodeSchema(n, r.opset, r.offsets.get(n));
  (g.initializer ?? []).forEach((t, i) => {
    const name = t.name ?? '';
    if (!name) invalid(`GraphProto.initializer[${i}]`, 'has no name');
    const k = decodeTensor(t, `initializer "${name}"`, r.ctx);
    r.warnNonFinite(`initializer "${name}"`, name, k);
    r.konsts.set(name, k);
    r.names.add(name);
  });
  // Sparse initializers (what `sparseInitializers` writes, and onnxruntime densifies on load).
  (g.sparseInitializer ?? []).forEach((t, i) => {
    const { name, konst } = decodeSparseTensor(t, `GraphProto.sparse_initializer[${i}]`, r.ctx);
    if (r.konsts.has(name)) invalid(`GraphProto.sparse_initializer[${i}]`, `initializer "${name}" is defined twice`);
    r.warnNonFinite(`initializer "${name}"`, name, konst);
    r.konsts.set(name, konst);
    r.names.add(name);
  });
  // QOperator nodes (QLinearConv, MatMulInteger, …) are read in their QDQ form.
  const taken = new Set([...r.konsts.keys(), ...(g.input ?? []).map((i) => i.name ?? ''), ...gnodes.flatMap((n) => [...(n.output ?? []), n.name ?? ''])]);
  const expanded = expandQOperator(gnodes, r.konsts, taken, (made, from) => {
    const at = r.offsets.get(from);
    if (at !== undefined) r.offsets.set(made, at);
  });
  r.unsupported.push(...expanded.skipped);
  const order = topo(r, expanded.nodes);
  checkDefined(r, order, g);
  for (const n of order) {
    (n.input ?? []).forEach((v, i) => {
      if (!v) return;
      const cs = r.consumers.get(v);
      if (cs) cs.push({ node: n, input: i });
      else r.consumers.set(v, [{ node: n, input: i }]);
    });
    for (const o of n.output ?? []) if (o) r.producers.set(o, n);
  }
  // Every node of an unknown op is reported at once, before conversion stops at the first (or kept verbatim).
  const explained = new Set(expanded.skipped.map((u) => u.node));
  const keep = ctx.unsupportedOps === 'keep';
  const kept = new Set<onnx.INodeProto>();
  for (const n of order) {
    const op = n.opType ?? '';
    if (explained.has(n.name || op)) continue;
    if (n.domain && n.domain !== 'ai.onnx') r.unsupported.push({ node: n.name || op, op, why: `domain "${n.domain}" is not supported` });
    else if (!SUPPORTED.has(op)) {
      if (keep) kept.add(n);
      else r.unsupported.push({ node: n.name || op, op, why: 'no core equivalent' });
    }
  }
  const declared = keep ? declaredInfos(g) : new Map();
  throwUnsupported(r);
  const inputs: TensorInfo[] = [];
  (g.input ?? []).forEach((vi, i) => {
    const name = vi.name ?? '';
    if (!name) invalid(`GraphProto.input[${i}]`, 'has no name');
    if (r.konsts.has(name)) return;
    const info = graphInput(r, vi, i);
    r.infos.set(info.name, info);
    inputs.push(info);
  });
  for (const n of order) {
    const op = n.opType ?? '';
    const name = n.name || op;
    if ((n.input ?? []).some((v) => r.poisoned.has(v))) {
      for (const o of n.output ?? []) r.poisoned.add(o);
      continue;
    }
    r.node = n;
    try {
      if (n.domain && n.domain !== 'ai.onnx') skip(`domain "${n.domain}" is not supported`);
      if (kept.has(n) || (n.input ?? []).some((v) => r.unknownShapes.has(v))) keepNode(r, n, declared, r.opset);
      else convertNode(r, n);
    } catch (e) {
      if (!(e instanceof Skip)) throw e;
      // A form the executor lacks (cubic Resize, a Slice with steps): kept verbatim too.
      if (keep && (!n.domain || n.domain === 'ai.onnx') && !kept.has(n)) {
        keepNode(r, n, declared, r.opset);
        continue;
      }
      r.unsupported.push({ node: name, op, why: e.why });
      for (const o of n.output ?? []) r.poisoned.add(o);
    }
  }
  r.node = undefined;
  throwUnsupported(r);
  const outputs = (g.output ?? []).map((vi, i) => {
    const name = vi.name ?? '';
    const v = r.vals.get(name);
    if (!v) {
      if (r.konsts.has(name)) throw new OnnxError('ONNX_UNSUPPORTED', `graph output "${name}" is a constant`, { field: `GraphProto.output[${i}]` });
      invalid(`GraphProto.output[${i}]`, `"${name}" is not produced by any node`);
    }
    return v.info.shape.length === 4 ? r.asNhwc(v).name : v.name;
  });
  if (outputs.length === 0) invalid('GraphProto.output', 'the graph has no outputs');
  return createGraph({ inputs, outputs, nodes: r.nodes, params: [...r.params.values()] });
}

function throwUnsupported(r: ReadContext): void {
  if (r.unsupported.length === 0) return;
  const list = r.unsupported.map((u) => `"${u.node}" (${u.op}: ${u.why})`).join('; ');
  throw new OnnxError('ONNX_UNSUPPORTED', `the model has ${r.unsupported.length} node(s) tensorpress cannot read: ${list}`, {
    nodes: r.unsupported,
  });
}

/** Every input a node names must be a graph input, an initializer or another node's output (onnxruntime's rule). */
function checkDefined(r: ReadContext, order: readonly onnx.INodeProto[], g: onnx.IGraphProto): void {
  const defined = new Set<string>([...r.konsts.keys(), ...(g.input ?? []).map((v) => v.name ?? '')]);
  for (const n of order) for (const o of n.output ?? []) if (o) defined.add(o);
  for (const n of order) {
    (n.input ?? []).forEach((v, i) => {
      if (v && !defined.has(v)) r.fail(`input ${i} "${v}" is not a graph input, an initializer or the output of any node`, { input: i }, n);
    });
  }
}

function topo(r: ReadContext, nodes: onnx.INodeProto[]): onnx.INodeProto[] {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => {
    for (const o of n.output ?? []) {
      if (!o) continue;
      if (producer.has(o) || r.konsts.has(o)) r.fail(`its output "${o}" is already ${r.konsts.has(o) ? 'an initializer' : `the output of node "${nodes[producer.get(o)!]!.name ?? ''}"`}`, {}, n);
      producer.set(o, i);
    }
  });
  const state = new Uint8Array(nodes.length);
  const out: onnx.INodeProto[] = [];
  for (let root = 0; root < nodes.length; root++) {
    if (state[root]) continue;
    const stack: [number, number][] = [[root, 0]];
    state[root] = 1;
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const ins = nodes[top[0]]!.input ?? [];
      if (top[1] < ins.length) {
        const p = producer.get(ins[top[1]++]!);
        if (p === undefined || state[p] === 2) continue;
        if (state[p] === 1) r.fail('the graph has a cycle through this node', {}, nodes[p]!);
        state[p] = 1;
        stack.push([p, 0]);
      } else {
        state[top[0]] = 2;
        out.push(nodes[top[0]]!);
        stack.pop();
      }
    }
  }
  return out;
}

function graphInput(r: ReadContext, vi: onnx.IValueInfoProto, i: number): TensorInfo {
  const field = `GraphProto.input[${i}] "${vi.name}"`;
  const tt = vi.type?.tensorType;
  if (!tt) invalid(field, 'is not a tensor');
  const dtype = dtypeOf(tt.elemType ?? 0, field);
  const dimsRaw = tt.shape?.dim ?? [];
  if (dimsRaw.length > r.ctx.limits.maxRank) invalid(field, `rank ${dimsRaw.length} is above limits.maxRank`);
  const given = r.ctx.inputShapes?.[vi.name ?? ''];
  if (given && given.length !== dimsRaw.length) {
    throw new OnnxError('ONNX_INVALID', `${field}: inputShapes gives ${given.length} dimensions for a rank-${dimsRaw.length} input`, { field });
  }
  const dims: Dim[] = dimsRaw.map((d, k) => {
    const known = d.dimValue !== undefined && d.dimValue !== null && !(d.dimParam && !d.dimValue);
    const fixed = given?.[k] ?? (d.dimParam ? r.ctx.dims?.[d.dimParam] : undefined);
    if (known) {
      const v = checkDims([d.dimValue!], field, r.ctx.limits)[0]!;
      if (fixed !== undefined && fixed !== v) throw new OnnxError('ONNX_INVALID', `${field}: dimension ${k} is ${v} in the file, not ${fixed}`, { field });
      return v;
    }
    if (fixed !== undefined) return checkDims([fixed], `${field} (inputShapes/dims)`, r.ctx.limits)[0]!;
    if (k === 0) return null;
    const what = d.dimParam ? `named "${d.dimParam}"` : 'unnamed';
    const how = d.dimParam ? `dims: { ${JSON.stringify(d.dimParam)}: <size> }` : `inputShapes: { ${JSON.stringify(vi.name)}: [...] }`;
    throw new OnnxError('ONNX_UNSUPPORTED', `${field}: dimension ${k} (${what}) is dynamic; only the first (batch) may be: give its size with fromOnnx(bytes, { ${how} })`, { field, dim: k });
  });
  // Each dim is bounded by maxDim; their product (the batch counted as 1) by maxTensorElements.
  const volume = dims.reduce<number>((p, d) => p * (d ?? 1), 1);
  if (volume > r.ctx.limits.maxTensorElements) {
    invalid(field, `shape [${dims.map((d) => d ?? '?').join(', ')}] holds ${volume} elements per example, above limits.maxTensorElements ${r.ctx.limits.maxTensorElements}`);
  }
  const name = vi.name!;
  r.names.add(name);
  if (dims.length === 4) {
    const cs = r.consumers.get(name) ?? [];
    const t = cs[0]?.node;
    const perm = t?.opType === 'Transpose' ? r.attrs(t)['perm'] : undefined;
    if (cs.length === 1 && Array.isArray(perm) && perm.join() === NHWC_TO_NCHW.join()) {
      // A file written with nhwcInput: the input already is NHWC; its Transpose becomes a no-op.
      const info = { name, shape: dims, dtype };
      r.vals.set(name, { name, layout: 'file', info });
      r.vals.set(t!.output![0]!, { name, layout: 'nhwc', info });
      r.skipNodes.add(t!);
      return info;
    }
    const info = { name, shape: permuteShape(dims, NCHW_TO_NHWC), dtype };
    r.vals.set(name, { name, layout: 'nhwc', info });
    return info;
  }
  const info = { name, shape: dims, dtype };
  r.vals.set(name, { name, layout: 'file', info });
  return info;
}

function dtypeOf(elem: number, field: string): DType {
  switch (elem) {
    case DT.FLOAT:
      return 'float32';
    case DT.INT8:
      return 'int8';
    case DT.UINT8:
      return 'uint8';
    case DT.INT32:
      return 'int32';
    default:
      throw new OnnxError('ONNX_UNSUPPORTED', `${field}: element type ${elem} is not supported`, { field });
  }
}
