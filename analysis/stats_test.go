package analysis

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Reference values below come from /work/shared/analysis-vectors.md (the
// "vector N" comments). Where a vector is published with few digits, the
// test compares against a value recomputed to double precision from the
// same closed form (noted next to it) and checks that it rounds to the
// published one.

// assertClose fails unless got is within relative tolerance rel of want.
func assertClose(t *testing.T, name string, got, want, rel float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > rel*math.Abs(want) {
		t.Errorf("%s = %.10g, want %.10g (relative tolerance %g)", name, got, want, rel)
	}
}

// assertRoundsTo fails unless got rounds to the published value at digits
// significant digits.
func assertRoundsTo(t *testing.T, name string, got, published float64, digits int) {
	t.Helper()
	scale := math.Pow(10, float64(digits-1)-math.Floor(math.Log10(math.Abs(published))))
	if math.Round(got*scale) != math.Round(published*scale) {
		t.Errorf("%s = %.10g does not round to published %g at %d significant digits", name, got, published, digits)
	}
}

func TestNormalQuantile(t *testing.T) {
	// vector 16
	tests := []struct{ p, want float64 }{
		{0.975, 1.959964},
		{0.99, 2.326348},
		{0.9, 1.281552},
		{0.8, 0.841621},
		{0.5, 0},
		{0.025, -1.959964},
	}
	for _, tt := range tests {
		got := NormalQuantile(tt.p)
		if tt.want == 0 {
			if math.Abs(got) > 1e-15 {
				t.Errorf("NormalQuantile(%v) = %v, want 0", tt.p, got)
			}
			continue
		}
		assertClose(t, "NormalQuantile", got, tt.want, 1e-6)
	}
	if !math.IsInf(NormalQuantile(1), 1) || !math.IsInf(NormalQuantile(0), -1) {
		t.Errorf("NormalQuantile(0), (1) = %v, %v; want -Inf, +Inf", NormalQuantile(0), NormalQuantile(1))
	}
	for _, p := range []float64{-0.1, 1.1, math.NaN(), math.Inf(1)} {
		if got := NormalQuantile(p); !math.IsNaN(got) {
			t.Errorf("NormalQuantile(%v) = %v, want NaN", p, got)
		}
	}
}

func TestNormalTails(t *testing.T) {
	tests := []struct {
		z, twoSided, upper, rel float64
	}{
		{0, 1, 0.5, 1e-15},
		{1.959963984540054, 0.05, 0.025, 1e-12},
		{-1.959963984540054, 0.05, 0.975, 1e-12},
		// 2*Phi(-9) = 2.2571768119076845e-19: must not underflow to 0.
		{9, 2.2571768119076845e-19, 1.1285884059538422e-19, 1e-3},
		{-9, 2.2571768119076845e-19, 1, 1e-15},
		{math.Inf(1), 0, 0, 0},
	}
	for _, tt := range tests {
		if got := NormalTwoSidedP(tt.z); tt.twoSided == 0 && got != 0 || tt.twoSided != 0 && !(got > 0) {
			t.Errorf("NormalTwoSidedP(%v) = %v, want %v", tt.z, got, tt.twoSided)
		}
		if tt.twoSided != 0 {
			assertClose(t, "NormalTwoSidedP", NormalTwoSidedP(tt.z), tt.twoSided, tt.rel)
		}
		if tt.upper != 0 {
			assertClose(t, "NormalUpperTail", NormalUpperTail(tt.z), tt.upper, tt.rel)
		}
	}
	if NormalTwoSidedP(9) < 2.25e-19 {
		t.Errorf("NormalTwoSidedP(9) = %v underflows", NormalTwoSidedP(9))
	}
	if !math.IsNaN(NormalTwoSidedP(math.NaN())) || !math.IsNaN(NormalUpperTail(math.NaN())) {
		t.Error("normal tails of NaN should be NaN")
	}
}

func TestTwoProportionZTestVectors(t *testing.T) {
	// vector 1 and 1b: statsmodels proportions_ztest(count=(5, 12),
	// nobs=(83, 99)) reports (p1 - p2)/se = -1.40783. Our Z is
	// (pB - pA)/se, so B = (5, 83) and A = (12, 99) reproduce the sign.
	r, err := TwoProportionZTest(12, 99, 5, 83, TwoSided)
	if err != nil {
		t.Fatalf("TwoProportionZTest: %v", err)
	}
	assertClose(t, "Z", r.Z, -1.40783, 1e-5)
	assertClose(t, "PValue", r.PValue, 0.159181, 1e-5)
	assertClose(t, "Z (double precision)", r.Z, -1.4078304151258787, 1e-12)
	assertClose(t, "PValue (double precision)", r.PValue, 0.15918129181156995, 1e-10)
	assertRoundsTo(t, "UnpooledZ", r.UnpooledZ, -1.4542, 5)
	assertRoundsTo(t, "UnpooledPValue", r.UnpooledPValue, 0.1459, 4)
	assertClose(t, "UnpooledZ (double precision)", r.UnpooledZ, -1.4541573427709915, 1e-12)
	assertClose(t, "UnpooledPValue (double precision)", r.UnpooledPValue, 0.14590268849770238, 1e-10)
	assertClose(t, "PooledSE", r.PooledSE, 0.04330859505634981, 1e-12)
	assertClose(t, "UnpooledSE", r.UnpooledSE, 0.041928858427737276, 1e-12)

	// Same data with A and B the other way round: the sign flips, and the
	// one-sided p-values split the two-sided one.
	tests := []struct {
		alt   Alternative
		wantP float64
	}{
		{TwoSided, 0.15918129181156995},
		{Greater, 0.07959064590578498},
		{Less, 1 - 0.07959064590578498},
	}
	for _, tt := range tests {
		r, err := TwoProportionZTest(5, 83, 12, 99, tt.alt)
		if err != nil {
			t.Fatalf("TwoProportionZTest(%v): %v", tt.alt, err)
		}
		assertClose(t, "Z swapped", r.Z, 1.4078304151258787, 1e-12)
		assertClose(t, "PValue "+tt.alt.String(), r.PValue, tt.wantP, 1e-10)
		assertClose(t, "DiffEstimate", r.DiffEstimate, 0.06097115735669953, 1e-12)
		assertClose(t, "CILow", r.CILow, -0.02120789507454425, 1e-9)
		assertClose(t, "CIHigh", r.CIHigh, 0.1431502097879433, 1e-9)
	}
}

func TestTwoProportionZTestEdges(t *testing.T) {
	tests := []struct {
		name               string
		xA, nA, xB, nB     int64
		wantErr            error
		wantZ, wantP       float64
		wantUnpooledFinite bool
	}{
		{name: "zero events in both arms is data", xA: 0, nA: 1000, xB: 0, nB: 800, wantZ: 0, wantP: 1, wantUnpooledFinite: true},
		{name: "all events in both arms", xA: 50, nA: 50, xB: 70, nB: 70, wantZ: 0, wantP: 1, wantUnpooledFinite: true},
		{name: "proportions 0 and 1", xA: 0, nA: 10, xB: 10, nB: 10, wantZ: 4.47213595499958, wantP: 7.744216e-06},
		{name: "1e9 per arm", xA: 50_000_000, nA: 1_000_000_000, xB: 50_100_000, nB: 1_000_000_000,
			wantZ: 10.254927343366141, wantP: 1.124605465463299e-24, wantUnpooledFinite: true},
		{name: "no traffic", nA: 0, nB: 0, wantErr: ErrNoTraffic},
		{name: "arm A empty", nA: 0, xB: 1, nB: 10, wantErr: ErrEmptyArm},
		{name: "arm B empty", xA: 1, nA: 10, nB: 0, wantErr: ErrEmptyArm},
		{name: "negative events", xA: -1, nA: 10, xB: 1, nB: 10, wantErr: ErrInvalidCounts},
		{name: "negative trials", xA: 0, nA: -10, xB: 1, nB: 10, wantErr: ErrInvalidCounts},
		{name: "events above trials", xA: 11, nA: 10, xB: 1, nB: 10, wantErr: ErrInvalidCounts},
		{name: "events above trials in B", xA: 1, nA: 10, xB: 12, nB: 10, wantErr: ErrInvalidCounts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := TwoProportionZTest(tt.xA, tt.nA, tt.xB, tt.nB, TwoSided)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantZ == 0 {
				if r.Z != 0 || r.PValue != 1 {
					t.Errorf("Z, PValue = %v, %v; want 0, 1", r.Z, r.PValue)
				}
			} else {
				assertClose(t, "Z", r.Z, tt.wantZ, 1e-6)
				assertClose(t, "PValue", r.PValue, tt.wantP, 1e-5)
			}
			if math.IsNaN(r.UnpooledZ) || math.IsNaN(r.UnpooledPValue) || math.IsNaN(r.CILow) || math.IsNaN(r.CIHigh) {
				t.Errorf("NaN in result: %+v", r)
			}
			if tt.wantUnpooledFinite && math.IsInf(r.UnpooledZ, 0) {
				t.Errorf("UnpooledZ = %v, want finite", r.UnpooledZ)
			}
			if r.CILow > r.DiffEstimate || r.CIHigh < r.DiffEstimate || r.CILow < -1 || r.CIHigh > 1 {
				t.Errorf("CI [%v, %v] does not bracket %v within [-1, 1]", r.CILow, r.CIHigh, r.DiffEstimate)
			}
		})
	}
}

func TestTwoProportionZTestHugeCountsDoNotOverflow(t *testing.T) {
	const n = 5_000_000_000_000_000_000 // nA + nB exceeds MaxInt64
	r, err := TwoProportionZTest(n/10, n, n/10+n/1000, n, TwoSided)
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if math.IsNaN(r.Z) || math.IsInf(r.Z, 0) || r.Z <= 0 {
		t.Errorf("Z = %v, want finite and positive", r.Z)
	}
	if r.PValue != 0 && !(r.PValue > 0) {
		t.Errorf("PValue = %v", r.PValue)
	}
}

func TestTwoProportionZTestInvalidArguments(t *testing.T) {
	if _, err := TwoProportionZTest(1, 10, 2, 10, Alternative(7)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("unknown alternative: error = %v, want ErrInvalidInput", err)
	}
	for _, c := range []float64{0, 1, -0.5, 1.5, math.NaN(), math.Inf(1)} {
		if _, err := TwoProportionZTestWithConfidence(1, 10, 2, 10, TwoSided, c); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("confidence %v: error = %v, want ErrInvalidInput", c, err)
		}
	}
	r, err := TwoProportionZTestWithConfidence(12, 99, 5, 83, TwoSided, 0.99)
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	wantHalfWidth := 2.5758293035489004 * 0.041928858427737276
	assertClose(t, "99% CI half-width", (r.CIHigh-r.CILow)/2, wantHalfWidth, 1e-9)
}

func TestChiSquareGoodnessOfFit(t *testing.T) {
	// vector 6 (scipy chisquare documentation); the p-values are the
	// closed-form chi-square(5) survival function to double precision.
	uniform := slices.Repeat([]float64{88.0 / 6}, 6)
	tests := []struct {
		name             string
		observed, expect []float64
		wantChi2, wantP  float64
		publishedP       float64
	}{
		{"uniform", []float64{16, 18, 16, 14, 12, 12}, uniform, 2.0, 0.8491450360846096, 0.8491},
		{"given expected", []float64{16, 18, 16, 14, 12, 12}, []float64{16, 16, 16, 16, 16, 8}, 3.5, 0.6233876277495821, 0.6234},
		// vector 4, as counts
		{"SRM 502/498", []float64{502, 498}, []float64{500, 500}, 0.016, 0.8993431885613663, 0.8993},
		{"SRM 600/400", []float64{600, 400}, []float64{500, 500}, 40.0, 2.53962858947086e-10, 2.540e-10},
		{"SRM 44000/45000", []float64{44000, 45000}, []float64{44500, 44500}, 11.235955056179776, 0.0008022781177678732, 8.023e-4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chi2, p, err := ChiSquareGoodnessOfFit(tt.observed, tt.expect)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			assertClose(t, "chi2", chi2, tt.wantChi2, 1e-12)
			assertClose(t, "p", p, tt.wantP, 1e-9)
			assertRoundsTo(t, "p", p, tt.publishedP, 4)
		})
	}
}

func TestChiSquareGoodnessOfFitErrors(t *testing.T) {
	tests := []struct {
		name             string
		observed, expect []float64
		wantErr          error
	}{
		{"length mismatch", []float64{1, 2}, []float64{1, 1, 1}, ErrInvalidInput},
		{"one category", []float64{3}, []float64{3}, ErrInvalidInput},
		{"proportions instead of counts", []float64{60, 40}, []float64{0.5, 0.5}, ErrInvalidInput},
		{"negative observed", []float64{-1, 3}, []float64{1, 1}, ErrInvalidInput},
		{"zero expected", []float64{1, 1}, []float64{0, 2}, ErrInvalidInput},
		{"NaN observed", []float64{math.NaN(), 1}, []float64{1, 1}, ErrInvalidInput},
		{"Inf expected", []float64{1, 1}, []float64{math.Inf(1), 1}, ErrInvalidInput},
		{"no traffic", []float64{0, 0}, []float64{1, 1}, ErrNoTraffic},
	}
	for _, tt := range tests {
		if _, _, err := ChiSquareGoodnessOfFit(tt.observed, tt.expect); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestSampleRatioMismatch(t *testing.T) {
	// vector 4 (SRM checker FAQ), 50/50 weights given as 50/50 and as 1/1.
	tests := []struct {
		observed      []int64
		weights       []float64
		wantChi2      float64
		wantP         float64
		publishedP    float64
		wantMismatch  bool
		wantExpected0 float64
	}{
		{[]int64{502, 498}, []float64{50, 50}, 0.016, 0.8993431885613663, 0.8993, false, 500},
		{[]int64{600, 400}, []float64{1, 1}, 40.0, 2.53962858947086e-10, 2.540e-10, true, 500},
		{[]int64{44000, 45000}, []float64{0.5, 0.5}, 11.236, 0.0008022781177678732, 8.023e-4, true, 44500},
	}
	for _, tt := range tests {
		r, err := SampleRatioMismatch(tt.observed, tt.weights, 0.001)
		if err != nil {
			t.Fatalf("SampleRatioMismatch(%v): %v", tt.observed, err)
		}
		assertClose(t, "chi2", r.ChiSquare, tt.wantChi2, 1e-4)
		assertClose(t, "p", r.PValue, tt.wantP, 1e-9)
		assertRoundsTo(t, "p", r.PValue, tt.publishedP, 4)
		assertClose(t, "expected[0]", r.Expected[0], tt.wantExpected0, 1e-12)
		if r.Mismatch != tt.wantMismatch || r.DegreesOfFreedom != 1 || r.Reason == "" {
			t.Errorf("%v: Mismatch = %v, df = %d, reason %q", tt.observed, r.Mismatch, r.DegreesOfFreedom, r.Reason)
		}
	}
	// 90/10 split honoured.
	r, err := SampleRatioMismatch([]int64{9000, 1000}, []float64{0.9, 0.1}, 0.001)
	if err != nil || r.ChiSquare > 1e-9 || r.Mismatch {
		t.Errorf("90/10: %+v, %v", r, err)
	}
}

func TestSampleRatioMismatchErrors(t *testing.T) {
	tests := []struct {
		name     string
		observed []int64
		weights  []float64
		alpha    float64
		wantErr  error
	}{
		{"no traffic", []int64{0, 0}, []float64{1, 1}, 0.001, ErrNoTraffic},
		{"negative count", []int64{-1, 5}, []float64{1, 1}, 0.001, ErrInvalidCounts},
		{"zero weight", []int64{1, 5}, []float64{0, 1}, 0.001, ErrInvalidInput},
		{"NaN weight", []int64{1, 5}, []float64{math.NaN(), 1}, 0.001, ErrInvalidInput},
		{"length mismatch", []int64{1, 5}, []float64{1}, 0.001, ErrInvalidInput},
		{"one arm", []int64{5}, []float64{1}, 0.001, ErrInvalidInput},
		{"alpha NaN", []int64{1, 5}, []float64{1, 1}, math.NaN(), ErrInvalidInput},
		{"alpha 1", []int64{1, 5}, []float64{1, 1}, 1, ErrInvalidInput},
	}
	for _, tt := range tests {
		if _, err := SampleRatioMismatch(tt.observed, tt.weights, tt.alpha); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestMannWhitneyUVectors(t *testing.T) {
	// vector 7 (scipy mannwhitneyu documentation)
	r, err := MannWhitneyU([]float64{19, 22, 16, 29, 24}, []float64{20, 11, 17, 12})
	if err != nil {
		t.Fatalf("MannWhitneyU: %v", err)
	}
	if r.U != 17 || r.UY != 3 || r.Ties || !r.Exact {
		t.Errorf("U = %v, UY = %v, Ties = %v, Exact = %v; want 17, 3, false, true", r.U, r.UY, r.Ties, r.Exact)
	}
	assertClose(t, "PAsymptotic", r.PAsymptotic, 0.11135, 1e-4)
	assertClose(t, "PAsymptoticNoCorrection", r.PAsymptoticNoCorrection, 0.08641, 1e-4)
	assertClose(t, "PAsymptotic (double precision)", r.PAsymptotic, 0.11134688653314048, 1e-10)
	assertClose(t, "PAsymptoticNoCorrection (double precision)", r.PAsymptoticNoCorrection, 0.08641073297370007, 1e-10)
	assertClose(t, "Z", r.Z, 1.7146428199482247, 1e-12)
	assertRoundsTo(t, "PExact", r.PExact, 0.1111, 4)
	assertClose(t, "PExact (1/9)", r.PExact, 1.0/9, 1e-12)
	assertClose(t, "PExactGreater (1/18)", r.PExactGreater, 1.0/18, 1e-12)
	assertClose(t, "PExactLess (61/63)", r.PExactLess, 61.0/63, 1e-12)
	assertClose(t, "PValue(TwoSided)", r.PValue(TwoSided), 1.0/9, 1e-12)

	// vector 8 (R wilcox.test example, alternative "greater"): W = 35,
	// exact p = 382/3003 = 0.1272 by enumeration of all C(15, 5) splits.
	x := []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46}
	y := []float64{1.15, 0.88, 0.90, 0.74, 1.21}
	r, err = MannWhitneyU(x, y)
	if err != nil {
		t.Fatalf("MannWhitneyU: %v", err)
	}
	if r.U != 35 || !r.Exact {
		t.Errorf("W = %v, Exact = %v; want 35, true", r.U, r.Exact)
	}
	assertRoundsTo(t, "PExactGreater", r.PExactGreater, 0.1272, 4)
	assertClose(t, "PExactGreater (382/3003)", r.PExactGreater, 382.0/3003, 1e-12)
	assertClose(t, "PValue(Greater)", r.PValue(Greater), 382.0/3003, 1e-12)
	assertClose(t, "PAsymptoticGreater", r.PAsymptoticGreater, 0.12231180256349167, 1e-10)
	assertClose(t, "PExact", r.PExact, 2*382.0/3003, 1e-12)
}

func TestMannWhitneyUTiesAndLargeSamples(t *testing.T) {
	// Ties: reference values from the tie-corrected formula evaluated
	// independently (sum of t^3 - t = 72, sigma = 6.027085330054452).
	r, err := MannWhitneyU([]float64{1, 2, 2, 3, 4, 4, 4}, []float64{2, 3, 3, 5, 6})
	if err != nil {
		t.Fatalf("MannWhitneyU: %v", err)
	}
	if r.U != 12 || !r.Ties || r.Exact || !math.IsNaN(r.PExact) {
		t.Errorf("U = %v, Ties = %v, Exact = %v, PExact = %v", r.U, r.Ties, r.Exact, r.PExact)
	}
	assertClose(t, "Z", r.Z, -0.9125472261980253, 1e-12)
	assertClose(t, "PAsymptotic", r.PAsymptotic, 0.4067715445990444, 1e-10)
	assertClose(t, "PAsymptoticNoCorrection", r.PAsymptoticNoCorrection, 0.3614807207755196, 1e-10)
	assertClose(t, "PAsymptoticGreater", r.PAsymptoticGreater, 0.840254902001051, 1e-10)
	assertClose(t, "PAsymptoticLess", r.PAsymptoticLess, 0.2033857722995222, 1e-10)
	assertClose(t, "PValue(Less)", r.PValue(Less), 0.2033857722995222, 1e-10)

	// All values equal: no evidence either way.
	r, err = MannWhitneyU([]float64{5, 5, 5}, []float64{5, 5})
	if err != nil || r.PAsymptotic != 1 || r.Z != 0 || r.U != 3 {
		t.Errorf("all tied: %+v, %v", r, err)
	}

	// 60 values per sample: no exact p-value, asymptotic p small for a
	// clear shift, and swapping the samples mirrors U.
	x, y := make([]float64, 60), make([]float64, 60)
	for i := range x {
		x[i] = float64(i) + 0.5
		y[i] = float64(i) - 20.25
	}
	r, err = MannWhitneyU(x, y)
	if err != nil || r.Exact || !math.IsNaN(r.PExact) || !(r.PAsymptotic < 0.01) {
		t.Errorf("large shifted samples: %+v, %v", r, err)
	}
	swapped, err := MannWhitneyU(y, x)
	if err != nil || swapped.U != r.UY || swapped.Z != -r.Z {
		t.Errorf("swapped: U = %v, want %v; Z = %v, want %v (%v)", swapped.U, r.UY, swapped.Z, -r.Z, err)
	}
}

func TestMannWhitneyUErrors(t *testing.T) {
	tests := []struct {
		name    string
		x, y    []float64
		wantErr error
	}{
		{"both empty", nil, []float64{}, ErrNoTraffic},
		{"x empty", nil, []float64{1}, ErrEmptyArm},
		{"y empty", []float64{1}, nil, ErrEmptyArm},
		{"NaN", []float64{1, math.NaN()}, []float64{1}, ErrInvalidInput},
		{"Inf", []float64{1}, []float64{math.Inf(-1)}, ErrInvalidInput},
	}
	for _, tt := range tests {
		if _, err := MannWhitneyU(tt.x, tt.y); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestMannWhitneyCountsSumToBinomial(t *testing.T) {
	// The counts are the coefficients of the Gaussian binomial [m+n, m]:
	// they sum to C(m+n, m) and are symmetric around m*n/2.
	for _, size := range [][2]int{{1, 1}, {3, 4}, {10, 5}, {49, 49}} {
		counts := mannWhitneyCounts(size[0], size[1])
		if len(counts) != size[0]*size[1]+1 {
			t.Fatalf("%v: %d counts", size, len(counts))
		}
		var sum float64
		for u, c := range counts {
			sum += c
			if c != counts[len(counts)-1-u] {
				t.Errorf("%v: counts not symmetric at %d", size, u)
			}
		}
		lgamma := func(v float64) float64 { l, _ := math.Lgamma(v); return l }
		m, n := float64(size[0]), float64(size[1])
		want := math.Exp(lgamma(m+n+1) - lgamma(m+1) - lgamma(n+1))
		assertClose(t, "sum of counts", sum, want, 1e-9)
	}
}

func TestHodgesLehmann(t *testing.T) {
	// vector 9 (Kayenta MannWhitney test suite)
	est, low, high, err := HodgesLehmann([]float64{10, 20, 30, 40}, []float64{1, 2, 3, 4}, 0.95)
	if err != nil {
		t.Fatalf("HodgesLehmann: %v", err)
	}
	if est != 22.5 || low != 6 || high != 39 {
		t.Errorf("HodgesLehmann = %v [%v, %v], want 22.5 [6, 39]", est, low, high)
	}

	// Odd number of differences: the median is a single difference.
	est, low, high, err = HodgesLehmann([]float64{1, 2, 3}, []float64{0}, 0.5)
	if err != nil || est != 2 || low > est || high < est {
		t.Errorf("odd: %v [%v, %v], %v", est, low, high, err)
	}

	// A lower confidence gives a narrower interval.
	_, low80, high80, err := HodgesLehmann([]float64{10, 20, 30, 40, 50, 60}, []float64{1, 2, 3, 4, 5, 6}, 0.8)
	if err != nil {
		t.Fatalf("HodgesLehmann: %v", err)
	}
	_, low99, high99, err := HodgesLehmann([]float64{10, 20, 30, 40, 50, 60}, []float64{1, 2, 3, 4, 5, 6}, 0.99)
	if err != nil || !(low99 <= low80 && high80 <= high99 && high80-low80 < high99-low99) {
		t.Errorf("80%% [%v, %v] should lie inside 99%% [%v, %v] (%v)", low80, high80, low99, high99, err)
	}
}

func TestHodgesLehmannErrors(t *testing.T) {
	tests := []struct {
		name       string
		x, y       []float64
		confidence float64
		wantErr    error
	}{
		{"both empty", nil, nil, 0.95, ErrNoTraffic},
		{"experiment empty", nil, []float64{1}, 0.95, ErrEmptyArm},
		{"control empty", []float64{1}, nil, 0.95, ErrEmptyArm},
		{"NaN", []float64{math.NaN()}, []float64{1}, 0.95, ErrInvalidInput},
		{"Inf", []float64{1}, []float64{math.Inf(1)}, 0.95, ErrInvalidInput},
		{"confidence 1", []float64{1}, []float64{2}, 1, ErrInvalidInput},
		{"confidence NaN", []float64{1}, []float64{2}, math.NaN(), ErrInvalidInput},
	}
	for _, tt := range tests {
		if _, _, _, err := HodgesLehmann(tt.x, tt.y, tt.confidence); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

// TestHodgesLehmannMatchesBruteForce compares the selection of order
// statistics with sorting all pairwise differences, on random samples with
// and without ties, small (exact rank) and large (approximate rank).
func TestHodgesLehmannMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		m, n := 1+rng.IntN(70), 1+rng.IntN(70)
		x, y := make([]float64, m), make([]float64, n)
		for i := range x {
			x[i] = rng.NormFloat64()*10 + 3
			if trial%2 == 0 {
				x[i] = math.Round(x[i]) // ties
			}
		}
		for j := range y {
			y[j] = rng.NormFloat64() * 10
			if trial%2 == 0 {
				y[j] = math.Round(y[j])
			}
		}
		diffs := make([]float64, 0, m*n)
		for _, a := range x {
			for _, b := range y {
				diffs = append(diffs, a-b)
			}
		}
		slices.Sort(diffs)
		total := len(diffs)
		wantEst := (diffs[(total-1)/2] + diffs[total/2]) / 2
		k := hodgesLehmannRank(x, y, 0.9)
		est, low, high, err := HodgesLehmann(x, y, 0.9)
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if est != wantEst || low != diffs[k-1] || high != diffs[total-k] {
			t.Fatalf("trial %d (m=%d, n=%d, k=%d): got %v [%v, %v], want %v [%v, %v]",
				trial, m, n, k, est, low, high, wantEst, diffs[k-1], diffs[total-k])
		}
	}
}

func TestHodgesLehmannRankApproximation(t *testing.T) {
	// At the exact-distribution limit the normal approximation with
	// continuity correction should pick almost the same rank.
	x, y := make([]float64, 49), make([]float64, 49)
	for i := range x {
		x[i] = float64(2 * i)
		y[i] = float64(2*i + 1)
	}
	exact := hodgesLehmannRank(x, y, 0.95)
	sigma := mannWhitneySigma(49, 49, 0)
	approx := int(math.Ceil(49.0*49/2 - 0.5 + NormalQuantile(0.025)*sigma))
	if exact < approx-2 || exact > approx+2 {
		t.Errorf("exact rank %d, approximate %d", exact, approx)
	}
}

func TestTwoProportionPowerAndSampleSize(t *testing.T) {
	// vector 11 (R power.prop.test documentation)
	n := TwoProportionSampleSize(0.5, 0.75, 0.05, 0.9)
	assertRoundsTo(t, "n", n, 76.7, 3)
	assertClose(t, "n (double precision)", n, 76.70692845177743, 1e-8)
	power := TwoProportionPower(0.5, 0.75, 50, 0.05)
	assertRoundsTo(t, "power", power, 0.7402, 4)
	assertClose(t, "power (double precision)", power, 0.7401659013313879, 1e-9)
	assertClose(t, "round trip", TwoProportionPower(0.5, 0.75, n, 0.05), 0.9, 1e-12)
	assertClose(t, "symmetric", TwoProportionSampleSize(0.75, 0.5, 0.05, 0.9), n, 1e-12)

	if got := TwoProportionSampleSize(0.1, 0.1, 0.05, 0.8); !math.IsInf(got, 1) {
		t.Errorf("equal proportions: n = %v, want +Inf", got)
	}
	assertClose(t, "power with no difference", TwoProportionPower(0.1, 0.1, 1000, 0.05), 0.025, 1e-9)
	invalidSampleSize := [][4]float64{
		{0, 0.5, 0.05, 0.8}, {0.5, 1, 0.05, 0.8}, {0.5, 0.6, 0, 0.8}, {0.5, 0.6, 0.05, 1},
		{math.NaN(), 0.5, 0.05, 0.8}, {0.5, 0.6, 0.05, 0.001},
	}
	for _, in := range invalidSampleSize {
		if got := TwoProportionSampleSize(in[0], in[1], in[2], in[3]); !math.IsNaN(got) {
			t.Errorf("TwoProportionSampleSize%v = %v, want NaN", in, got)
		}
	}
	invalidPower := [][4]float64{
		{0.5, 0.6, 0, 0.05}, {0.5, 0.6, -1, 0.05}, {0.5, 0.6, math.Inf(1), 0.05}, {0.5, 0.6, 100, 1}, {1.5, 0.6, 100, 0.05},
	}
	for _, in := range invalidPower {
		if got := TwoProportionPower(in[0], in[1], in[2], in[3]); !math.IsNaN(got) {
			t.Errorf("TwoProportionPower%v = %v, want NaN", in, got)
		}
	}
}

func TestHolm(t *testing.T) {
	tests := []struct {
		name       string
		pvalues    []float64
		want       []float64
		wantReject []bool
	}{
		// R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm")
		{"R example", []float64{0.01, 0.04, 0.03, 0.005}, []float64{0.03, 0.06, 0.06, 0.02}, []bool{true, false, false, true}},
		{"capped at 1", []float64{0.5, 0.6}, []float64{1, 1}, []bool{false, false}},
		{"monotone after cap", []float64{0.02, 0.9, 0.01}, []float64{0.04, 0.9, 0.03}, []bool{true, false, true}},
		{"single", []float64{0.04}, []float64{0.04}, []bool{true}},
		{"NaN is missing", []float64{math.NaN(), 0.01, 0.02}, []float64{math.NaN(), 0.02, 0.02}, []bool{false, true, true}},
		{"ties", []float64{0.01, 0.01, 0.01}, []float64{0.03, 0.03, 0.03}, []bool{true, true, true}},
		{"empty", nil, []float64{}, []bool{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := slices.Clone(tt.pvalues)
			got := HolmAdjust(tt.pvalues)
			if len(got) != len(tt.want) {
				t.Fatalf("HolmAdjust = %v, want %v", got, tt.want)
			}
			for i := range got {
				if math.IsNaN(tt.want[i]) != math.IsNaN(got[i]) || !math.IsNaN(got[i]) && math.Abs(got[i]-tt.want[i]) > 1e-12 {
					t.Errorf("HolmAdjust = %v, want %v", got, tt.want)
				}
			}
			if reject := HolmReject(tt.pvalues, 0.05); !slices.Equal(reject, tt.wantReject) {
				t.Errorf("HolmReject = %v, want %v", reject, tt.wantReject)
			}
			for i := range input {
				if !(input[i] == tt.pvalues[i] || math.IsNaN(input[i]) && math.IsNaN(tt.pvalues[i])) {
					t.Errorf("input modified: %v", tt.pvalues)
				}
			}
		})
	}
	if reject := HolmReject([]float64{0.001}, math.NaN()); reject[0] {
		t.Error("HolmReject with NaN alpha rejected")
	}
}

func TestAlwaysValidPValue(t *testing.T) {
	// Lambda evaluated independently from the formula for xA = 50/1000,
	// xB = 80/1000, tau2 = 1e-3 (V = 1.211e-4).
	p, err := AlwaysValidPValue(50, 1000, 80, 1000, 1e-3)
	if err != nil {
		t.Fatalf("AlwaysValidPValue: %v", err)
	}
	assertClose(t, "p", p, 0.11060154019820442, 1e-10)

	tests := []struct {
		name           string
		xA, nA, xB, nB int64
		tau2           float64
		wantP          float64
		wantErr        error
	}{
		{name: "no difference", xA: 50, nA: 1000, xB: 50, nB: 1000, tau2: 1e-3, wantP: 1},
		{name: "zero events in both arms", xA: 0, nA: 1000, xB: 0, nB: 1000, tau2: 1e-3, wantP: 1},
		{name: "overwhelming evidence", xA: 1000, nA: 100000, xB: 5000, nB: 100000, tau2: 1e-3, wantP: 0},
		{name: "no traffic", tau2: 1e-3, wantErr: ErrNoTraffic},
		{name: "empty arm", xA: 1, nA: 10, tau2: 1e-3, wantErr: ErrEmptyArm},
		{name: "negative count", xA: -1, nA: 10, xB: 1, nB: 10, tau2: 1e-3, wantErr: ErrInvalidCounts},
		{name: "tau2 zero", xA: 1, nA: 10, xB: 1, nB: 10, tau2: 0, wantErr: ErrInvalidInput},
		{name: "tau2 NaN", xA: 1, nA: 10, xB: 1, nB: 10, tau2: math.NaN(), wantErr: ErrInvalidInput},
		{name: "tau2 Inf", xA: 1, nA: 10, xB: 1, nB: 10, tau2: math.Inf(1), wantErr: ErrInvalidInput},
	}
	for _, tt := range tests {
		p, err := AlwaysValidPValue(tt.xA, tt.nA, tt.xB, tt.nB, tt.tau2)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: error = %v, want %v", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || p != tt.wantP {
			t.Errorf("%s: p = %v (%v), want %v", tt.name, p, err, tt.wantP)
		}
	}
}

// Arms at 0 % and 100 % have no variance under the normal approximation; the evidence must still
// grow with the counts instead of reading as p = 1.
func TestAlwaysValidPValueExtremeArms(t *testing.T) {
	small, err := AlwaysValidPValue(0, 3, 3, 3, 1e-3)
	if err != nil || small <= 0.05 || small >= 1 {
		t.Errorf("0 of 3 against 3 of 3: p = %v (%v), want not significant yet but below 1", small, err)
	}
	large, err := AlwaysValidPValue(0, 1000, 1000, 1000, 1e-3)
	if err != nil || large > 1e-6 {
		t.Errorf("0 of 1000 against 1000 of 1000: p = %v (%v), want below 1e-6", large, err)
	}
	reversed, err := AlwaysValidPValue(1000, 1000, 0, 1000, 1e-3)
	if err != nil || reversed != large {
		t.Errorf("100 %% against 0 %%: p = %v (%v), want %v as the other way round", reversed, err, large)
	}
}

func TestSequentialStateUpdate(t *testing.T) {
	var s SequentialState // the zero value is usable
	if s.PValue() != 1 || NewSequentialState().PValue() != 1 {
		t.Fatalf("initial p-value = %v, want 1", s.PValue())
	}
	looks := []struct {
		xA, nA, xB, nB int64
		wantLooks      int
	}{
		{50, 1000, 80, 1000, 1},
		{100, 2000, 100, 2000, 2}, // no difference: p for this look is 1, minimum stays
		{0, 0, 0, 0, 2},           // invalid look: not counted
		{150, 3000, 160, 3000, 3},
	}
	for i, look := range looks {
		before := s
		next, p := s.Update(look.xA, look.nA, look.xB, look.nB, 1e-3)
		if s != before {
			t.Fatalf("look %d modified the receiver", i)
		}
		if next.Looks != look.wantLooks || p != next.PValue() {
			t.Errorf("look %d: Looks = %d, p = %v, PValue() = %v", i, next.Looks, p, next.PValue())
		}
		assertClose(t, "running minimum", p, 0.11060154019820442, 1e-10)
		s = next
	}
}

func TestMannWhitneyPValueChoosesMethod(t *testing.T) {
	exact := MannWhitneyResult{Exact: true, PExact: 0.1, PExactGreater: 0.05, PExactLess: 0.97,
		PAsymptotic: 0.2, PAsymptoticGreater: 0.15, PAsymptoticLess: 0.9}
	approx := exact
	approx.Exact = false
	tests := []struct {
		r    MannWhitneyResult
		alt  Alternative
		want float64
	}{
		{exact, TwoSided, 0.1}, {exact, Greater, 0.05}, {exact, Less, 0.97},
		{approx, TwoSided, 0.2}, {approx, Greater, 0.15}, {approx, Less, 0.9},
	}
	for _, tt := range tests {
		if got := tt.r.PValue(tt.alt); got != tt.want {
			t.Errorf("Exact=%v PValue(%v) = %v, want %v", tt.r.Exact, tt.alt, got, tt.want)
		}
	}
}

func TestAlternativeString(t *testing.T) {
	for alt, want := range map[Alternative]string{TwoSided: "two-sided", Greater: "greater", Less: "less", 9: "Alternative(9)"} {
		if got := alt.String(); got != want {
			t.Errorf("Alternative(%d).String() = %q, want %q", int(alt), got, want)
		}
	}
}
