#!/usr/bin/env node
// `npm run publint`: clean-builds every publishable workspace package (tsconfig.build.json ->
// dist) and lints what `npm pack` would publish with publint. Warnings count as errors
// (publint's strict mode); suggestions are printed only. Exits non-zero on any problem.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';
import { buildForPublish, publishablePackages } from './lib/workspace.mjs';

const pkgs = publishablePackages();
if (pkgs.length === 0) {
  console.error('publint: no publishable package found');
  process.exit(1);
}
console.log(`publint: building ${pkgs.map((p) => p.name).join(', ')}`);
try {
  buildForPublish(pkgs);
} catch (e) {
  console.error(`publint: build failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}

let failed = 0;
for (const p of pkgs) {
  const pkgJson = JSON.parse(readFileSync(join(p.dir, 'package.json'), 'utf8'));
  const { messages } = await publint({ pkgDir: p.dir, level: 'suggestion', strict: true, pack: 'npm' });
  const errors = messages.filter((m) => m.type === 'error');
  for (const m of messages) {
    console.log(`  ${p.name}: [${m.type}] ${formatMessage(m, pkgJson) ?? m.code}`);
  }
  console.log(`${errors.length === 0 ? 'ok  ' : 'FAIL'} ${p.name} (${errors.length} errors, ${messages.length - errors.length} suggestions)`);
  if (errors.length > 0) failed++;
}
console.log(`publint: ${pkgs.length - failed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
