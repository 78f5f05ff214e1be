/**
 * `npm run test:browser`: the packages in headless chromium on webgpu, webgl, wasm and cpu.
 * Builds apps/web with Vite, serves it, and checks in the page against the same computations in
 * Node on cpu (the reference). Exits non-zero on any failed check; writes
 * test-results/browser.json with every measured number.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { useBackend } from '@tensorpress/core-tensor';
import { loadMnist } from '@tensorpress/datasets';
import { buildPages, launch, openPage, serve, APP_DIR } from './browser.js';
import { gradientScale, MODEL_NAMES, relativeError, runCase, runFakeQuant, type CaseResult, type FakeQuantResult } from './cases.js';
import type { Harness, OnnxCheck, PipelineCheck } from './harness.js';
import type { PageBackend } from '../src/backends.js';

const BACKENDS: readonly PageBackend[] = (process.env['TENSORPRESS_BROWSER_BACKENDS']?.split(',') as PageBackend[] | undefined) ?? ['webgpu', 'webgl', 'wasm', 'cpu'];
/**
 * Largest relative error (max |diff| / max |reference| per tensor) accepted against cpu-in-Node.
 * Gradient tensors are scaled at least by GRADIENT_FLOOR times the model's largest gradient.
 */
const TOLERANCE = { logits: 1e-4, grads: 1e-3 };
const GRADIENT_FLOOR = 1e-3;
/** QAT steps in the page per backend (SwiftShader is slow; the point is that training runs). */
const QAT_STEPS = 6;
/**
 * Backends that run the QAT/PTQ/ONNX pipelines. Not webgpu by default: on SwiftShader's Vulkan every
 * new kernel shape compiles a pipeline, and the runs took ~5 minutes there on this 2-core machine
 * (TENSORPRESS_BROWSER_FULL=1 runs them on webgpu too). webgpu's training path is covered by the
 * gradient and fake-quantization checks.
 */
const PIPELINE_BACKENDS: readonly PageBackend[] = process.env['TENSORPRESS_BROWSER_FULL'] === '1' ? BACKENDS : ['webgl', 'wasm', 'cpu'];
/** ONNX in onnxruntime-web against the page's graph: FP32 absolute tolerance (DESIGN §5). */
const ONNX_FP32_ATOL = 1e-4;
const RESULTS_DIR = join(APP_DIR, '..', '..', 'test-results');

const failures: string[] = [];
const report: Record<string, unknown> = {};
function check(ok: boolean, what: string): void {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

/** Calls a harness method in the page. */
function call<K extends keyof Harness>(page: Page, method: K, ...args: Parameters<Harness[K]>): Promise<Awaited<ReturnType<Harness[K]>>> {
  return page.evaluate(
    ([m, a]) => {
      const h = (window as unknown as { tensorpressHarness: Record<string, (...x: unknown[]) => unknown> }).tensorpressHarness;
      return h[m]!(...a);
    },
    [method, args] as const,
  ) as Promise<Awaited<ReturnType<Harness[K]>>>;
}

function compareCases(backend: string, got: readonly CaseResult[], want: readonly CaseResult[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const ref of want) {
    const r = got.find((g) => g.model === ref.model);
    if (r == null) {
      check(false, `${backend} ${ref.model}: no result`);
      continue;
    }
    const logits = relativeError(r.logits, ref.logits);
    let worst = 0;
    let worstParam = '';
    const floor = GRADIENT_FLOOR * gradientScale(ref);
    const names = Object.keys(ref.grads);
    const sameParams = names.length === Object.keys(r.grads).length && names.every((n) => r.grads[n] != null);
    for (const n of names) {
      const e = relativeError(r.grads[n] ?? [], ref.grads[n]!, floor);
      if (process.env['TENSORPRESS_BROWSER_DEBUG'] != null && e > 1e-5) {
        const a = r.grads[n] ?? [];
        const b = ref.grads[n]!;
        console.log(`    ${backend} ${ref.model} ${n}: ${e.toExponential(2)} got ${a.slice(0, 6).map((v) => v.toPrecision(5)).join(' ')} want ${b.slice(0, 6).map((v) => v.toPrecision(5)).join(' ')}`);
      }
      if (!(e <= worst)) {
        worst = e;
        worstParam = n;
      }
    }
    check(logits <= TOLERANCE.logits, `${backend} ${ref.model}: logits rel. error ${logits.toExponential(2)} <= ${TOLERANCE.logits}`);
    check(
      sameParams && worst <= TOLERANCE.grads,
      `${backend} ${ref.model}: ${names.length} parameter gradients, worst rel. error ${worst.toExponential(2)} (${worstParam}) <= ${TOLERANCE.grads}`,
    );
    out[ref.model] = { logits, worstGradient: worst, worstParam, loss: r.loss, referenceLoss: ref.loss };
  }
  return out;
}

/**
 * Fake quantization in the page against Node's cpu, which runs quant's fused array kernels: on
 * webgl/webgpu the tensor-op path must serve it (no array kernels there) and agree. A value on a
 * rounding boundary may round the other way after a different float division, so up to 1% of the
 * outputs may differ by one step; the gradients of scale and zero point (sums over every element)
 * within 1e-3 relative.
 */
function compareFakeQuant(backend: string, got: FakeQuantResult & { leaked: number }, want: FakeQuantResult): Record<string, unknown> {
  const expectFused = backend === 'wasm' || backend === 'cpu';
  check(got.fused === expectFused, `${backend} fake-quant: ${got.fused ? 'fused array kernels' : 'tensor-op path'} (expected ${expectFused ? 'fused' : 'tensor ops'})`);
  const channels = want.scale.length;
  let flipped = 0;
  let worse = 0;
  for (let i = 0; i < want.y.length; i++) {
    const d = Math.abs(got.y[i]! - want.y[i]!);
    const step = want.scale[i % channels]!;
    if (d > 1e-6) flipped++;
    if (d > step * 1.0001) worse++;
  }
  const dx = got.dx.filter((v, i) => v !== want.dx[i]).length;
  const dScale = relativeError(got.dScale, want.dScale);
  const dZero = relativeError(got.dZeroPoint, want.dZeroPoint);
  check(
    worse === 0 && flipped <= 0.01 * want.y.length,
    `${backend} fake-quant forward: ${flipped} of ${want.y.length} values differ from Node (by at most one step: ${worse === 0})`,
  );
  check(dx <= 0.01 * want.dx.length, `${backend} fake-quant d/dx: ${dx} of ${want.dx.length} values differ`);
  check(dScale <= 1e-3 && dZero <= 1e-3, `${backend} fake-quant d/dscale, d/dzero point: rel. error ${dScale.toExponential(2)}, ${dZero.toExponential(2)} <= 1e-3`);
  check(got.leaked === 0, `${backend} fake-quant: no tensors leaked (${got.leaked})`);
  return { fused: got.fused, flipped, dxDiffer: dx, dScale, dZero };
}

function checkOnnx(what: string, float: OnnxCheck, quantized: OnnxCheck): void {
  check(float.maxAbsDiff <= ONNX_FP32_ATOL, `${what}: FP32 ONNX (${float.bytes} B) in onnxruntime-web, max |diff| ${float.maxAbsDiff.toExponential(2)} <= ${ONNX_FP32_ATOL}`);
  check(
    quantized.step != null && quantized.beyondStep === 0,
    `${what}: INT8 ONNX (${quantized.bytes} B) in onnxruntime-web, max |diff| ${quantized.maxAbsDiff.toExponential(2)}, ${quantized.beyondStep} values beyond one output step (${quantized.step})`,
  );
}

function checkPipeline(backend: string, kind: 'qat' | 'ptq', r: PipelineCheck): void {
  check(r.backend === backend, `${backend} ${kind}: ran on ${r.backend}`);
  if (kind === 'qat') {
    const finite = r.losses.length === QAT_STEPS && r.losses.every((l) => Number.isFinite(l));
    const first = r.losses[0] ?? NaN;
    const last = Math.min(...r.losses.slice(-2));
    check(finite && last < first, `${backend} qat: ${r.losses.length} steps in ${r.seconds.toFixed(1)} s, loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  } else {
    check(Number.isFinite(r.seconds), `${backend} ptq: calibrated and stripped in ${r.seconds.toFixed(1)} s`);
  }
  checkOnnx(`${backend} ${kind}`, r.float, r.quantized);
  check(r.leaked === 0, `${backend} ${kind}: no tensors leaked (${r.leaked})`);
}

/** The backend the app test picks (the app's own default is the best available: webgpu here, minutes on SwiftShader). */
const APP_BACKEND = process.env['TENSORPRESS_APP_BACKEND'] ?? 'wasm';

interface AppState {
  state: string;
  error?: string;
  backend?: string;
  fp32?: { accuracy: number; bytes: number };
  compressed?: { accuracy: number; bytes: number };
  onnx?: { bytes: number; maxAbsDiff: number; top1Agreement: number | null };
  downloads: string[];
}

/** `n` MNIST test digits as 28×28 24-bit BMP files (what a user might drop), named `<label>-<i>.bmp`. */
async function mnistBmps(n: number): Promise<{ name: string; mimeType: string; buffer: Buffer }[]> {
  const { test } = await loadMnist();
  const b = test.batches(n).next().value!;
  const px = b.x.dataSync();
  const labels = b.y.dataSync();
  b.x.dispose();
  b.y.dispose();
  return Array.from({ length: n }, (_, i) => {
    const buffer = Buffer.alloc(54 + 28 * 28 * 3);
    buffer.write('BM', 0, 'ascii');
    buffer.writeUInt32LE(buffer.length, 2);
    buffer.writeUInt32LE(54, 10);
    buffer.writeUInt32LE(40, 14);
    buffer.writeInt32LE(28, 18);
    buffer.writeInt32LE(28, 22);
    buffer.writeUInt16LE(1, 26);
    buffer.writeUInt16LE(24, 28);
    buffer.writeUInt32LE(28 * 28 * 3, 34);
    for (let r = 0; r < 28; r++) {
      for (let c = 0; c < 28; c++) {
        const v = Math.round(255 * px[i * 784 + r * 28 + c]!);
        buffer.fill(v, 54 + ((27 - r) * 28 + c) * 3, 54 + ((27 - r) * 28 + c) * 3 + 3); // rows bottom-up
      }
    }
    return { name: `${labels[i]}-${i}.bmp`, mimeType: 'image/bmp', buffer };
  });
}

/** The web app: its default pipeline (PTQ) on a builtin model to the end, the downloads offered, a screenshot saved. */
/** Presses the app's Run button and waits until its pipeline is done (or failed): the app's state then. */
async function runApp(page: Page): Promise<AppState> {
  await page.click('#run');
  await page.waitForFunction(
    () => {
      const s = (window as unknown as { tensorpressApp: { state: string } }).tensorpressApp.state;
      return s === 'done' || s === 'error';
    },
    undefined,
    { timeout: 600_000 },
  );
  return page.evaluate(() => (window as unknown as { tensorpressApp: AppState }).tensorpressApp);
}

async function checkApp(browser: Browser, url: string): Promise<unknown> {
  const t = Date.now();
  const { page, errors } = await openPage(browser, `${url}index.html`, 'tensorpressApp');
  try {
    await page.setViewportSize({ width: 1120, height: 1000 });
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', undefined, { timeout: 60_000 });
    await page.selectOption('#backend', APP_BACKEND);
    // Another pipeline than the default, by examples/ file name (for trying; the test runs the default).
    const pipeline = process.env['TENSORPRESS_APP_PIPELINE'];
    if (pipeline != null) await page.selectOption('#pipeline', pipeline);
    const app = await runApp(page);
    await mkdir(RESULTS_DIR, { recursive: true });
    await page.screenshot({ path: join(RESULTS_DIR, 'web-app.png'), fullPage: true });
    check(app.state === 'done', `app: default pipeline ran to the end on ${app.backend} (${app.state}${app.error ? `: ${app.error}` : ''})`);
    const links = await page.$$eval('#downloads a[download]', (as) => as.map((a) => (a as HTMLAnchorElement).download));
    check(links.includes('model.onnx') && links.includes('model.json') && links.some((l) => l.endsWith('.bin')), `app: downloads offered (${links.join(', ')})`);
    if (app.fp32 && app.compressed && app.onnx) {
      check(
        app.fp32.accuracy > 0.5 && app.compressed.accuracy >= app.fp32.accuracy - 0.05 && app.compressed.bytes < app.fp32.bytes,
        `app: FP32 ${(100 * app.fp32.accuracy).toFixed(1)}% / ${app.fp32.bytes} B -> compressed ${(100 * app.compressed.accuracy).toFixed(1)}% / ${app.compressed.bytes} B`,
      );
      check(app.onnx.top1Agreement === 1, `app: its ONNX in onnxruntime-web, max |diff| ${app.onnx.maxAbsDiff.toExponential(2)}, top-1 agreement ${app.onnx.top1Agreement}`);
    }
    console.log(`  app: ${((Date.now() - t) / 1000).toFixed(1)} s, screenshot test-results/web-app.png`);

    // Round trip: download the tfjs files it offers, drop them back in as the model, compress again.
    const saved: string[] = [];
    for (const name of links.filter((l) => l === 'model.json' || l.endsWith('.bin'))) {
      const [download] = await Promise.all([page.waitForEvent('download'), page.click(`#downloads a[download="${name}"]`)]);
      const file = join(RESULTS_DIR, 'web-app-download', name);
      await download.saveAs(file);
      saved.push(file);
    }
    await page.setInputFiles('#modelFiles', saved);
    await page.waitForFunction(() => document.getElementById('modelInfo')?.textContent?.startsWith('using model.json') === true, undefined, { timeout: 60_000 });
    const again = await runApp(page);
    const firstAccuracy = app.compressed?.accuracy ?? NaN;
    check(
      again.state === 'done' && again.fp32 != null && Math.abs(again.fp32.accuracy - firstAccuracy) <= 0.02,
      `app: its downloaded tfjs files dropped back in load with the same accuracy (${(100 * (again.fp32?.accuracy ?? NaN)).toFixed(1)}% vs ${(100 * firstAccuracy).toFixed(1)}%) and the pipeline runs on them${again.error ? `; ${again.error}` : ''}`,
    );
    // Not asserted, reported: the tfjs file emulates the int8 activations with float layers, and PTQ
    // of that emulation quantizes its Mul/Add steps again (a quant limitation, see apps/web/README.md).
    console.log(`  app: PTQ of the re-imported (already quantized) tfjs model: ${(100 * (again.compressed?.accuracy ?? NaN)).toFixed(1)}%`);
    // Dropped images: 20 MNIST test digits written as BMP files named `<label>-<i>.bmp`.
    const digits = await mnistBmps(20);
    await page.setInputFiles('#dataFiles', digits);
    await page.waitForFunction(() => document.getElementById('dataInfo')?.textContent === 'using 20 dropped images', undefined, { timeout: 60_000 });
    const images = await runApp(page);
    const usedImages = (await page.textContent('#log'))?.includes('data: 20 dropped images') === true;
    // The re-imported model scores on dropped digits as it scores on MNIST's test set (±15 points on 20 images).
    check(
      images.state === 'done' && usedImages && images.fp32 != null && Math.abs(images.fp32.accuracy - firstAccuracy) <= 0.15,
      `app: 20 dropped digit images decoded and used (model accuracy on them ${(100 * (images.fp32?.accuracy ?? NaN)).toFixed(0)}%)${images.error ? `; ${images.error}` : ''}`,
    );
    return { ...app, seconds: (Date.now() - t) / 1000, roundTrip: again, droppedImages: images };
  } finally {
    for (const e of errors) console.log(`  app page: ${e}`);
    await page.close();
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  await useBackend('cpu');
  const reference: CaseResult[] = [];
  for (const m of MODEL_NAMES) reference.push(await runCase(m));
  const fakeQuantRef = await runFakeQuant();
  console.log(`node references (cpu): ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const t1 = Date.now();
  const warnings = await buildPages();
  console.log(`vite build: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  // No Node built-in may reach the bundle: Vite would replace it with an empty stub and say so.
  const external = warnings.filter((w) => w.includes('externalized for browser compatibility'));
  check(external.length === 0, `bundle: no Node built-in on any package's browser import path${external.length ? `: ${external.join('; ')}` : ''}`);
  const { server, url } = await serve();
  const browser = await launch();
  try {
    for (const backend of BACKENDS) {
      const t = Date.now();
      const { page, errors } = await openPage(browser, `${url}test/harness.html`, 'tensorpressHarness');
      try {
        const started = await call(page, 'start', backend);
        check(started.name === backend, `${backend}: active in the page (${started.device}${started.software ? ', software' : ''})`);
        const { results, leaked } = await call(page, 'cases');
        check(leaked === 0, `${backend}: forward + gradients leak no tensors (${leaked})`);
        const cases = compareCases(backend, results, reference);
        if (backend === BACKENDS[0]) {
          const pkgs = await call(page, 'packages');
          const empty = Object.entries(pkgs).filter(([, n]) => n === 0);
          check(Object.keys(pkgs).length === 12 && empty.length === 0, `page: all ${Object.keys(pkgs).length} published packages but the CLI load in the browser`);
          const idx = await call(page, 'idx');
          check(
            idx.size === 2 && idx.shape.join() === '2,2,1' && idx.y.join() === '1,0' && Math.abs(idx.x[1]! - 0.2) < 1e-7 && idx.x[3] === 1,
            'page: loadIdxDataset on gzipped bytes (inflated with DecompressionStream)',
          );
        }
        const fq = await call(page, 'fakeQuant');
        const fakeQuant = compareFakeQuant(backend, fq, fakeQuantRef);
        report[backend] = { device: started.device, software: started.software, cases, fakeQuant };
        if (PIPELINE_BACKENDS.includes(backend)) {
          const qat = await call(page, 'qat', QAT_STEPS);
          checkPipeline(backend, 'qat', qat);
          const ptq = await call(page, 'ptq');
          checkPipeline(backend, 'ptq', ptq);
          Object.assign(report[backend] as object, { qat, ptq });
        }
      } catch (e) {
        check(false, `${backend}: ${(e as Error).message.split('\n').slice(0, process.env['TENSORPRESS_BROWSER_DEBUG'] != null ? 30 : 1).join('\n')}`);
      } finally {
        for (const e of errors) console.log(`  ${backend} page: ${e}`);
        await page.close();
      }
      console.log(`  ${backend}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
    report['app'] = await checkApp(browser, url);
  } finally {
    await browser.close();
    server.close();
  }
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'browser.json'), `${JSON.stringify({ failures, report }, null, 2)}\n`);
  console.log(failures.length === 0 ? 'browser tests: all passed' : `browser tests: ${failures.length} failed`);
  process.exitCode = failures.length === 0 ? 0 : 1;
}

await main();
