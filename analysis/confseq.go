package analysis

import (
	"fmt"
	"math"
)

// The one-proportion sequential test behind error-rate thresholds.
//
// A threshold check on a proportion (the share of 5xx responses) looks at every interval at all
// requests the revision has served so far. Comparing the running rate with the threshold each
// time would fail a healthy revision by chance sooner or later, and pass a bad one; so the check
// asks instead whether the data show, with an error rate that holds however many looks are
// taken, that the revision's true rate lies on one side of the threshold.
//
// The test is the normal-mixture sequential probability ratio test for one proportion, the same
// construction as AlwaysValidPValue for two: for a candidate rate p0, with n requests, x events,
// V0 = p0(1-p0)/n and theta = x/n - p0,
//
//	Lambda(p0) = sqrt(V0/(V0+tau2)) * exp(tau2 * theta^2 / (2 V0 (V0+tau2)))
//
// Under p = p0, Lambda is (up to the normal approximation) a non-negative martingale with mean 1,
// so by Ville's inequality the probability that it ever reaches 1/alpha is at most alpha. The
// set {p0 : Lambda(p0) < 1/alpha} is therefore an anytime-valid confidence sequence for p (it is
// the asymptotic confidence sequence of Waudby-Smith, Arnold, Wu, Howard and Ramdas, "Time-uniform
// central limit theory and asymptotic confidence sequences", 2023, with the variance taken under
// the candidate rate, as a Wilson interval does), and a threshold outside it is decided.
// Evaluating the variance at p0 rather than at x/n keeps the test usable when no request has
// failed yet.

// ThresholdMixingVariance is tau2 of the one-proportion test against threshold p0: the test is
// tuned to rates about a fifth of the threshold away from it (a 5 % threshold is tuned to 1
// point), never finer than 0.1 point. It is NaN for a p0 outside [0,1], which every test then
// rejects.
func ThresholdMixingVariance(p0 float64) float64 {
	if math.IsNaN(p0) || p0 < 0 || p0 > 1 {
		return math.NaN()
	}
	tau := math.Max(0.2*math.Min(p0, 1-p0), 1e-3)
	return tau * tau
}

// ProportionLogLambda returns log Lambda(p0) of the one-proportion mixture test for x events in
// n trials. It is +Inf when p0 is 0 or 1 and the data contradict it (an event against p0 = 0),
// and 0 (no evidence) when they agree with it exactly.
//
// Errors: ErrNoTraffic when n is 0, ErrInvalidCounts for negative counts or x > n,
// ErrInvalidInput for p0 outside [0,1] or tau2 not positive and finite.
func ProportionLogLambda(x, n int64, p0, tau2 float64) (float64, error) {
	if err := validateOneProportion(x, n, tau2); err != nil {
		return 0, err
	}
	if math.IsNaN(p0) || p0 < 0 || p0 > 1 {
		return 0, fmt.Errorf("%w: candidate rate must be within [0,1], got %v", ErrInvalidInput, p0)
	}
	return proportionLogLambda(float64(x), float64(n), p0, tau2), nil
}

// proportionLogLambda is ProportionLogLambda on checked input.
func proportionLogLambda(x, n, p0, tau2 float64) float64 {
	theta := x/n - p0
	variance := p0 * (1 - p0) / n
	if variance <= 0 {
		if theta == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return 0.5*math.Log(variance/(variance+tau2)) + tau2*theta*theta/(2*variance*(variance+tau2))
}

// validateOneProportion checks the counts and tau2 of a one-proportion test.
func validateOneProportion(x, n int64, tau2 float64) error {
	switch {
	case n < 0 || x < 0 || x > n:
		return fmt.Errorf("%w: %d events in %d trials", ErrInvalidCounts, x, n)
	case n == 0:
		return fmt.Errorf("%w: 0 trials", ErrNoTraffic)
	case math.IsNaN(tau2) || math.IsInf(tau2, 0) || tau2 <= 0:
		return fmt.Errorf("%w: tau2 must be positive and finite, got %v", ErrInvalidInput, tau2)
	}
	return nil
}

// ProportionConfidenceSequence returns the anytime-valid confidence sequence of one proportion
// at level 1-alpha after x events in n trials: the smallest and largest rates p0 with
// Lambda(p0) < 1/alpha. Whatever the number of looks, the true rate lies outside the interval
// at any look with probability at most alpha (up to the normal approximation).
//
// Errors: as ProportionLogLambda, and ErrInvalidInput unless alpha lies strictly between 0 and 1.
func ProportionConfidenceSequence(x, n int64, alpha, tau2 float64) (low, high float64, err error) {
	if err := validateOneProportion(x, n, tau2); err != nil {
		return 0, 0, err
	}
	if err := checkOpenUnit("alpha", alpha); err != nil {
		return 0, 0, err
	}
	fx, fn := float64(x), float64(n)
	rate := fx / fn
	bound := math.Log(1 / alpha)
	inside := func(p0 float64) bool { return proportionLogLambda(fx, fn, p0, tau2) < bound }
	return boundary(inside, rate, 0), boundary(inside, rate, 1), nil
}

// boundary bisects between in, a rate inside the set, and out, an end of [0,1], for the last
// rate still inside. The set is an interval around the observed rate: Lambda need not grow
// steadily as p0 moves away (below the rate it may first dip, as V0 shrinks), but it stays below
// 1/alpha up to the edge and above it beyond, so 60 halvings find the edge to double precision.
func boundary(inside func(float64) bool, in, out float64) float64 {
	if inside(out) {
		return out
	}
	for range 60 {
		mid := (in + out) / 2
		if inside(mid) {
			in = mid
		} else {
			out = mid
		}
	}
	return in
}

// ThresholdEvidence is what the one-proportion sequential test says about a threshold.
type ThresholdEvidence struct {
	// Rate is the observed proportion, events over trials.
	Rate float64
	// Low and High bound the confidence sequence at level 1-alpha.
	Low, High float64
	// LogLambda is log Lambda at the threshold; the threshold is decided when it reaches
	// log(1/alpha).
	LogLambda float64
	// Decided is true when the data put the threshold outside the confidence sequence.
	Decided bool
	// Above is true when the observed rate is above the threshold (decided or not).
	Above bool
	// MoreTrials is how many more trials would decide the threshold if the observed rate held;
	// 0 when decided, -1 when it cannot be told (the rate equals the threshold).
	MoreTrials int64
}

// TestProportionThreshold runs the one-proportion sequential test of the rate p0 on x events in
// n trials at level alpha with mixing variance tau2. The threshold is decided when Lambda(p0)
// reaches 1/alpha, which happens exactly when p0 leaves the confidence sequence. A p0 of 0 or 1
// is decided by the first trial that contradicts it.
//
// Errors: as ProportionConfidenceSequence, and ErrInvalidInput for p0 outside [0,1].
func TestProportionThreshold(x, n int64, p0, alpha, tau2 float64) (ThresholdEvidence, error) {
	logLambda, err := ProportionLogLambda(x, n, p0, tau2)
	if err != nil {
		return ThresholdEvidence{}, err
	}
	low, high, err := ProportionConfidenceSequence(x, n, alpha, tau2)
	if err != nil {
		return ThresholdEvidence{}, err
	}
	e := ThresholdEvidence{Rate: float64(x) / float64(n), Low: low, High: high, LogLambda: logLambda}
	e.Above = e.Rate > p0
	e.Decided = logLambda >= math.Log(1/alpha)
	if !e.Decided {
		e.MoreTrials = moreTrials(e.Rate, float64(n), p0, alpha, tau2)
	}
	return e, nil
}

// maxTrials bounds the search for the trials that would decide a test.
const maxTrials = 1e12

// moreTrials is how many trials beyond n would decide p0 if the rate stayed where it is: the
// smallest m with Lambda(p0) >= 1/alpha at rate*m events in m trials. -1 when no number up to
// maxTrials would (the rate equals p0, or nearly).
func moreTrials(rate, n, p0, alpha, tau2 float64) int64 {
	bound := math.Log(1 / alpha)
	decides := func(m float64) bool { return proportionLogLambda(rate*m, m, p0, tau2) >= bound }
	return trialsUntil(decides, n)
}

// trialsUntil finds the smallest trial count above n at which decides holds, assuming it keeps
// holding for larger counts, and returns how many trials that is beyond n; -1 when it does not
// hold by maxTrials.
func trialsUntil(decides func(float64) bool, n float64) int64 {
	hi := math.Max(n, 1)
	for !decides(hi) {
		hi *= 2
		if hi > maxTrials {
			return -1
		}
	}
	lo := math.Max(n, 1)
	if decides(lo) {
		return 0
	}
	for hi-lo > 1 {
		mid := math.Floor((lo + hi) / 2)
		if decides(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return int64(hi - n)
}
