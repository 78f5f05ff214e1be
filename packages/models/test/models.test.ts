import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor, graphStatistics, type Graph } from '@tensorpress/core-tensor';
import { mlp, mobileNetCnn, plainCnn, referenceModels, residualCnn } from '@tensorpress/models';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await import('@tensorflow/tfjs-layers');
});

const totalParams = (g: Graph): number => g.params.reduce((s, p) => s + p.data.length, 0);
const trainableParams = (g: Graph): number => g.params.filter((p) => p.trainable).reduce((s, p) => s + p.data.length, 0);

/** Expected counts on 28x28x1 with 10 classes, derived layer by layer in the comments. */
const EXPECTED = {
  // conv1 288, bn1 128, conv2 9216, bn2 128, conv3 18432, bn3 256, fc1 576*128+128, fc2 1290.
  plainCnn: { params: 103_594, bnStats: 2 * (32 + 32 + 64), macs: 225_792 + 1_806_336 + 903_168 + 73_728 + 1_280 },
  // stem 144+64; block1 2*(2304+64); block2 4608+9216+512 + 3*128; block3 18432+36864+2048 + 3*256; fc 650.
  residualCnn: {
    params: 78_426,
    bnStats: 2 * (16 + 2 * 16 + 3 * 32 + 3 * 64),
    macs: 112_896 + 2 * 451_584 + 225_792 + 451_584 + 25_088 + 294_912 + 589_824 + 32_768 + 640,
  },
  // stem 144+64; ds1 dw 144+64, pw 384+96; ir1 2304+384, 864+384, 2304+96; ds2 dw 216+96, pw 1536+256;
  // head 8192+512; fc 1290.
  mobileNetCnn: {
    params: 19_330,
    bnStats: 2 * (16 + 16 + 24 + 96 + 96 + 24 + 24 + 64 + 128),
    macs: 28_224 + 28_224 + 75_264 + 451_584 + 169_344 + 451_584 + 10_584 + 75_264 + 401_408 + 1_280,
  },
  // 784*256+256, 256*128+128, 128*10+10.
  mlp: { params: 235_146, bnStats: 0, macs: 200_704 + 32_768 + 1_280 },
} as const;

describe('referenceModels', () => {
  for (const name of ['plainCnn', 'residualCnn', 'mobileNetCnn', 'mlp'] as const) {
    describe(name, () => {
      it('builds with the documented parameter and MAC counts', () => {
        const g = referenceModels[name]();
        const e = EXPECTED[name];
        expect(totalParams(g)).toBe(e.params);
        expect(trainableParams(g)).toBe(e.params - e.bnStats);
        const s = graphStatistics(g);
        expect(s.total.params).toBe(e.params);
        expect(s.total.macs).toBe(e.macs);
        expect(g.inputs).toEqual([{ name: 'input', shape: [null, 28, 28, 1], dtype: 'float32' }]);
        expect(g.outputs).toHaveLength(1);
        expect(g.info(g.outputs[0]!).shape).toEqual([null, 10]);
        // Logits: the graph ends in a Gemm, no softmax.
        expect(g.producer(g.outputs[0]!)!.node.op).toBe('Gemm');
      });

      it('runs forward in both modes without leaking tensors', () => {
        const g = referenceModels[name]({ numClasses: 7 });
        const ex = new Executor(g);
        const x = tf.randomNormal([3, 28, 28, 1], 0, 1, 'float32', 1);
        const before = tf.memory().numTensors;
        for (const training of [false, true]) {
          const out = ex.run(x, { training });
          expect(out).toHaveLength(1);
          expect(out[0]!.shape).toEqual([3, 7]);
          expect(Array.from(out[0]!.dataSync()).every(Number.isFinite)).toBe(true);
          tf.dispose(out);
        }
        expect(tf.memory().numTensors).toBe(before);
        x.dispose();
        ex.dispose();
      });

      it('is seeded: same seed, same weights; another seed, other weights', () => {
        const a = referenceModels[name]({ seed: 5 });
        const b = referenceModels[name]({ seed: 5 });
        const c = referenceModels[name]({ seed: 6 });
        const w = (g: Graph) => Array.from(g.params.find((p) => p.name.endsWith('.weight'))!.data);
        expect(w(a)).toEqual(w(b));
        expect(w(a)).not.toEqual(w(c));
        expect(a.nodes.map((n) => n.name)).toEqual(c.nodes.map((n) => n.name));
      });

      it('scales with width and accepts other input shapes', () => {
        const shape = name === 'mlp' ? [12] : [32, 32, 3];
        const g = referenceModels[name]({ inputShape: shape, numClasses: 4, width: 0.5 });
        expect(g.inputs[0]!.shape).toEqual([null, ...shape]);
        expect(g.info(g.outputs[0]!).shape).toEqual([null, 4]);
        expect(totalParams(g)).toBeLessThan(totalParams(referenceModels[name]({ inputShape: shape, numClasses: 4 })));
        const ex = new Executor(g);
        const [y] = ex.run(tf.zeros([2, ...shape]));
        expect(y!.shape).toEqual([2, 4]);
        tf.dispose(y);
        ex.dispose();
      });
    });
  }

  it('has stable node names', () => {
    const names = (g: Graph) => g.nodes.map((n) => n.name);
    expect(names(plainCnn())).toEqual([
      'conv1', 'bn1', 'relu1', 'pool1', 'conv2', 'bn2', 'relu2', 'pool2', 'conv3', 'bn3', 'relu3', 'pool3',
      'flatten', 'fc1', 'relu4', 'fc2',
    ]);
    expect(names(mlp())).toEqual(['flatten', 'fc1', 'relu1', 'fc2', 'relu2', 'fc3']);
    const res = residualCnn();
    expect(names(res)).toEqual(expect.arrayContaining(['stem.conv', 'block1.add', 'block2.down', 'block2.down_bn', 'block3.add', 'gap', 'fc']));
    // The identity block adds its input; the downsampling blocks add a strided 1x1 conv + BN.
    expect(res.requireNode('block1.add').inputs).toEqual(['block1.bn2', 'stem.pool']);
    expect(res.requireNode('block2.add').inputs).toEqual(['block2.bn2', 'block2.down_bn']);
    expect(res.requireNode('block2.down').attrs['strides']).toEqual([2, 2]);
    const mb = mobileNetCnn();
    expect(names(mb)).toEqual(expect.arrayContaining(['stem.conv', 'ds1.dw', 'ds1.pw', 'ir1.expand', 'ir1.dw', 'ir1.project', 'ir1.add', 'ds2.dw', 'ds2.pw', 'head.conv', 'fc']));
    expect(mb.requireNode('ir1.add').inputs).toEqual(['ir1.project_bn', 'ds1.pw_relu']);
    expect(mb.requireNode('ir1.dw').attrs['group']).toBe(96);
    expect(mb.requireNode('ds2.dw').attrs['group']).toBe(24);
    expect(mb.requireNode('ds2.dw').attrs['strides']).toEqual([2, 2]);
    expect(mb.requireNode('stem.relu').op).toBe('Clip');
  });

  it('rejects bad options with the JSON path', () => {
    expect(() => plainCnn({ inputShape: [784] })).toThrow(/\$\.inputShape/);
    expect(() => mlp({ numClasses: 0 })).toThrow(/\$\.numClasses/);
    expect(() => residualCnn({ width: -1 })).toThrow(/\$\.width/);
  });
});
