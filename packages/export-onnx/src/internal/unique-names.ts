/** The writer's last check: onnxruntime refuses a file that defines a name twice. */
import { OnnxError } from '../errors.js';
import type { OModel } from './ir.js';

/**
 * Throws `ONNX_INVALID` naming the first name a model defines twice: a graph input, initializer or
 * node output that another of them also defines (ONNX's single-assignment rule), or a node name
 * used by two nodes (onnxruntime derives fused nodes' names from them).
 */
export function checkUniqueNames(m: OModel): void {
  const values = new Map<string, string>();
  const define = (name: string, what: string): void => {
    if (name === '') return;
    const before = values.get(name);
    if (before !== undefined) {
      throw new OnnxError('ONNX_INVALID', `the written model defines "${name}" twice (${before}, then ${what}); this is a bug in the writer`, { field: name });
    }
    values.set(name, what);
  };
  for (const v of m.inputs) define(v.name, 'a graph input');
  for (const t of m.initializers.values()) define(t.name, 'an initializer');
  const nodes = new Set<string>();
  for (const n of m.nodes) {
    for (const o of n.outputs) define(o, `an output of node "${n.name}" (${n.opType})`);
    if (n.name === '') continue;
    if (nodes.has(n.name)) {
      throw new OnnxError('ONNX_INVALID', `the written model has two nodes named "${n.name}"; this is a bug in the writer`, { node: n.name, op: n.opType });
    }
    nodes.add(n.name);
  }
}
