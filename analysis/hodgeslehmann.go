package analysis

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// HodgesLehmann estimates how much experiment is shifted relative to
// control: the median of all pairwise differences experiment[i] -
// control[j]. It also returns the distribution-free confidence interval for
// the shift at the given level (Bauer 1972; Hollander & Wolfe,
// Nonparametric Statistical Methods, section 4.3), whose ends are order
// statistics of the pairwise differences: with D(1) <= ... <= D(m*n) the
// sorted differences and k the smallest integer with P(U <= k) >= (1 -
// confidence)/2 under the null distribution of the Mann-Whitney U (at
// least 1), the interval is [D(k), D(m*n+1-k)].
//
// k comes from the exact distribution of U when both samples have fewer
// than 50 values and there are no ties in the combined sample, and from its
// tie-corrected normal approximation with continuity correction otherwise.
// When the samples are too small for any interval to reach the level, k
// is 1 and the interval spans all differences. The order statistics are
// selected without materialising all m*n differences, so memory stays
// O(m+n).
//
// Errors: ErrNoTraffic when both samples are empty, ErrEmptyArm when one
// is, ErrInvalidInput for NaN or infinite values, values so far apart that
// their differences overflow float64, or a confidence outside (0, 1).
func HodgesLehmann(experiment, control []float64, confidence float64) (estimate, low, high float64, err error) {
	if err := validateTwoSamples(experiment, control); err != nil {
		return 0, 0, 0, err
	}
	if err := checkOpenUnit("confidence", confidence); err != nil {
		return 0, 0, 0, err
	}
	if err := checkDifferencesFinite(experiment, control); err != nil {
		return 0, 0, 0, err
	}
	d := newPairwiseDifferences(experiment, control)
	total := len(experiment) * len(control)
	if total%2 == 1 {
		estimate = d.kth(total/2 + 1)
	} else {
		estimate = (d.kth(total/2) + d.kth(total/2+1)) / 2
	}
	k := hodgesLehmannRank(experiment, control, confidence)
	return estimate, d.kth(k), d.kth(total + 1 - k), nil
}

// checkDifferencesFinite reports ErrInvalidInput when the largest or the
// smallest difference x[i] - y[j] overflows to an infinity. x and y must be
// non-empty and finite.
func checkDifferencesFinite(x, y []float64) error {
	largest := slices.Max(x) - slices.Min(y)
	smallest := slices.Min(x) - slices.Max(y)
	if math.IsInf(largest, 0) || math.IsInf(smallest, 0) {
		return fmt.Errorf("%w: differences between the samples overflow (from %v to %v)", ErrInvalidInput, smallest, largest)
	}
	return nil
}

// hodgesLehmannRank returns the rank k (1-based) of the pairwise difference
// that forms the lower end of the confidence interval.
func hodgesLehmannRank(experiment, control []float64, confidence float64) int {
	m, n := len(experiment), len(control)
	total := m * n
	halfAlpha := (1 - confidence) / 2
	_, tieTerm := rankSum(experiment, control)
	k := 0
	if useExact(m, n, tieTerm > 0) {
		counts := mannWhitneyCounts(m, n)
		var sum, cumulative float64
		for _, c := range counts {
			sum += c
		}
		for k = range counts {
			cumulative += counts[k]
			if cumulative/sum >= halfAlpha {
				break
			}
		}
	} else {
		// P(U <= k) ~ Phi((k + 0.5 - mn/2) / sigma) >= halfAlpha.
		sigma := mannWhitneySigma(m, n, tieTerm)
		k = int(math.Ceil(float64(total)/2 - 0.5 + NormalQuantile(halfAlpha)*sigma))
	}
	return min(max(k, 1), (total+1)/2)
}

// pairwiseDifferences gives order statistics of {x[i] - y[j]} without
// storing them. With x sorted ascending and y sorted descending, the
// matrix at(i, j) = x[i] - y[j] is sorted ascending along every row and
// every column (floating-point subtraction is monotone in each argument).
type pairwiseDifferences struct {
	x, y []float64
}

// newPairwiseDifferences copies and sorts the samples.
func newPairwiseDifferences(x, y []float64) pairwiseDifferences {
	xs := slices.Clone(x)
	ys := slices.Clone(y)
	slices.Sort(xs)
	slices.Sort(ys)
	slices.Reverse(ys)
	return pairwiseDifferences{x: xs, y: ys}
}

// at returns the difference in row i, column j.
func (d pairwiseDifferences) at(i, j int) float64 {
	return d.x[i] - d.y[j]
}

// countBelow returns, for each row, how many entries are < pivot (strict)
// or <= pivot (not strict), and their total.
func (d pairwiseDifferences) countBelow(pivot float64, strict bool, perRow []int) int {
	total := 0
	for i := range d.x {
		perRow[i] = sort.Search(len(d.y), func(j int) bool {
			if strict {
				return d.at(i, j) >= pivot
			}
			return d.at(i, j) > pivot
		})
		total += perRow[i]
	}
	return total
}

// kth returns the k-th smallest difference (1-based, 1 <= k <= len(x)*len(y)).
//
// Each row keeps a window [lo, hi) of candidate columns. A pivot is chosen
// as the weighted median of the rows' middle candidates, which guarantees
// that at least a quarter of the remaining candidates are discarded on
// every pass, so about log(m*n)/log(4/3) passes of O(m log n) are needed.
// Everything left of the windows is below the answer and everything right
// of them is above it.
func (d pairwiseDifferences) kth(k int) float64 {
	m, n := len(d.x), len(d.y)
	lo, hi := make([]int, m), make([]int, m)
	for i := range hi {
		hi[i] = n
	}
	less, lessOrEqual := make([]int, m), make([]int, m)
	for {
		pivot, ok := d.weightedMedianCandidate(lo, hi)
		if !ok {
			// Unreachable for 1 <= k <= m*n: the answer is always a candidate.
			return math.NaN()
		}
		below := d.countBelow(pivot, true, less)
		atOrBelow := d.countBelow(pivot, false, lessOrEqual)
		switch {
		case k <= below: // the answer is smaller than the pivot
			for i := range hi {
				hi[i] = min(hi[i], less[i])
			}
		case k > atOrBelow: // the answer is larger than the pivot
			for i := range lo {
				lo[i] = max(lo[i], lessOrEqual[i])
			}
		default:
			return pivot
		}
	}
}

// weightedMedianCandidate returns the weighted median of the middle
// candidates of all rows with a non-empty window, each weighted by its
// window width. ok is false when no candidates remain.
func (d pairwiseDifferences) weightedMedianCandidate(lo, hi []int) (pivot float64, ok bool) {
	type rowMiddle struct {
		value  float64
		weight int
	}
	middles := make([]rowMiddle, 0, len(lo))
	total := 0
	for i := range lo {
		if width := hi[i] - lo[i]; width > 0 {
			middles = append(middles, rowMiddle{value: d.at(i, lo[i]+(width-1)/2), weight: width})
			total += width
		}
	}
	if total == 0 {
		return 0, false
	}
	sort.Slice(middles, func(a, b int) bool { return middles[a].value < middles[b].value })
	cumulative := 0
	for _, r := range middles {
		cumulative += r.weight
		if 2*cumulative >= total {
			return r.value, true
		}
	}
	return middles[len(middles)-1].value, true
}
