// Shared by the pack-smoke jobs (copied beside each job's script in its temporary project).
// Plain Node ESM, no TypeScript loader: this is what a user gets from the registry.

/** Every installed @tensorpress package must resolve to its built dist/, never to a source file. */
export function checkResolution() {
  for (const name of (process.env.TENSORPRESS_SMOKE_PACKAGES ?? '').split(',').filter(Boolean)) {
    const file = new URL(import.meta.resolve(name)).pathname;
    console.log(`resolved ${name} -> ${file}`);
    if (!/\/node_modules\/@tensorpress\/[^/]+\/dist\/index\.js$/.test(file)) {
      throw new Error(`${name} resolved to ${file}, expected node_modules/${name}/dist/index.js`);
    }
  }
}

/**
 * The exports a job uses, by package; a missing one is reported by name rather than as "not a function".
 * @param {Record<string, [Record<string, unknown>, string[]]>} expected
 */
export function checkExports(expected) {
  const missing = Object.entries(expected).flatMap(([pkg, [mod, names]]) => names.filter((n) => !(n in mod)).map((n) => `${pkg}#${n}`));
  if (missing.length > 0) throw new Error(`missing exports: ${missing.join(', ')}`);
}

/** Throws with `message` unless `ok`. */
export function expect(ok, message) {
  if (!ok) throw new Error(message);
}

/** [0, 1, ..., n-1] */
export const range = (n) => Array.from({ length: n }, (_, i) => i);

/** A seeded dataset of `n` random 28x28x1 images with labels in 0..9 (no download, no files). */
export function randomImages(core, n, seed = 1) {
  const rng = core.createRng(seed);
  const x = new Float32Array(n * 28 * 28);
  for (let i = 0; i < x.length; i++) x[i] = rng.next();
  const y = new Int32Array(n).map((_, i) => i % 10);
  return core.arrayDataset({ x, y, exampleShape: [28, 28, 1], numClasses: 10 });
}
