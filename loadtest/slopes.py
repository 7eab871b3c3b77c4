#!/usr/bin/env python3
"""The trend of every column of a soak's samples after the warm-up.

    python3 loadtest/slopes.py target/loadtest/soak-samples.csv 5m

For each column: the mean, the least-squares slope per hour, and that slope as
a share of the mean: a figure that stays flat has a slope near 0 %/h.

Then, for each node, RSS fitted to its connections and time together
(rss = a + b * connections + c * hours): b is what one connection costs, c is
what grows with time alone. Connections drift in a soak (each restart of
node 3 pushes its clients onto nodes 1 and 2), so RSS's own slope mixes the
two; c is the leak, if there is one.
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
    for node in ("1", "2"):
        rss, conns = f"rss_kib_{node}", f"connections_{node}"
        if rss not in rows[0] or conns not in rows[0]:
            continue
        fit = least_squares(
            [[1.0, float(r[conns] or 0), h] for r, h in zip(rows, t)],
            [float(r[rss] or 0) for r in rows],
        )
        if fit is None:
            print(f"node {node}: connections and time move together; no separate fit")
            continue
        a, b, c = fit
        mean = sum(float(r[rss] or 0) for r in rows) / len(rows)
        print(
            f"node {node}: RSS = {a:.0f} KiB + {b:.1f} KiB per connection"
            f" {c:+.0f} KiB/h ({100 * c / mean:+.2f} % of mean /h with connections held)"
        )


def least_squares(xs, y):
    """Solves the normal equations (X'X) beta = X'y; None when singular."""
    k = len(xs[0])
    m = [[sum(r[i] * r[j] for r in xs) for j in range(k)] + [sum(r[i] * v for r, v in zip(xs, y))] for i in range(k)]
    for col in range(k):
        pivot = max(range(col, k), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-9:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(k):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [a - f * b for a, b in zip(m[r], m[col])]
    return [m[i][k] / m[i][i] for i in range(k)]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "0s")
