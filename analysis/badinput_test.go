package analysis

import (
	"errors"
	"math"
	"testing"
)

// Bad input to the statistics functions must give an error (ErrInvalidInput, or
// ErrInvalidCounts for counts), or NaN where a function returns only a float, and never a
// value that reads as significant.

// badProbabilities are values that are not usable as a level or a probability strictly
// between 0 and 1.
var badProbabilities = []float64{math.NaN(), 0, 1, -0.05, 1.05, math.Inf(1), math.Inf(-1)}

func TestBadInputNormalQuantile(t *testing.T) {
	for _, p := range []float64{math.NaN(), -1e-300, -0.5, 1 + 1e-15, 2, math.Inf(1), math.Inf(-1)} {
		if got := NormalQuantile(p); !math.IsNaN(got) {
			t.Errorf("NormalQuantile(%v) = %v, want NaN", p, got)
		}
	}
}

func TestBadInputNormalTails(t *testing.T) {
	if got := NormalTwoSidedP(math.NaN()); !math.IsNaN(got) {
		t.Errorf("NormalTwoSidedP(NaN) = %v, want NaN", got)
	}
	if got := NormalUpperTail(math.NaN()); !math.IsNaN(got) {
		t.Errorf("NormalUpperTail(NaN) = %v, want NaN", got)
	}
}

func TestBadInputTwoProportionZTest(t *testing.T) {
	tests := []struct {
		name           string
		xA, nA, xB, nB int64
		alt            Alternative
		wantErr        error
	}{
		{"negative events in A", -1, 100, 5, 100, TwoSided, ErrInvalidCounts},
		{"negative events in B", 5, 100, -3, 100, TwoSided, ErrInvalidCounts},
		{"negative trials", 0, -100, 5, 100, TwoSided, ErrInvalidCounts},
		{"events above trials in A", 101, 100, 5, 100, Greater, ErrInvalidCounts},
		{"events above trials in B", 5, 100, 101, 100, Less, ErrInvalidCounts},
		{"events without trials", 3, 0, 0, 0, TwoSided, ErrInvalidCounts},
		{"events without trials in one arm", 0, 100, 7, 0, TwoSided, ErrInvalidCounts},
		{"unknown alternative", 5, 100, 6, 100, Alternative(-1), ErrInvalidInput},
		{"no traffic", 0, 0, 0, 0, TwoSided, ErrNoTraffic},
		{"empty arm", 0, 0, 1, 10, TwoSided, ErrEmptyArm},
	}
	for _, tt := range tests {
		r, err := TwoProportionZTest(tt.xA, tt.nA, tt.xB, tt.nB, tt.alt)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.wantErr)
		}
		if r != (ZTestResult{}) {
			t.Errorf("%s: result %+v returned with the error", tt.name, r)
		}
	}
}

func TestBadInputTwoProportionZTestWithConfidence(t *testing.T) {
	for _, confidence := range badProbabilities {
		if _, err := TwoProportionZTestWithConfidence(5, 100, 9, 100, TwoSided, confidence); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("confidence %v: error = %v, want ErrInvalidInput", confidence, err)
		}
	}
	// The largest confidence below 1 still gives a finite interval, even with no variance.
	r, err := TwoProportionZTestWithConfidence(0, 1000, 0, 1000, TwoSided, math.Nextafter(1, 0))
	if err != nil || math.IsNaN(r.CILow) || math.IsNaN(r.CIHigh) || r.CILow < -1 || r.CIHigh > 1 {
		t.Errorf("confidence just below 1: [%v, %v], %v", r.CILow, r.CIHigh, err)
	}
}

// TestExtremeArmsTwoProportionZTest checks arms at 0 % and 100 %: the result is finite, an
// obviously different pair is significant once the arms have a few trials, and the same
// proportion in both arms is no evidence.
func TestExtremeArmsTwoProportionZTest(t *testing.T) {
	tests := []struct {
		name            string
		xA, nA, xB, nB  int64
		wantZ           float64 // pooled: sqrt(2n) for 0 % against 100 % with n per arm
		wantSignificant bool
	}{
		{"0 % vs 100 %, 1 trial each", 0, 1, 1, 1, math.Sqrt(2), false},
		{"0 % vs 100 %, 10 trials each", 0, 10, 10, 10, math.Sqrt(20), true},
		{"100 % vs 0 %, 1000 trials each", 1000, 1000, 0, 1000, -math.Sqrt(2000), true},
		{"0 % vs 100 %, unequal arms", 0, 5, 200, 200, 14.317821063276346, true},
		{"0 % in both arms", 0, 1000, 0, 10, 0, false},
		{"100 % in both arms", 50, 50, 3, 3, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := TwoProportionZTest(tt.xA, tt.nA, tt.xB, tt.nB, TwoSided)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			for name, v := range map[string]float64{"Z": r.Z, "PValue": r.PValue, "UnpooledZ": r.UnpooledZ,
				"UnpooledPValue": r.UnpooledPValue, "UnpooledSE": r.UnpooledSE, "CILow": r.CILow, "CIHigh": r.CIHigh} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("%s = %v, want finite", name, v)
				}
			}
			if tt.wantZ == 0 {
				if r.Z != 0 || r.PValue != 1 || r.UnpooledZ != 0 || r.UnpooledPValue != 1 {
					t.Errorf("equal proportions: Z %v, p %v, unpooled Z %v, p %v; want 0, 1, 0, 1", r.Z, r.PValue, r.UnpooledZ, r.UnpooledPValue)
				}
			} else {
				assertClose(t, "Z", r.Z, tt.wantZ, 1e-12)
				assertClose(t, "PValue", r.PValue, NormalTwoSidedP(tt.wantZ), 1e-12)
			}
			if significant := r.PValue < 0.05; significant != tt.wantSignificant {
				t.Errorf("pooled p = %v, significant %v, want %v", r.PValue, significant, tt.wantSignificant)
			}
			if significant := r.UnpooledPValue < 0.05; significant != tt.wantSignificant {
				t.Errorf("unpooled p = %v, significant %v, want %v", r.UnpooledPValue, significant, tt.wantSignificant)
			}
			if !(r.UnpooledSE > 0) || r.CILow > r.DiffEstimate || r.CIHigh < r.DiffEstimate || r.CILow < -1 || r.CIHigh > 1 {
				t.Errorf("interval [%v, %v] around %v with SE %v", r.CILow, r.CIHigh, r.DiffEstimate, r.UnpooledSE)
			}
		})
	}
	// One trial per arm: proportions shrunk to 0.25 and 0.75 give SE sqrt(0.375).
	r, err := TwoProportionZTest(0, 1, 1, 1, TwoSided)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "UnpooledSE", r.UnpooledSE, math.Sqrt(0.375), 1e-15)
	assertClose(t, "UnpooledZ", r.UnpooledZ, 1/math.Sqrt(0.375), 1e-15)
}

func TestBadInputTwoProportionPower(t *testing.T) {
	tests := []struct {
		name             string
		p1, p2, n, alpha float64
	}{
		{"p1 NaN", math.NaN(), 0.5, 100, 0.05},
		{"p2 NaN", 0.5, math.NaN(), 100, 0.05},
		{"p1 0", 0, 0.5, 100, 0.05},
		{"p2 1", 0.5, 1, 100, 0.05},
		{"p1 negative", -0.1, 0.5, 100, 0.05},
		{"p2 above 1", 0.5, 1.2, 100, 0.05},
		{"n NaN", 0.4, 0.5, math.NaN(), 0.05},
		{"n 0", 0.4, 0.5, 0, 0.05},
		{"n negative", 0.4, 0.5, -10, 0.05},
		{"n infinite", 0.4, 0.5, math.Inf(1), 0.05},
		{"alpha NaN", 0.4, 0.5, 100, math.NaN()},
		{"alpha 0", 0.4, 0.5, 100, 0},
		{"alpha 1", 0.4, 0.5, 100, 1},
		{"alpha negative", 0.4, 0.5, 100, -0.05},
		{"alpha infinite", 0.4, 0.5, 100, math.Inf(1)},
	}
	for _, tt := range tests {
		if got := TwoProportionPower(tt.p1, tt.p2, tt.n, tt.alpha); !math.IsNaN(got) {
			t.Errorf("%s: TwoProportionPower = %v, want NaN", tt.name, got)
		}
	}
}

func TestBadInputTwoProportionSampleSize(t *testing.T) {
	tests := []struct {
		name                 string
		p1, p2, alpha, power float64
	}{
		{"p1 NaN", math.NaN(), 0.5, 0.05, 0.8},
		{"p2 NaN", 0.5, math.NaN(), 0.05, 0.8},
		{"p1 0", 0, 0.5, 0.05, 0.8},
		{"p2 1", 0.5, 1, 0.05, 0.8},
		{"p1 infinite", math.Inf(1), 0.5, 0.05, 0.8},
		{"alpha NaN", 0.4, 0.5, math.NaN(), 0.8},
		{"alpha 0", 0.4, 0.5, 0, 0.8},
		{"alpha 1", 0.4, 0.5, 1, 0.8},
		{"alpha above 1", 0.4, 0.5, 1.5, 0.8},
		{"power NaN", 0.4, 0.5, 0.05, math.NaN()},
		{"power 0", 0.4, 0.5, 0.05, 0},
		{"power 1", 0.4, 0.5, 0.05, 1},
		{"power negative", 0.4, 0.5, 0.05, -0.8},
		{"power too low for any n", 0.4, 0.5, 0.05, 0.001},
	}
	for _, tt := range tests {
		if got := TwoProportionSampleSize(tt.p1, tt.p2, tt.alpha, tt.power); !math.IsNaN(got) {
			t.Errorf("%s: TwoProportionSampleSize = %v, want NaN", tt.name, got)
		}
	}
}

func TestBadInputChiSquareGoodnessOfFit(t *testing.T) {
	tests := []struct {
		name               string
		observed, expected []float64
	}{
		{"NaN observed", []float64{math.NaN(), 5}, []float64{5, 5}},
		{"NaN expected", []float64{5, 5}, []float64{5, math.NaN()}},
		{"infinite observed", []float64{math.Inf(1), 5}, []float64{5, 5}},
		{"negative observed", []float64{-5, 15}, []float64{5, 5}},
		{"negative expected", []float64{5, 5}, []float64{-5, 15}},
		{"zero expected", []float64{5, 5}, []float64{0, 10}},
		{"lengths differ", []float64{5, 5}, []float64{10}},
		{"one category", []float64{5}, []float64{5}},
		{"empty", nil, nil},
		{"totals differ", []float64{5, 5}, []float64{6, 6}},
		{"totals overflow", []float64{1e308, 1e308}, []float64{1e308, 1e308}},
	}
	for _, tt := range tests {
		chi2, p, err := ChiSquareGoodnessOfFit(tt.observed, tt.expected)
		if !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: error = %v (chi2 %v, p %v), want ErrInvalidInput", tt.name, err, chi2, p)
		}
	}
}

func TestBadInputSampleRatioMismatch(t *testing.T) {
	tests := []struct {
		name     string
		observed []int64
		weights  []float64
		alpha    float64
		wantErr  error
	}{
		{"negative count", []int64{-1, 100}, []float64{1, 1}, 0.001, ErrInvalidCounts},
		{"NaN weight", []int64{100, 100}, []float64{math.NaN(), 1}, 0.001, ErrInvalidInput},
		{"infinite weight", []int64{100, 100}, []float64{math.Inf(1), 1}, 0.001, ErrInvalidInput},
		{"negative weight", []int64{100, 100}, []float64{-1, 2}, 0.001, ErrInvalidInput},
		{"zero weight", []int64{100, 100}, []float64{0, 1}, 0.001, ErrInvalidInput},
		{"weights overflow", []int64{100, 100}, []float64{1e308, 1e308}, 0.001, ErrInvalidInput},
		{"lengths differ", []int64{100, 100}, []float64{1}, 0.001, ErrInvalidInput},
		{"one arm", []int64{100}, []float64{1}, 0.001, ErrInvalidInput},
	}
	for _, alpha := range badProbabilities {
		tests = append(tests, struct {
			name     string
			observed []int64
			weights  []float64
			alpha    float64
			wantErr  error
		}{"bad alpha", []int64{100, 900}, []float64{1, 1}, alpha, ErrInvalidInput})
	}
	for _, tt := range tests {
		r, err := SampleRatioMismatch(tt.observed, tt.weights, tt.alpha)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s (alpha %v): error = %v, want %v", tt.name, tt.alpha, err, tt.wantErr)
		}
		if r.Mismatch {
			t.Errorf("%s (alpha %v): mismatch reported with the error", tt.name, tt.alpha)
		}
	}
}

func TestBadInputMannWhitneyU(t *testing.T) {
	tests := []struct {
		name string
		x, y []float64
	}{
		{"NaN in x", []float64{1, math.NaN(), 3}, []float64{1, 2}},
		{"NaN in y", []float64{1, 2, 3}, []float64{math.NaN()}},
		{"+Inf in x", []float64{math.Inf(1)}, []float64{1, 2}},
		{"-Inf in y", []float64{1}, []float64{math.Inf(-1), 2}},
	}
	for _, tt := range tests {
		if _, err := MannWhitneyU(tt.x, tt.y); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: error = %v, want ErrInvalidInput", tt.name, err)
		}
	}
}

func TestBadInputHodgesLehmann(t *testing.T) {
	tests := []struct {
		name       string
		x, y       []float64
		confidence float64
	}{
		{"NaN in experiment", []float64{1, math.NaN()}, []float64{1, 2}, 0.95},
		{"NaN in control", []float64{1, 2}, []float64{math.NaN()}, 0.95},
		{"+Inf in experiment", []float64{math.Inf(1)}, []float64{1}, 0.95},
		{"-Inf in control", []float64{1}, []float64{math.Inf(-1)}, 0.95},
		{"differences overflow upwards", []float64{1e308, 0}, []float64{-1e308}, 0.95},
		{"differences overflow downwards", []float64{-1e308}, []float64{1e308, 0}, 0.95},
	}
	for _, confidence := range badProbabilities {
		tests = append(tests, struct {
			name       string
			x, y       []float64
			confidence float64
		}{"bad confidence", []float64{10, 20, 30}, []float64{1, 2, 3}, confidence})
	}
	for _, tt := range tests {
		if _, _, _, err := HodgesLehmann(tt.x, tt.y, tt.confidence); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s (confidence %v): error = %v, want ErrInvalidInput", tt.name, tt.confidence, err)
		}
	}
}

func TestBadInputHolmAdjust(t *testing.T) {
	tests := []struct {
		name    string
		pvalues []float64
	}{
		{"negative p", []float64{0.01, -0.02, 0.03}},
		{"p above 1", []float64{0.001, 1.5}},
		{"+Inf", []float64{math.Inf(1), 0.01}},
		{"-Inf", []float64{0.01, math.Inf(-1)}},
		{"out of range next to NaN", []float64{math.NaN(), 0.01, 7}},
	}
	for _, tt := range tests {
		got := HolmAdjust(tt.pvalues)
		if len(got) != len(tt.pvalues) {
			t.Fatalf("%s: HolmAdjust = %v, want %d values", tt.name, got, len(tt.pvalues))
		}
		for i, p := range got {
			if !math.IsNaN(p) {
				t.Errorf("%s: HolmAdjust[%d] = %v, want NaN", tt.name, i, p)
			}
		}
	}
}

func TestBadInputHolmReject(t *testing.T) {
	tests := []struct {
		name    string
		pvalues []float64
		alpha   float64
	}{
		{"negative p", []float64{-0.5, 0.001}, 0.05},
		{"p above 1", []float64{0.001, 2}, 0.05},
		{"infinite p", []float64{0.001, math.Inf(-1)}, 0.05},
		{"NaN p", []float64{math.NaN()}, 0.05},
	}
	for _, alpha := range badProbabilities {
		tests = append(tests, struct {
			name    string
			pvalues []float64
			alpha   float64
		}{"bad alpha", []float64{0, 0.001, 0.5, 1}, alpha})
	}
	for _, tt := range tests {
		for i, rejected := range HolmReject(tt.pvalues, tt.alpha) {
			if rejected {
				t.Errorf("%s (alpha %v): hypothesis %d rejected", tt.name, tt.alpha, i)
			}
		}
	}
}
