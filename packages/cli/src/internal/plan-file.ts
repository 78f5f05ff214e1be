import * as fs from 'node:fs/promises';
import { CliError, EXIT_CODES } from '../exit-codes.js';

export const PLAN_FORMAT = 'tensorpress-plan';

/** plan.json, as `tensorpress analyze` writes it and `compress --plan` reads it. */
export interface PlanFile {
  readonly format: typeof PLAN_FORMAT;
  readonly version: 1;
  /** `bits`: quant's `plan` ({node, weightBits, activationBits?}); `ratios`: filter_pruning's ({node, ratio}). */
  readonly kind: 'bits' | 'ratios';
  readonly source?: string;
  /** Ratios: the FLOPs target the plan was made for; compress scales the plan to it. */
  readonly flopsReduction?: number;
  readonly plan: readonly ({ readonly node: string } & object)[];
}

/** The config entries each kind of plan goes into. */
const TARGETS: Readonly<Record<PlanFile['kind'], readonly string[]>> = {
  bits: ['quantization', 'dorefa', 'pact', 'tqt', 'lsq', 'post_training_quantization'],
  ratios: ['filter_pruning'],
};

/** Reads and checks a plan file. */
export async function readPlanFile(file: string): Promise<PlanFile> {
  const bad = (why: string): CliError => new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', `plan ${file}: ${why}`);
  const text = await fs.readFile(file, 'utf8').catch(() => {
    throw new CliError(EXIT_CODES.usage, 'CONFIG_MISSING', `plan file ${file} does not exist or cannot be read`);
  });
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(`not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const p = v as Partial<PlanFile>;
  if (typeof v !== 'object' || v === null || p.format !== PLAN_FORMAT) throw bad(`$.format must be "${PLAN_FORMAT}" (a plan written by \`tensorpress analyze\`)`);
  if (p.version !== 1) throw bad(`$.version ${String(p.version)} is not supported (1)`);
  if (p.kind !== 'bits' && p.kind !== 'ratios') throw bad('$.kind must be "bits" or "ratios"');
  if (!Array.isArray(p.plan) || p.plan.length === 0 || !p.plan.every((e) => typeof e === 'object' && e !== null && typeof (e as { node?: unknown }).node === 'string')) {
    throw bad('$.plan must be a non-empty list of { node, ... } entries');
  }
  return p as PlanFile;
}

/**
 * Puts a plan into the config entries it belongs to (`params.plan`; a ratios plan also sets
 * `params.flopsReduction` when the entry gives no ratio or target of its own). Returns the new
 * config text; the config file is not modified. No matching entry, or an entry with a plan of its
 * own, is a usage error naming the JSON path.
 */
export function injectPlan(configText: string, plan: PlanFile, configFile: string, planFile: string): string {
  let config: { compression?: unknown };
  try {
    config = JSON.parse(configText) as { compression?: unknown };
  } catch {
    return configText; // The config reader reports the syntax error with its position.
  }
  const entries = Array.isArray(config.compression) ? (config.compression as Record<string, unknown>[]) : [];
  const targets = TARGETS[plan.kind];
  const hits = entries.map((e, i) => ({ e, i })).filter(({ e }) => typeof e === 'object' && e !== null && targets.includes(String(e['algorithm'])));
  if (hits.length === 0) {
    throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', `${configFile}: --plan ${planFile} is a ${plan.kind} plan, but $.compression has no ${targets.join(' / ')} entry to take it`);
  }
  for (const { e, i } of hits) {
    const params = (typeof e['params'] === 'object' && e['params'] !== null ? { ...(e['params'] as Record<string, unknown>) } : {}) as Record<string, unknown>;
    if (params['plan'] !== undefined) {
      throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', `${configFile}: $.compression[${i}].params.plan is already set; remove it or do not pass --plan ${planFile}`);
    }
    params['plan'] = plan.plan;
    if (plan.kind === 'ratios' && plan.flopsReduction !== undefined && params['ratio'] === undefined && params['flopsReduction'] === undefined) params['flopsReduction'] = plan.flopsReduction;
    entries[i] = { ...e, params };
  }
  return JSON.stringify({ ...config, compression: entries });
}
