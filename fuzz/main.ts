/**
 * `npm run fuzz -- <target> [N] [--seed S] [--workers W] [--timeout-ms T]`: runs N seeded cases of a
 * fuzz target (fuzz/targets.ts) in child processes, prints the counts per seed input and the
 * cases that are bugs (untyped errors, crashes, hangs), and writes the rows to
 * bench/results/fuzz.json, keeping the rows of the other targets. Exit code 1 when any case is a bug.
 *
 * `--case I` replays case I of the run in this process and prints what it did and threw.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRng } from '@tensorpress/core-tensor';
import { REPO_ROOT, caseSeed, classify, runFuzz, totals, type FuzzReport } from './harness.js';
import { TARGETS, loadTarget } from './targets.js';

interface Args {
  target: string;
  cases: number;
  seed: number;
  workers: number;
  timeoutMs: number;
  replay?: number;
  write: boolean;
  /** Where to write every finding as JSON (the summary prints the first 30). */
  findings?: string;
}

function usage(): never {
  console.error(`usage: npm run fuzz -- <${[...Object.keys(TARGETS), 'config'].join('|')}> [N] [--seed S] [--workers W] [--timeout-ms T] [--case I] [--no-write] [--findings FILE]`);
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Args {
  const [target, ...rest] = argv;
  if (!target || !(target in TARGETS)) usage();
  const args: Args = { target, cases: 1000, seed: 1, workers: 1, timeoutMs: 30_000, write: true };
  const int = (v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) usage();
    return n;
  };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--seed') args.seed = int(rest[++i]);
    else if (a === '--workers') args.workers = Math.max(1, int(rest[++i]));
    else if (a === '--timeout-ms') args.timeoutMs = int(rest[++i]);
    else if (a === '--case') args.replay = int(rest[++i]);
    else if (a === '--no-write') args.write = false;
    else if (a === '--findings') args.findings = rest[++i] ?? usage();
    else if (/^\d+$/.test(a)) args.cases = int(a);
    else usage();
  }
  return args;
}

/** Merges a run's rows into bench/results/fuzz.json (other targets' rows and sections are kept); atomic. */
async function writeResults(report: FuzzReport, command: string): Promise<string> {
  const file = path.join(REPO_ROOT, 'bench', 'results', 'fuzz.json');
  let old: Record<string, unknown> = {};
  try {
    old = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch {
    // No results yet.
  }
  const oldRows = Array.isArray(old['rows']) ? (old['rows'] as { target?: unknown }[]) : [];
  // One row per seed input; the seed and the command make the run reproducible.
  const rows = report.rows.map((r) => ({ ...r, seed: report.seed, command }));
  const out = {
    ...old,
    bench: 'fuzz',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown', node: process.version },
    rows: [...oldRows.filter((r) => r.target !== report.target), ...rows],
  };
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(out, null, 2)}\n`);
  await rename(tmp, file);
  return path.relative(process.cwd(), file);
}

async function replay(args: Args): Promise<void> {
  const target = await loadTarget(args.target);
  const seeds = await target.seeds();
  await target.setup();
  const seed = seeds[args.replay! % seeds.length]!;
  const m = target.mutate(seed, createRng(caseSeed(args.seed, args.replay!)));
  console.log(`case ${args.replay} (${seed.name}): ${m.mutation}`);
  try {
    await target.check(m.bytes, seed);
    console.log('accepted');
  } catch (e) {
    console.log(JSON.stringify(classify(e)));
    console.log(e instanceof Error ? e.stack : String(e));
  }
}

async function main(): Promise<void> {
  // The config target has its own runner (worker threads, a parse/dry-apply/strip check per case).
  if (process.argv[2] === 'config') return (await import('./run-config.js')).configMain(process.argv.slice(3));
  const args = parseArgs(process.argv.slice(2));
  if (args.replay !== undefined) return replay(args);
  const target = await loadTarget(args.target);
  const report = await runFuzz(target, {
    cases: args.cases,
    seed: args.seed,
    workers: args.workers,
    timeoutMs: args.timeoutMs,
    onProgress: (done, total) => console.log(`${done}/${total}`),
  });
  const t = totals(report);
  console.log(`| model | mutations | ${report.okField} | typed errors | untyped errors | crashes | hangs | typed errors by code |`);
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of report.rows) {
    const codes = Object.entries(r.typedByCode).map(([c, n]) => `${c} ${n}`).join(', ');
    console.log(`| ${r.model} | ${r.mutations} | ${String(r[report.okField])} | ${r.typedErrors} | ${r.untypedErrors} | ${r.crashes} | ${r.hangs} | ${codes} |`);
  }
  console.log(`\n${report.cases} cases in ${Math.round(report.durationS)} s: ${t.ok} accepted, ${t.typed} typed errors, ${t.untyped} untyped, ${t.crashes} crashes, ${t.hangs} hangs`);
  for (const f of report.findings.slice(0, 30)) console.log(`\n[${f.kind}] case ${f.index} (${f.model}): ${f.mutation}\n  ${f.detail.split('\n').join('\n  ')}`);
  if (report.findings.length > 30) console.log(`\n... and ${report.findings.length - 30} more`);
  if (args.findings) await writeFile(args.findings, `${JSON.stringify(report.findings, null, 2)}\n`);
  if (args.write) {
    // What decides the outcome (not where findings went): the command that reproduces the rows.
    const command = `npm run fuzz -- ${args.target} ${args.cases} --seed ${args.seed}${args.timeoutMs !== 30_000 ? ` --timeout-ms ${args.timeoutMs}` : ''}`;
    console.log(`wrote ${await writeResults(report, command)}`);
  }
  if (report.findings.length > 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  process.exit(1);
});
