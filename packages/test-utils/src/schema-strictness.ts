/** The parts of a zod 4 schema definition the walk reads (duck-typed: test-utils does not import zod). */
interface Def {
  readonly type: string;
  readonly innerType?: unknown;
  readonly in?: unknown;
  readonly out?: unknown;
  readonly element?: unknown;
  readonly shape?: Readonly<Record<string, unknown>>;
  readonly catchall?: unknown;
  readonly options?: readonly unknown[];
  readonly valueType?: unknown;
  readonly items?: readonly unknown[];
}

const defOf = (s: unknown): Def | undefined => (s as { _zod?: { def?: Def } } | undefined)?._zod?.def;

/**
 * JSON paths (from `$`) of every object in a zod schema that accepts keys it does not declare: an
 * object without `.strict()` drops an unknown key silently, so a misspelt option changes nothing
 * and says nothing. Wrappers (default, optional, pipe ...), arrays, unions, records and tuples are
 * walked through.
 */
export function looseObjects(schema: unknown, path = '$', seen = new Set<unknown>()): string[] {
  const d = defOf(schema);
  if (!d || seen.has(schema)) return [];
  seen.add(schema);
  const kids: [string, unknown][] = [];
  switch (d.type) {
    case 'object': {
      const strict = defOf(d.catchall)?.type === 'never';
      for (const [k, v] of Object.entries(d.shape ?? {})) kids.push([`${path}.${k}`, v]);
      const below = kids.flatMap(([p, s]) => looseObjects(s, p, seen));
      return strict ? below : [path, ...below];
    }
    case 'array':
      kids.push([`${path}[]`, d.element]);
      break;
    case 'record':
      kids.push([`${path}[*]`, d.valueType]);
      break;
    case 'union':
      for (const o of d.options ?? []) kids.push([path, o]);
      break;
    case 'tuple':
      (d.items ?? []).forEach((s, i) => kids.push([`${path}[${i}]`, s]));
      break;
    case 'pipe':
      kids.push([path, d.in], [path, d.out]);
      break;
    default:
      if (d.innerType) kids.push([path, d.innerType]);
  }
  return [...new Set(kids.flatMap(([p, s]) => looseObjects(s, p, seen)))];
}
