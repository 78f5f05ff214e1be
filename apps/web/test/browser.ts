/**
 * Shared plumbing of the browser tests and the browser bench: build the pages with Vite, serve the
 * build on 127.0.0.1, and drive Debian's chromium (headless, SwiftShader for WebGL2 and WebGPU)
 * through playwright-core, which downloads no browser.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build, createLogger } from 'vite';

export const APP_DIR = fileURLToPath(new URL('..', import.meta.url));
export const DIST_DIR = join(APP_DIR, 'dist');
export const CHROMIUM = process.env['TENSORPRESS_CHROMIUM'] ?? '/usr/bin/chromium';

/**
 * Headless, and software GPUs: WebGL2 with float render targets through ANGLE's SwiftShader, and a
 * WebGPU adapter on SwiftShader's Vulkan.
 */
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
];

/** Builds apps/web (app and test page) into apps/web/dist; returns the build's warnings (also printed). */
export async function buildPages(): Promise<string[]> {
  const warnings: string[] = [];
  const logger = createLogger('warn');
  const warn = logger.warn.bind(logger);
  logger.warn = (msg, options) => {
    warnings.push(msg);
    warn(msg, options);
  };
  await build({ configFile: join(APP_DIR, 'vite.config.ts'), logLevel: 'warn', customLogger: logger });
  return warnings;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** Serves `dir` on an ephemeral port of 127.0.0.1; returns the server and its base URL. */
export async function serve(dir: string = DIST_DIR): Promise<{ server: Server; url: string }> {
  const rootDir = resolve(dir);
  const server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    const file = normalize(join(rootDir, path.endsWith('/') ? `${path}index.html` : path));
    if (!file.startsWith(rootDir + sep)) {
      res.writeHead(403).end();
      return;
    }
    readFile(file).then(
      (body) => res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body),
      () => res.writeHead(404).end('not found'),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}/` };
}

/** Launches chromium, or says how to install it. */
export async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no chromium at ${CHROMIUM}: apt-get install -y chromium (or set TENSORPRESS_CHROMIUM)`);
  }
  return await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** Opens `path` of the served build and waits for `window[global]`; page errors and console errors are collected. */
export async function openPage(browser: Browser, url: string, global: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  await page.goto(url);
  await page.waitForFunction((g) => (window as unknown as Record<string, unknown>)[g] != null, global, { timeout: 120_000 });
  return { page, errors };
}
