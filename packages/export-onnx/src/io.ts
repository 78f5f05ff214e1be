import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { TensorpressError, type Graph } from '@tensorpress/core-tensor';
import { toOnnx, type ToOnnxOptions } from './writer.js';

/**
 * Writes a graph as an ONNX file atomically: the bytes go to a temp file in the target's folder,
 * are synced and renamed into place, so a failure never leaves a half-written model. Returns the
 * number of bytes written.
 */
export async function writeOnnx(graph: Graph, file: string, options: ToOnnxOptions = {}): Promise<{ bytes: number }> {
  const bytes = toOnnx(graph, options);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    if (e instanceof TensorpressError) throw e;
    throw new TensorpressError('IO_ERROR', `cannot write ${file}: ${(e as Error).message}`, { file });
  }
  return { bytes: bytes.length };
}
