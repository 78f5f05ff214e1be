// pack-smoke job "cli": the CLI with everything it installs: `tensorpress --help`, then a real export.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { checkResolution, expect } from './check.mjs';

checkResolution();
const tp = (args) => {
  const r = spawnSync('node_modules/.bin/tensorpress', args, { encoding: 'utf8' });
  console.log(`$ tensorpress ${args.join(' ')} -> exit ${r.status}`);
  return r;
};
const help = tp(['--help']);
expect(help.status === 0 && /^Usage: tensorpress/.test(help.stdout), `--help failed: ${help.stderr}`);
const ex = tp(['export', '--model', 'builtin:mlp', '--fp32-epochs', '0', '--no-cache', '--out', 'mlp.onnx']);
expect(ex.status === 0 && existsSync('mlp.onnx') && statSync('mlp.onnx').size > 1000, `export failed: ${ex.stdout}${ex.stderr}`);
const inspect = tp(['inspect', 'mlp.onnx']);
expect(inspect.status === 0 && /@tensorpress\/quant/.test(inspect.stdout), `inspect failed: ${inspect.stdout}${inspect.stderr}`);
console.log(inspect.stdout.split('\n').slice(0, 12).join('\n'));
