#!/usr/bin/env python3
"""How well histogram_quantile recovers a latency from flowlatd's buckets (docs/metrics.md).

For RTTs spread log-uniformly over each range, every handshake of a label set takes the same
RTT times a jitter factor (lognormal, sigma 5 %: one path's spread). histogram_quantile is
computed as Prometheus 2.42 does: classic buckets interpolate linearly inside the bucket (the
first bucket from 0; +Inf gives the last finite bound); native buckets (schema 3) interpolate
linearly inside the bucket as well. Printed: the median and the worst relative error of p50
and p99 per range, for each bucket layout. Deterministic (fixed seed); no flowlatd needed.

    python3 bench/bucket_fidelity.py
"""
import bisect
import math
import random

OLD = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
       0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
NEW = [0.00001, 0.000025] + OLD
RANGES = [("datacenter 10-100 us", 10e-6, 100e-6), ("LAN 0.1-1 ms", 100e-6, 1e-3),
          ("metro 1-10 ms", 1e-3, 10e-3), ("WAN 10 ms-1 s", 10e-3, 1.0)]


def classic_quantile(q, bounds, values):
    counts = [0] * (len(bounds) + 1)
    for v in values:
        counts[bisect.bisect_left(bounds, v)] += 1
    rank = q * len(values)
    cum = 0
    for i, c in enumerate(counts):
        if cum + c >= rank and c > 0:
            if i == len(bounds):
                return bounds[-1]
            lo = 0.0 if i == 0 else bounds[i - 1]
            return lo + (bounds[i] - lo) * (rank - cum) / c
        cum += c
    return bounds[-1]


def native_quantile(q, values):
    counts = {}
    for v in values:
        k = math.ceil(math.log2(v) * 8 - 1e-12)
        counts[k] = counts.get(k, 0) + 1
    rank = q * len(values)
    cum = 0
    for k in sorted(counts):
        c = counts[k]
        if cum + c >= rank:
            lo, hi = 2 ** ((k - 1) / 8), 2 ** (k / 8)
            return lo + (hi - lo) * (rank - cum) / c
        cum += c
    return None


def main():
    rnd = random.Random(11)
    layouts = [("classic, old default (17 bounds from 50 us)", lambda q, v: classic_quantile(q, OLD, v)),
               ("classic, new default (19 bounds from 10 us)", lambda q, v: classic_quantile(q, NEW, v)),
               ("native, schema 3", native_quantile)]
    print(f"{'range':22} {'layout':46} {'p50 median':>10} {'p50 worst':>10} {'p99 median':>10} {'p99 worst':>10}")
    for name, lo, hi in RANGES:
        cases = []
        for _ in range(200):
            rtt = math.exp(rnd.uniform(math.log(lo), math.log(hi)))
            values = sorted(rtt * math.exp(rnd.gauss(0, 0.05)) for _ in range(400))
            cases.append(values)
        for label, quantile in layouts:
            err50, err99 = [], []
            for values in cases:
                true50 = values[len(values) // 2]
                true99 = values[int(len(values) * 0.99)]
                err50.append(abs(quantile(0.5, values) / true50 - 1))
                err99.append(abs(quantile(0.99, values) / true99 - 1))
            err50.sort()
            err99.sort()
            print(f"{name:22} {label:46} {err50[len(err50) // 2] * 100:9.1f}% {err50[-1] * 100:9.1f}%"
                  f" {err99[len(err99) // 2] * 100:9.1f}% {err99[-1] * 100:9.1f}%")


if __name__ == "__main__":
    main()
