/**
 * What the user drops: a model (a tfjs layers `model.json` with its weight shards, or an `.onnx`
 * file) and images (any format the browser decodes; the label is the first digit of the file name,
 * e.g. `7.png` or `digit-3-001.png`), turned into a graph and a dataset.
 */
import { arrayDataset, TensorpressError, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { fromOnnx } from '@tensorpress/export-onnx';
import { fromTfjsModel } from '@tensorpress/export-tfjs';

const bytesOf = async (f: File): Promise<Uint8Array> => new Uint8Array(await f.arrayBuffer());

/** A dropped model: one `.onnx`, or a `model.json` and the shard files its manifest names. */
export async function modelFromFiles(files: readonly File[]): Promise<{ graph: Graph; name: string }> {
  const onnx = files.find((f) => f.name.endsWith('.onnx'));
  if (onnx) return { graph: fromOnnx(await bytesOf(onnx)), name: onnx.name };
  const json = files.find((f) => f.name.endsWith('.json'));
  if (json == null) throw new TensorpressError('INPUT_INVALID', 'drop an .onnx file, or a tfjs model.json together with its weight files');
  const shards: Record<string, Uint8Array> = {};
  for (const f of files) if (f !== json) shards[f.name] = await bytesOf(f);
  return { graph: fromTfjsModel(await json.text(), shards), name: json.name };
}

/** Dropped images as a dataset of `shape` ([h, w, c], c = 1 grey or 3 RGB), pixels in [0, 1]. */
export async function imagesToDataset(files: readonly File[], shape: readonly number[], numClasses = 10): Promise<Dataset> {
  const [h, w, c] = shape as [number, number, number];
  if (shape.length !== 3 || (c !== 1 && c !== 3)) {
    throw new TensorpressError('INPUT_INVALID', `images need a model input of [height, width, 1 or 3], this model takes [${shape.join(', ')}]`);
  }
  const images = files.filter((f) => f.type.startsWith('image/'));
  if (images.length === 0) throw new TensorpressError('INPUT_INVALID', 'no image files among the dropped files');
  const x = new Float32Array(images.length * h * w * c);
  const y = new Int32Array(images.length);
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  for (let i = 0; i < images.length; i++) {
    const f = images[i]!;
    const digit = /\d/.exec(f.name)?.[0];
    if (digit == null || Number(digit) >= numClasses) {
      throw new TensorpressError('INPUT_INVALID', `${f.name}: the label is the first digit of the file name (0..${numClasses - 1}), found none`, { file: f.name });
    }
    y[i] = Number(digit);
    const bitmap = await createImageBitmap(f);
    ctx.clearRect(0, 0, w, h);
    ctx.drawImage(bitmap, 0, 0, w, h);
    bitmap.close();
    const px = ctx.getImageData(0, 0, w, h).data;
    for (let p = 0; p < h * w; p++) {
      const [r, g, b] = [px[4 * p]!, px[4 * p + 1]!, px[4 * p + 2]!];
      if (c === 1) x[i * h * w + p] = (0.299 * r + 0.587 * g + 0.114 * b) / 255;
      else for (let k = 0; k < 3; k++) x[(i * h * w + p) * 3 + k] = [r, g, b][k]! / 255;
    }
  }
  return arrayDataset({ x, y, exampleShape: [h, w, c], numClasses });
}
