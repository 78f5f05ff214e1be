import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import { AsymmetricQuantizer, DorefaActivationQuantizer, DorefaWeightQuantizer, LsqQuantizer, PactQuantizer, SymmetricQuantizer, TqtQuantizer, type Quantizer } from '@tensorpress/quant';
import { errorOf, expectNoLeak } from '@tensorpress/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { disposeKept, keep, run, W_SHAPE, wValues } from './quantizer-helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});
afterEach(disposeKept);

/** Makers of the activation quantizers that hold variables (DoReFa's holds none). */
const trainedActivationQuantizers: (() => Quantizer)[] = [
  () => new SymmetricQuantizer('a', 'activation', { bits: 8, mode: 'symmetric', signed: true, narrowRange: false }, 'ste', undefined),
  () => new AsymmetricQuantizer('a', 'activation', { bits: 8, mode: 'asymmetric', signed: false, narrowRange: false }, 'ste', undefined),
  () => new LsqQuantizer('a', 'activation', { bits: 4, mode: 'symmetric', signed: false, narrowRange: false }),
  () => new TqtQuantizer('a', 'activation', { bits: 4, mode: 'symmetric', signed: false, narrowRange: false }),
  () => new PactQuantizer('a', 4, { alphaInit: 'range', decay: 0 }),
];

describe('Quantizer state', () => {
  it('state()/loadState() round-trips every quantizer kind; apply leaks nothing inside a tidy', async () => {
    const w = tf.tensor(wValues, W_SHAPE);
    const x = tf.tensor1d([0.1, 0.7, -0.3]);
    const stats = { min: -0.3, max: 0.9, meanAbs: 0.3, featuresPerExample: 3 };
    const makers = [...trainedActivationQuantizers, () => new DorefaActivationQuantizer('a', 4)];
    for (const make of makers) {
      const a = keep(make());
      a.initActivation(stats);
      const b = keep(make());
      b.loadState(JSON.parse(JSON.stringify(a.state())));
      expect(b.initialized).toBe(true);
      const ya = tf.tidy(() => run(a, x, false));
      const yb = tf.tidy(() => run(b, x, false));
      expect(Array.from(yb.dataSync())).toEqual(Array.from(ya.dataSync()));
      expect(b.grid()).toEqual(a.grid());
      tf.dispose([ya, yb]);
      await expectNoLeak(() => tf.tidy(() => void run(a, x, true)));
    }
    const dw = keep(new DorefaWeightQuantizer('w', 4, w, 'max'));
    const dw2 = keep(new DorefaWeightQuantizer('w', 4, tf.tidy(() => tf.mul(w, 3)), 'max'));
    dw2.loadState(dw.state());
    expect(dw2.grid()).toEqual(dw.grid());
    expect(errorOf(() => keep(new SymmetricQuantizer('q', 'activation', { bits: 8, mode: 'symmetric', signed: true, narrowRange: false }, 'ste', undefined)).loadState({ vars: [[1, 2]] })).code).toBe('STATE_INVALID');
    tf.dispose([w, x]);
  });
});

describe('Quantizer leaks', () => {
  it('initActivation and loadState allocate no lasting tensors', async () => {
    const stats = { min: -1, max: 2, meanAbs: 0.5, featuresPerExample: 3 };
    const makers = trainedActivationQuantizers;
    for (const make of makers) {
      const q = keep(make());
      await expectNoLeak(() => q.initActivation(stats));
      const st = q.state();
      await expectNoLeak(() => q.loadState(st));
    }
  });
});
