/**
 * `npm run fuzz -- config [N] [--seed S] [--out FILE] [--only I] [--json]`: runs N (default 2,000)
 * seeded config mutations (fuzz/config.ts) in a worker thread, with a watchdog: a case still
 * running after 30 s is a hang and a worker that dies is a crash (either way the worker is
 * replaced and the run goes on at the next case). Prints the counts and every case that is not
 * accepted or a typed error with a path, and writes the `config` row into
 * bench/results/fuzz.json (rows of other targets are kept). Exits 1 when a case crashed, hung,
 * threw an untyped or pathless error, leaked tensors or had a key ignored.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { configFuzzContext, configFuzzRow, type ConfigCaseResult, type ConfigFuzzRow } from './config.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Options of {@link runConfigFuzz}. */
export interface ConfigFuzzOptions {
  readonly n: number;
  readonly seed: number;
  /** Run only this case (a replay). */
  readonly only?: number;
  /** A case running longer than this is a hang. Default 30,000 ms. */
  readonly timeoutMs?: number;
  readonly examplesDir?: string;
  /** Called with each finished case. */
  readonly onCase?: (r: ConfigCaseResult) => void;
}

/** What the watchdog saw go wrong outside a case's own result. */
export interface ConfigFuzzIncident {
  readonly index: number;
  readonly kind: 'crash' | 'hang';
  readonly detail: string;
}

/** Runs cases `from`..`to` in one worker until they are done or it hangs or dies; resolves with the next case to run. */
function runWorker(o: ConfigFuzzOptions, examplesDir: string, from: number, to: number, results: ConfigCaseResult[], incidents: ConfigFuzzIncident[]): Promise<number> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    let current = from;
    let settled = false;
    // Workers do not run the main thread's `--import tsx`: the bootstrap registers tsx, then loads the TypeScript worker.
    const script = new URL('./config-worker.ts', import.meta.url).href;
    const worker = new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(script)}); })`, {
      eval: true,
      workerData: { examplesDir, seed: o.seed, from, to },
      resourceLimits: { maxOldGenerationSizeMb: 4096 },
    });
    let began = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (resume: number, incident?: Omit<ConfigFuzzIncident, 'index'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      // A worker that dies before its first case is a broken harness, not a finding.
      if (incident && !began) return reject(new Error(`the fuzz worker did not start: ${incident.detail}`));
      if (incident) incidents.push({ index: current, ...incident });
      resolve(resume);
    };
    const arm = (ms: number, detail: string): void => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(current + 1, { kind: 'hang', detail }), ms);
    };
    // The first case also waits for the worker to load the packages and the model.
    arm(4 * timeoutMs, `no answer in ${(4 * timeoutMs) / 1000} s`);
    worker.on('message', (msg: { started?: number; result?: ConfigCaseResult; harnessError?: string }) => {
      if (msg.harnessError !== undefined) {
        settled = true;
        clearTimeout(timer);
        void worker.terminate();
        return reject(new Error(`fuzz harness error at ${msg.harnessError}`));
      }
      if (msg.started !== undefined) {
        began = true;
        current = msg.started;
        arm(timeoutMs, `case ran over ${timeoutMs / 1000} s`);
      }
      if (msg.result) {
        results.push(msg.result);
        o.onCase?.(msg.result);
        if (msg.result.index === to - 1) finish(to);
      }
    });
    worker.on('error', (e) => finish(current + 1, { kind: 'crash', detail: `${e.name}: ${e.message}` }));
    worker.on('exit', (code) => finish(current + 1, { kind: 'crash', detail: `worker exited with code ${code}` }));
  });
}

/** Runs the cases in worker threads, replacing a hung or crashed one, and counts the results into the fuzz.json row. */
export async function runConfigFuzz(o: ConfigFuzzOptions): Promise<{ row: ConfigFuzzRow; results: ConfigCaseResult[]; incidents: ConfigFuzzIncident[] }> {
  const started = performance.now();
  const examplesDir = o.examplesDir ?? path.join(repo, 'examples');
  const results: ConfigCaseResult[] = [];
  const incidents: ConfigFuzzIncident[] = [];
  const to = o.only !== undefined ? o.only + 1 : o.n;
  for (let next = o.only ?? 0; next < to; ) next = await runWorker(o, examplesDir, next, to, results, incidents);
  const ctx = await configFuzzContext(examplesDir);
  const counts = { crashes: incidents.filter((i) => i.kind === 'crash').length, hangs: incidents.filter((i) => i.kind === 'hang').length };
  return { row: configFuzzRow(ctx, results, { seed: o.seed, ...counts, seconds: (performance.now() - started) / 1000 }), results, incidents };
}

/** Replaces the `config` row of a fuzz.json (DESIGN §9 layout), keeping the other targets' rows; written atomically. */
export async function writeFuzzRow(file: string, row: ConfigFuzzRow): Promise<void> {
  let doc: { rows?: { target?: unknown }[]; [k: string]: unknown } = {};
  try {
    doc = JSON.parse(await readFile(file, 'utf8')) as typeof doc;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const rows = (Array.isArray(doc.rows) ? doc.rows : []).filter((r) => r.target !== 'config');
  const out = {
    ...doc,
    bench: 'fuzz',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown', node: process.version },
    rows: [...rows, row],
  };
  const tmp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify(out, null, 2)}\n`);
  await rename(tmp, file);
}

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** `npm run fuzz -- config [N] [--seed S] [--out FILE] [--only INDEX] [--json]` (fuzz/main.ts hands the arguments after `config` here). */
export async function configMain(args: string[] = process.argv.slice(2)): Promise<void> {
  const positional = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && ['--seed', '--out', '--only'].includes(args[i - 1]!)));
  const n = positional[0] !== undefined ? Number(positional[0]) : 2000;
  const seed = Number(argValue(args, '--seed') ?? 1);
  const only = argValue(args, '--only');
  const out = argValue(args, '--out') ?? path.join(repo, 'bench/results/fuzz.json');
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(seed) || (only !== undefined && !Number.isInteger(Number(only)))) {
    console.error('usage: npm run fuzz -- config [N] [--seed S] [--out FILE] [--only INDEX] [--json]');
    process.exit(2);
  }
  const json = args.includes('--json');
  let done = 0;
  const { row, results, incidents } = await runConfigFuzz({
    n,
    seed,
    ...(only !== undefined ? { only: Number(only) } : {}),
    onCase: () => {
      if (!json && ++done % 250 === 0) console.error(`config fuzz: ${done} / ${only !== undefined ? 1 : n}`);
    },
  });
  const bad = results.filter((r) => r.outcome !== 'accepted' && r.outcome !== 'typedError');
  const leaky = results.filter((r) => r.leakedTensors !== 0);
  if (json) console.log(JSON.stringify({ row, bad, leaky, incidents }));
  else {
    console.log(
      `config fuzz (seed ${seed}): ${row.mutations} mutations, ${row.accepted} accepted, ${row.typedErrors} typed errors ` +
        `(${row.graphErrors} found on the graph, ${row.stripErrors} only at strip), ${row.pathlessErrors} without a path, ${row.untypedErrors} untyped, ${row.ignoredKeys} ` +
        `with an ignored key, ${row.crashes} crashes, ${row.hangs} hangs, ${row.leaks} leaking; ${row.keyPathsMisspelt}/${row.keyPathsTotal} key paths misspelt; ${row.seconds} s`,
    );
    console.log(`typed errors by code: ${JSON.stringify(row.typedByCode)}`);
    for (const r of [...bad, ...leaky]) console.log(`  #${r.index} ${r.outcome} ${r.code ?? ''} [${r.description}] ${r.message ?? r.ignoredKeys?.join(', ') ?? ''} (leaked ${r.leakedTensors})`);
    for (const i of incidents) console.log(`  #${i.index} ${i.kind}: ${i.detail}`);
    if (bad.length || leaky.length || incidents.length) console.log(`replay one: npm run fuzz -- config --seed ${seed} --only <index>`);
  }
  if (only === undefined) {
    await writeFuzzRow(out, row);
    if (!json) console.log(`wrote ${path.relative(process.cwd(), out)}`);
  }
  process.exitCode = bad.length || leaky.length || incidents.length ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await configMain();
