import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Graph, TensorpressError, createRng, useBackend } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { fromOnnx, toOnnx } from '@tensorpress/export-onnx';
import * as tf from '@tensorflow/tfjs-core';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { quantizeForTest } from './helpers/qdq-graph.js';

const { onnx } = onnxProto;

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

function seeds(): Uint8Array[] {
  // QOperator files (QLinearConv, ConvInteger, MatMulInteger), read through their QDQ expansion.
  const calib = tf.tidy(() => tf.randomUniform([16, 28, 28, 1], 0, 1, 'float32', 7));
  const qoperator = [
    toOnnx(quantizeForTest(referenceModels.mobileNetCnn({ seed: 0, width: 0.25 }), calib).graph, { format: 'qoperator' }),
    toOnnx(quantizeForTest(referenceModels.plainCnn({ seed: 0, width: 0.25 }), calib, { dynamicGemm: true, dynamicConv: true }).graph, { format: 'qoperator' }),
  ];
  calib.dispose();
  return [
    toOnnx(referenceModels.plainCnn({ seed: 0, width: 0.25 })),
    toOnnx(referenceModels.residualCnn({ seed: 0, width: 0.25 })),
    toOnnx(referenceModels.mobileNetCnn({ seed: 0, width: 0.25 })),
    ...qoperator,
    new Uint8Array(readFileSync(path.join(dir, 'mobilenetv3-tiny.onnx'))),
    new Uint8Array(readFileSync(path.join(dir, 'shufflenetv2-tiny.onnx'))),
  ];
}

beforeAll(async () => {
  await useBackend('wasm');
});

type Outcome = 'graph' | 'typed';

function attempt(bytes: Uint8Array): Outcome {
  try {
    const g = fromOnnx(bytes, { limits: { maxTensorElements: 2 ** 22, maxTotalElements: 2 ** 23 }, onWarning: () => {} });
    expect(g).toBeInstanceOf(Graph);
    return 'graph';
  } catch (e) {
    if (!(e instanceof TensorpressError)) throw new Error(`untyped ${(e as Error).name}: ${(e as Error).message}\n${(e as Error).stack}`);
    expect(e.message).not.toMatch(/^\s*at /m);
    return 'typed';
  }
}

/** Structured mutations: plausible protobuf with hostile values. */
function structured(base: Uint8Array, rng: ReturnType<typeof createRng>, k: number): Uint8Array {
  const m = onnx.ModelProto.decode(base);
  const g = m.graph!;
  const inits = g.initializer!;
  const nodes = g.node!;
  const pick = <T>(xs: T[]): T => xs[Math.floor(rng.next() * xs.length)]!;
  switch (k % 10) {
    case 0:
      pick(inits).dims = [2 ** 31, 2 ** 31];
      break;
    case 1:
      pick(inits).dataType = pick([0, 8, 9, 10, 16, 99, -1]);
      break;
    case 2: {
      const t = pick(inits);
      t.rawData = t.rawData!.subarray(0, Math.floor(rng.next() * t.rawData!.length));
      break;
    }
    case 3: {
      const t = pick(inits);
      t.dataLocation = 1;
      t.externalData = [{ key: 'location', value: pick(['../../etc/passwd', '/etc/passwd', 'w.bin']) }];
      break;
    }
    case 4:
      pick(nodes).input = [pick(['nope', '', 'x']), ...pick(nodes).input!.slice(1)];
      break;
    case 5:
      pick(nodes).attribute = [{ name: pick(['kernel_shape', 'pads', 'strides', 'group', 'axis', 'perm']), type: 7, ints: [-5, 0, 2 ** 40] }];
      break;
    case 6:
      m.opsetImport = [{ domain: '', version: pick([1, 7, 10, 22, 999]) }];
      break;
    case 7:
      g.input![0]!.type = { tensorType: { elemType: 1, shape: { dim: [{ dimValue: -3 }, { dimParam: 'h' }, { dimValue: 2 ** 40 }] } } };
      break;
    case 8: {
      const a = pick(nodes);
      const b = pick(nodes);
      a.input = [...(b.output ?? [])];
      b.input = [...(a.output ?? [])];
      break;
    }
    default:
      pick(nodes).opType = pick(['Loop', 'If', 'Scan', 'Conv', 'Gemm', 'Reshape', 'Foo']);
  }
  return onnx.ModelProto.encode(m).finish();
}

describe('fromOnnx (fuzz)', () => {
  it('≥ 1,000 mutated or truncated files each give a typed error or a valid graph', () => {
    const rng = createRng(2024);
    const bases = seeds();
    const counts: Record<Outcome, number> = { graph: 0, typed: 0 };
    let cases = 0;
    for (let i = 0; i < 1200; i++) {
      const base = bases[i % bases.length]!;
      let bytes: Uint8Array;
      const kind = i % 4;
      if (kind === 0) bytes = base.subarray(0, Math.floor(rng.next() * base.length));
      else if (kind === 1) {
        bytes = base.slice();
        const flips = 1 + Math.floor(rng.next() * 8);
        for (let f = 0; f < flips; f++) bytes[Math.floor(rng.next() * bytes.length)] = Math.floor(rng.next() * 256);
      } else if (kind === 2) {
        const at = Math.floor(rng.next() * base.length);
        const junk = Uint8Array.from({ length: 1 + Math.floor(rng.next() * 32) }, () => Math.floor(rng.next() * 256));
        bytes = new Uint8Array([...base.subarray(0, at), ...junk, ...base.subarray(at + Math.floor(rng.next() * 16))]);
      } else {
        try {
          bytes = structured(base, rng, i >> 2);
        } catch {
          bytes = base.subarray(0, 10);
        }
      }
      counts[attempt(bytes)]++;
      cases++;
    }
    expect(cases).toBeGreaterThanOrEqual(1000);
    expect(counts.typed).toBeGreaterThan(500);
    expect(counts.graph).toBeGreaterThan(0);
    expect(attempt(new Uint8Array(0))).toBe('typed');
    expect(attempt(Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f))).toBe('typed');
  });

  it('names the byte offset of a truncated file and refuses oversize input before parsing', () => {
    const base = toOnnx(referenceModels.mlp({ seed: 0, width: 0.1 }));
    let err: unknown;
    try {
      fromOnnx(base.subarray(0, base.length - 7));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TensorpressError);
    expect((err as TensorpressError).code).toBe('ONNX_INVALID');
    expect(typeof (err as TensorpressError).details['offset']).toBe('number');
    expect(() => fromOnnx(base, { limits: { maxBytes: 100 } })).toThrow(/limits.maxBytes/);
  });
});
