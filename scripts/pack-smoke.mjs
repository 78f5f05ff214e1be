#!/usr/bin/env node
// `npm run pack-smoke`: proves the published artifacts work on their own.
//  1. clean-builds (tsconfig.build.json -> dist) and `npm pack`s kernels, core-tensor and datasets;
//  2. creates an empty npm project in the OS temp dir (outside the repo, so no workspace
//     symlink or hoisted package can leak in) and installs only those tarballs plus the
//     tfjs peers, at the versions of the root lockfile (`--prefer-offline`: from the npm cache);
//  3. runs scripts/pack-smoke/smoke.mjs there with plain `node`: import both packages, build
//     a model, train a few steps, evaluate.
// Exits non-zero if any step fails. Temp dirs are removed unless --keep is given.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildForPublish, publishablePackages, repoRoot, run } from './lib/workspace.mjs';

// core-tensor's tarball needs the kernels tarball installed beside it (a regular dependency).
const PACKAGES = ['@tensorpress/kernels', '@tensorpress/core-tensor', '@tensorpress/datasets'];
const PEERS = ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-layers'];
const keep = process.argv.includes('--keep');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** Version of a package in the root lockfile, so the smoke installs what the repo tests with. */
function lockedVersion(name) {
  const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8'));
  const v = lock.packages?.[`node_modules/${name}`]?.version;
  if (!v) throw new Error(`${name} is not in the root package-lock.json`);
  return v;
}

const pkgs = publishablePackages().filter((p) => PACKAGES.includes(p.name));
const missing = PACKAGES.filter((n) => !pkgs.some((p) => p.name === n));
if (missing.length > 0) {
  console.error(`pack-smoke: not found in the workspace: ${missing.join(', ')}`);
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'tensorpress-pack-smoke-'));
let ok = false;
try {
  // Step 1: build and pack.
  console.log(`pack-smoke: building ${PACKAGES.join(', ')}`);
  buildForPublish(pkgs);
  const tarDir = join(work, 'tarballs');
  mkdirSync(tarDir);
  for (const p of pkgs) {
    run(npm, ['pack', '--silent', '--pack-destination', tarDir], { cwd: p.dir, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const tarballs = readdirSync(tarDir).filter((f) => f.endsWith('.tgz')).map((f) => join(tarDir, f));
  console.log(`pack-smoke: packed ${tarballs.map((t) => t.slice(tarDir.length + 1)).join(', ')}`);
  if (tarballs.length !== pkgs.length) throw new Error(`expected ${pkgs.length} tarballs, got ${tarballs.length}`);

  // Step 2: a fresh consumer project with only the tarballs and the tfjs peers.
  const project = join(work, 'project');
  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'tensorpress-pack-smoke', version: '0.0.0', private: true, type: 'module' }, null, 2),
  );
  const peers = PEERS.map((n) => `${n}@${lockedVersion(n)}`);
  console.log(`pack-smoke: installing tarballs + ${peers.join(' ')} into ${project}`);
  run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--save-exact', '--loglevel=error', ...tarballs, ...peers], {
    cwd: project,
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: process.env.ONNXRUNTIME_NODE_INSTALL ?? 'skip' },
  });

  // Step 3: run the smoke with plain node (no tsx, no source condition).
  copyFileSync(join(repoRoot, 'scripts', 'pack-smoke', 'smoke.mjs'), join(project, 'smoke.mjs'));
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  run(process.execPath, ['smoke.mjs'], { cwd: project, env });
  ok = true;
} catch (e) {
  console.error(`pack-smoke: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  if (keep) console.log(`pack-smoke: kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
console.log(ok ? 'pack-smoke: passed' : 'pack-smoke: FAILED');
process.exit(ok ? 0 : 1);
