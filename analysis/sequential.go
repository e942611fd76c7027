package analysis

import (
	"fmt"
	"math"
)

// SequentialState carries an always-valid sequential test of two
// proportions from one analysis interval to the next. The zero value is a
// test with no looks yet; NewSequentialState returns the same state with
// MinP set explicitly.
//
// The test is the mixture sequential probability ratio test (mSPRT) of
// Johari, Pekelis and Walsh, "Always Valid Inference: Bringing Sequential
// Analysis to A/B Testing" (2017, arXiv:1512.04922), for the difference of
// proportions theta = pB - pA under a normal approximation with a normal
// mixing distribution N(0, tau2) on theta. At a look with estimate
// thetaHat = pB - pA and variance V = pA(1-pA)/nA + pB(1-pB)/nB, the
// mixture likelihood ratio is
//
//	Lambda = sqrt(V/(V+tau2)) * exp(tau2 * thetaHat^2 / (2 V (V+tau2)))
//
// and the always-valid p-value after look n is p_n = min(p_{n-1},
// min(1, 1/Lambda)). Under the null hypothesis theta = 0, the probability
// that p_n ever falls below alpha, however many looks are taken, is at most
// alpha (up to the normal approximation), so the test may be checked at
// every analysis interval.
//
// Each look must use all data gathered so far (cumulative counts from the
// start of the experiment), not only the latest window.
type SequentialState struct {
	// MinP is the always-valid p-value so far: the running minimum of
	// min(1, 1/Lambda) over looks. It is ignored while Looks is 0.
	MinP float64
	// Looks is the number of valid looks taken.
	Looks int
}

// NewSequentialState returns the state of a sequential test before any
// look: p-value 1.
func NewSequentialState() SequentialState {
	return SequentialState{MinP: 1}
}

// PValue returns the current always-valid p-value: 1 before the first
// look, MinP afterwards.
func (s SequentialState) PValue() float64 {
	if s.Looks == 0 {
		return 1
	}
	return s.MinP
}

// Update takes one look at the cumulative counts (xA events in nA trials
// for the control, xB in nB for the experiment) with mixing variance tau2
// and returns the new state and its always-valid p-value. The receiver is
// not modified.
//
// A look whose inputs AlwaysValidPValue rejects (no traffic, invalid counts,
// tau2 not positive and finite) is not counted: Update returns the state
// unchanged and its current p-value. Call AlwaysValidPValue first to
// obtain the error.
//
// tau2 should be of the order of the squared differences worth detecting;
// for error rates around 1-5 %, values between 1e-4 and 1e-3 are typical.
func (s SequentialState) Update(xA, nA, xB, nB int64, tau2 float64) (SequentialState, float64) {
	p, err := AlwaysValidPValue(xA, nA, xB, nB, tau2)
	if err != nil {
		return s, s.PValue()
	}
	next := SequentialState{MinP: math.Min(s.PValue(), p), Looks: s.Looks + 1}
	return next, next.MinP
}

// AlwaysValidPValue returns min(1, 1/Lambda) for a single look at the
// cumulative counts, with Lambda the mixture likelihood ratio described on
// SequentialState. The always-valid p-value of a test is the running
// minimum of these values over its looks, which SequentialState.Update
// keeps.
//
// When V is 0 (each arm's proportion is 0 or 1), equal arms are no
// evidence (p = 1) and unequal ones use proportions shrunk by half an event
// (see twoProportionLogLambda), so 0 % against 100 % is significant once
// the arms are large enough. Errors: as TwoProportionZTest for the counts, and ErrInvalidInput
// unless tau2 is positive and finite.
func AlwaysValidPValue(xA, nA, xB, nB int64, tau2 float64) (float64, error) {
	if err := validateProportionCounts(xA, nA, xB, nB); err != nil {
		return 0, err
	}
	if math.IsNaN(tau2) || math.IsInf(tau2, 0) || tau2 <= 0 {
		return 0, fmt.Errorf("%w: tau2 must be positive and finite, got %v", ErrInvalidInput, tau2)
	}
	return math.Min(1, math.Exp(-twoProportionLogLambda(float64(xA), float64(nA), float64(xB), float64(nB), tau2))), nil
}

// twoProportionLogLambda is log Lambda of the two-proportion mixture test on checked counts.
// When each arm's proportion is 0 or 1 the normal approximation has no variance: equal arms are
// no evidence, and unequal ones (none of A's requests failed, all of B's) take the variance of
// proportions shrunk by half an event, (x+0.5)/(n+1), so that the evidence grows with the counts
// instead of vanishing.
func twoProportionLogLambda(xA, nA, xB, nB, tau2 float64) float64 {
	pA, pB := xA/nA, xB/nB
	theta := pB - pA
	variance := pA*(1-pA)/nA + pB*(1-pB)/nB
	if variance <= 0 {
		if theta == 0 {
			return 0
		}
		sA, sB := (xA+0.5)/(nA+1), (xB+0.5)/(nB+1)
		variance = sA*(1-sA)/nA + sB*(1-sB)/nB
	}
	// Work with log(Lambda) so that strong evidence does not overflow.
	return 0.5*math.Log(variance/(variance+tau2)) + tau2*theta*theta/(2*variance*(variance+tau2))
}

// TwoProportionTrialsNeeded is how many more trials per arm the always-valid two-proportion test
// would need to reach level alpha if both arms' proportions stayed at pA and pB, starting from n
// trials per arm: the sequential counterpart of TwoProportionSampleSize, which assumes a single
// look. It returns -1 when no number up to 1e12 would (the proportions are equal).
//
// Errors: ErrInvalidInput for proportions outside [0,1], alpha outside (0,1), a negative or
// non-finite n, or tau2 not positive and finite.
func TwoProportionTrialsNeeded(pA, pB, n, alpha, tau2 float64) (int64, error) {
	for _, p := range []float64{pA, pB} {
		if math.IsNaN(p) || p < 0 || p > 1 {
			return 0, fmt.Errorf("%w: proportion must be within [0,1], got %v", ErrInvalidInput, p)
		}
	}
	if err := checkOpenUnit("alpha", alpha); err != nil {
		return 0, err
	}
	if math.IsNaN(n) || math.IsInf(n, 0) || n < 0 {
		return 0, fmt.Errorf("%w: trials must be non-negative and finite, got %v", ErrInvalidInput, n)
	}
	if math.IsNaN(tau2) || math.IsInf(tau2, 0) || tau2 <= 0 {
		return 0, fmt.Errorf("%w: tau2 must be positive and finite, got %v", ErrInvalidInput, tau2)
	}
	bound := math.Log(1 / alpha)
	decides := func(m float64) bool { return twoProportionLogLambda(pA*m, m, pB*m, m, tau2) >= bound }
	return trialsUntil(decides, n), nil
}
