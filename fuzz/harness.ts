/**
 * The target-independent part of the fuzz harness (`npm run fuzz -- <target>`): a target is a
 * generator of seeded cases (seed inputs and a mutator) plus a check function. Cases run in child
 * processes (fuzz/worker.ts), one at a time each, so that a hang (per-case timeout) or a crash (the process dies: abort, OOM)
 * is caught, counted, and the run goes on in a fresh child. Every case is classified:
 *
 * - `ok`: the check accepted and ran the input (for ONNX: read and ran one batch);
 * - `typed`: it threw a TensorpressError (counted by code);
 * - `untyped`: it threw anything else: a bug;
 * - `crash`: the child process died during the case;
 * - `hang`: the case ran past the timeout.
 *
 * Case `i` is a pure function of (seed, i): its seed input is `seeds[i % seeds.length]` and its
 * mutation draws from an rng seeded by {@link caseSeed}, so a run is reproducible whatever the
 * number of workers, and one case can be replayed alone (`npm run fuzz -- onnx --case I`).
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TensorpressError, type Rng } from '@tensorpress/core-tensor';

/** One seed input of a target: a model file, a config, … */
export interface FuzzSeed {
  /** Reported as the row's `model`. */
  readonly name: string;
  readonly bytes: Uint8Array;
}

/** A mutated input and what was done to it (one line, for reports and replays). */
export interface Mutated {
  readonly bytes: Uint8Array;
  readonly mutation: string;
}

/**
 * What a fuzz target provides; see fuzz/targets.ts for the registry. Its module must export
 * it as `default`: worker processes load it from `module`.
 */
export interface FuzzTarget {
  /** The name on the command line and in the rows (`onnx`, `config`). */
  readonly name: string;
  /** URL of the module that exports this target as `default` (its `import.meta.url`). */
  readonly module: string;
  /** The row field that counts accepted inputs (`readAndRan` for ONNX). */
  readonly okField: string;
  /** Builds the seed inputs; runs once, in the parent process. */
  seeds(): Promise<FuzzSeed[]>;
  /** Prepares a worker process (backend, registrations); runs once per child. */
  setup(): Promise<void>;
  /** The input of one case: deterministic in `seed` and the draws from `rng`. */
  mutate(seed: FuzzSeed, rng: Rng): Mutated;
  /** Runs the code under test; resolves when the input was accepted (and ran), throws otherwise. */
  check(bytes: Uint8Array, seed: FuzzSeed): Promise<void>;
}

/** The classification of one case. */
export type Outcome =
  | { kind: 'ok' }
  | { kind: 'typed'; code: string }
  | { kind: 'untyped'; name: string; message: string; stack?: string }
  | { kind: 'crash'; detail: string }
  | { kind: 'hang' };

/** One case's record. */
export interface CaseRecord {
  index: number;
  model: string;
  mutation: string;
  outcome: Outcome;
}

/** A case that is a bug (untyped error, crash or hang), kept for the report. */
export interface Finding {
  index: number;
  model: string;
  mutation: string;
  kind: 'untyped' | 'crash' | 'hang';
  detail: string;
}

/** One row of bench/results/fuzz.json: the counts over one seed input. */
export interface FuzzRow {
  target: string;
  model: string;
  mutations: number;
  [okField: string]: unknown;
  typedErrors: number;
  untypedErrors: number;
  crashes: number;
  hangs: number;
  typedByCode: Record<string, number>;
}

/** Options of {@link runFuzz}. */
export interface RunFuzzOptions {
  /** Number of cases. */
  cases: number;
  /** Run seed. Default 1. */
  seed?: number;
  /** Child processes running cases side by side. Default 1. */
  workers?: number;
  /** A case running longer than this is a hang (ms). Default 30,000. */
  timeoutMs?: number;
  /** Heap limit of each child (MiB), so a runaway allocation kills the child, not the machine. Default 2048. */
  maxOldSpaceMb?: number;
  /** Called after every `progressEvery` cases. */
  onProgress?: (done: number, total: number) => void;
  progressEvery?: number;
}

/** What {@link runFuzz} returns. */
export interface FuzzReport {
  target: string;
  /** The row field that counts accepted cases (the target's `okField`). */
  okField: string;
  cases: number;
  seed: number;
  rows: FuzzRow[];
  findings: Finding[];
  durationS: number;
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root: children resolve tsx and the workspace packages from it. */
export const REPO_ROOT = path.resolve(here, '..');

/** The rng seed of case `index` of a run (splitmix-style mixing: neighbouring cases are unrelated). */
export function caseSeed(runSeed: number, index: number): number {
  let z = (Math.imul(runSeed >>> 0, 0x9e3779b1) + Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** Classifies what a check threw. */
export function classify(e: unknown): Outcome {
  if (e instanceof TensorpressError) return { kind: 'typed', code: e.code };
  const err = e instanceof Error ? e : new Error(String(e));
  return { kind: 'untyped', name: err.name, message: err.message.slice(0, 500), ...(err.stack ? { stack: err.stack.split('\n').slice(0, 8).join('\n') } : {}) };
}

/** Messages between the parent and a worker (see worker.ts). */
export type ToWorker = { type: 'init'; module: string; seeds: FuzzSeed[]; runSeed: number } | { type: 'case'; index: number };
/** Messages from a worker. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'start'; index: number; model: string; mutation: string }
  | { type: 'done'; index: number; outcome: Outcome };

interface Slot {
  child: ChildProcess;
  ready: Promise<void>;
  current?: { index: number; model: string; mutation: string; timer: NodeJS.Timeout; settle: (r: CaseRecord) => void };
  stderr: string;
}

/** Runs `options.cases` cases of `target` in child processes and counts the outcomes per seed input. */
export async function runFuzz(target: FuzzTarget, options: RunFuzzOptions): Promise<FuzzReport> {
  const started = Date.now();
  const runSeed = options.seed ?? 1;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const workers = Math.max(1, Math.min(options.workers ?? 1, options.cases));
  const seeds = await target.seeds();
  const records: CaseRecord[] = new Array<CaseRecord>(options.cases);
  let next = 0;
  let done = 0;

  const spawn = (): Slot => {
    const child = fork(path.join(here, 'worker.ts'), [], {
      cwd: REPO_ROOT,
      execArgv: ['--conditions=@tensorpress/source', '--import', 'tsx', `--max-old-space-size=${options.maxOldSpaceMb ?? 2048}`],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    const slot: Slot = { child, stderr: '', ready: Promise.resolve() };
    // Only the tail matters: it says why a child died.
    child.stderr?.on('data', (d: Buffer) => (slot.stderr = (slot.stderr + d.toString()).slice(-2000)));
    slot.ready = new Promise<void>((resolve, reject) => {
      const onReady = (m: FromWorker): void => {
        if (m.type === 'ready') {
          child.off('message', onReady);
          child.off('exit', onEarlyExit);
          resolve();
        }
      };
      const onEarlyExit = (code: number | null, signal: string | null): void =>
        reject(new Error(`a fuzz worker died while starting (code ${code}, signal ${signal}): ${slot.stderr.trim()}`));
      child.on('message', onReady);
      child.once('exit', onEarlyExit);
    });
    child.on('message', (m: FromWorker) => {
      const cur = slot.current;
      if (!cur) return;
      if (m.type === 'start' && m.index === cur.index) {
        cur.model = m.model;
        cur.mutation = m.mutation;
      } else if (m.type === 'done' && m.index === cur.index) {
        cur.settle({ index: cur.index, model: cur.model, mutation: cur.mutation, outcome: m.outcome });
      }
    });
    child.on('exit', (code, signal) => {
      const cur = slot.current;
      if (cur) {
        const why = signal ? `signal ${signal}` : `exit code ${code}`;
        cur.settle({ index: cur.index, model: cur.model, mutation: cur.mutation, outcome: { kind: 'crash', detail: `${why}: ${slot.stderr.trim().split('\n').slice(-3).join(' | ')}` } });
      }
    });
    child.send({ type: 'init', module: target.module, seeds, runSeed } satisfies ToWorker);
    return slot;
  };

  const runOne = (slot: Slot, index: number): Promise<CaseRecord> =>
    new Promise<CaseRecord>((resolve) => {
      const model = seeds[index % seeds.length]!.name;
      const timer = setTimeout(() => {
        const cur = slot.current;
        if (!cur) return;
        cur.settle({ index, model: cur.model, mutation: cur.mutation, outcome: { kind: 'hang' } });
        slot.child.kill('SIGKILL');
      }, timeoutMs);
      slot.current = {
        index,
        model,
        mutation: '(not started)',
        timer,
        settle: (r) => {
          clearTimeout(timer);
          slot.current = undefined;
          resolve(r);
        },
      };
      slot.child.send({ type: 'case', index } satisfies ToWorker);
    });

  const lane = async (): Promise<void> => {
    let slot = spawn();
    await slot.ready;
    try {
      while (next < options.cases) {
        const index = next++;
        const r = await runOne(slot, index);
        records[index] = r;
        done++;
        if (options.onProgress && done % (options.progressEvery ?? 500) === 0) options.onProgress(done, options.cases);
        if (r.outcome.kind === 'crash' || r.outcome.kind === 'hang') {
          slot.child.kill('SIGKILL');
          slot = spawn();
          await slot.ready;
        }
      }
    } finally {
      slot.child.kill('SIGKILL');
    }
  };
  await Promise.all(Array.from({ length: workers }, lane));
  return summarize(target, seeds, records, runSeed, (Date.now() - started) / 1000);
}

function summarize(target: FuzzTarget, seeds: readonly FuzzSeed[], records: readonly CaseRecord[], seed: number, durationS: number): FuzzReport {
  const rows = new Map<string, FuzzRow>(
    seeds.map((s) => [
      s.name,
      { target: target.name, model: s.name, mutations: 0, [target.okField]: 0, typedErrors: 0, untypedErrors: 0, crashes: 0, hangs: 0, typedByCode: {} },
    ]),
  );
  const findings: Finding[] = [];
  for (const r of records) {
    const row = rows.get(r.model)!;
    row.mutations++;
    const o = r.outcome;
    switch (o.kind) {
      case 'ok':
        row[target.okField] = (row[target.okField] as number) + 1;
        break;
      case 'typed':
        row.typedErrors++;
        row.typedByCode[o.code] = (row.typedByCode[o.code] ?? 0) + 1;
        break;
      case 'untyped':
        row.untypedErrors++;
        findings.push({ index: r.index, model: r.model, mutation: r.mutation, kind: 'untyped', detail: `${o.name}: ${o.message}${o.stack ? `\n${o.stack}` : ''}` });
        break;
      case 'crash':
        row.crashes++;
        findings.push({ index: r.index, model: r.model, mutation: r.mutation, kind: 'crash', detail: o.detail });
        break;
      case 'hang':
        row.hangs++;
        findings.push({ index: r.index, model: r.model, mutation: r.mutation, kind: 'hang', detail: 'ran past the timeout' });
        break;
    }
  }
  for (const row of rows.values()) row.typedByCode = Object.fromEntries(Object.entries(row.typedByCode).sort(([a], [b]) => a.localeCompare(b)));
  return { target: target.name, okField: target.okField, cases: records.length, seed, rows: [...rows.values()], findings, durationS };
}

/** Totals over rows, for the summary line and the test. */
export function totals(report: FuzzReport): { ok: number; typed: number; untyped: number; crashes: number; hangs: number } {
  let ok = 0;
  let typed = 0;
  let untyped = 0;
  let crashes = 0;
  let hangs = 0;
  for (const r of report.rows) {
    ok += r[report.okField] as number;
    typed += r.typedErrors;
    untyped += r.untypedErrors;
    crashes += r.crashes;
    hangs += r.hangs;
  }
  return { ok, typed, untyped, crashes, hangs };
}
