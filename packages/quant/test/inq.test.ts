import * as tf from '@tensorflow/tfjs-core';
import { GraphBuilder, arrayDataset, compress, fit, parsePipelineConfig, createBuilders, useBackend, type Graph } from '@tensorpress/core-tensor';
import { inq, inqLrSchedule, minErrorPowerOfTwoSet, nextPartition, powerOfTwoExponent, powerOfTwoSet, quantAlgorithms, quantizePowerOfTwo } from '@tensorpress/quant';
import { errorOf, maxAbsDiff, runOutput, seededArray, seededTensor } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

/** input [8] → fc1 (8→6) → relu → fc2 (6→3). */
function mlp(seed = 5): Graph {
  const b = new GraphBuilder({ seed });
  let h = b.input('input', [null, 8]);
  h = b.dense(h, 6, { name: 'fc1' });
  h = b.relu(h, 'r1');
  h = b.dense(h, 3, { name: 'fc2' });
  b.output(h);
  return b.build();
}

const data = () => arrayDataset({ x: seededArray(16 * 8, 3, -1, 1), y: Int32Array.from({ length: 16 }, (_, i) => i % 3), exampleShape: [8], numClasses: 3 });

describe('INQ power-of-two sets (Zhou et al. 2017, eq. 2–4)', () => {
  it('n1 = floor(log2(4s/3)), n2 = n1 + 1 − 2^(b−2): hand-derived values', () => {
    // s = 0.9: 4s/3 = 1.2 → n1 = 0; b = 5: n2 = 0 + 1 − 8 = −7
    expect(powerOfTwoSet(0.9, 5)).toEqual({ n1: 0, n2: -7 });
    // s = 0.75: 4s/3 = 1 exactly → n1 = 0 (the floor is exact); b = 3: n2 = 0 + 1 − 2 = −1
    expect(powerOfTwoSet(0.75, 3)).toEqual({ n1: 0, n2: -1 });
    // s = 0.7499: 4s/3 = 0.99987 → n1 = −1; b = 3: n2 = −2
    expect(powerOfTwoSet(0.7499, 3)).toEqual({ n1: -1, n2: -2 });
    // s = 3.1: 4.133 → n1 = 2; b = 4: n2 = 2 + 1 − 4 = −1
    expect(powerOfTwoSet(3.1, 4)).toEqual({ n1: 2, n2: -1 });
    // s = 0.05: 0.0667 → n1 = −4; b = 2: n2 = −4 (one exponent: {0, ±1/16})
    expect(powerOfTwoSet(0.05, 2)).toEqual({ n1: -4, n2: -4 });
    // the paper's example: b = 5 gives 8 exponents, 2·8 + 1 = 17 values
    const { n1, n2 } = powerOfTwoSet(0.9, 5);
    expect(n1 - n2 + 1).toBe(8);
    expect(errorOf(() => powerOfTwoSet(0, 5)).code).toBe('NUMERIC_INVALID');
  });

  it('quantizes to β·sgn(W) on (α+β)/2 ≤ |W| < 3β/2, zero below 2^(n2−1)', () => {
    const set = powerOfTwoSet(0.75, 3); // {0, ±0.5, ±1}
    const cases: [number, number][] = [
      [0, 0],
      [0.2499, 0],
      [0.25, 0.5], // (0 + 0.5)/2
      [-0.7499, -0.5],
      [0.75, 1], // (0.5 + 1)/2
      [-0.9, -1],
      [1.2, 1], // above s, below 3·1/2
    ];
    for (const [w, q] of cases) expect(quantizePowerOfTwo(w, set), `w = ${w}`).toBe(q);
    expect(powerOfTwoExponent(0.1, set)).toBe(-Infinity);
    // b = 5 around 2^-3 = 0.125: midpoints 3·2^-5 = 0.09375 and 3·2^-4 = 0.1875
    const s5 = powerOfTwoSet(0.9, 5);
    expect(quantizePowerOfTwo(0.0937, s5)).toBe(2 ** -4);
    expect(quantizePowerOfTwo(0.09375, s5)).toBe(2 ** -3);
    expect(quantizePowerOfTwo(0.1874, s5)).toBe(2 ** -3);
    expect(quantizePowerOfTwo(2 ** -8 - 1e-6, s5)).toBe(0);
    expect(quantizePowerOfTwo(2 ** -8, s5)).toBe(2 ** -7);
    // every value of the set maps to itself
    for (let k = s5.n2; k <= s5.n1; k++) expect(quantizePowerOfTwo(-(2 ** k), s5)).toBe(-(2 ** k));
  });
});

describe('INQ n1 by least error', () => {
  it('picks the shift of the paper set with the least squared error, hand-derived at 3 bits', () => {
    // One outlier 1.5 and k weights at 0.3. The paper's n1 = floor(log2(2)) = 1: levels {0, ±1, ±2},
    // zero below 0.5, so every 0.3 becomes 0 and 1.5 → 2: error 0.09k + 0.25.
    // n1 = 0 {0, ±0.5, ±1}: 0.3 → 0.5, 1.5 → 1: 0.04k + 0.25.
    // n1 = −1 {0, ±0.25, ±0.5}: 0.3 → 0.25, 1.5 → 0.5: 0.0025k + 1.
    // n1 = −2 {0, ±0.125, ±0.25}: 0.3 → 0.25, 1.5 → 0.25: 0.0025k + 1.5625.
    const w = (k: number): number[] => [1.5, ...Array.from({ length: k }, () => 0.3)];
    expect(powerOfTwoSet(1.5, 3)).toEqual({ n1: 1, n2: 0 });
    // k = 10: 1.15, 0.65, 1.025, 1.5875 → n1 = 0
    expect(minErrorPowerOfTwoSet(w(10), 3)).toEqual({ n1: 0, n2: -1 });
    // k = 30: 2.95, 1.45, 1.075, 1.6375 → n1 = −1
    expect(minErrorPowerOfTwoSet(w(30), 3)).toEqual({ n1: -1, n2: -2 });
    // Without an outlier: s = 0.75 → {0, ±0.5, ±1} and {0, ±0.25, ±0.5} both err 0.125; a tie keeps the paper's set.
    expect(minErrorPowerOfTwoSet([0.75, 0.5, -0.5, 0.75], 3)).toEqual(powerOfTwoSet(0.75, 3));
  });

  it('the builder uses it for n1: min_error (statistics report the chosen n1)', () => {
    const g = mlp();
    const ctrl = compress(g, [inq({ bits: 3, n1: 'min_error' })]);
    try {
      const rows = ctrl.statistics().algorithms[0]!.layers;
      for (const node of ['fc1', 'fc2']) {
        const n = g.requireNode(node);
        const w = g.param(n.inputs[1]!)!.data as Float32Array;
        const want = minErrorPowerOfTwoSet(w, 3);
        const row = rows.find((r) => r.node === node)!;
        expect([row['n1'], row['n2']]).toEqual([want.n1, want.n2]);
      }
    } finally {
      ctrl.dispose();
      ctrl.model.executor.dispose();
    }
  });
});

describe('INQ schedule and masks', () => {
  it('partitions by magnitude: 50%, 75%, 87.5%, 100% of the largest |w| first', () => {
    const w = [0.1, -0.9, 0.5, 0.3, -0.05, 0.7, 0.2, -0.4];
    const done = new Uint8Array(8);
    const steps: number[][] = [];
    for (const portion of [0.5, 0.75, 0.875, 1]) {
      const add = nextPartition(w, done, portion, 'magnitude');
      for (const i of add) done[i] = 1;
      steps.push(add);
    }
    expect(steps).toEqual([[1, 5, 2, 7], [3, 6], [0], [4]]);
    // random partition: a permutation decides, still reaching each portion's count
    const d2 = new Uint8Array(8);
    const order = Int32Array.from([3, 0, 7, 1, 6, 2, 5, 4]);
    expect(nextPartition(w, d2, 0.5, 'random', order)).toEqual([3, 0, 7, 1]);
  });

  it('advances the portion on the schedule (stepsPerStep) and reports bytes at b bits', async () => {
    const g = mlp();
    const ctrl = compress(g, [inq({ bits: 4, portions: [0.5, 0.75, 0.875, 1], stepsPerStep: 2 })]);
    const fractions: number[] = [];
    const stats = () => ctrl.statistics().algorithms[0]!;
    fractions.push(Number(stats().total['quantizedFraction']));
    await fit(ctrl.model.executor, data(), {
      epochs: 1,
      batchSize: 2,
      controller: ctrl,
      progress: false,
      callbacks: { onBatchEnd: () => void fractions.push(Number(stats().total['quantizedFraction'])) },
    });
    // fc1 48 weights, fc2 18: 0.5 → 24 + 9; 0.75 → 36 + 14 (round(13.5) = 14); 0.875 → 42 + 16 (round(15.75)); 1
    const n = 66;
    const at = [33 / n, 33 / n, 50 / n, 50 / n, 58 / n, 58 / n, 1, 1, 1];
    fractions.forEach((f, i) => expect(f, `after step ${i}`).toBeCloseTo(at[i]!, 12));
    const t = stats().total;
    expect(t['bytesAtBits']).toBe(Math.ceil((48 * 4) / 8) + Math.ceil((18 * 4) / 8));
    expect(t['floatBytes']).toBe(66 * 4);
    expect(stats().layers.map((l) => [l.node, l['n1'], l['n2']])).toEqual(
      ['fc1', 'fc2'].map((node) => {
        const w = g.param(`${node}.weight`)!.data as Float32Array;
        const s = Math.max(...Array.from(w, Math.abs));
        const { n1, n2 } = powerOfTwoSet(s, 4);
        return [node, n1, n2];
      }),
    );
    ctrl.dispose();
    ctrl.model.executor.dispose();
  });

  it('inqLrSchedule: cosine to 0 within each portion, restarting at the next, then over the final steps', () => {
    const lr = inqLrSchedule({ stepsPerStep: 4, retrainings: 2, finalSteps: 2 });
    // steps 0..3: 0.5·(1 + cos(π·t/4)) at base 1; step 4 restarts; 8..9 the final phase; after it 0
    const at = (g: number, spe = 3): number => lr(Math.floor(g / spe), g % spe, spe, 1);
    const c = (t: number): number => 0.5 * (1 + Math.cos(Math.PI * t));
    const want = [1, c(0.25), 0.5, c(0.75), 1, c(0.25), 0.5, c(0.75), 1, 0.5, 0, 0];
    want.forEach((v, g) => expect(at(g), `step ${g}`).toBeCloseTo(v, 12));
    // the steps count over the epochs: the same rates whatever the epoch length
    want.forEach((v, g) => expect(at(g, 5), `step ${g}`).toBeCloseTo(v, 12));
    expect(lr(0, 2, 4, 0.01)).toBeCloseTo(0.005, 12);
    // no final steps: 0 once every portion is quantized
    expect(inqLrSchedule({ stepsPerStep: 4, retrainings: 1, finalSteps: 0 })(0, 4, 10, 1)).toBe(0);
    const err = errorOf(() => inqLrSchedule({ stepsPerStep: 0, retrainings: 3, finalSteps: 10 }));
    expect([err.code, err.message]).toEqual(['CONFIG_INVALID', '$.stepsPerStep: expected an integer ≥ 1, got 0']);
    expect(errorOf(() => inqLrSchedule({ stepsPerStep: 4, retrainings: 3, finalSteps: 1.5 })).message).toContain('$.finalSteps');
  });

  it('the frozen part never moves under Adam through real fit steps (momentum included)', async () => {
    const g = mlp(9);
    const ctrl = compress(g, [inq({ bits: 5, portions: [0.5, 0.75, 1], stepsPerStep: 3 })]);
    const ex = ctrl.model.executor;
    const read = () => Float32Array.from(ex.variables().get('fc1.weight')!.dataSync());
    const doneOf = () => {
      const st = ctrl.controllers[0]!.state() as { layers: Record<string, { done: string }> };
      return st.layers['fc1']!.done;
    };
    let prev = read();
    let prevDone = doneOf();
    let checkedFrozen = 0;
    let movedFree = 0;
    let frozenWithMomentum = 0;
    const firstFree = Array.from(prevDone).map((c) => c === '0');
    await fit(ex, data(), {
      epochs: 2,
      batchSize: 2,
      optimizer: { type: 'adam', learningRate: 0.05 },
      controller: ctrl,
      progress: false,
      callbacks: {
        onBatchEnd: () => {
          const now = read();
          const done = doneOf();
          for (let i = 0; i < now.length; i++) {
            if (prevDone[i] === '1') {
              // bitwise the same value, a power of two or zero
              expect(now[i], `entry ${i}`).toBe(prev[i]);
              checkedFrozen++;
              if (firstFree[i]) frozenWithMomentum++;
            } else if (now[i] !== prev[i]) movedFree++;
            if (done[i] === '1') expect(now[i] === 0 || Number.isInteger(Math.log2(Math.abs(now[i]!))), `entry ${i} = ${now[i]}`).toBe(true);
          }
          prev = now;
          prevDone = done;
        },
      },
    });
    expect(checkedFrozen).toBeGreaterThan(0);
    // entries frozen at the later portions trained under Adam first (non-zero moments), and still stayed put
    expect(frozenWithMomentum).toBeGreaterThan(0);
    expect(movedFree).toBeGreaterThan(0);
    expect(doneOf()).toBe('1'.repeat(48));
    ctrl.dispose();
    ex.dispose();
  });

  it('strips to weights that are exactly 0 or ±2^k, n2 ≤ k ≤ n1, with the eval output of the trained model', async () => {
    for (const bits of [3, 5]) {
      const g = mlp(11);
      const ctrl = compress(g, [inq({ bits, portions: [0.5, 1], stepsPerStep: 2 })]);
      await fit(ctrl.model.executor, data(), { epochs: 1, batchSize: 4, controller: ctrl, progress: false });
      const sets = new Map(ctrl.statistics().algorithms[0]!.layers.map((l) => [l.node, { n1: Number(l['n1']), n2: Number(l['n2']) }]));
      const s = ctrl.strip();
      for (const node of ['fc1', 'fc2']) {
        const { n1, n2 } = sets.get(node)!;
        const q = s.param(`${node}.w_pow2`)!;
        expect(q.dtype).toBe(bits <= 4 ? 'int8' : 'int32');
        const scale = s.param(`${node}.w_pow2_scale`)!.data[0]!;
        expect(scale).toBe(2 ** n2);
        expect(s.param(`${node}.weight`)).toBeUndefined();
        let nonZero = 0;
        for (const c of q.data) {
          const w = c * scale;
          if (w === 0) continue;
          nonZero++;
          const k = Math.log2(Math.abs(w));
          expect(Number.isInteger(k), `${node}: ${w}`).toBe(true);
          expect(k).toBeGreaterThanOrEqual(n2);
          expect(k).toBeLessThanOrEqual(n1);
        }
        expect(nonZero).toBeGreaterThan(0);
      }
      const x = seededTensor([4, 8], 21);
      const [y] = ctrl.model.executor.run(x);
      expect(maxAbsDiff(runOutput(s, x), y!)).toBeLessThan(1e-5);
      tf.dispose([x, y!]);
      ctrl.dispose();
      ctrl.model.executor.dispose();
    }
  });

  it('is an algorithm of the pipeline config, with typed errors on bad params', () => {
    const cfg = parsePipelineConfig({ compression: [{ algorithm: 'inq', params: { bits: 3, partition: 'random' } }] }, quantAlgorithms);
    const builders = createBuilders(cfg, quantAlgorithms);
    expect(builders.map((b) => b.algorithm)).toEqual(['inq']);
    const bad = errorOf(() => parsePipelineConfig({ compression: [{ algorithm: 'inq', params: { portions: [0.5, 0.4, 1] } }] }, quantAlgorithms));
    expect(bad.name).toBe('ConfigError');
    expect(bad.message).toContain('portions');
    const last = errorOf(() => inq({ portions: [0.5, 0.9] }));
    expect(last.message).toContain('must be 1');
  });
});
