/**
 * `node --import tsx bench/table.ts <name> [columns...]` (a trailing `?` marks an optional column; `!field` keeps
 * only rows without that field) prints bench/results/<name>.json as a
 * markdown table, so README tables are exactly what a bench wrote.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const [name, ...columns] = process.argv.slice(2);
if (!name) {
  console.error('usage: node --import tsx bench/table.ts <name> [columns...]');
  process.exit(2);
}
const data = JSON.parse(await readFile(path.join(here, 'results', `${name}.json`), 'utf8')) as {
  date: string;
  machine: Record<string, unknown>;
  rows: Record<string, unknown>[];
};
// A column ending in `?` is optional; rows missing any other requested column are left out, and so
// are rows that have a field named by a `!field` argument (not a column).
const absent = columns.filter((c) => c.startsWith('!')).map((c) => c.slice(1));
const named = columns.filter((c) => !c.startsWith('!'));
const wanted = named.length > 0 ? named : [...new Set(data.rows.flatMap((r) => Object.keys(r)))];
const cols = wanted.map((c) => c.replace(/\?$/, ''));
const required = wanted.filter((c) => !c.endsWith('?'));
const rows = data.rows.filter((r) => required.every((c) => r[c] !== undefined) && absent.every((c) => r[c] === undefined));
const cell = (v: unknown): string => (v === undefined ? '' : typeof v === 'number' ? String(v) : String(v));
console.log(`| ${cols.join(' | ')} |`);
console.log(`| ${cols.map(() => '---').join(' | ')} |`);
for (const r of rows) console.log(`| ${cols.map((c) => cell(r[c])).join(' | ')} |`);
console.log(`\n${data.date.slice(0, 10)}, ${String(data.machine['cpus'])} cores (${String(data.machine['cpuModel'])}), Node ${String(data.machine['node'])}`);
