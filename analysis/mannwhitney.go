package analysis

import (
	"fmt"
	"math"
	"sort"
)

// exactSampleLimit is the sample size below which (in both samples, and
// without ties) Mann-Whitney p-values and Hodges-Lehmann intervals use the
// exact null distribution of U, as R's wilcox.test does.
const exactSampleLimit = 50

// MannWhitneyResult is the outcome of a Mann-Whitney U test (Wilcoxon
// rank-sum test) of sample x against sample y.
type MannWhitneyResult struct {
	// U is the statistic for x: the number of pairs (x[i], y[j]) with
	// x[i] > y[j], plus half the number of tied pairs. It equals the rank
	// sum of x minus N1(N1+1)/2, which R reports as W.
	U float64
	// UY is the statistic for y, N1*N2 - U.
	UY float64
	// N1 and N2 are the sizes of x and y.
	N1, N2 int
	// Ties is true when some value occurs more than once in the combined
	// sample.
	Ties bool
	// Z is (U - N1*N2/2) / sigma with sigma the tie-corrected standard
	// deviation of U, without continuity correction. It is positive when x
	// tends to be larger, and 0 when sigma is 0 (all values equal).
	Z float64
	// PAsymptotic is the two-sided normal-approximation p-value with tie
	// and continuity corrections.
	PAsymptotic float64
	// PAsymptoticNoCorrection is the two-sided normal-approximation p-value
	// with the tie correction but no continuity correction.
	PAsymptoticNoCorrection float64
	// PAsymptoticGreater and PAsymptoticLess are the one-sided
	// normal-approximation p-values (tie and continuity corrected) for x
	// larger than y and x smaller than y.
	PAsymptoticGreater, PAsymptoticLess float64
	// Exact is true when the exact p-values below were computed: both
	// samples have fewer than 50 values and there are no ties.
	Exact bool
	// PExact is the exact two-sided p-value, 2*min(PExactGreater,
	// PExactLess) capped at 1; NaN when Exact is false.
	PExact float64
	// PExactGreater is P(U' >= U) under the null hypothesis, the exact
	// p-value for x larger than y; NaN when Exact is false.
	PExactGreater float64
	// PExactLess is P(U' <= U) under the null hypothesis, the exact p-value
	// for x smaller than y; NaN when Exact is false.
	PExactLess float64
}

// PValue returns the p-value for alt, where Greater means x tends to be
// larger than y. It is the exact p-value when Exact is true and the
// continuity-corrected asymptotic one otherwise. An unknown alt is treated
// as TwoSided.
func (r MannWhitneyResult) PValue(alt Alternative) float64 {
	switch {
	case alt == Greater && r.Exact:
		return r.PExactGreater
	case alt == Greater:
		return r.PAsymptoticGreater
	case alt == Less && r.Exact:
		return r.PExactLess
	case alt == Less:
		return r.PAsymptoticLess
	case r.Exact:
		return r.PExact
	default:
		return r.PAsymptotic
	}
}

// MannWhitneyU runs the Mann-Whitney U test of x (the experiment, B)
// against y (the control, A): is one sample stochastically larger than the
// other? It reports U for x, asymptotic p-values with the tie correction
// (with and without continuity correction) and, for samples under 50
// values each without ties, exact p-values from the null distribution of U.
//
// Errors: ErrNoTraffic when both samples are empty, ErrEmptyArm when one
// is, ErrInvalidInput when a value is NaN or infinite.
func MannWhitneyU(x, y []float64) (MannWhitneyResult, error) {
	if err := validateTwoSamples(x, y); err != nil {
		return MannWhitneyResult{}, err
	}
	rankSumX, tieTerm := rankSum(x, y)
	n1, n2 := float64(len(x)), float64(len(y))
	r := MannWhitneyResult{N1: len(x), N2: len(y), Ties: tieTerm > 0}
	r.U = rankSumX - n1*(n1+1)/2
	r.UY = n1*n2 - r.U

	mean := n1 * n2 / 2
	sigma := mannWhitneySigma(len(x), len(y), tieTerm)
	r.Z, r.PAsymptotic, r.PAsymptoticNoCorrection = 0, 1, 1
	r.PAsymptoticGreater, r.PAsymptoticLess = 1, 1
	if sigma > 0 {
		r.Z = (r.U - mean) / sigma
		r.PAsymptoticNoCorrection = NormalTwoSidedP(r.Z)
		r.PAsymptotic = math.Min(1, 2*NormalUpperTail((math.Abs(r.U-mean)-0.5)/sigma))
		r.PAsymptoticGreater = NormalUpperTail((r.U - mean - 0.5) / sigma)
		r.PAsymptoticLess = NormalUpperTail((mean - r.U - 0.5) / sigma)
	}

	r.PExact, r.PExactGreater, r.PExactLess = math.NaN(), math.NaN(), math.NaN()
	if useExact(len(x), len(y), r.Ties) {
		r.Exact = true
		counts := mannWhitneyCounts(len(x), len(y))
		u := int(math.Round(r.U))
		r.PExactGreater = tailProbability(counts, u, len(counts)-1)
		r.PExactLess = tailProbability(counts, 0, u)
		r.PExact = math.Min(1, 2*math.Min(r.PExactGreater, r.PExactLess))
	}
	return r, nil
}

// validateTwoSamples checks two samples for emptiness and non-finite values.
func validateTwoSamples(x, y []float64) error {
	if len(x) == 0 && len(y) == 0 {
		return fmt.Errorf("%w: both samples are empty", ErrNoTraffic)
	}
	if len(x) == 0 || len(y) == 0 {
		return fmt.Errorf("%w: samples have %d and %d values", ErrEmptyArm, len(x), len(y))
	}
	if err := checkFinite("x", x); err != nil {
		return err
	}
	return checkFinite("y", y)
}

// useExact reports whether the exact null distribution of U is used for
// samples of sizes n1 and n2.
func useExact(n1, n2 int, ties bool) bool {
	return !ties && n1 < exactSampleLimit && n2 < exactSampleLimit
}

// rankSum ranks the combined sample (ties get their average rank) and
// returns the rank sum of x and the tie term sum(t^3 - t) over groups of t
// tied values.
func rankSum(x, y []float64) (rankSumX, tieTerm float64) {
	type item struct {
		value float64
		fromX bool
	}
	items := make([]item, 0, len(x)+len(y))
	for _, v := range x {
		items = append(items, item{v, true})
	}
	for _, v := range y {
		items = append(items, item{v, false})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].value < items[j].value })
	for start := 0; start < len(items); {
		end := start + 1
		for end < len(items) && items[end].value == items[start].value {
			end++
		}
		t := float64(end - start)
		averageRank := float64(start+end+1) / 2 // mean of ranks start+1 .. end
		for _, it := range items[start:end] {
			if it.fromX {
				rankSumX += averageRank
			}
		}
		tieTerm += t*t*t - t
		start = end
	}
	return rankSumX, tieTerm
}

// mannWhitneySigma returns the standard deviation of U under the null
// hypothesis with the tie correction:
// sqrt(n1*n2/12 * ((N+1) - tieTerm/(N(N-1)))) with N = n1+n2.
func mannWhitneySigma(n1, n2 int, tieTerm float64) float64 {
	m, n := float64(n1), float64(n2)
	total := m + n
	variance := m * n / 12 * (total + 1)
	if total > 1 {
		variance -= m * n / 12 * tieTerm / (total * (total - 1))
	}
	return math.Sqrt(math.Max(0, variance))
}

// mannWhitneyCounts returns, for u = 0 .. m*n, the number of arrangements
// of m x-values and n y-values (no ties) in which exactly u pairs have the
// x-value larger. The counts sum to C(m+n, m).
//
// It uses the recurrence f(i, j, u) = f(i-1, j, u-j) + f(i, j-1, u): the
// largest of i+j values is either an x, which beats all j y-values, or a y.
// All terms are positive, so the float64 counts carry no cancellation.
func mannWhitneyCounts(m, n int) []float64 {
	prev := make([][]float64, n+1) // prev[j] = f(i-1, j, .)
	for j := range prev {
		prev[j] = []float64{1}
	}
	for i := 1; i <= m; i++ {
		cur := make([][]float64, n+1)
		cur[0] = []float64{1}
		for j := 1; j <= n; j++ {
			f := make([]float64, i*j+1)
			copy(f, cur[j-1])
			for u, c := range prev[j] {
				f[u+j] += c
			}
			cur[j] = f
		}
		prev = cur
	}
	return prev[n]
}

// tailProbability returns the share of counts with index in [from, to].
func tailProbability(counts []float64, from, to int) float64 {
	var total, tail float64
	for u, c := range counts {
		total += c
		if u >= from && u <= to {
			tail += c
		}
	}
	return tail / total
}
