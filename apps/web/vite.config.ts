import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

/**
 * One build for the web app (index.html) and the browser-test page (test/harness.html).
 * Workspace packages resolve through the `@tensorpress/source` condition to their TypeScript
 * sources, so no package build is needed; the rest of the list is Vite's browser default.
 */
const root = fileURLToPath(new URL('.', import.meta.url));
const require = createRequire(import.meta.url);

/** The WebAssembly binaries the page fetches at run time, served under `wasm/` (dev) and copied there (build). */
const WASM_FILES: Record<string, string> = {
  'ort-wasm-simd-threaded.wasm': join(dirname(require.resolve('onnxruntime-web')), 'ort-wasm-simd-threaded.wasm'),
  ...Object.fromEntries(
    ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'].map((f) => [
      f,
      join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), f),
    ]),
  ),
};

/** The builtin MNIST: the `mnist` package's ten digit files, served under `mnist/`. */
const MNIST_DIR = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
const MNIST_FILES: Record<string, string> = Object.fromEntries(Array.from({ length: 10 }, (_, c) => [`${c}.json`, join(MNIST_DIR, `${c}.json`)]));

/** The repo's example pipeline configs, served under `examples/` (the app lists examples/index.json). */
const EXAMPLES_DIR = join(root, '..', '..', 'examples');
const EXAMPLE_FILES: Record<string, string> = Object.fromEntries(
  readdirSync(EXAMPLES_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => [f, join(EXAMPLES_DIR, f)]),
);

/** Serves (dev) and copies (build) the run-time files: wasm/ binaries, mnist/ digits, examples/ configs. */
function runtimeFiles(): Plugin {
  const folders: Record<string, { files: Record<string, string>; type: string }> = {
    wasm: { files: WASM_FILES, type: 'application/wasm' },
    mnist: { files: MNIST_FILES, type: 'application/json' },
    examples: { files: EXAMPLE_FILES, type: 'application/json' },
  };
  return {
    name: 'tensorpress-runtime-files',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const m = /\/(wasm|mnist|examples)\/([\w.-]+)$/.exec(req.url?.split('?')[0] ?? '');
        const folder = m ? folders[m[1]!] : undefined;
        if (m?.[1] === 'examples' && m[2] === 'index.json') {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify(Object.keys(EXAMPLE_FILES)));
          return;
        }
        const file = folder?.files[m![2]!];
        if (file == null) {
          next();
          return;
        }
        res.setHeader('content-type', folder!.type);
        createReadStream(file).pipe(res);
      });
    },
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: 'examples/index.json', source: JSON.stringify(Object.keys(EXAMPLE_FILES)) });
      for (const [dir, { files }] of Object.entries(folders)) {
        for (const [name, file] of Object.entries(files)) this.emitFile({ type: 'asset', fileName: `${dir}/${name}`, source: readFileSync(file) });
      }
    },
  };
}

export default defineConfig({
  root,
  base: './',
  plugins: [runtimeFiles()],
  resolve: {
    conditions: ['@tensorpress/source', 'module', 'browser', 'development|production'],
  },
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 20_000,
    reportCompressedSize: false,
    rollupOptions: {
      // core-tensor imports the cpu backend lazily (Node installs need not bundle it); the page
      // imports it up front on purpose (src/backends.ts), so that lazy import cannot split a chunk.
      onwarn(warning, warn) {
        if (warning.code === 'INEFFECTIVE_DYNAMIC_IMPORT') return;
        warn(warning);
      },
      input: {
        main: `${root}index.html`,
        harness: `${root}test/harness.html`,
      },
    },
  },
  server: { port: 5173 },
});
