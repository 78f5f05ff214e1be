// Helpers shared by the repo's tooling scripts (plain Node, no dependencies beyond the repo's own).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the repository root. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const require = createRequire(join(repoRoot, 'package.json'));

/**
 * @typedef {object} WorkspacePackage
 * @property {string} name     package name, e.g. `@tensorpress/core-tensor`
 * @property {string} dir      absolute directory
 * @property {string} relDir   directory relative to the repo root
 * @property {Record<string, any>} json  parsed package.json
 */

/** @returns {WorkspacePackage[]} every npm workspace package, in a dependency-first order. */
export function workspacePackages() {
  const root = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
  /** @type {WorkspacePackage[]} */
  const found = [];
  for (const pattern of root.workspaces ?? []) {
    const dirs = pattern.endsWith('/*')
      ? readdirSync(join(repoRoot, pattern.slice(0, -2)), { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => join(repoRoot, pattern.slice(0, -2), d.name))
      : [join(repoRoot, pattern)];
    for (const dir of dirs) {
      const file = join(dir, 'package.json');
      if (!existsSync(file)) continue;
      const json = JSON.parse(readFileSync(file, 'utf8'));
      found.push({ name: json.name, dir, relDir: relative(repoRoot, dir), json });
    }
  }
  return topoSort(found);
}

/** @param {WorkspacePackage[]} pkgs */
function topoSort(pkgs) {
  const byName = new Map(pkgs.map((p) => [p.name, p]));
  /** @type {WorkspacePackage[]} */
  const out = [];
  const state = new Map();
  /** @param {WorkspacePackage} p */
  const visit = (p) => {
    if (state.get(p.name) === 'done') return;
    if (state.get(p.name) === 'visiting') return; // a cycle: keep going, tsc -b reports real ones
    state.set(p.name, 'visiting');
    const deps = { ...p.json.dependencies, ...p.json.peerDependencies, ...p.json.devDependencies };
    for (const dep of Object.keys(deps)) {
      const d = byName.get(dep);
      if (d) visit(d);
    }
    state.set(p.name, 'done');
    out.push(p);
  };
  pkgs.forEach(visit);
  return out;
}

/** @returns {WorkspacePackage[]} the packages that get published (not private, with a build config). */
export function publishablePackages() {
  return workspacePackages().filter((p) => !p.json.private && existsSync(join(p.dir, 'tsconfig.build.json')));
}

/**
 * Runs a command, streaming its output; throws when it fails.
 * @param {string} cmd
 * @param {string[]} args
 * @param {import('node:child_process').SpawnSyncOptions} [opts]
 */
export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    throw new Error(`\`${[cmd, ...args].join(' ')}\` exited with ${r.status ?? r.signal}`);
  }
  return r;
}

/**
 * Clean build of the publishing output (tsconfig.build.json: src -> dist) of the given packages.
 * dist/ is removed first so that a file deleted from src cannot linger in a tarball.
 * @param {WorkspacePackage[]} pkgs
 */
export function buildForPublish(pkgs) {
  for (const p of pkgs) rmSync(join(p.dir, 'dist'), { recursive: true, force: true });
  const tsc = require.resolve('typescript/bin/tsc');
  run(process.execPath, [tsc, '-b', ...pkgs.map((p) => join(p.relDir, 'tsconfig.build.json'))], { cwd: repoRoot });
}
