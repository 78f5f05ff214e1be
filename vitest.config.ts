import { defineConfig } from 'vitest/config';

/**
 * Workspace packages resolve through the `@tensorpress/source` export condition to
 * `src/index.ts`, so tests run on source without a build. The node (SSR) environment has
 * its own condition list, hence both `resolve` and `ssr.resolve`; the rest of each list is
 * Vite's default, written out because Vite is not a direct dependency of the repo.
 * External (node_modules) packages keep Node's resolution: tfjs-core must load its CJS node
 * bundle so that the whole process shares one engine.
 */
const sourceCondition = '@tensorpress/source';

/** .ci/run sets this to read the pass/fail counts for its summary line. */
const jsonReport = process.env.TENSORPRESS_VITEST_JSON;

export default defineConfig({
  resolve: {
    conditions: [sourceCondition, 'module', 'node', 'development|production'],
  },
  ssr: {
    resolve: {
      conditions: [sourceCondition, 'module', 'node', 'development|production'],
    },
  },
  test: {
    // fuzz/'s test runs a seeded slice of the fuzz harness (the full run is `npm run fuzz`).
    include: ['packages/*/test/**/*.test.ts', 'fuzz/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    // Two cores shared with the rest of the machine: one worker per core. Numerics tests hold
    // a tfjs engine each, so more workers only thrash.
    fileParallelism: true,
    maxWorkers: 2,
    // Runner safety nets, not performance assertions: numerics on the cpu backend are slow.
    testTimeout: 600_000,
    hookTimeout: 600_000,
    teardownTimeout: 60_000,
    passWithNoTests: false,
    allowOnly: false,
    restoreMocks: true,
    reporters: jsonReport ? ['default', 'json'] : ['default'],
    ...(jsonReport ? { outputFile: { json: jsonReport } } : {}),
  },
});
