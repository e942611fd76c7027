package analysis

import (
	"errors"
	"math"
	"testing"
)

// Vectors d and e are in analysis/VECTORS.md, computed by hack/vectors/vectors.py in exact
// fractions, independently of the code under test.

func TestProportionConfidenceSequenceVectors(t *testing.T) {
	tests := []struct {
		name        string
		x, n        int64
		alpha, tau2 float64
		low, high   float64
	}{
		{"d1", 40, 1000, 0.05, 1e-4, 0.024848678929037603, 0.06642888482658722},
		{"d2", 100, 1000, 0.05, 1e-4, 0.07220671477811073, 0.14225187764533007},
		{"d3", 0, 500, 0.05, 1e-4, 0, 0.01976766169645034},
		{"d4", 5, 83, 0.05, 0.0025, 0.01700758202159808, 0.2204979007454064},
		{"d5", 4000, 100000, 0.01, 1e-4, 0.03767669099934835, 0.04245107235078572},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			low, high, err := ProportionConfidenceSequence(tt.x, tt.n, tt.alpha, tt.tau2)
			if err != nil {
				t.Fatalf("ProportionConfidenceSequence: %v", err)
			}
			if tt.low == 0 {
				if low != 0 {
					t.Errorf("low = %v, want 0", low)
				}
			} else {
				assertClose(t, "low", low, tt.low, 1e-9)
			}
			assertClose(t, "high", high, tt.high, 1e-9)
		})
	}
}

func TestProportionLogLambdaVectors(t *testing.T) {
	tests := []struct {
		name     string
		x, n     int64
		p0, tau2 float64
		want     float64
	}{
		{"e1", 40, 1000, 0.05, 1e-4, 0.14709929573027125},
		{"e2", 100, 1000, 0.05, 1e-4, 17.27466397012813},
		{"e3", 0, 500, 0.05, 1e-4, 6.388076993104091},
	}
	for _, tt := range tests {
		got, err := ProportionLogLambda(tt.x, tt.n, tt.p0, tt.tau2)
		if err != nil {
			t.Fatalf("%s: ProportionLogLambda: %v", tt.name, err)
		}
		assertClose(t, tt.name+" log Lambda", got, tt.want, 1e-9)
	}

	// A rate of 0 or 1 has no variance: data that agree with it are no evidence, and one
	// observation against it is decisive.
	edges := []struct {
		name string
		x, n int64
		p0   float64
		want float64
	}{
		{"no event against p0 = 0", 0, 10, 0, 0},
		{"an event against p0 = 0", 1, 10, 0, math.Inf(1)},
		{"all events against p0 = 1", 10, 10, 1, 0},
		{"a non-event against p0 = 1", 9, 10, 1, math.Inf(1)},
	}
	for _, tt := range edges {
		if got, err := ProportionLogLambda(tt.x, tt.n, tt.p0, 1e-4); err != nil || got != tt.want {
			t.Errorf("%s: log Lambda = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

// oneProportionLogLambda is log Lambda of the one-proportion mixture test written out from its
// definition for a rate held at rate over m trials, independently of the code under test.
func oneProportionLogLambda(rate, m, p0, tau2 float64) float64 {
	v := p0 * (1 - p0) / m
	theta := rate - p0
	return 0.5*math.Log(v/(v+tau2)) + tau2*theta*theta/(2*v*(v+tau2))
}

func TestProportionThresholdCases(t *testing.T) {
	const alpha = 0.05
	tau2 := ThresholdMixingVariance(0.05)
	tests := []struct {
		name           string
		x, n           int64
		p0             float64
		decided, above bool
		// more: 1 for a positive MoreTrials, checked against the definition; otherwise the
		// exact value.
		more int64
	}{
		{"decided above", 100, 1000, 0.05, true, true, 0},
		{"decided below", 0, 500, 0.05, true, false, 0},
		{"undecided below", 40, 1000, 0.05, false, false, 1},
		{"undecided below, close to deciding", 30, 1000, 0.05, false, false, 1},
		{"undecided above", 65, 1000, 0.05, false, true, 1},
		{"undecided above, few trials", 3, 10, 0.05, false, true, 1},
		{"rate equals the threshold", 50, 1000, 0.05, false, false, -1},
		{"an event against a threshold of 0", 1, 10, 0, true, true, 0},
		{"no event against a threshold of 0", 0, 10, 0, false, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := TestProportionThreshold(tt.x, tt.n, tt.p0, alpha, tau2)
			if err != nil {
				t.Fatalf("TestProportionThreshold: %v", err)
			}
			rate := float64(tt.x) / float64(tt.n)
			logLambda, err := ProportionLogLambda(tt.x, tt.n, tt.p0, tau2)
			if err != nil {
				t.Fatalf("ProportionLogLambda: %v", err)
			}
			low, high, err := ProportionConfidenceSequence(tt.x, tt.n, alpha, tau2)
			if err != nil {
				t.Fatalf("ProportionConfidenceSequence: %v", err)
			}
			if e.Rate != rate || e.LogLambda != logLambda || e.Low != low || e.High != high {
				t.Errorf("evidence %+v, want rate %v, log Lambda %v, sequence [%v, %v]", e, rate, logLambda, low, high)
			}
			if e.Decided != tt.decided || e.Above != tt.above {
				t.Errorf("Decided, Above = %v, %v; want %v, %v", e.Decided, e.Above, tt.decided, tt.above)
			}
			// Deciding the threshold is the same as its leaving the confidence sequence.
			if outside := tt.p0 < e.Low || tt.p0 > e.High; outside != e.Decided {
				t.Errorf("p0 %v against [%v, %v]: outside %v, Decided %v", tt.p0, e.Low, e.High, outside, e.Decided)
			}
			if tt.more <= 0 {
				if e.MoreTrials != tt.more {
					t.Errorf("MoreTrials = %d, want %d", e.MoreTrials, tt.more)
				}
				return
			}
			if e.MoreTrials <= 0 {
				t.Fatalf("MoreTrials = %d, want positive", e.MoreTrials)
			}
			// With the rate held (fractional events allowed), n+MoreTrials trials reach 1/alpha
			// and one fewer do not.
			bound := math.Log(1 / alpha)
			enough := float64(tt.n + e.MoreTrials)
			if got := oneProportionLogLambda(rate, enough, tt.p0, tau2); got < bound {
				t.Errorf("after %d more trials log Lambda = %v, below %v", e.MoreTrials, got, bound)
			}
			if got := oneProportionLogLambda(rate, enough-1, tt.p0, tau2); got >= bound {
				t.Errorf("after %d more trials log Lambda = %v, already at %v", e.MoreTrials-1, got, bound)
			}
		})
	}
}

func TestProportionThresholdMixingVariance(t *testing.T) {
	tests := []struct{ p0, want float64 }{
		{0.05, 1e-4},      // a fifth of 5 % is 1 point
		{0.2, 0.0016},     // 4 points
		{0.5, 0.01},       // 10 points, the widest
		{0.95, 1e-4},      // measured from 1: a fifth of 5 %
		{0.001, 1e-6},     // a fifth would be 0.02 point; the floor is 0.1 point
		{0.005, 1e-6},     // exactly at the floor
		{0, 1e-6},         // the floor
		{1, 1e-6},         // the floor
		{0.9999, 1e-6},    // the floor, measured from 1
		{0.0125, 6.25e-6}, // 0.25 point, above the floor
	}
	for _, tt := range tests {
		assertClose(t, "ThresholdMixingVariance", ThresholdMixingVariance(tt.p0), tt.want, 1e-12)
	}
	for _, p0 := range []float64{math.NaN(), -0.1, 1.5, math.Inf(1)} {
		if got := ThresholdMixingVariance(p0); !math.IsNaN(got) {
			t.Errorf("ThresholdMixingVariance(%v) = %v, want NaN", p0, got)
		}
	}
}

func TestProportionBadInput(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	// Every argument a case does not name is valid. ProportionLogLambda takes no alpha and
	// ProportionConfidenceSequence no p0; TestProportionThreshold takes both.
	const x, n, p0, alpha, tau2 = 1, 10, 0.05, 0.05, 1e-4
	tests := []struct {
		name                  string
		x, n                  int64
		p0, alpha, tau2       float64
		want                  error
		logLambda, confidence bool // whether ProportionLogLambda, ProportionConfidenceSequence see it
	}{
		{"no trials", 0, 0, p0, alpha, tau2, ErrNoTraffic, true, true},
		{"more events than trials", 11, 10, p0, alpha, tau2, ErrInvalidCounts, true, true},
		{"negative events", -1, n, p0, alpha, tau2, ErrInvalidCounts, true, true},
		{"negative trials", 0, -5, p0, alpha, tau2, ErrInvalidCounts, true, true},
		{"tau2 zero", x, n, p0, alpha, 0, ErrInvalidInput, true, true},
		{"tau2 negative", x, n, p0, alpha, -1e-4, ErrInvalidInput, true, true},
		{"tau2 NaN", x, n, p0, alpha, nan, ErrInvalidInput, true, true},
		{"tau2 infinite", x, n, p0, alpha, inf, ErrInvalidInput, true, true},
		{"alpha zero", x, n, p0, 0, tau2, ErrInvalidInput, false, true},
		{"alpha one", x, n, p0, 1, tau2, ErrInvalidInput, false, true},
		{"alpha negative", x, n, p0, -0.05, tau2, ErrInvalidInput, false, true},
		{"alpha above one", x, n, p0, 1.5, tau2, ErrInvalidInput, false, true},
		{"alpha NaN", x, n, p0, nan, tau2, ErrInvalidInput, false, true},
		{"alpha infinite", x, n, p0, inf, tau2, ErrInvalidInput, false, true},
		{"p0 negative", x, n, -0.01, alpha, tau2, ErrInvalidInput, true, false},
		{"p0 above one", x, n, 1.01, alpha, tau2, ErrInvalidInput, true, false},
		{"p0 NaN", x, n, nan, alpha, tau2, ErrInvalidInput, true, false},
		{"p0 infinite", x, n, inf, alpha, tau2, ErrInvalidInput, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(name string, err error, sees bool) {
				t.Helper()
				switch {
				case sees && !errors.Is(err, tt.want):
					t.Errorf("%s: error = %v, want %v", name, err, tt.want)
				case !sees && err != nil:
					t.Errorf("%s: error = %v, want nil", name, err)
				}
			}
			_, err := ProportionLogLambda(tt.x, tt.n, tt.p0, tt.tau2)
			check("ProportionLogLambda", err, tt.logLambda)
			_, _, err = ProportionConfidenceSequence(tt.x, tt.n, tt.alpha, tt.tau2)
			check("ProportionConfidenceSequence", err, tt.confidence)
			_, err = TestProportionThreshold(tt.x, tt.n, tt.p0, tt.alpha, tt.tau2)
			check("TestProportionThreshold", err, true)
		})
	}
}

// twoProportionLogLambdaAtRates is log Lambda of the two-proportion mixture test written out
// from its definition for proportions held at pA and pB over m trials per arm, with the
// proportions shrunk by half an event when neither arm varies.
func twoProportionLogLambdaAtRates(pA, pB, m, tau2 float64) float64 {
	theta := pB - pA
	v := pA*(1-pA)/m + pB*(1-pB)/m
	if v == 0 {
		sA, sB := (pA*m+0.5)/(m+1), (pB*m+0.5)/(m+1)
		v = sA*(1-sA)/m + sB*(1-sB)/m
	}
	return 0.5*math.Log(v/(v+tau2)) + tau2*theta*theta/(2*v*(v+tau2))
}

func TestTwoProportionTrialsNeeded(t *testing.T) {
	const alpha, tau2 = 0.05, 1e-4
	tests := []struct {
		name   string
		pA, pB float64
		n      float64
		// want: 1 for a positive count, checked against the definition; otherwise exact.
		want int64
	}{
		{"experiment worse, from 1000 per arm", 0.05, 0.08, 1000, 1},
		{"experiment worse, from no trials", 0.05, 0.08, 0, 1},
		{"experiment better", 0.1, 0.05, 200, 1},
		{"no failures against only failures", 0, 1, 0, 1},
		{"already decided", 0.05, 0.1, 100000, 0},
		{"equal proportions", 0.05, 0.05, 100, -1},
		{"both zero", 0, 0, 10, -1},
		{"both one", 1, 1, 10, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			more, err := TwoProportionTrialsNeeded(tt.pA, tt.pB, tt.n, alpha, tau2)
			if err != nil {
				t.Fatalf("TwoProportionTrialsNeeded: %v", err)
			}
			if tt.want <= 0 {
				if more != tt.want {
					t.Errorf("more trials = %d, want %d", more, tt.want)
				}
				return
			}
			if more <= 0 {
				t.Fatalf("more trials = %d, want positive", more)
			}
			bound := math.Log(1 / alpha)
			enough := tt.n + float64(more)
			if got := twoProportionLogLambdaAtRates(tt.pA, tt.pB, enough, tau2); got < bound {
				t.Errorf("at %v trials per arm log Lambda = %v, below %v", enough, got, bound)
			}
			if got := twoProportionLogLambdaAtRates(tt.pA, tt.pB, enough-1, tau2); got >= bound {
				t.Errorf("at %v trials per arm log Lambda = %v, already at %v", enough-1, got, bound)
			}
		})
	}

	nan, inf := math.NaN(), math.Inf(1)
	bad := []struct {
		name               string
		pA, pB, n, a, tau2 float64
	}{
		{"pA negative", -0.1, 0.05, 100, alpha, tau2},
		{"pA above one", 1.1, 0.05, 100, alpha, tau2},
		{"pA NaN", nan, 0.05, 100, alpha, tau2},
		{"pB negative", 0.05, -0.1, 100, alpha, tau2},
		{"pB above one", 0.05, 1.1, 100, alpha, tau2},
		{"pB NaN", 0.05, nan, 100, alpha, tau2},
		{"alpha zero", 0.05, 0.08, 100, 0, tau2},
		{"alpha one", 0.05, 0.08, 100, 1, tau2},
		{"alpha NaN", 0.05, 0.08, 100, nan, tau2},
		{"trials negative", 0.05, 0.08, -1, alpha, tau2},
		{"trials NaN", 0.05, 0.08, nan, alpha, tau2},
		{"trials infinite", 0.05, 0.08, inf, alpha, tau2},
		{"tau2 zero", 0.05, 0.08, 100, alpha, 0},
		{"tau2 negative", 0.05, 0.08, 100, alpha, -1e-4},
		{"tau2 NaN", 0.05, 0.08, 100, alpha, nan},
		{"tau2 infinite", 0.05, 0.08, 100, alpha, inf},
	}
	for _, tt := range bad {
		if _, err := TwoProportionTrialsNeeded(tt.pA, tt.pB, tt.n, tt.a, tt.tau2); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: error = %v, want ErrInvalidInput", tt.name, err)
		}
	}
}
