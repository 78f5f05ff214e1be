import { writeFileAtomic, type Graph } from '@tensorpress/core-tensor';
import { toOnnx, type ToOnnxOptions } from './writer.js';

/**
 * Writes a graph as an ONNX file atomically (core's `writeFileAtomic`: a temp file in the target's
 * folder, synced and renamed into place), so a failure never leaves a half-written model. Returns
 * the number of bytes written.
 *
 * @throws TensorpressError `IO_ERROR` naming the file.
 */
export async function writeOnnx(graph: Graph, file: string, options: ToOnnxOptions = {}): Promise<{ bytes: number }> {
  const bytes = toOnnx(graph, options);
  await writeFileAtomic(file, bytes);
  return { bytes: bytes.length };
}
