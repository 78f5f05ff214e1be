import { ConfigError } from '@tensorpress/core-tensor';

/** One candidate of one layer: its cost toward the budget and its sensitivity. */
export interface Choice<T = number> {
  readonly value: T;
  readonly cost: number;
  readonly sensitivity: number;
}

/** A point of the frontier: one choice index per layer, its total cost and total sensitivity. */
export interface FrontierPoint {
  readonly cost: number;
  readonly sensitivity: number;
  /** Index into each layer's choices. */
  readonly picks: readonly number[];
}

/**
 * The exact Pareto frontier of "pick one choice per layer": every assignment whose total cost no
 * cheaper assignment beats in total sensitivity, sorted by cost ascending (sensitivity strictly
 * descending). Built layer by layer, keeping only non-dominated partial sums; a dominated partial
 * assignment can never complete to a frontier point because costs and sensitivities add, so the
 * result equals brute force over all ∏kᵢ assignments (a test checks it).
 */
export function paretoFrontier(layers: readonly (readonly Choice<unknown>[])[]): FrontierPoint[] {
  let front: FrontierPoint[] = [{ cost: 0, sensitivity: 0, picks: [] }];
  layers.forEach((choices, li) => {
    if (choices.length === 0) throw new ConfigError(`$.layers[${li}]`, 'a layer has no candidate to choose from');
    const next: FrontierPoint[] = [];
    for (const p of front) {
      choices.forEach((c, ci) => next.push({ cost: p.cost + c.cost, sensitivity: p.sensitivity + c.sensitivity, picks: [...p.picks, ci] }));
    }
    next.sort((a, b) => a.cost - b.cost || a.sensitivity - b.sensitivity);
    front = [];
    for (const p of next) if (front.length === 0 || p.sensitivity < front[front.length - 1]!.sensitivity) front.push(p);
  });
  return front;
}

/**
 * The frontier point of least sensitivity whose cost is within `budget`. A budget below the
 * cheapest assignment is a `TARGET_UNREACHABLE` error with the reachable range.
 */
export function pickWithin(front: readonly FrontierPoint[], budget: number, path = '$.budget', unit = ''): FrontierPoint {
  let best: FrontierPoint | undefined;
  for (const p of front) if (p.cost <= budget * (1 + 1e-12)) best = p;
  if (!best) {
    const lo = front[0]?.cost ?? Number.NaN;
    const hi = front[front.length - 1]?.cost ?? Number.NaN;
    throw new ConfigError(
      path,
      `no plan meets the budget ${fmt(budget)}${unit}: the cheapest plan costs ${fmt(lo)}${unit} (the most precise ${fmt(hi)}${unit}); raise the budget or allow lower bit widths`,
      { budget, cheapest: lo, mostExpensive: hi },
      'TARGET_UNREACHABLE',
    );
  }
  return best;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e6 ? v.toExponential(4) : String(Math.round(v * 1e4) / 1e4);
}
