/**
 * Benchmark runner: `npm run bench -- <name>` runs bench/<name>.ts, whose default export returns
 * the rows, and writes bench/results/<name>.json atomically (DESIGN §9).
 */
import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** What a suite returns. */
export interface SuiteResult {
  rows: Record<string, unknown>[];
  /** Backend(s) used, for the machine record. */
  backend: string;
  /** Optional free-form notes kept in the JSON. */
  notes?: string[];
}

async function main(): Promise<void> {
  const name = process.argv[2];
  const suites = (await readdir(here)).filter((f) => f.endsWith('.ts') && !['run.ts', 'common.ts', 'table.ts'].includes(f)).map((f) => f.slice(0, -3));
  if (!name || !suites.includes(name)) {
    console.error(`usage: npm run bench -- <name>   (one of: ${suites.sort().join(', ')})`);
    process.exit(2);
  }
  const mod = (await import(path.join(here, `${name}.ts`))) as { default: (args: string[]) => Promise<SuiteResult> };
  const started = Date.now();
  const result = await mod.default(process.argv.slice(3));
  const out = {
    bench: name,
    date: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      node: process.version,
      backend: result.backend,
    },
    durationS: Math.round((Date.now() - started) / 100) / 10,
    rows: result.rows,
    ...(result.notes ? { notes: result.notes } : {}),
  };
  const dir = path.join(here, 'results');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(out, null, 2)}\n`);
  await rename(tmp, file);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  process.exit(1);
});
