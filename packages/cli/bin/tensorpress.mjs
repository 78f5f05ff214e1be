#!/usr/bin/env node
// The `tensorpress` executable. An installed package runs the built dist/bin.js. In the repository
// (after `npm ci` at the root, where dist/ is not built and src/ is present) it runs the TypeScript
// sources through tsx with the @tensorpress/source condition, so `npx tensorpress` works with no
// build step and never runs a stale build.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
if (!existsSync(source)) {
  await import('../dist/bin.js');
} else {
  const tsx = import.meta.resolve('tsx');
  const child = spawn(process.execPath, ['--conditions=@tensorpress/source', '--import', tsx, source, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  // Ctrl-C reaches the child through the terminal's process group; a SIGTERM sent to this process
  // alone is passed on. Either way the child decides how to stop (src/bin.ts).
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (signal ? constants.signals[signal] : 1)));
}
