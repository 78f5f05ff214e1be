/**
 * Byte offsets of a model's nodes and initializers, from a scan of the protobuf wire format (the
 * generated decoder keeps none): error messages then say where in the file a bad node is. Only
 * called on bytes that already decoded, so a scan problem just ends the scan.
 */

/** Offsets (of the field's first byte) of `graph.node[i]` and `graph.initializer[i]`. */
export interface GraphOffsets {
  nodes: number[];
  initializers: number[];
}

/** Wire field numbers: ModelProto.graph, GraphProto.node, GraphProto.initializer. */
const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;

function varint(b: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    const byte = b[pos + i];
    if (byte === undefined) throw new RangeError('truncated varint');
    v += (byte & 0x7f) * mul;
    mul *= 128;
    if (byte < 0x80) return [v, pos + i + 1];
  }
  throw new RangeError('varint too long');
}

/** Calls `on(field, start, payloadStart, end)` for each length-delimited field of the message in [pos, end). */
function scan(b: Uint8Array, pos: number, end: number, on: (field: number, start: number, from: number, to: number) => void): void {
  while (pos < end) {
    const start = pos;
    const [tag, p] = varint(b, pos);
    const wire = tag % 8;
    const field = Math.floor(tag / 8);
    if (wire === 0) pos = varint(b, p)[1];
    else if (wire === 1) pos = p + 8;
    else if (wire === 5) pos = p + 4;
    else if (wire === 2) {
      const [len, q] = varint(b, p);
      pos = q + len;
      if (pos > end) throw new RangeError('field overruns its message');
      on(field, start, q, pos);
    } else throw new RangeError(`wire type ${wire}`);
  }
}

/** Finds the offsets of every node and initializer of the model's graph (partial if the scan stops early). */
export function graphOffsets(bytes: Uint8Array): GraphOffsets {
  const out: GraphOffsets = { nodes: [], initializers: [] };
  try {
    scan(bytes, 0, bytes.length, (field, _start, from, to) => {
      if (field !== MODEL_GRAPH) return;
      // A repeated embedded message field merges: its nodes follow those of the earlier occurrences.
      scan(bytes, from, to, (f, s) => {
        if (f === GRAPH_NODE) out.nodes.push(s);
        else if (f === GRAPH_INITIALIZER) out.initializers.push(s);
      });
    });
  } catch {
    // Offsets are a help for messages, never a reason to fail.
  }
  return out;
}
