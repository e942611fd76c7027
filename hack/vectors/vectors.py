#!/usr/bin/env python3
"""Reference vectors for the analysis package, computed without the Go code.

Run with plain Python 3 (standard library only): python3 hack/vectors/vectors.py

The methods deliberately differ from analysis/*.go:
  (a) bucketed Mann-Whitney: each histogram is expanded into one tied observation per count,
      the combined sample is ranked with mid-ranks, U comes from the rank sum (and is checked
      against a count over all pairs), and the variance of U is the permutation variance of a
      rank sum, n1*n2/(N(N-1)) * sum (r - (N+1)/2)^2, in exact fractions; the Go code uses the
      closed-form tie correction over bucket counts.
  (b) bucketed Hodges-Lehmann: every pair of expanded observations gives one difference; all
      of them are sorted and the median and order statistics are read off by index; the Go
      code sorts weighted bucket-pair differences.
  (c) alpha spending: exact fractions, and the cumulative level as an explicit sum.
  (d) one-proportion confidence sequence: the rational part of log Lambda is evaluated in
      exact fractions, a grid on each side of x/n checks that the set is an interval (log
      Lambda itself is not monotone there), and each end is found by 200 bisections on exact
      rational points; the Go code bisects in float64.
  (e) log Lambda(p0) evaluated with the rational part in exact fractions.
"""

import math
import statistics
from fractions import Fraction

INF = math.inf
NORMAL = statistics.NormalDist()


# ----------------------------------------------------------------------------- histograms

def bucket_counts(cumulative):
    """Per-bucket counts: rounded cumulative counts differenced, negative differences read as 0.

    Rounding is half away from zero (Go's math.Round), not Python's round-half-to-even.
    """
    counts, previous = [], 0
    for c in cumulative:
        rounded = math.floor(c + 0.5)
        counts.append(max(0, rounded - previous))
        previous = rounded
    return counts


def expand(counts, values):
    """One observation per count, with the value of its bucket."""
    out = []
    for count, value in zip(counts, values):
        out.extend([value] * count)
    return out


def representatives(bounds):
    """Bucket midpoints (0 as the first lower edge); the +Inf bucket is its lower bound."""
    values, lower = [], 0.0
    for upper in bounds[:-1]:
        values.append((lower + upper) / 2 if upper > 0 else upper)
        lower = upper
    values.append(bounds[-2])
    return values


def mann_whitney(bounds, control_cum, experiment_cum):
    """U, sigma, Z and the one-sided p-value for the experiment being slower."""
    a, b = bucket_counts(control_cum), bucket_counts(experiment_cum)
    index = list(range(len(bounds)))  # the bucket index is all that matters for ranks
    x = expand(b, index)  # experiment
    y = expand(a, index)  # control
    n1, n2 = len(x), len(y)
    n = n1 + n2
    combined = sorted([(v, True) for v in x] + [(v, False) for v in y])
    ranks = [None] * n
    start = 0
    while start < n:
        end = start
        while end < n and combined[end][0] == combined[start][0]:
            end += 1
        mid = Fraction(start + 1 + end, 2)  # mean of ranks start+1 .. end
        for i in range(start, end):
            ranks[i] = mid
        start = end
    rank_sum_x = sum(r for r, (_, from_x) in zip(ranks, combined) if from_x)
    u = rank_sum_x - Fraction(n1 * (n1 + 1), 2)
    # Independent check: count the pairs directly.
    pairs = sum(Fraction(1) if xi > yj else Fraction(1, 2) if xi == yj else 0 for xi in x for yj in y)
    assert pairs == u, (pairs, u)
    centre = Fraction(n + 1, 2)
    variance = Fraction(n1 * n2, n * (n - 1)) * sum((r - centre) ** 2 for r in ranks)
    sigma = math.sqrt(variance)
    mean = Fraction(n1 * n2, 2)
    z = float(u - mean) / sigma
    return {
        "n1": n1, "n2": n2, "U": u, "sigma": sigma, "Z": z,
        "PGreater": NORMAL.cdf(-z), "PTwoSided": 2 * NORMAL.cdf(-abs(z)),
    }


def hodges_lehmann(bounds, control_cum, experiment_cum, confidence):
    """Median of all pairwise differences experiment - control, and its confidence interval."""
    values = representatives(bounds)
    x = expand(bucket_counts(experiment_cum), values)
    y = expand(bucket_counts(control_cum), values)
    diffs = sorted(xi - yj for xi in x for yj in y)
    total = len(diffs)
    estimate = statistics.median(diffs)  # mean of the two middle values for an even count
    sigma = mann_whitney(bounds, control_cum, experiment_cum)["sigma"]
    z = NORMAL.inv_cdf((1 + confidence) / 2)
    real_k = total / 2 - z * sigma
    k = max(1, math.floor(real_k))
    return {"estimate": estimate, "low": diffs[k - 1], "high": diffs[total - k], "k": k, "real_k": real_k}


# ----------------------------------------------------------------------- alpha spending

def look_alpha(alpha, look):
    return alpha / (look * (look + 1))


def alpha_spent(alpha, looks):
    return sum((look_alpha(alpha, k) for k in range(1, looks + 1)), Fraction(0))


# ----------------------------------------------------------- one-proportion mixture test

def log_lambda(x, n, p0, tau2):
    """log Lambda(p0) with p0, tau2 as Fractions; the rational part is exact."""
    v0 = p0 * (1 - p0) / n
    theta = Fraction(x, n) - p0
    if v0 == 0:
        return 0.0 if theta == 0 else INF
    quadratic = tau2 * theta * theta / (2 * v0 * (v0 + tau2))
    return 0.5 * math.log(v0 / (v0 + tau2)) + float(quadratic)


def check_interval(x, n, alpha, tau2, side, points=20000):
    """Check on a grid that {p0 : Lambda(p0) < 1/alpha} is an interval towards `side` (0 or 1).

    log Lambda is not monotone in p0: leaving x/n it can first fall, because the variance under
    p0 shrinks faster than theta grows, and then rise. Bisection only needs a single crossing of
    the bound, so the check is that once a grid point is outside the set, every point beyond it
    is too. Returns the number of direction changes of log Lambda seen along the grid.
    """
    rate = Fraction(x, n)
    if rate == side:
        return 0
    bound = math.log(1 / alpha)
    values = [log_lambda(x, n, rate + (side - rate) * Fraction(i, points), tau2) for i in range(1, points)]
    first_out = next((i for i, v in enumerate(values) if v >= bound), len(values))
    if any(v < bound for v in values[first_out:]):
        raise SystemExit(f"the confidence set is not an interval towards {side} for x={x}, n={n}")
    rising = [later > earlier for earlier, later in zip(values, values[1:])]
    return sum(1 for r0, r1 in zip(rising, rising[1:]) if r0 != r1)


def boundary(x, n, alpha, tau2, side, steps=200):
    """The end of {p0 : Lambda(p0) < 1/alpha} on the side of x/n towards `side`."""
    bound = math.log(1 / alpha)
    inside = Fraction(x, n)
    outside = Fraction(side)
    if log_lambda(x, n, outside, tau2) < bound:
        return float(outside)
    for _ in range(steps):
        mid = (inside + outside) / 2
        if log_lambda(x, n, mid, tau2) < bound:
            inside = mid
        else:
            outside = mid
    return float((inside + outside) / 2)


def confidence_sequence(x, n, alpha, tau2):
    turns = [check_interval(x, n, alpha, tau2, side) for side in (0, 1)]
    return boundary(x, n, alpha, tau2, 0), boundary(x, n, alpha, tau2, 1), turns


# ------------------------------------------------------------------------------- output

def g(v, digits=10):
    return f"{float(v):.{digits}g}"


def main():
    rows = []

    bounds_a = [0.05, 0.1, 0.25, 0.5, 1, INF]
    control_a = [10, 40, 70, 85, 95, 100]
    experiment_a = [5, 20, 50, 75, 90, 100]
    bounds_b = [0.1, 0.25, 0.5, INF]
    control_b = [6, 10, 12, 12]
    experiment_b = [2, 5, 9, 12]
    # Extrapolated counts: fractions to round, and a dip in the control (38.6 after 40.4).
    control_c = [10.4, 40.4, 38.6, 70.5, 95.2, 100.49]
    experiment_c = [4.5, 19.7, 50.2, 74.9, 90.1, 100.0]
    mw_cases = [
        ("a1", bounds_a, control_a, experiment_a),
        ("a2", bounds_b, control_b, experiment_b),
        ("a3", bounds_a, control_c, experiment_c),
    ]
    for name, bounds, control, experiment in mw_cases:
        r = mann_whitney(bounds, control, experiment)
        rows.append((name, "bucketed Mann-Whitney, ties within buckets",
                     f"bounds {fmt_bounds(bounds)}; control cumulative {control}; experiment cumulative {experiment}",
                     f"N1 = {r['n1']}, N2 = {r['n2']}, U = {g(r['U'])}, Sigma = {g(r['sigma'], 12)}, "
                     f"Z = {g(r['Z'], 12)}, PGreater = {g(r['PGreater'], 12)}, PTwoSided = {g(r['PTwoSided'], 12)}",
                     "expanding into tied observations, mid-ranks, permutation variance of the rank sum "
                     "(exact fractions); U also by counting all pairs"))

    for name, bounds, control, experiment in mw_cases:
        r = hodges_lehmann(bounds, control, experiment, 0.95)
        rows.append(("b" + name[1:], "bucketed Hodges-Lehmann, 95 % CI",
                     f"as {name}",
                     f"estimate = {g(r['estimate'], 12)}, CI [{g(r['low'], 12)}, {g(r['high'], 12)}] "
                     f"(k = {r['k']}, from {r['real_k']:.4f})",
                     "expanding into bucket midpoints, sorting all pairwise differences, reading the "
                     "median and the k-th order statistics by index"))

    alpha = Fraction(5, 100)
    looks = ", ".join(f"{g(look_alpha(alpha, k), 12)}" for k in (1, 2, 10, 100))
    rows.append(("c1", "LookAlpha", "alpha = 0.05; look = 1, 2, 10, 100", looks,
                 "computing alpha/(k(k+1)) in exact fractions"))
    rows.append(("c2", "AlphaSpent", "alpha = 0.05; looks = 10", g(alpha_spent(alpha, 10), 12),
                 "summing LookAlpha over looks 1..10 in exact fractions"))

    cs_cases = [
        (40, 1000, "0.05", "1e-4"),
        (100, 1000, "0.05", "1e-4"),
        (0, 500, "0.05", "1e-4"),
        (5, 83, "0.05", "0.0025"),
        (4000, 100000, "0.01", "1e-4"),
    ]
    for i, (x, n, alpha_text, tau2_text) in enumerate(cs_cases, 1):
        low, high, turns = confidence_sequence(x, n, Fraction(alpha_text), Fraction(tau2_text))
        shape = ("monotone on both sides" if turns == [0, 0] else
                 f"falls then rises ({turns[0]} and {turns[1]} turns below and above x/n)")
        rows.append((f"d{i}", "ProportionConfidenceSequence",
                     f"x = {x}, n = {n}, alpha = {alpha_text}, tau2 = {tau2_text}",
                     f"low = {low!r}, high = {high!r}",
                     f"checking a 20,000-point grid each side of x/n (log Lambda {shape}; the set is an "
                     "interval); 200 bisections on exact rationals, rational part of log Lambda in "
                     "exact fractions"))

    ll_cases = [(40, 1000, "0.05", "1e-4"), (100, 1000, "0.05", "1e-4"), (0, 500, "0.05", "1e-4")]
    for i, (x, n, p0_text, tau2_text) in enumerate(ll_cases, 1):
        value = log_lambda(x, n, Fraction(p0_text), Fraction(tau2_text))
        rows.append((f"e{i}", "ProportionLogLambda",
                     f"x = {x}, n = {n}, p0 = {p0_text}, tau2 = {tau2_text}",
                     f"log Lambda = {value!r}",
                     "evaluating the formula with its rational part in exact fractions"))

    print("| # | test | input | expected | how it was computed |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row[:4]) + f" | hack/vectors/vectors.py, by {row[4]} |")


def fmt_bounds(bounds):
    return "[" + ", ".join("+Inf" if b == INF else f"{b:g}" for b in bounds) + "]"


if __name__ == "__main__":
    main()
