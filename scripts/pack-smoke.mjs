#!/usr/bin/env node
// `npm run pack-smoke`: proves that every published package works on its own, as a user installs it.
//  1. clean-builds (tsconfig.build.json -> dist) and `npm pack`s every published package;
//  2. for each job below, creates an empty npm project in the OS temp dir (outside the repo, so no
//     workspace symlink or hoisted package can leak in) and installs only the tarballs the job
//     names plus what they require: the workspace packages among their dependencies and required
//     peers (transitively), and the required external peers at the root lockfile's versions
//     (`--prefer-offline`: from the npm cache);
//  3. runs the job's script (scripts/pack-smoke/<job>.mjs) there with plain `node`: a small real job.
// A user installs only the technique they need: each technique is installed alone with core-tensor.
// Exits non-zero if any job fails. Temp dirs are removed unless --keep is given; `-- <job> ...` runs
// only those jobs.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildForPublish, publishablePackages, repoRoot, run } from './lib/workspace.mjs';

/**
 * The jobs: the packages a user installs, extra registry packages the script needs, and the script.
 * Every published package must appear in some job (checked below).
 */
const JOBS = [
  { name: 'core', install: ['@tensorpress/core-tensor', '@tensorpress/datasets', '@tensorpress/models'], extra: ['@tensorflow/tfjs-backend-cpu'], script: 'core.mjs' },
  { name: 'quant', install: ['@tensorpress/quant', '@tensorpress/models'], extra: ['@tensorflow/tfjs-backend-cpu'], script: 'quant.mjs' },
  { name: 'pruning', install: ['@tensorpress/pruning', '@tensorpress/models'], extra: ['@tensorflow/tfjs-backend-cpu'], script: 'pruning.mjs' },
  { name: 'mixed-precision', install: ['@tensorpress/mixed-precision', '@tensorpress/models'], extra: ['@tensorflow/tfjs-backend-cpu'], script: 'mixed-precision.mjs' },
  { name: 'binary', install: ['@tensorpress/binary', '@tensorpress/models'], extra: ['@tensorflow/tfjs-backend-cpu'], script: 'binary.mjs' },
  { name: 'sparsity', install: ['@tensorpress/sparsity', '@tensorpress/models'], extra: ['@tensorflow/tfjs-backend-cpu'], script: 'sparsity.mjs' },
  { name: 'distill', install: ['@tensorpress/distill', '@tensorpress/models'], extra: ['@tensorflow/tfjs-backend-cpu'], script: 'distill.mjs' },
  { name: 'export-onnx', install: ['@tensorpress/export-onnx', '@tensorpress/models'], extra: ['@tensorflow/tfjs-backend-cpu', 'onnxruntime-node'], script: 'export-onnx.mjs' },
  { name: 'export-tfjs', install: ['@tensorpress/export-tfjs', '@tensorpress/models'], extra: ['@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-layers'], script: 'export-tfjs.mjs' },
  { name: 'cli', install: ['@tensorpress/cli'], extra: [], script: 'cli.mjs' },
];

const keep = process.argv.includes('--keep');
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8'));

/** Version of a package in the root lockfile, so the smoke installs what the repo tests with. */
function lockedVersion(name) {
  const v = lock.packages?.[`node_modules/${name}`]?.version;
  if (!v) throw new Error(`${name} is not in the root package-lock.json`);
  return v;
}

const pkgs = publishablePackages();
const byName = new Map(pkgs.map((p) => [p.name, p]));
const uncovered = pkgs.filter((p) => !JOBS.some((j) => closure(j.install).workspace.has(p.name)));
if (uncovered.length > 0) {
  console.error(`pack-smoke: no job installs ${uncovered.map((p) => p.name).join(', ')}`);
  process.exit(1);
}

/**
 * What installing `names` brings: workspace packages (dependencies and required peers, transitively)
 * and the required external peers (a user must install those; npm 7+ does it for them too).
 */
function closure(names) {
  const workspace = new Set();
  const peers = new Set();
  const visit = (name) => {
    if (workspace.has(name)) return;
    const p = byName.get(name);
    if (!p) throw new Error(`${name} is not a published workspace package`);
    workspace.add(name);
    const optional = p.json.peerDependenciesMeta ?? {};
    const required = { ...p.json.dependencies, ...Object.fromEntries(Object.entries(p.json.peerDependencies ?? {}).filter(([n]) => !optional[n]?.optional)) };
    for (const dep of Object.keys(required)) {
      if (byName.has(dep)) visit(dep);
      else if (p.json.peerDependencies?.[dep]) peers.add(dep);
    }
  };
  names.forEach(visit);
  return { workspace, peers };
}

const work = mkdtempSync(join(tmpdir(), 'tensorpress-pack-smoke-'));
const failed = [];
try {
  console.log(`pack-smoke: building ${pkgs.map((p) => p.name).join(', ')}`);
  buildForPublish(pkgs);
  const tarDir = join(work, 'tarballs');
  mkdirSync(tarDir);
  /** @type {Map<string, string>} package name -> tarball path */
  const tarballs = new Map();
  for (const p of pkgs) {
    const before = new Set(readdirSync(tarDir));
    run(npm, ['pack', '--silent', '--pack-destination', tarDir], { cwd: p.dir, stdio: ['ignore', 'ignore', 'inherit'] });
    const made = readdirSync(tarDir).filter((f) => !before.has(f) && f.endsWith('.tgz'));
    if (made.length !== 1) throw new Error(`npm pack of ${p.name} made ${made.length} tarballs`);
    tarballs.set(p.name, join(tarDir, made[0]));
  }
  console.log(`pack-smoke: packed ${[...tarballs.values()].map((t) => t.slice(tarDir.length + 1)).join(', ')}`);

  for (const job of JOBS.filter((j) => only.length === 0 || only.includes(j.name))) {
    const start = Date.now();
    try {
      const { workspace, peers } = closure(job.install);
      const project = join(work, job.name);
      mkdirSync(project);
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `tensorpress-pack-smoke-${job.name}`, version: '0.0.0', private: true, type: 'module' }, null, 2));
      const registry = [...new Set([...peers, ...job.extra])].map((n) => `${n}@${lockedVersion(n)}`);
      console.log(`\npack-smoke [${job.name}]: installing ${[...workspace].join(' ')} + ${registry.join(' ')}`);
      run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--save-exact', '--loglevel=error', ...[...workspace].map((n) => tarballs.get(n)), ...registry], {
        cwd: project,
        env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: process.env.ONNXRUNTIME_NODE_INSTALL ?? 'skip' },
      });
      copyFileSync(join(repoRoot, 'scripts', 'pack-smoke', 'check.mjs'), join(project, 'check.mjs'));
      copyFileSync(join(repoRoot, 'scripts', 'pack-smoke', job.script), join(project, job.script));
      const env = { ...process.env, TENSORPRESS_SMOKE_PACKAGES: [...workspace].join(',') };
      delete env.NODE_OPTIONS;
      run(process.execPath, [job.script], { cwd: project, env });
      console.log(`pack-smoke [${job.name}]: ok (${((Date.now() - start) / 1000).toFixed(0)} s)`);
    } catch (e) {
      console.error(`pack-smoke [${job.name}]: FAILED: ${e instanceof Error ? e.message : String(e)}`);
      failed.push(job.name);
    }
  }
} catch (e) {
  console.error(`pack-smoke: ${e instanceof Error ? e.message : String(e)}`);
  failed.push('build');
} finally {
  if (keep) console.log(`pack-smoke: kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
console.log(failed.length === 0 ? 'pack-smoke: passed' : `pack-smoke: FAILED (${failed.join(', ')})`);
process.exit(failed.length === 0 ? 0 : 1);
