#!/usr/bin/env python3
"""Reference vectors for the analysis package, computed without the Go code.

Run with plain Python 3 (standard library only): python3 hack/vectors/vectors.py

The methods deliberately differ from analysis/*.go:
  (a) bucketed Mann-Whitney: each histogram is expanded into one tied observation per count,
      the combined sample is ranked with mid-ranks, U comes from the rank sum (and is checked
      against a count over all pairs), and the variance of U is the permutation variance of a
      rank sum, n1*n2/(N(N-1)) * sum (r - (N+1)/2)^2, in exact fractions; the Go code uses the
      closed-form tie correction over bucket counts.
  (b) bucketed Hodges-Lehmann, observations spread evenly within their buckets: for each pair
      of buckets, P(Y - X <= d) is integrated over X exactly (piecewise, in fractions) instead of
      using the closed-form trapezoid CDF; the mixture CDF is evaluated exactly at every point
      where it changes form, and each quantile is the root of the exact quadratic on the piece
      where the CDF crosses the level, taken to 60 decimal digits; the Go code uses the
      closed-form trapezoid CDF and bisects over the whole range of differences.
  (c) alpha spending: exact fractions, and the cumulative level as an explicit sum.
  (d) one-proportion confidence sequence: the rational part of log Lambda is evaluated in
      exact fractions, a grid on each side of x/n checks that the set is an interval (log
      Lambda itself is not monotone there), and each end is found by 200 bisections on exact
      rational points; the Go code bisects in float64.
  (e) log Lambda(p0) evaluated with the rational part in exact fractions.
"""

import decimal
import math
import statistics
from fractions import Fraction

INF = math.inf
NORMAL = statistics.NormalDist()
DECIMALS = decimal.Context(prec=60)


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


def bucket_spans(bounds):
    """Each bucket's range as exact decimal fractions, observations spread evenly over it.

    The first bucket runs from 0 to its bound (a single point when the bound is 0 or less), bucket
    k from Bounds[k-1] to Bounds[k], and the +Inf bucket is a point at the largest finite bound.
    """
    exact = [Fraction(str(b)) for b in bounds[:-1]]
    spans = [(Fraction(0), exact[0]) if exact[0] > 0 else (exact[0], exact[0])]
    spans += [(exact[k - 1], exact[k]) for k in range(1, len(exact))]
    spans.append((exact[-1], exact[-1]))
    return spans


def prob_at_most(value, span):
    """P(V <= value) for V uniform on span (lo, hi), or a point mass at lo when lo == hi."""
    lo, hi = span
    if value >= hi:
        return Fraction(1)
    if value <= lo:
        return Fraction(0)
    return (value - lo) / (hi - lo)


def prob_difference_at_most(d, y_span, x_span):
    """P(Y - X <= d) for independent Y on y_span and X on x_span, by integrating over X.

    P(Y - X <= d) is the mean over X of P(Y <= d + X). As a function of x, P(Y <= d + x) is
    linear (or constant) between the points where d + x meets an end of y_span, so the integral
    over x_span is summed exactly piece by piece with the midpoint rule; a point X is one
    evaluation.
    """
    a, b = x_span
    if a == b:
        return prob_at_most(d + a, y_span)
    c, e = y_span
    cuts = sorted({a, b} | {x for x in (c - d, e - d) if a < x < b})
    total = Fraction(0)
    for left, right in zip(cuts, cuts[1:]):
        total += (right - left) * prob_at_most(d + (left + right) / 2, y_span)
    return total / (b - a)


class DifferenceDistribution:
    """The distribution of Y - X for Y drawn from the experiment's observations and X from the
    control's, each observation spread evenly over its bucket."""

    def __init__(self, bounds, control_counts, experiment_counts):
        spans = bucket_spans(bounds)
        self.pairs = [(bj * ai, ys, xs)
                      for bj, ys in zip(experiment_counts, spans) if bj
                      for ai, xs in zip(control_counts, spans) if ai]
        self.total = sum(w for w, _, _ in self.pairs)
        # F is a quadratic between consecutive points where some pair's density changes slope.
        points = set()
        for _, (c, e), (a, b) in self.pairs:
            points |= {c - b, c - a, e - b, e - a}
        self.points = sorted(points)

    def cdf(self, d):
        return sum(w * prob_difference_at_most(d, ys, xs) for w, ys, xs in self.pairs) / self.total

    def quantile(self, t, strict=False):
        """The smallest d with F(d) >= t, or with F(d) > t when strict.

        F is exact at every breakpoint; on the piece before the first breakpoint that qualifies,
        F is a quadratic whose exact coefficients come from three interior points, and the
        crossing is its root, taken with 60-digit decimals.
        """
        passes = (lambda f: f > t) if strict else (lambda f: f >= t)
        m = next(i for i, x in enumerate(self.points) if passes(self.cdf(x)))
        if m == 0:
            return to_decimal(self.points[0])
        left, right = self.points[m - 1], self.points[m]
        width = right - left
        u = [width / 4, width / 2, 3 * width / 4]
        f = [self.cdf(left + ui) for ui in u]
        # Lagrange: F(left + u) = A u^2 + B u + C0 on the piece.
        A = (f[0] - 2 * f[1] + f[2]) / (2 * (width / 4) ** 2)
        B = (f[2] - f[0]) / (width / 2) - A * (u[0] + u[2])
        C0 = f[1] - A * u[1] ** 2 - B * u[1]
        assert C0 == self.cdf(left), "F is not one quadratic on the piece"
        end_value = A * width ** 2 + B * width + C0
        if not passes(end_value):
            return to_decimal(right)  # F jumps across t at right (a point mass there)
        gap = t - C0
        if gap <= 0:
            return to_decimal(left)
        # The root of A u^2 + B u = gap in [0, width], in the form that does not cancel.
        with decimal.localcontext(DECIMALS):
            return to_decimal(left) + 2 * to_decimal(gap) / (to_decimal(B) + to_decimal(B * B + 4 * A * gap).sqrt())


def to_decimal(q):
    """q (a Fraction) as a 60-digit decimal."""
    with decimal.localcontext(DECIMALS):
        return decimal.Decimal(q.numerator) / decimal.Decimal(q.denominator)


def hodges_lehmann(bounds, control_cum, experiment_cum, confidence):
    """Median of Y - X and its interval, with observations spread evenly within buckets."""
    a, b = bucket_counts(control_cum), bucket_counts(experiment_cum)
    dist = DifferenceDistribution(bounds, a, b)
    total = dist.total
    sigma = mann_whitney(bounds, control_cum, experiment_cum)["sigma"]
    z = NORMAL.inv_cdf((1 + confidence) / 2)
    real_k = total / 2 - z * sigma
    k = max(1, math.floor(real_k))
    share = min(Fraction(k, total), Fraction(1, 2))
    half = Fraction(1, 2)
    with decimal.localcontext(DECIMALS):
        estimate = (dist.quantile(half) + dist.quantile(half, strict=True)) / 2
    low = dist.quantile(share)
    high = dist.quantile(1 - share, strict=True)
    # Self-check in exact fractions: F crosses the share at low, and rises past 1 - share at high.
    eps = Fraction(1, 10 ** 40)
    at_low, at_high = Fraction(low), Fraction(high)
    assert dist.cdf(at_low - eps) < share <= dist.cdf(at_low + eps), "low"
    assert dist.cdf(at_high - eps) <= 1 - share < dist.cdf(at_high + eps), "high"
    return {"estimate": float(estimate), "low": float(low), "high": float(high), "k": k, "real_k": real_k}


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

    hl_cases = [(name, "as " + name, bounds, control, experiment)
                for name, bounds, control, experiment in mw_cases]
    # Latencies evenly spread over 60-140 ms (stable) and 78-182 ms (a canary 30 % slower), 1000
    # values each, v_i = lo + (hi - lo) i / 999, counted into Prometheus' default buckets.
    default_bounds = [.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, INF]
    stable = spread_histogram(default_bounds, Fraction(60, 1000), Fraction(140, 1000), 1000)
    canary = spread_histogram(default_bounds, Fraction(78, 1000), Fraction(182, 1000), 1000)
    hl_cases.append(("a4", f"bounds {fmt_bounds(default_bounds)} (Prometheus' default); control cumulative "
                     f"{stable} (1000 values evenly over 60-140 ms); experiment cumulative {canary} "
                     "(78-182 ms)", default_bounds, stable, canary))
    hl_cases.append(("a5", "bounds as b4; control and experiment both b4's control",
                     default_bounds, stable, stable))
    for name, text, bounds, control, experiment in hl_cases:
        r = hodges_lehmann(bounds, control, experiment, 0.95)
        rows.append(("b" + name[1:], "bucketed Hodges-Lehmann, 95 % CI", text,
                     f"estimate = {g(r['estimate'], 12)}, CI [{g(r['low'], 12)}, {g(r['high'], 12)}] "
                     f"(k = {r['k']}, from {r['real_k']:.4f})",
                     "spreading observations evenly within buckets, P(Y - X <= d) per bucket pair "
                     "integrated piecewise in exact fractions, each quantile the exact root of the "
                     "CDF's quadratic piece (60 digits)"))

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


def spread_histogram(bounds, lo, hi, count):
    """Cumulative counts of count values evenly spaced from lo to hi (both included)."""
    values = [lo + (hi - lo) * i / (count - 1) for i in range(count)]
    return [sum(1 for v in values if v <= b) for b in bounds]


def fmt_bounds(bounds):
    return "[" + ", ".join("+Inf" if b == INF else f"{b:g}" for b in bounds) + "]"


if __name__ == "__main__":
    main()
