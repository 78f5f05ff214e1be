/**
 * The multiply-accumulate loop of every register-blocked cpu kernel: Conv2D and both of its
 * gradients (cpu-conv.ts), BatchMatMul (cpu-misc.ts) and the depthwise weight gradient
 * (cpu-depthwise.ts). Each computes, per output position, a row of neighbouring outputs that are
 * dot products over the same walk through its inputs; they differ only in the walk, which is
 * passed as data (where each contiguous run starts, its length and strides).
 *
 * Why eight float64 locals: tfjs' cpu loops add every product into the float32 output (a load, a
 * convert and a store per multiply-add); eight sums in registers over a whole walk, stored once,
 * are straight scalar multiply-adds in V8.
 */

/**
 * Where the products of one output row come from: `runs` runs of `length` steps; step `i` of run
 * `r` multiplies `a[aStarts[r] + i·aStep + t·aLane]` by `b[bStarts[r] + i·bStep + t]` for output
 * lane `t`.
 *
 * `aLane` 0: every lane shares one `a` value per step (a conv's input pixel, a matrix row), and
 * `a`, `b` are float64 copies (a is read once per eight products, so the copy pays for itself).
 * `aLane` 1: `a` advances with the lanes (depthwise), and `a`, `b` are the float32 tensors
 * themselves: two loads per product make it memory-bound, so float64 copies would halve its speed.
 * Each case has its own loops, so every array read in them sees one element type (V8 keeps them
 * monomorphic).
 */
export type DotWalk = {
  aStarts: Int32Array;
  aStep: number;
  bStarts: Int32Array;
  bStep: number;
  /** How many runs of `aStarts`/`bStarts` to walk. */
  runs: number;
  /** Steps per run (0 or less: none). */
  length: number;
} & ({ aLane: 0; a: Float64Array; b: Float64Array } | { aLane: 1; a: Float32Array; b: Float32Array });

/**
 * `out[at + t] = Σ_r Σ_i a[aStarts[r] + i·aStep + t·aLane] · b[bStarts[r] + i·bStep + t]` for every
 * lane `t < lanes`, accumulated in float64 in exactly that order (runs, then steps) from 0, then
 * stored once. Lanes go eight at a time, the rest one at a time; a lane's sum is the same
 * whichever group it is in.
 */
export function dotLanes(out: Float32Array, at: number, lanes: number, w: DotWalk): void {
  const { a, aStarts, aStep, aLane, b, bStarts, bStep, runs, length } = w;
  const lanes8 = lanes - (lanes % 8);
  for (let t = 0; t < lanes8; t += 8) {
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let s4 = 0;
    let s5 = 0;
    let s6 = 0;
    let s7 = 0;
    for (let r = 0; r < runs; r++) {
      let ai = aStarts[r]! + t * aLane;
      let bi = bStarts[r]! + t;
      if (aLane === 0) {
        for (let i = 0; i < length; i++) {
          const v = a[ai]!;
          s0 += v * b[bi]!;
          s1 += v * b[bi + 1]!;
          s2 += v * b[bi + 2]!;
          s3 += v * b[bi + 3]!;
          s4 += v * b[bi + 4]!;
          s5 += v * b[bi + 5]!;
          s6 += v * b[bi + 6]!;
          s7 += v * b[bi + 7]!;
          ai += aStep;
          bi += bStep;
        }
      } else {
        for (let i = 0; i < length; i++) {
          s0 += a[ai]! * b[bi]!;
          s1 += a[ai + 1]! * b[bi + 1]!;
          s2 += a[ai + 2]! * b[bi + 2]!;
          s3 += a[ai + 3]! * b[bi + 3]!;
          s4 += a[ai + 4]! * b[bi + 4]!;
          s5 += a[ai + 5]! * b[bi + 5]!;
          s6 += a[ai + 6]! * b[bi + 6]!;
          s7 += a[ai + 7]! * b[bi + 7]!;
          ai += aStep;
          bi += bStep;
        }
      }
    }
    out[at + t] = s0;
    out[at + t + 1] = s1;
    out[at + t + 2] = s2;
    out[at + t + 3] = s3;
    out[at + t + 4] = s4;
    out[at + t + 5] = s5;
    out[at + t + 6] = s6;
    out[at + t + 7] = s7;
  }
  for (let t = lanes8; t < lanes; t++) {
    let s = 0;
    for (let r = 0; r < runs; r++) {
      let ai = aStarts[r]! + t * aLane;
      let bi = bStarts[r]! + t;
      // The same loop twice: one per element type (see DotWalk).
      if (aLane === 0) {
        for (let i = 0; i < length; i++, ai += aStep, bi += bStep) s += a[ai]! * b[bi]!;
      } else {
        for (let i = 0; i < length; i++, ai += aStep, bi += bStep) s += a[ai]! * b[bi]!;
      }
    }
    out[at + t] = s;
  }
}
