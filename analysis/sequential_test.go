package analysis

import (
	"math/rand/v2"
	"testing"
)

// Simulation settings shared by the sequential tests: 20 looks, each adding
// 500 requests per arm, checked at alpha 0.05 with mixing variance 1e-4
// (differences of about 0.01 are the ones worth detecting).
const (
	simLooks          = 20
	simRequestsPerArm = 500
	simAlpha          = 0.05
	simTau2           = 1e-4
)

// binomial draws the number of successes in n Bernoulli(p) trials.
func binomial(rng *rand.Rand, n int, p float64) int64 {
	var successes int64
	for range n {
		if rng.Float64() < p {
			successes++
		}
	}
	return successes
}

// experimentOutcome records whether each test ever rejected during one
// simulated experiment.
type experimentOutcome struct {
	fixedRejected      bool
	sequentialRejected bool
	// firstSequentialLook is the 1-based look at which the sequential test
	// first rejected, 0 if it never did.
	firstSequentialLook int
}

// simulateExperiment runs one experiment with true rates rateA and rateB,
// applying the fixed-sample z-test and the sequential test at every look
// to the cumulative counts.
func simulateExperiment(t *testing.T, rng *rand.Rand, rateA, rateB float64) experimentOutcome {
	t.Helper()
	var out experimentOutcome
	var xA, nA, xB, nB int64
	state := NewSequentialState()
	for look := 1; look <= simLooks; look++ {
		xA += binomial(rng, simRequestsPerArm, rateA)
		xB += binomial(rng, simRequestsPerArm, rateB)
		nA += simRequestsPerArm
		nB += simRequestsPerArm

		z, err := TwoProportionZTest(xA, nA, xB, nB, TwoSided)
		if err != nil {
			t.Fatalf("TwoProportionZTest: %v", err)
		}
		out.fixedRejected = out.fixedRejected || z.PValue < simAlpha

		var p float64
		state, p = state.Update(xA, nA, xB, nB, simTau2)
		if p < simAlpha && !out.sequentialRejected {
			out.sequentialRejected = true
			out.firstSequentialLook = look
		}
	}
	if state.Looks != simLooks {
		t.Fatalf("sequential state counted %d looks, want %d", state.Looks, simLooks)
	}
	return out
}

// TestSequentialControlsFalsePositivesUnderPeeking simulates A/A
// experiments (both arms at 5 %) checked at 20 looks. Re-running a
// fixed-sample test at every look inflates the false-positive rate well
// above alpha; the always-valid p-value keeps it at or below alpha.
func TestSequentialControlsFalsePositivesUnderPeeking(t *testing.T) {
	const experiments = 2000
	rng := rand.New(rand.NewPCG(1, 2))
	var fixed, sequential int
	for range experiments {
		out := simulateExperiment(t, rng, 0.05, 0.05)
		if out.fixedRejected {
			fixed++
		}
		if out.sequentialRejected {
			sequential++
		}
	}
	fixedRate := float64(fixed) / experiments
	sequentialRate := float64(sequential) / experiments
	t.Logf("A/A false-positive rate over %d looks: fixed-sample z-test %.4f, sequential %.4f",
		simLooks, fixedRate, sequentialRate)
	if fixedRate <= 0.10 {
		t.Errorf("fixed-sample rate under peeking = %.4f, expected inflation above 0.10", fixedRate)
	}
	// alpha plus about two Monte-Carlo standard errors (sqrt(.05*.95/2000) = 0.005).
	if sequentialRate > simAlpha+0.01 {
		t.Errorf("sequential false-positive rate = %.4f, want <= %.2f", sequentialRate, simAlpha+0.01)
	}
}

// TestSequentialDetectsRealDifference checks that the sequential test has
// power: with the experiment at 8 % against a 5 % control it rejects in
// most experiments within 20 looks.
func TestSequentialDetectsRealDifference(t *testing.T) {
	const experiments = 300
	rng := rand.New(rand.NewPCG(5, 6))
	var sequential, looksToReject int
	for range experiments {
		out := simulateExperiment(t, rng, 0.05, 0.08)
		if out.sequentialRejected {
			sequential++
			looksToReject += out.firstSequentialLook
		}
	}
	power := float64(sequential) / experiments
	t.Logf("sequential power for 0.05 vs 0.08 within %d looks: %.4f (mean look of first rejection %.1f)",
		simLooks, power, float64(looksToReject)/float64(max(sequential, 1)))
	if power <= 0.8 {
		t.Errorf("sequential power = %.4f, want > 0.8", power)
	}
}
