/**
 * Per-step training time of plainCnn in chromium on each backend, for `npm run bench -- browser`
 * (bench/browser.ts runs this script and records what it prints). Prints one JSON line:
 * `{ rows: [...] }`, a row per backend with the renderer/adapter string.
 *
 * `node --conditions=@tensorpress/source --import tsx apps/web/test/step-time.ts [--quick] [--steps N]`
 */
import type { PageBackend } from '../src/backends.js';
import { buildPages, launch, openPage, serve } from './browser.js';
import type { Harness, StepTime } from './harness.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const at = args.indexOf('--steps');
const STEPS = at >= 0 ? Number(args[at + 1]) : quick ? 3 : 10;
const WARMUP = 2;
const BATCH = 32;
const BACKENDS: readonly PageBackend[] = ['webgpu', 'webgl', 'wasm', 'cpu'];

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

await buildPages();
const { server, url } = await serve();
const browser = await launch();
const rows: Record<string, unknown>[] = [];
const chromiumVersion = browser.version();
try {
  for (const backend of BACKENDS) {
    const { page } = await openPage(browser, `${url}test/harness.html`, 'tensorpressHarness');
    try {
      const started = await page.evaluate((b) => (window as unknown as { tensorpressHarness: Harness }).tensorpressHarness.start(b), backend);
      const t: StepTime = await page.evaluate(
        ([s, w, b]) => (window as unknown as { tensorpressHarness: Harness }).tensorpressHarness.stepTime(s, w, b),
        [STEPS, WARMUP, BATCH] as const,
      );
      const row = {
        backend: t.backend,
        device: started.device,
        software: started.software,
        model: 'plainCnn',
        params: t.params,
        batch: BATCH,
        steps: t.stepsMs.length,
        medianStepMs: Math.round(median(t.stepsMs) * 10) / 10,
        minStepMs: Math.round(Math.min(...t.stepsMs) * 10) / 10,
        firstStepMs: Math.round(t.warmupMs[0]! * 10) / 10,
        ...(backend === 'wasm' ? { note: 'one thread: the page is not cross-origin isolated' } : {}),
      };
      rows.push(row);
      process.stderr.write(`${JSON.stringify(row)}\n`);
    } catch (e) {
      rows.push({ backend, error: (e as Error).message.split('\n')[0] });
    } finally {
      await page.close();
    }
  }
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify({ rows, chromium: chromiumVersion }));
