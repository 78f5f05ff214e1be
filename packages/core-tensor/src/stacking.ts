/**
 * Which algorithms may share a pipeline, and in what order. Each algorithm declares its rule on
 * its definition (and its builders carry the same rule); core checks a pipeline against the rules
 * of its members, so a technique package added later (binary, sparsity, distill) declares its own
 * without core naming it.
 */

/** How an algorithm stacks with others in one pipeline. */
export interface StackingRule {
  /**
   * An exclusive group: at most one algorithm of a group per pipeline. `quantizer`: every
   * quantizer turns the float weights into integer codes, so a second one would find no float
   * weight left to quantize.
   */
  readonly group?: string;
  /** What every member of {@link group} does, completing "both ...": `quantize weights`. */
  readonly groupAction?: string;
  /**
   * Groups or algorithm names that, when they are in the same pipeline, must be listed before
   * this one (DESIGN §3: pruning before sparsity before quantization). The builders' priorities
   * must agree: `compress` applies the pipeline in priority order.
   */
  readonly after?: readonly string[];
}

/** One member of a pipeline, as the stacking check sees it. */
export interface StackingEntry {
  readonly algorithm: string;
  readonly stacking?: StackingRule | undefined;
}

/** A broken stacking rule: the entry at `index` conflicts with the one at `other`. */
export interface StackingViolation {
  readonly index: number;
  readonly other: number;
  readonly kind: 'duplicate' | 'group' | 'order';
  /** What is wrong, naming both algorithms (and where the other is, when `where` was given). */
  readonly message: string;
}

function names(e: StackingEntry): string[] {
  return e.stacking?.group ? [e.algorithm, e.stacking.group] : [e.algorithm];
}

/**
 * The first broken rule of a pipeline, in list order, or undefined: an algorithm listed twice;
 * two algorithms of one exclusive group; an algorithm listed before one that its rule's `after`
 * names. `where(i)`, if given, says where entry i is (a JSON path) for the message.
 */
export function stackingViolation(entries: readonly StackingEntry[], where?: (i: number) => string): StackingViolation | undefined {
  const at = (j: number): string => (where ? ` (${where(j)})` : '');
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    for (let j = 0; j < i; j++) {
      const o = entries[j]!;
      if (o.algorithm === e.algorithm) {
        return { index: i, other: j, kind: 'duplicate', message: `"${e.algorithm}" appears twice${where ? ` (also at ${where(j)})` : ''}; merge its settings into one entry` };
      }
      const group = e.stacking?.group;
      if (group !== undefined && o.stacking?.group === group) {
        const action = e.stacking?.groupAction ?? o.stacking?.groupAction;
        return {
          index: i,
          other: j,
          kind: 'group',
          message: `"${e.algorithm}" cannot be stacked with "${o.algorithm}"${at(j)}: ${action ? `both ${action}` : `both are in group "${group}"`}; use one ${group} per pipeline`,
        };
      }
    }
  }
  for (let i = 0; i < entries.length; i++) {
    const after = new Set(entries[i]!.stacking?.after ?? []);
    if (after.size === 0) continue;
    for (let j = i + 1; j < entries.length; j++) {
      const hit = names(entries[j]!).find((n) => after.has(n));
      if (hit === undefined) continue;
      const e = entries[i]!.algorithm;
      const o = entries[j]!.algorithm;
      const why = hit === o ? `"${e}" runs after "${o}"` : `"${e}" runs after every ${hit} algorithm`;
      return { index: i, other: j, kind: 'order', message: `"${e}" must come after "${o}"${at(j)}: ${why}; list "${o}" first` };
    }
  }
  return undefined;
}
