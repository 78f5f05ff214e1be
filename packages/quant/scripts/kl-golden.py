#!/usr/bin/env python3
"""Golden thresholds of entropy (KL) calibration from independent transcriptions of the two
published procedures, for packages/quant/test/calib-kl-golden.test.ts.

- TensorRT (NVIDIA pytorch-quantization, calib/histogram.py `_compute_amax_entropy`): histogram of
  |x| (2048 bins over [0, max|x|]); bin 0 replaced by bin 1; candidates i = 128 .. bins; bin j < i
  goes to quantized bin digitize(j, linspace(0, i, Q + 1)) - 1; Q spread over the non-zero bins of
  each group; P = first i bins plus the clipped mass in bin i - 1; no smoothing (scipy's entropy:
  infinite where Q is 0 and P is not); the last argmin; amax = edges[i]. Q = 2^(bits-1), or 2^bits
  unsigned. This is the variant @tensorpress/quant follows: the test compares the chosen i and the
  divergences, and the i chosen with start_bin = bins / 2 (the package's default floor, PaddleSlim's
  search range: `cal_kl_threshold` starts at the middle of its 2048-bin |x| histogram).
- ONNX Runtime (onnxruntime/python/tools/quantization/calibrate.py, HistogramCollector
  `get_entropy_threshold`, same as MXNet's): histogram of x over [-T, T] (T = max|x|; EntropyCalibrater
  defaults: 128 bins, 128 quantized bins); candidates grow symmetrically from the centre bin
  (bins // 2); floor(size / Q) bins per group with the remainder added to the last group; Q is
  expanded over each group's first floor(size / Q) bins, into an int64 array (truncating), counting
  the zero bins of P in the group's norm only as zero; P and Q smoothed with eps = 1e-4 (zeros get eps,
  non-zeros lose eps * zeros / nonzeros); the first argmin; threshold = (edges[start], edges[end])
  clamped to [min, max]. Recorded for the README's comparison only (we do not follow it).

Inputs: seeded synthetic samples (generated here) and, when present, real activation histograms of
the bench models (test/fixtures/kl-activations.json, written by `npm run bench -- quant-kl`).
Output: test/fixtures/kl-golden.json. Run: /usr/bin/python3 packages/quant/scripts/kl-golden.py
(numpy only). Tests only read the committed JSON; they never need Python.
"""
import json
import math
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, '..', 'test', 'fixtures')


def rel_entropy(p, q):
    """scipy.stats.entropy(p, q): both normalised, sum of p*log(p/q); inf where q = 0 < p."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    sp = p.sum()
    sq = q.sum()
    if sp == 0 or sq == 0:
        return float('nan')
    p = p / sp
    q = q / sq
    total = 0.0
    for a, b in zip(p, q):
        if a > 0:
            if b <= 0:
                return float('inf')
            total += a * math.log(a / b)
    return total


def trt_entropy(counts, quant_bins, start_bin=128):
    """TensorRT's search: returns (i, divergences by i)."""
    bins = np.array(counts, dtype=np.float64)
    bins[0] = bins[1]
    n = len(bins)
    divs = {}
    for i in range(min(start_bin, n), n + 1):
        space = np.linspace(0, i, num=quant_bins + 1)
        group = np.digitize(np.arange(i), space) - 1
        group[bins[:i] == 0] = -1
        per_group = np.zeros(quant_bins)
        members = np.zeros(quant_bins)
        for j in range(i):
            if group[j] >= 0:
                per_group[group[j]] += bins[j]
                members[group[j]] += 1
        q = np.zeros(i)
        for j in range(i):
            if group[j] >= 0:
                q[j] = per_group[group[j]] / members[group[j]]
        p = bins[:i].copy()
        p[-1] += bins[i:].sum()
        divs[i] = rel_entropy(p, q)
    keys = sorted(divs)
    values = np.array([divs[k] for k in keys])
    # numpy's argmin on the reversed array: the last minimum (NaN never occurs in these cases).
    assert not np.isnan(values).any()
    last = len(values) - 1 - int(np.argmin(values[::-1]))
    return keys[last], divs


def trt_record(counts, qb, amax):
    i, divs = trt_entropy(counts, qb)
    # The same search from the middle of the histogram (start_bin = bins / 2: PaddleSlim's range).
    ih, _ = trt_entropy(counts, qb, start_bin=len(counts) // 2)
    return {
        'quantBins': qb,
        'best': i,
        'amax': i * amax / len(counts),
        'divergence': {str(k): (None if math.isinf(v) else v) for k, v in divs.items() if k % 64 == 0 or k == i},
        'bestFromHalf': ih,
        'amaxFromHalf': ih * amax / len(counts),
    }


def smooth(p, eps=1e-4):
    zeros = (p == 0).astype(np.float32)
    nonzeros = (p != 0).astype(np.float32)
    nz = zeros.sum()
    nn = p.size - nz
    if not nn:
        return None
    eps1 = eps * float(nz) / float(nn)
    out = p.astype(np.float32)
    out += eps * zeros + (-eps1) * nonzeros
    return out


def ort_entropy(hist, edges, vmin, vmax, quant_bins=128):
    """ONNX Runtime's search on a histogram over [-T, T]: returns (lo, hi)."""
    n = hist.size
    zero = n // 2
    half = quant_bins // 2
    divs = np.zeros(zero - half + 1)
    thresholds = [None] * divs.size
    for i in range(half, zero + 1):
        start = zero - i
        end = min(zero + i + 1, n)
        thresholds[i - half] = (float(edges[start]), float(edges[end]))
        sliced = hist[start:end].copy()
        p = sliced.copy()
        p[0] += hist[:start].sum()
        p[-1] += hist[end:].sum()
        nonzero = (p != 0).astype(np.int64)
        merged = np.zeros(quant_bins, dtype=np.int64)
        per = sliced.size // quant_bins
        for g in range(quant_bins):
            merged[g] = sliced[g * per:(g + 1) * per].sum()
        merged[-1] += sliced[quant_bins * per:].sum()
        q = np.zeros(p.size, dtype=np.int64)
        for g in range(quant_bins):
            norm = nonzero[g * per:(g + 1) * per].sum()
            if norm != 0:
                q[g * per:(g + 1) * per] = merged[g] / norm
        ps = smooth(p)
        qs = smooth(q)
        divs[i - half] = float('inf') if ps is None or qs is None else rel_entropy(ps, qs)
    lo, hi = thresholds[int(np.argmin(divs))]
    return max(lo, float(vmin)), min(hi, float(vmax))


def abs_hist(x, bins=2048):
    """|x| on 2048 bins over [0, max|x|] (np.histogram's closed last bin)."""
    a = np.abs(np.asarray(x, dtype=np.float32)).astype(np.float64)
    counts, _ = np.histogram(a, bins=bins, range=(0.0, float(a.max())))
    return counts.astype(np.int64), float(a.max())


def ort_hist_from_samples(x, bins=128):
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    t = float(np.abs(x).max())
    hist, edges = np.histogram(x, bins, range=(-t, t))
    return hist.astype(np.int64), edges, float(x.min()), float(x.max())


def ort_hist_from_abs_counts(counts, amax, bins=128):
    """ORT's histogram of non-negative data: the left half empty, the right half our |x| bins merged."""
    half = bins // 2
    merged = np.asarray(counts, dtype=np.int64).reshape(half, -1).sum(axis=1)
    hist = np.concatenate([np.zeros(half, dtype=np.int64), merged])
    edges = np.linspace(-amax, amax, bins + 1)
    return hist, edges, 0.0, amax


def synthetic():
    rs = np.random.RandomState(20)
    cases = []
    # Post-ReLU-like: 55 % exact zeros, a half-normal bulk, a long tail of a few large values.
    relu = np.concatenate([np.zeros(22000), np.abs(rs.normal(0, 1.0, 17000)), rs.exponential(2.5, 1000)])
    cases.append(('relu-like', relu, True))
    # Laplace with far outliers (signed).
    lap = np.concatenate([rs.laplace(0, 1.0, 30000), [25.0, -30.0, 40.0]])
    cases.append(('laplace-outliers', lap, False))
    # Gaussian, no outliers (signed): the search should keep (nearly) everything.
    cases.append(('gauss', rs.normal(0, 1.0, 30000), False))
    return cases


def main():
    out = {
        'note': 'Generated by packages/quant/scripts/kl-golden.py (numpy only); see its docstring for the two procedures.',
        'cases': [],
    }
    for name, x, unsigned in synthetic():
        counts, amax = abs_hist(x)
        case = {'name': name, 'source': 'synthetic', 'unsigned': unsigned, 'absMax': amax, 'counts': counts.tolist(), 'trt': {}, 'ort': {}}
        for bits in (8, 6):
            qb = 2 ** (bits if unsigned else bits - 1)
            case['trt'][str(bits)] = trt_record(counts, qb, amax)
        for nb in (128, 2048):
            h, e, lo, hi = ort_hist_from_samples(x, nb)
            case['ort'][str(nb)] = list(ort_entropy(h, e, lo, hi))
        out['cases'].append(case)
    real = os.path.join(FIXTURES, 'kl-activations.json')
    if os.path.exists(real):
        with open(real) as f:
            acts = json.load(f)
        for a in acts['histograms']:
            counts = np.array(a['counts'], dtype=np.int64)
            amax = float(a['absMax'])
            unsigned = bool(a['unsigned'])
            case = {'name': a['name'], 'source': acts.get('source', 'bench'), 'unsigned': unsigned, 'absMax': amax, 'counts': counts.tolist(), 'trt': {}, 'ort': {}}
            for bits in (8,):
                qb = 2 ** (bits if unsigned else bits - 1)
                case['trt'][str(bits)] = trt_record(counts, qb, amax)
            if unsigned:
                for nb in (128, 2048):
                    h, e, lo, hi = ort_hist_from_abs_counts(counts, amax, nb)
                    case['ort'][str(nb)] = list(ort_entropy(h, e, lo, hi))
            out['cases'].append(case)
    os.makedirs(FIXTURES, exist_ok=True)
    with open(os.path.join(FIXTURES, 'kl-golden.json'), 'w') as f:
        json.dump(out, f, separators=(',', ':'))
        f.write('\n')
    for c in out['cases']:
        print(c['name'], {k: (v['best'], round(v['amax'], 4), v['bestFromHalf']) for k, v in c['trt'].items()}, 'ort', c['ort'], 'max', round(c['absMax'], 4))


if __name__ == '__main__':
    main()
