package analysis

import (
	"fmt"
	"math"
)

// DefaultConfidence is the confidence level of the interval reported by
// TwoProportionZTest.
const DefaultConfidence = 0.95

// ZTestResult is the outcome of a two-proportion z-test comparing arm B (the
// experiment) with arm A (the control).
type ZTestResult struct {
	// PA and PB are the observed proportions xA/nA and xB/nB.
	PA, PB float64

	// Z is (PB - PA) / PooledSE, the test statistic under the null
	// hypothesis of equal proportions. It is positive when B's proportion is
	// higher. Note the order: statsmodels' proportions_ztest with
	// count = (c1, c2) reports (p1 - p2)/se, which is this Z with B = arm 1
	// and A = arm 2.
	Z float64

	// PValue is the p-value of Z for the requested Alternative.
	PValue float64

	// UnpooledZ is (PB - PA) / UnpooledSE, the Wald statistic, and
	// UnpooledPValue its p-value for the requested Alternative. Both are
	// finite whatever the counts (see UnpooledSE).
	UnpooledZ, UnpooledPValue float64

	// DiffEstimate is PB - PA.
	DiffEstimate float64

	// CILow and CIHigh bound the two-sided Wald confidence interval for
	// PB - PA at level Confidence: DiffEstimate -/+ q * UnpooledSE with q
	// the normal quantile at 1 - (1-Confidence)/2, clipped to [-1, 1]. The
	// interval is two-sided whatever the Alternative.
	CILow, CIHigh float64

	// Confidence is the level of [CILow, CIHigh].
	Confidence float64

	// PooledSE is sqrt(p(1-p)(1/nA + 1/nB)) with p the pooled proportion
	// (xA+xB)/(nA+nB); it is the standard error under the null hypothesis.
	PooledSE float64

	// UnpooledSE is sqrt(PA(1-PA)/nA + PB(1-PB)/nB). When that is 0
	// (each arm's proportion is 0 or 1, for example no failures in A and
	// only failures in B) the Wald standard error says nothing, and the
	// proportions shrunk by half an event, (x+0.5)/(n+1), are used in it
	// instead, as AlwaysValidPValue does: the statistic and the interval
	// then stay finite and reflect how many trials each arm had, where the
	// plain formula would give an infinite Z and a zero-width interval for
	// one trial per arm.
	UnpooledSE float64

	// Alternative is the alternative hypothesis PValue refers to.
	Alternative Alternative
}

// TwoProportionZTest tests whether the proportion of events in arm B
// (xB of nB trials, the experiment) differs from that in arm A (xA of nA,
// the control) using the normal approximation with the pooled standard
// error. The confidence interval in the result is at DefaultConfidence.
//
// Both counts of a proportion must come from the same query window.
//
// Errors: ErrInvalidCounts for negative counts or x > n (checked first, so
// events without trials are invalid counts rather than no traffic),
// ErrNoTraffic when nA and nB are both 0, ErrEmptyArm when exactly one is
// 0, ErrInvalidInput for an unknown Alternative. When the pooled proportion
// is 0 or 1 (for example no errors in either arm) the proportions are
// identical and there is no variance: the result has Z = 0 and PValue = 1,
// without error.
func TwoProportionZTest(xA, nA, xB, nB int64, alt Alternative) (ZTestResult, error) {
	return TwoProportionZTestWithConfidence(xA, nA, xB, nB, alt, DefaultConfidence)
}

// TwoProportionZTestWithConfidence is TwoProportionZTest with the level of
// the confidence interval given explicitly; confidence must lie strictly
// between 0 and 1 (ErrInvalidInput otherwise).
func TwoProportionZTestWithConfidence(xA, nA, xB, nB int64, alt Alternative, confidence float64) (ZTestResult, error) {
	if err := validateProportionCounts(xA, nA, xB, nB); err != nil {
		return ZTestResult{}, err
	}
	if err := alt.validate(); err != nil {
		return ZTestResult{}, err
	}
	if err := checkOpenUnit("confidence", confidence); err != nil {
		return ZTestResult{}, err
	}
	// Convert before adding so that counts near MaxInt64 cannot overflow.
	fxA, fnA, fxB, fnB := float64(xA), float64(nA), float64(xB), float64(nB)
	r := ZTestResult{
		PA:          fxA / fnA,
		PB:          fxB / fnB,
		Confidence:  confidence,
		Alternative: alt,
	}
	r.DiffEstimate = r.PB - r.PA
	pooled := (fxA + fxB) / (fnA + fnB)
	r.PooledSE = math.Sqrt(pooled * (1 - pooled) * (1/fnA + 1/fnB))
	r.UnpooledSE = math.Sqrt(r.PA*(1-r.PA)/fnA + r.PB*(1-r.PB)/fnB)
	if r.UnpooledSE == 0 {
		sA, sB := (fxA+0.5)/(fnA+1), (fxB+0.5)/(fnB+1)
		r.UnpooledSE = math.Sqrt(sA*(1-sA)/fnA + sB*(1-sB)/fnB)
	}

	r.Z, r.PValue = 0, 1
	if r.PooledSE > 0 {
		r.Z = r.DiffEstimate / r.PooledSE
		r.PValue = normalPValue(r.Z, alt)
	}
	r.UnpooledZ = r.DiffEstimate / r.UnpooledSE
	r.UnpooledPValue = normalPValue(r.UnpooledZ, alt)

	// The upper quantile taken as minus the lower one stays finite for a
	// confidence so close to 1 that 1 - (1-confidence)/2 rounds to 1.
	q := -NormalQuantile((1 - confidence) / 2)
	r.CILow = math.Max(-1, r.DiffEstimate-q*r.UnpooledSE)
	r.CIHigh = math.Min(1, r.DiffEstimate+q*r.UnpooledSE)
	return r, nil
}

// validateProportionCounts checks the event and trial counts of both arms.
// Invalid counts are reported before missing traffic, so that events
// without trials are not mistaken for an arm that saw no requests.
func validateProportionCounts(xA, nA, xB, nB int64) error {
	if nA < 0 || nB < 0 {
		return fmt.Errorf("%w: negative trial count (nA=%d, nB=%d)", ErrInvalidCounts, nA, nB)
	}
	if xA < 0 || xA > nA {
		return fmt.Errorf("%w: arm A has %d events in %d trials", ErrInvalidCounts, xA, nA)
	}
	if xB < 0 || xB > nB {
		return fmt.Errorf("%w: arm B has %d events in %d trials", ErrInvalidCounts, xB, nB)
	}
	if nA == 0 && nB == 0 {
		return fmt.Errorf("%w: both arms have 0 trials", ErrNoTraffic)
	}
	if nA == 0 || nB == 0 {
		return fmt.Errorf("%w: arm A has %d trials, arm B has %d", ErrEmptyArm, nA, nB)
	}
	return nil
}

// TwoProportionPower returns the power of the two-sided two-proportion test
// at level alpha with n trials per arm, when the true proportions are p1
// and p2. It uses the normal-approximation formula of R's power.prop.test
// (strict = FALSE), which ignores rejections in the wrong tail:
//
//	power = Phi((sqrt(n)*|p1-p2| - q*sqrt((p1+p2)(1-(p1+p2)/2))) / sqrt(p1(1-p1)+p2(1-p2)))
//
// with q = NormalQuantile(1 - alpha/2). It returns NaN unless p1 and p2 lie
// strictly between 0 and 1, n > 0 is finite and alpha lies strictly between
// 0 and 1.
func TwoProportionPower(p1, p2 float64, n float64, alpha float64) float64 {
	if !validPowerInputs(p1, p2, alpha) || math.IsNaN(n) || math.IsInf(n, 0) || n <= 0 {
		return math.NaN()
	}
	nullSD, altSD := powerSDs(p1, p2)
	q := NormalQuantile(1 - alpha/2)
	return NormalUpperTail(-(math.Sqrt(n)*math.Abs(p1-p2) - q*nullSD) / altSD)
}

// TwoProportionSampleSize returns the number of trials per arm (not rounded
// up) that the two-sided two-proportion test at level alpha needs to reach
// the given power when the true proportions are p1 and p2. It inverts
// TwoProportionPower in closed form:
//
//	n = ((q_{1-alpha/2}*sqrt((p1+p2)(1-(p1+p2)/2)) + q_power*sqrt(p1(1-p1)+p2(1-p2))) / |p1-p2|)^2
//
// It returns +Inf when p1 == p2, and NaN for inputs outside the open unit
// interval or for a power so low that no positive n has it.
func TwoProportionSampleSize(p1, p2, alpha, power float64) float64 {
	if !validPowerInputs(p1, p2, alpha) || checkOpenUnit("power", power) != nil {
		return math.NaN()
	}
	nullSD, altSD := powerSDs(p1, p2)
	root := NormalQuantile(1-alpha/2)*nullSD + NormalQuantile(power)*altSD
	if root <= 0 {
		return math.NaN()
	}
	diff := math.Abs(p1 - p2)
	if diff == 0 {
		return math.Inf(1)
	}
	return (root / diff) * (root / diff)
}

// validPowerInputs reports whether p1, p2 and alpha all lie strictly
// between 0 and 1.
func validPowerInputs(p1, p2, alpha float64) bool {
	return checkOpenUnit("p1", p1) == nil && checkOpenUnit("p2", p2) == nil &&
		checkOpenUnit("alpha", alpha) == nil
}

// powerSDs returns the per-unit standard deviations of the difference of
// proportions under the null (pooled mean) and the alternative.
func powerSDs(p1, p2 float64) (nullSD, altSD float64) {
	sum := p1 + p2
	nullSD = math.Sqrt(sum * (1 - sum/2))
	altSD = math.Sqrt(p1*(1-p1) + p2*(1-p2))
	return nullSD, altSD
}
