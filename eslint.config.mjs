// ESLint 9 flat config for the whole repo. `npm run lint` first refreshes Nx's cached project
// graph (scripts/nx-graph.mjs: the @nx rules only read that cache), then runs `eslint .`.
//
// - TypeScript: typescript-eslint's non-type-checked `recommended`, plus a short list of
//   type-aware rules that catch real bugs (floating/misused promises, non-exhaustive switches
//   over config discriminants, throwing non-Errors). The full `recommendedTypeChecked` set is
//   mostly `no-unsafe-*` noise on tfjs's loose types, so it is not used.
// - Package boundaries (DESIGN.md section 1): `@nx/enforce-module-boundaries` over the Nx
//   project graph, driven by the `nx.tags` in each package.json. Sources get the strict
//   constraints; tests may additionally use the private test-utils and the datasets.
import js from '@eslint/js';
import nx from '@nx/eslint-plugin';
import globals from 'globals';
import jsoncParser from 'jsonc-eslint-parser';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const TS_FILES = ['**/*.ts', '**/*.mts', '**/*.cts'];
const JS_FILES = ['**/*.js', '**/*.mjs', '**/*.cjs'];
const TEST_FILES = ['packages/*/test/**/*.ts', 'fuzz/**/*.test.ts'];

/** Who may import whom: DESIGN.md section 1. */
const sourceConstraints = [
  // kernels, the bottom package, imports no workspace package.
  { sourceTag: 'scope:kernels', onlyDependOnLibsWithTags: [] },
  // core-tensor imports kernels only.
  { sourceTag: 'scope:core', onlyDependOnLibsWithTags: ['scope:kernels'] },
  { sourceTag: 'scope:data', onlyDependOnLibsWithTags: ['scope:core'] },
  // quant, binary, sparsity, pruning, distill, mixed-precision, export-onnx, export-tfjs:
  // core (and its kernels) only, never another technique.
  { sourceTag: 'scope:technique', onlyDependOnLibsWithTags: ['scope:core', 'scope:kernels'] },
  { sourceTag: 'scope:test', onlyDependOnLibsWithTags: ['scope:core', 'scope:data', 'scope:kernels'] },
  // cli and bench may import everything.
  { sourceTag: 'scope:app', onlyDependOnLibsWithTags: ['*'] },
];

/**
 * Tests may also use the shared test helpers and the datasets, whatever their package; except
 * kernels' tests, which stay below core-tensor like kernels itself (the helpers import core). A
 * technique's tests may also use another technique as a devDependency (pruning's tests read ONNX
 * fixtures with export-onnx): tests ship in no package, so no user ever installs that edge.
 */
const testConstraints = sourceConstraints.map((c) =>
  c.sourceTag === 'scope:app' || c.sourceTag === 'scope:kernels'
    ? c
    : {
        sourceTag: c.sourceTag,
        onlyDependOnLibsWithTags: [
          ...new Set([...c.onlyDependOnLibsWithTags, 'scope:core', 'scope:data', 'scope:test', ...(c.sourceTag === 'scope:technique' ? ['scope:technique'] : [])]),
        ],
      },
);

const boundaryOptions = {
  enforceBuildableLibDependency: false,
  // Nx's graph is per project, not per file: core-tensor's *tests* importing test-utils or
  // datasets add edges that make test-utils -> core-tensor look like a cycle. Those cycles are
  // ignored; the tag constraints above still forbid core-tensor's sources importing either.
  ignoredCircularDependencies: [
    ['tag:scope:test', '*'],
    ['tag:scope:data', 'tag:scope:core'],
  ],
  // A lazily imported workspace package (e.g. cli loading a technique on demand) may be imported statically elsewhere.
  checkDynamicDependenciesExceptions: ['@tensorpress/*'],
};

export default defineConfig(
  {
    ignores: [
      '**/dist/**',
      '**/node_modules/**',
      '**/coverage/**',
      '**/*.d.ts',
      '**/.nx/**',
      '**/.tsbuild/**',
      'bench/results/**',
    ],
  },
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  js.configs.recommended,
  ...tseslint.configs.recommended.map((c) => ({ ...c, files: c.files ?? TS_FILES })),
  {
    files: TS_FILES,
    languageOptions: {
      parserOptions: {
        projectService: {
          // Root config files that no tsconfig includes.
          allowDefaultProject: ['vitest.config.ts'],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Type-aware rules that catch real bugs.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/prefer-promise-reject-errors': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true, requireDefaultForNonUnion: false },
      ],
      '@typescript-eslint/consistent-type-imports': [
        'error',
        // `typeof import('x')` stays allowed: it types a lazily imported optional module.
        { prefer: 'type-imports', fixStyle: 'separate-type-imports', disallowTypeAnnotations: false },
      ],
      '@typescript-eslint/consistent-type-exports': 'error',
      '@typescript-eslint/no-import-type-side-effects': 'error',
      // `_`-prefixed names are deliberately unused (positional arguments, destructuring).
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'after-used',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
      eqeqeq: ['error', 'smart'],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@tensorflow/*/dist/*', '@tensorflow/*/dist/**'],
              message:
                "Import '@tensorflow/tfjs-core' (the CJS node bundle, one engine per process); dist ESM files have extensionless imports that break in Node.",
            },
          ],
        },
      ],
    },
  },
  {
    // Plain-Node tooling scripts and this file: no type information, Node globals.
    files: JS_FILES,
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { ...globals.node },
    },
  },
  {
    files: ['packages/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts', 'fuzz/**/*.ts', 'apps/**/*.ts'],
    plugins: { '@nx': nx },
    rules: {
      '@nx/enforce-module-boundaries': ['error', { ...boundaryOptions, depConstraints: sourceConstraints }],
    },
  },
  {
    files: TEST_FILES,
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          ...boundaryOptions,
          depConstraints: testConstraints,
          // Tests import their own package by name (so they run on the public surface).
          allowCircularSelfDependency: true,
        },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector:
            "MemberExpression[object.name=/^(describe|it|test|suite)$/][property.name=/^(only|skip)$/]",
          message: 'No .only/.skip in committed tests (notes/CONVENTIONS.md).',
        },
      ],
    },
  },
  {
    // Every import of a published package's src must be declared in its package.json
    // (a user installs only what we declare), and nothing declared goes unused.
    files: ['packages/*/package.json'],
    languageOptions: { parser: jsoncParser },
    plugins: { '@nx': nx },
    // Optional backends that core-tensor probes by name at run time (no static import).
    rules: dependencyChecks([]),
  },
  {
    // The CLI finds techniques by name at run time (its KNOWN_TECHNIQUES) and installs the backends and
    // tfjs-layers that core-tensor loads by name: none of them is imported statically.
    files: ['packages/cli/package.json'],
    rules: dependencyChecks(['@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-layers', '@tensorpress/quant', '@tensorpress/pruning', '@tensorpress/sparsity']),
  },
);

/** The `@nx/dependency-checks` rule, ignoring what is loaded by name at run time (plus `extra`). */
function dependencyChecks(extra) {
  return {
    '@nx/dependency-checks': [
      'error',
      {
        buildTargets: ['build'],
        // scripts/ are development tools (e.g. quant's wasm assembler), not part of the published package
        ignoredFiles: ['{projectRoot}/test/**/*', '{projectRoot}/scripts/**/*', '{projectRoot}/**/*.test.ts', '{projectRoot}/tsconfig*.json'],
        checkMissingDependencies: true,
        checkObsoleteDependencies: true,
        checkVersionMismatches: true,
        includeTransitiveDependencies: false,
        ignoredDependencies: [
          '@tensorflow/tfjs-node',
          '@tensorflow/tfjs-node-gpu',
          '@tensorflow/tfjs-backend-webgpu',
          '@tensorflow/tfjs-backend-webgl',
          '@tensorflow/tfjs-backend-wasm',
          ...extra,
        ],
      },
    ],
  };
}
