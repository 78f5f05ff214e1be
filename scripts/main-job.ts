/**
 * The main job (`npm start`): `tensorpress compress` on embedded defaults. The builtin residual CNN
 * is trained on the embedded MNIST split (3 epochs, cached after the first run), pruned with FPGM to
 * −50% FLOPs and quantized to INT8 with QAT (examples/stacked.json), fine-tuned, exported to ONNX,
 * checked in onnxruntime-node and timed. Prints the FP32-vs-compressed table and where the ONNX
 * file and the report are. Output goes to ./tensorpress-out; a rerun replaces that folder's files
 * only when the folder is one tensorpress wrote (it holds the marker file), never a user's folder.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isTensorpressOutput, runCli } from '@tensorpress/cli';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.resolve(process.env['TENSORPRESS_OUT'] ?? 'tensorpress-out');
const args = [
  'compress',
  '--model',
  'builtin:residualCnn',
  '--data',
  'mnist',
  '--config',
  path.join(root, 'examples', 'stacked.json'),
  '--out',
  out,
];
if (await isTensorpressOutput(out)) args.push('--force');

const controller = new AbortController();
process.on('SIGINT', () => controller.abort());
const started = performance.now();
const code = await runCli(args, { signal: controller.signal });
if (code === 0) console.log(`main job done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
process.exit(code);
