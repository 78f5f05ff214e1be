import { dtypeBytes, type Graph } from '@tensorpress/core-tensor';

/** One weight stored as {−1, 0, +1} codes behind a DequantizeLinear. */
export interface PackedLayer {
  /** The DequantizeLinear node. */
  readonly node: string;
  /** Number of codes. */
  readonly codes: number;
  /** True when every code is ±1 (1 bit each); false when zeros occur (ternary: 2 bits). */
  readonly binary: boolean;
  /** The weight's size in FP32. */
  readonly fp32Bytes: number;
  /** Codes at 1 bit (ternary: 2 bits) plus the float32 scales. */
  readonly packedBytes: number;
}

/** Bytes of a stripped binary graph, counted the ways a runtime could load it. */
export interface PackedBytes {
  /** Every parameter as stored (int8 codes, float32 scales and the rest). */
  readonly storedBytes: number;
  /** Binary codes at 1 bit, ternary codes at 2 bits; code zero points dropped; everything else as stored. */
  readonly packed1Bytes: number;
  /** Every code tensor at 2 bits; code zero points dropped; everything else as stored. */
  readonly packed2Bytes: number;
  readonly layers: readonly PackedLayer[];
}

/**
 * What a binary runtime would load: the int8 {−1, 0, +1} code tensors of a stripped graph packed at
 * 1 bit (binary codes; ternary ones need 2) and at 2 bits, their float32 scales, and every other
 * parameter as stored. The zero points of the codes (all 0) are not counted in the packed forms.
 */
export function packedBytes(graph: Graph): PackedBytes {
  const codeParams = new Map<string, { node: string; scale: string; zp: string | undefined }>();
  for (const n of graph.nodes) {
    if (n.op !== 'DequantizeLinear') continue;
    const p = graph.param(n.inputs[0]!);
    if (!p || p.dtype !== 'int8' || !p.data.every((v) => v >= -1 && v <= 1)) continue;
    codeParams.set(p.name, { node: n.name, scale: n.inputs[1]!, zp: n.inputs[2] || undefined });
  }
  const zps = new Set([...codeParams.values()].flatMap((c) => (c.zp ? [c.zp] : [])));
  let stored = 0;
  let p1 = 0;
  let p2 = 0;
  const layers: PackedLayer[] = [];
  for (const p of graph.params) {
    const bytes = p.data.length * dtypeBytes(p.dtype);
    stored += bytes;
    const code = codeParams.get(p.name);
    if (code) {
      const binary = p.data.every((v) => v !== 0);
      const b1 = Math.ceil((p.data.length * (binary ? 1 : 2)) / 8);
      const b2 = Math.ceil((p.data.length * 2) / 8);
      p1 += b1;
      p2 += b2;
      const scale = graph.param(code.scale);
      layers.push({ node: code.node, codes: p.data.length, binary, fp32Bytes: 4 * p.data.length, packedBytes: b1 + (scale ? scale.data.length * 4 : 0) });
    } else if (!zps.has(p.name)) {
      p1 += bytes;
      p2 += bytes;
    }
  }
  return { storedBytes: stored, packed1Bytes: p1, packed2Bytes: p2, layers };
}
