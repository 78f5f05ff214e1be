import { TensorpressError } from '@tensorpress/core-tensor';

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const PREFIX = '{"data":';

/**
 * Decodes one `mnist` package digit file (`{ "data": [0, 0.2, ...] }`, pixels in [0, 1]) into
 * float32 in a single pass over the bytes. The fast path never builds a JS array of ~800k
 * numbers; anything it does not recognise falls back to `JSON.parse`, so a future file
 * layout still loads, only slower.
 */
export function decodeDigitJson(bytes: Uint8Array, name: string): Float32Array {
  const fast = decodeFast(bytes);
  const out = fast ?? decodeSlow(bytes, name);
  for (let i = 0; i < out.length; i++) {
    const v = out[i]!;
    // `!(v >= 0 && v <= 1)` also rejects NaN
    if (!(v >= 0 && v <= 1)) {
      throw new TensorpressError('DATA_INVALID', `${name}: pixel ${i} is ${v}, outside [0, 1]`, { file: name, index: i });
    }
  }
  return out;
}

function decodeFast(b: Uint8Array): Float32Array | null {
  const n = b.length;
  let i = 0;
  let head = '';
  while (i < n && b[i] !== 0x5b /* [ */) {
    if (!WS.has(b[i]!)) head += String.fromCharCode(b[i]!);
    if (head.length > PREFIX.length) return null;
    i++;
  }
  if (head !== PREFIX || i >= n) return null;
  i++;
  // each number takes at least one digit and one separator
  const out = new Float32Array((n >> 1) + 1);
  let count = 0;
  let expectValue = true;
  for (;;) {
    while (i < n && WS.has(b[i]!)) i++;
    if (i >= n) return null;
    let c = b[i]!;
    if (c === 0x5d /* ] */) {
      if (expectValue && count > 0) return null;
      i++;
      break;
    }
    if (!expectValue) {
      if (c !== 0x2c /* , */) return null;
      expectValue = true;
      i++;
      continue;
    }
    if (c < 0x30 || c > 0x39) return null;
    let whole = 0;
    let digits = 0;
    while (c >= 0x30 && c <= 0x39) {
      whole = whole * 10 + (c - 0x30);
      digits++;
      c = ++i < n ? b[i]! : 0;
    }
    let v = whole;
    if (c === 0x2e /* . */) {
      let frac = 0;
      let scale = 1;
      c = ++i < n ? b[i]! : 0;
      if (c < 0x30 || c > 0x39) return null;
      while (c >= 0x30 && c <= 0x39) {
        frac = frac * 10 + (c - 0x30);
        scale *= 10;
        digits++;
        c = ++i < n ? b[i]! : 0;
      }
      // integers below 2^53 and powers of ten up to 1e15 are exact, so this division is
      // correctly rounded: the same double JSON.parse produces
      if (digits > 15) return null;
      v = whole + frac / scale;
    } else if (digits > 15) {
      return null;
    }
    if (c === 0x65 || c === 0x45 /* e E */) return null;
    out[count++] = v;
    expectValue = false;
  }
  while (i < n && WS.has(b[i]!)) i++;
  if (b[i] !== 0x7d /* } */) return null;
  i++;
  while (i < n && WS.has(b[i]!)) i++;
  if (i !== n) return null;
  return out.slice(0, count);
}

function decodeSlow(bytes: Uint8Array, name: string): Float32Array {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new TensorpressError('DATA_INVALID', `${name}: not valid JSON (${(e as Error).message})`, { file: name });
  }
  const data = (parsed as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) {
    throw new TensorpressError('DATA_INVALID', `${name}: expected an object with a "data" array of pixels`, { file: name });
  }
  return new Float32Array(data as number[]);
}
