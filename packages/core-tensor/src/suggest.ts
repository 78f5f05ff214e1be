/**
 * "Did you mean" for config keys, algorithm names, enum values and node names: the candidate
 * closest to what was written, if it is close enough to be a slip of the keyboard.
 */

/** Case, `_` and `-` do not count: `ignored_scopes`, `IgnoredScopes` and `ignoredScopes` are one word. */
function fold(s: string): string {
  return s.toLowerCase().replace(/[_\-\s]/g, '');
}

/**
 * Optimal-string-alignment distance (Levenshtein plus adjacent transpositions), giving up once
 * every alignment exceeds `limit`: a typo is a few edits, so long strings cost O(n · limit).
 */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev2: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1);
      cur.push(d);
      rowMin = Math.min(rowMin, d);
    }
    if (rowMin > limit) return limit + 1;
    prev2 = prev;
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The candidate closest to `word`, or undefined when none is close: case, `_` and `-` are
 * ignored, then at most one edit per three characters (at least one, at most three) is allowed.
 * A tie between two candidates suggests neither (a guess would mislead). Strings longer than
 * 200 characters are never typos of a config word.
 */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
  if (word.length > 200) return undefined;
  const w = fold(word);
  const limit = Math.min(3, Math.max(1, Math.floor(w.length / 3)));
  let best: string | undefined;
  let bestD = limit + 1;
  let tie = false;
  for (const c of new Set(candidates)) {
    if (c === word || c.length > 200) continue;
    const d = editDistance(w, fold(c), limit);
    if (d < bestD) {
      best = c;
      bestD = d;
      tie = false;
    } else if (d === bestD && best !== undefined) tie = true;
  }
  return bestD <= limit && !tie ? best : undefined;
}

/** `; did you mean "x"?` for the closest candidate (see {@link closestMatch}), or the empty string. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const m = closestMatch(word, candidates);
  return m === undefined ? '' : `; did you mean "${m}"?`;
}
