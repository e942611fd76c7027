package analysis

import (
	"math"
	"sort"
)

// HolmAdjust returns Holm's step-down adjusted p-values (Holm 1979), in the
// order of the input. With the m valid p-values sorted ascending as
// p(1) <= ... <= p(m), the adjusted value of p(i) is
// max over j <= i of min(1, (m-j+1)*p(j)), which is monotone in i and at
// most 1. A hypothesis is rejected at family-wise error rate alpha when its
// adjusted p-value is <= alpha.
//
// NaN entries are treated as missing, as R's p.adjust does: they stay NaN
// and do not count towards m. Any other value outside [0, 1] (negative,
// above 1 or infinite) is not a p-value, and the family cannot be adjusted
// without it: then every adjusted value is NaN. Compare adjusted values as
// p <= alpha (or !(p > alpha)), so that NaN is never read as significant.
// The input slice is not modified.
func HolmAdjust(pvalues []float64) []float64 {
	adjusted := make([]float64, len(pvalues))
	order := make([]int, 0, len(pvalues))
	for i, p := range pvalues {
		switch {
		case math.IsNaN(p):
			adjusted[i] = math.NaN()
			continue
		case p < 0 || p > 1:
			for j := range adjusted {
				adjusted[j] = math.NaN()
			}
			return adjusted
		}
		order = append(order, i)
	}
	sort.SliceStable(order, func(a, b int) bool { return pvalues[order[a]] < pvalues[order[b]] })
	m := len(order)
	running := 0.0
	for rank, i := range order {
		running = math.Max(running, math.Min(1, float64(m-rank)*pvalues[i]))
		adjusted[i] = running
	}
	return adjusted
}

// HolmReject reports, for each p-value, whether Holm's step-down procedure
// rejects its null hypothesis while keeping the family-wise error rate at
// alpha. NaN p-values are never rejected. Nothing is rejected when alpha
// does not lie strictly between 0 and 1 (NaN included) or when a p-value
// lies outside [0, 1], since HolmAdjust then returns only NaN.
func HolmReject(pvalues []float64, alpha float64) []bool {
	reject := make([]bool, len(pvalues))
	if checkOpenUnit("alpha", alpha) != nil {
		return reject
	}
	for i, p := range HolmAdjust(pvalues) {
		reject[i] = p <= alpha
	}
	return reject
}
