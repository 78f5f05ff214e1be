/**
 * A fuzz worker (a child process of harness.ts's runFuzz): loads the target once, then runs the
 * cases it is sent one at a time. It announces each case before running it, so that the parent
 * can name the mutation of a case that hangs or kills the process.
 */
import { createRng } from '@tensorpress/core-tensor';
import { caseSeed, classify, type FromWorker, type FuzzSeed, type FuzzTarget, type Mutated, type Outcome, type ToWorker } from './harness.js';

let target: FuzzTarget | undefined;
let seeds: FuzzSeed[] = [];
let runSeed = 1;
// Cases arrive one at a time, but a message may come in while the previous one still awaits.
let queue = Promise.resolve();

function send(m: FromWorker): void {
  process.send!(m);
}

async function runCase(index: number): Promise<void> {
  const seed = seeds[index % seeds.length]!;
  let m: Mutated;
  try {
    m = target!.mutate(seed, createRng(caseSeed(runSeed, index)));
  } catch (e) {
    // A bug of the harness, not of the code under test: reported as untyped so that it is seen.
    const err = e instanceof Error ? e : new Error(String(e));
    send({ type: 'done', index, outcome: { kind: 'untyped', name: 'FuzzMutatorError', message: err.message, ...(err.stack ? { stack: err.stack } : {}) } });
    return;
  }
  send({ type: 'start', index, model: seed.name, mutation: m.mutation });
  let outcome: Outcome;
  try {
    await target!.check(m.bytes, seed);
    outcome = { kind: 'ok' };
  } catch (e) {
    outcome = classify(e);
  }
  send({ type: 'done', index, outcome });
}

process.on('message', (m: ToWorker) => {
  queue = queue.then(async () => {
    if (m.type === 'init') {
      target = ((await import(m.module)) as { default: FuzzTarget }).default;
      seeds = m.seeds.map((s) => ({ name: s.name, bytes: new Uint8Array(s.bytes) }));
      runSeed = m.runSeed;
      await target.setup();
      send({ type: 'ready' });
    } else {
      await runCase(m.index);
    }
  });
});
// The parent going away ends the worker (a killed run leaves no orphans).
process.on('disconnect', () => process.exit(0));
