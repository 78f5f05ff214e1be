// pack-smoke job "export-onnx": export-onnx with core-tensor: write ONNX, run it in onnxruntime-node.
import * as tf from '@tensorflow/tfjs-core';
import * as core from '@tensorpress/core-tensor';
import * as models from '@tensorpress/models';
import * as onnx from '@tensorpress/export-onnx';
import { checkExports, checkResolution, expect } from './check.mjs';

checkResolution();
checkExports({
  '@tensorpress/core-tensor': [core, ['useBackend']],
  '@tensorpress/models': [models, ['referenceModels']],
  '@tensorpress/export-onnx': [onnx, ['toOnnx', 'fromOnnx', 'checkParity']],
});

await core.useBackend('cpu');
const graph = models.referenceModels.residualCnn({ seed: 1 });
const bytes = onnx.toOnnx(graph);
const x = tf.randomUniform([8, 28, 28, 1], 0, 1, 'float32', 1);
const report = await onnx.checkParity(graph, bytes, x);
x.dispose();
console.log(`smoke: residualCnn, ${bytes.length} ONNX bytes, onnxruntime-node max |diff| ${report.maxAbsDiff.toExponential(2)}, top-1 agreement ${report.top1Agreement}`);
expect(report.maxAbsDiff < 1e-4 && report.top1Agreement === 1, 'onnxruntime disagrees with the graph');
const back = onnx.fromOnnx(bytes);
expect(back.nodes.length === graph.nodes.length, `read back ${back.nodes.length} nodes, wrote ${graph.nodes.length}`);
