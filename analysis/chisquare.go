package analysis

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// sumTolerance is the relative difference allowed between the totals of
// observed and expected counts in ChiSquareGoodnessOfFit.
const sumTolerance = 1e-8

// ChiSquareGoodnessOfFit runs Pearson's chi-square goodness-of-fit test of
// observed counts against expected counts, with len(observed)-1 degrees of
// freedom. It returns the statistic sum((o-e)^2/e) and its upper-tail
// p-value.
//
// expected holds counts, not proportions: its total must equal the total of
// observed (to a relative 1e-8). To test against proportions or weights,
// scale them to the observed total first, as SampleRatioMismatch does.
//
// Errors: ErrInvalidInput for slices of different lengths or with fewer
// than 2 categories, NaN or infinite values, negative observed counts,
// expected counts that are not positive, totals that overflow float64 or
// totals that differ;
// ErrNoTraffic when every observed count is 0.
func ChiSquareGoodnessOfFit(observed []float64, expected []float64) (chi2, p float64, err error) {
	if err := validateGoodnessOfFit(observed, expected); err != nil {
		return 0, 0, err
	}
	for i, o := range observed {
		d := o - expected[i]
		chi2 += d * d / expected[i]
	}
	df := float64(len(observed) - 1)
	return chi2, distuv.ChiSquared{K: df}.Survival(chi2), nil
}

// validateGoodnessOfFit checks the arguments of ChiSquareGoodnessOfFit.
func validateGoodnessOfFit(observed, expected []float64) error {
	if len(observed) != len(expected) {
		return fmt.Errorf("%w: %d observed counts but %d expected", ErrInvalidInput, len(observed), len(expected))
	}
	if len(observed) < 2 {
		return fmt.Errorf("%w: need at least 2 categories, got %d", ErrInvalidInput, len(observed))
	}
	if err := checkFinite("observed", observed); err != nil {
		return err
	}
	if err := checkFinite("expected", expected); err != nil {
		return err
	}
	var observedTotal, expectedTotal float64
	for i := range observed {
		if observed[i] < 0 {
			return fmt.Errorf("%w: observed[%d] is negative (%v)", ErrInvalidInput, i, observed[i])
		}
		if expected[i] <= 0 {
			return fmt.Errorf("%w: expected[%d] must be positive, got %v", ErrInvalidInput, i, expected[i])
		}
		observedTotal += observed[i]
		expectedTotal += expected[i]
	}
	if math.IsInf(observedTotal, 0) || math.IsInf(expectedTotal, 0) {
		return fmt.Errorf("%w: counts total %v observed and %v expected, beyond float64", ErrInvalidInput, observedTotal, expectedTotal)
	}
	if observedTotal == 0 {
		return fmt.Errorf("%w: all observed counts are 0", ErrNoTraffic)
	}
	if math.Abs(observedTotal-expectedTotal) > sumTolerance*observedTotal {
		return fmt.Errorf("%w: expected counts total %v but observed total %v (expected must be counts, not proportions)",
			ErrInvalidInput, expectedTotal, observedTotal)
	}
	return nil
}

// SRMResult is the outcome of a sample ratio mismatch check.
type SRMResult struct {
	// Observed is the number of units seen in each arm.
	Observed []int64
	// Expected is the number of units each arm should have seen: the
	// observed total split in proportion to the configured weights.
	Expected []float64
	// ChiSquare is Pearson's goodness-of-fit statistic.
	ChiSquare float64
	// DegreesOfFreedom is the number of arms minus 1.
	DegreesOfFreedom int
	// PValue is the upper-tail probability of ChiSquare.
	PValue float64
	// Alpha is the significance level the check used.
	Alpha float64
	// Mismatch is true when PValue < Alpha: the traffic split differs from
	// the configured weights by more than chance explains, so comparisons
	// between the arms are not trustworthy.
	Mismatch bool
	// Reason explains the verdict in one sentence.
	Reason string
}

// SampleRatioMismatch checks whether the units observed in each arm match
// the configured traffic weights. The weights (any positive scale, for
// example 50/50 or 0.9/0.1) are scaled to the observed total to give the
// expected counts, and a chi-square goodness-of-fit test is run. Mismatch
// is flagged when the p-value is below alpha; values such as 0.001 are
// usual, because the check runs often and a mismatch invalidates results.
//
// Errors: ErrInvalidCounts for negative counts, ErrNoTraffic when all counts
// are 0, ErrInvalidInput for mismatched lengths, fewer than 2 arms, weights
// that are not positive and finite, or alpha outside (0, 1).
func SampleRatioMismatch(observed []int64, weights []float64, alpha float64) (SRMResult, error) {
	if err := checkOpenUnit("alpha", alpha); err != nil {
		return SRMResult{}, err
	}
	if len(observed) != len(weights) {
		return SRMResult{}, fmt.Errorf("%w: %d observed counts but %d weights", ErrInvalidInput, len(observed), len(weights))
	}
	if err := checkFinite("weights", weights); err != nil {
		return SRMResult{}, err
	}
	var total, weightTotal float64
	counts := make([]float64, len(observed))
	for i, o := range observed {
		if o < 0 {
			return SRMResult{}, fmt.Errorf("%w: observed[%d] is negative (%d)", ErrInvalidCounts, i, o)
		}
		if weights[i] <= 0 {
			return SRMResult{}, fmt.Errorf("%w: weights[%d] must be positive, got %v", ErrInvalidInput, i, weights[i])
		}
		counts[i] = float64(o)
		total += counts[i]
		weightTotal += weights[i]
	}
	if total == 0 {
		return SRMResult{}, fmt.Errorf("%w: all arms have 0 units", ErrNoTraffic)
	}
	expected := make([]float64, len(weights))
	for i, w := range weights {
		expected[i] = total * w / weightTotal
	}
	chi2, p, err := ChiSquareGoodnessOfFit(counts, expected)
	if err != nil {
		return SRMResult{}, fmt.Errorf("sample ratio mismatch check: %w", err)
	}
	r := SRMResult{
		Observed:         append([]int64(nil), observed...),
		Expected:         expected,
		ChiSquare:        chi2,
		DegreesOfFreedom: len(observed) - 1,
		PValue:           p,
		Alpha:            alpha,
		Mismatch:         p < alpha,
	}
	r.Reason = srmReason(r)
	return r, nil
}

// srmReason describes an SRMResult in one sentence.
func srmReason(r SRMResult) string {
	expected := make([]string, len(r.Expected))
	for i, e := range r.Expected {
		expected[i] = fmt.Sprintf("%.1f", e)
	}
	if r.Mismatch {
		return fmt.Sprintf("Sample ratio mismatch: observed %v, expected %v (chi-square %.4g, df %d, p = %.3g < alpha %g)",
			r.Observed, expected, r.ChiSquare, r.DegreesOfFreedom, r.PValue, r.Alpha)
	}
	return fmt.Sprintf("Traffic split matches the weights: observed %v, expected %v (chi-square %.4g, df %d, p = %.3g >= alpha %g)",
		r.Observed, expected, r.ChiSquare, r.DegreesOfFreedom, r.PValue, r.Alpha)
}
