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
// When V is 0 (each arm's proportion is 0 or 1) the normal approximation
// gives no usable variance and the look counts as no evidence: it returns
// 1. Errors: as TwoProportionZTest for the counts, and ErrInvalidInput
// unless tau2 is positive and finite.
func AlwaysValidPValue(xA, nA, xB, nB int64, tau2 float64) (float64, error) {
	if err := validateProportionCounts(xA, nA, xB, nB); err != nil {
		return 0, err
	}
	if math.IsNaN(tau2) || math.IsInf(tau2, 0) || tau2 <= 0 {
		return 0, fmt.Errorf("%w: tau2 must be positive and finite, got %v", ErrInvalidInput, tau2)
	}
	pA := float64(xA) / float64(nA)
	pB := float64(xB) / float64(nB)
	variance := pA*(1-pA)/float64(nA) + pB*(1-pB)/float64(nB)
	if variance <= 0 {
		return 1, nil
	}
	theta := pB - pA
	// Work with log(Lambda) so that strong evidence does not overflow.
	logLambda := 0.5*math.Log(variance/(variance+tau2)) +
		tau2*theta*theta/(2*variance*(variance+tau2))
	return math.Min(1, math.Exp(-logLambda)), nil
}
