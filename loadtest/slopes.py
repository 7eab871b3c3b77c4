#!/usr/bin/env python3
"""The trend of every column of a soak's samples after the warm-up.

    python3 loadtest/slopes.py target/loadtest/soak-samples.csv 5m

For each column: the mean, the least-squares slope per hour, and that slope as
a share of the mean: a figure that stays flat has a slope near 0 %/h.
"""
import csv
import sys


def seconds(text):
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def main(path, warmup):
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if float(r["seconds"]) >= seconds(warmup)]
    if len(rows) < 3:
        sys.exit(f"slopes: only {len(rows)} samples after the warm-up")
    t = [float(r["seconds"]) / 3600 for r in rows]
    print(f"{len(rows)} samples from {t[0] * 60:.1f} to {t[-1] * 60:.1f} min")
    print(f"{'figure':<16} {'mean':>12} {'slope /h':>12} {'% of mean /h':>13}")
    for column in rows[0]:
        if column == "seconds":
            continue
        y = [float(r[column] or 0) for r in rows]
        n, mt, my = len(t), sum(t) / len(t), sum(y) / len(y)
        cov = sum((a - mt) * (b - my) for a, b in zip(t, y))
        var = sum((a - mt) ** 2 for a in t)
        slope = cov / var if var else 0.0
        share = 100 * slope / my if my else 0.0
        print(f"{column:<16} {my:>12.1f} {slope:>12.1f} {share:>12.2f}%")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "0s")
