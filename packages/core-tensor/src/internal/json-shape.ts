type Segment = string | number;

/** A structural problem of a config value: where, and what. */
export interface ShapeProblem {
  readonly path: readonly Segment[];
  readonly message: string;
}

type Frame = { kind: 'object'; keys: Set<string>; key: string | undefined } | { kind: 'array'; index: number };

function segments(stack: readonly Frame[]): Segment[] {
  return stack.map((f) => (f.kind === 'object' ? (f.key ?? '') : f.index));
}

/**
 * Scans JSON text that `JSON.parse` accepted for what it hides: a key written twice in one object
 * (JSON.parse keeps the last, so the first is silently ignored) and nesting deeper than
 * `maxDepth`. One pass over the characters, no recursion.
 */
export function scanJsonText(text: string, maxDepth: number): ShapeProblem | undefined {
  const stack: Frame[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.kind === 'object' && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) {
          return { path: [...segments(stack.slice(0, -1)), key], message: `key "${key}" is written twice in one object; JSON keeps only the last, so remove one` };
        }
        top.keys.add(key);
        top.key = key;
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      if (stack.length >= maxDepth) return { path: segments(stack), message: `nested deeper than ${maxDepth} levels; no config needs that` };
      stack.push(c === '{' ? { kind: 'object', keys: new Set(), key: undefined } : { kind: 'array', index: 0 });
      expectKey = c === '{';
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      const top = stack[stack.length - 1];
      if (top?.kind === 'object') expectKey = true;
      else if (top) top.index++;
    }
  }
  return undefined;
}

/** A value nested deeper than `maxDepth` (or holding a cycle, which is infinitely deep), found without recursion. */
export function tooDeep(value: unknown, maxDepth: number): ShapeProblem | undefined {
  const todo: { v: unknown; path: Segment[] }[] = [{ v: value, path: [] }];
  while (todo.length > 0) {
    const { v, path } = todo.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (path.length >= maxDepth) return { path, message: `nested deeper than ${maxDepth} levels; no config needs that` };
    // Only containers are queued: a long array of numbers or strings costs no paths.
    const children: [Segment, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [k, x] of children) if (typeof x === 'object' && x !== null) todo.push({ v: x, path: [...path, k] });
  }
  return undefined;
}
