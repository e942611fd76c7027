package analysis

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Vectors a, b and c are in analysis/VECTORS.md, computed by hack/vectors/vectors.py
// independently of the code under test.

var (
	latencyBounds   = []float64{0.05, 0.1, 0.25, 0.5, 1, math.Inf(1)}
	vectorA1Control = Histogram{Bounds: latencyBounds, Cumulative: []float64{10, 40, 70, 85, 95, 100}}
	vectorA1Canary  = Histogram{Bounds: latencyBounds, Cumulative: []float64{5, 20, 50, 75, 90, 100}}
	smallBounds     = []float64{0.1, 0.25, 0.5, math.Inf(1)}
	vectorA2Control = Histogram{Bounds: smallBounds, Cumulative: []float64{6, 10, 12, 12}}
	vectorA2Canary  = Histogram{Bounds: smallBounds, Cumulative: []float64{2, 5, 9, 12}}
	vectorA3Control = Histogram{Bounds: latencyBounds, Cumulative: []float64{10.4, 40.4, 38.6, 70.5, 95.2, 100.49}}
	vectorA3Canary  = Histogram{Bounds: latencyBounds, Cumulative: []float64{4.5, 19.7, 50.2, 74.9, 90.1, 100.0}}
	// Prometheus' default buckets with 1000 latencies evenly spread over 60-140 ms (stable) and
	// over 78-182 ms (a canary 30 % slower); TestBucketedHodgesLehmannDefaultBuckets builds them.
	defaultBounds  = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, math.Inf(1)}
	vectorB4Stable = Histogram{Bounds: defaultBounds, Cumulative: []float64{0, 0, 0, 0, 500, 1000, 1000, 1000, 1000, 1000, 1000, 1000}}
	vectorB4Canary = Histogram{Bounds: defaultBounds, Cumulative: []float64{0, 0, 0, 0, 212, 1000, 1000, 1000, 1000, 1000, 1000, 1000}}
)

func TestHistogramValidate(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name    string
		h       Histogram
		wantMsg string // empty: valid
	}{
		{name: "valid", h: vectorA1Control},
		{name: "no observations is valid", h: Histogram{Bounds: []float64{1, inf}, Cumulative: []float64{0, 0}}},
		{name: "dip is valid", h: vectorA3Control},
		{name: "negative bounds are valid", h: Histogram{Bounds: []float64{-1, 0, inf}, Cumulative: []float64{1, 2, 3}}},
		{name: "empty", h: Histogram{}, wantMsg: "no buckets"},
		{name: "lengths differ", h: Histogram{Bounds: []float64{1, inf}, Cumulative: []float64{1}}, wantMsg: "2 bounds but 1 cumulative counts"},
		{name: "last bound finite", h: Histogram{Bounds: []float64{1, 2}, Cumulative: []float64{1, 2}}, wantMsg: "last histogram bound must be +Inf, got 2"},
		{name: "only +Inf", h: Histogram{Bounds: []float64{inf}, Cumulative: []float64{5}}, wantMsg: "only the +Inf bucket"},
		{name: "bounds decrease", h: Histogram{Bounds: []float64{1, 0.5, inf}, Cumulative: []float64{1, 2, 3}}, wantMsg: "bound 1 (0.5) follows 1"},
		{name: "bounds repeat", h: Histogram{Bounds: []float64{1, 1, inf}, Cumulative: []float64{1, 2, 3}}, wantMsg: "increase strictly"},
		{name: "NaN bound", h: Histogram{Bounds: []float64{math.NaN(), 1, inf}, Cumulative: []float64{1, 2, 3}}, wantMsg: "bound 0 is NaN"},
		{name: "+Inf twice", h: Histogram{Bounds: []float64{1, inf, inf}, Cumulative: []float64{1, 2, 3}}, wantMsg: "bound 1 is +Inf"},
		{name: "-Inf bound", h: Histogram{Bounds: []float64{math.Inf(-1), 1, inf}, Cumulative: []float64{1, 2, 3}}, wantMsg: "bound 0 is -Inf"},
		{name: "NaN count", h: Histogram{Bounds: []float64{1, inf}, Cumulative: []float64{math.NaN(), 2}}, wantMsg: "count 0 (le=1) is NaN"},
		{name: "negative count", h: Histogram{Bounds: []float64{1, inf}, Cumulative: []float64{1, -2}}, wantMsg: "count 1 (le=+Inf) is -2"},
		{name: "infinite count", h: Histogram{Bounds: []float64{1, inf}, Cumulative: []float64{1, inf}}, wantMsg: "is +Inf"},
		{name: "count too large", h: Histogram{Bounds: []float64{1, inf}, Cumulative: []float64{1, 2e15}}, wantMsg: "at most 1e+15"},
		{name: "too many buckets", h: Histogram{Bounds: append(slices.Repeat([]float64{0}, 600), inf), Cumulative: make([]float64, 601)}, wantMsg: "601 buckets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.h.Validate()
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Validate() = %v, want ErrInvalidInput mentioning %q", err, tt.wantMsg)
			}
		})
	}
}

func TestHistogramBucketCounts(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name       string
		cumulative []float64
		want       []int64
	}{
		{"integers", []float64{10, 40, 70, 85, 95, 100}, []int64{10, 30, 30, 15, 10, 5}},
		{"rounding half away from zero", []float64{0.5, 1.49, 2.5, 2.5, 4.51, 5}, []int64{1, 0, 2, 0, 2, 0}},
		{"dip counts as empty, next bucket counts from the dip", []float64{10.4, 40.4, 38.6, 70.5, 95.2, 100.49}, []int64{10, 30, 0, 32, 24, 5}},
		{"dip to zero", []float64{5, 0, 0, 3, 3, 3}, []int64{5, 0, 0, 3, 0, 0}},
		{"empty", []float64{0, 0, 0, 0, 0, 0.4}, []int64{0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Histogram{Bounds: []float64{0.05, 0.1, 0.25, 0.5, 1, inf}, Cumulative: tt.cumulative}
			got := h.BucketCounts()
			if !slices.Equal(got, tt.want) {
				t.Errorf("BucketCounts() = %v, want %v", got, tt.want)
			}
			var total int64
			for _, c := range tt.want {
				total += c
			}
			if h.Total() != total {
				t.Errorf("Total() = %d, want %d", h.Total(), total)
			}
		})
	}
	invalid := Histogram{Bounds: []float64{1, inf}, Cumulative: []float64{math.NaN(), 3}}
	if got := invalid.BucketCounts(); got != nil || invalid.Total() != 0 {
		t.Errorf("invalid histogram: BucketCounts() = %v, Total() = %d; want nil, 0", got, invalid.Total())
	}
}

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	laterStart := Histogram{Bounds: []float64{0.1, 0.2, 0.4, inf}, Cumulative: []float64{0, 0, 4, 4}}
	negative := Histogram{Bounds: []float64{-1, 0, 1, inf}, Cumulative: []float64{2, 2, 4, 4}}
	tests := []struct {
		name string
		h    Histogram
		q    float64
		want float64
	}{
		// Ranks out of 100 in [10, 30, 30, 15, 10, 5]: interpolated within the bucket.
		{"first bucket from 0", vectorA1Control, 0.05, 0.025},
		{"first bucket's upper bound", vectorA1Control, 0.1, 0.05},
		{"median", vectorA1Control, 0.5, 0.1 + 0.15*10/30},
		{"p90", vectorA1Control, 0.9, 0.5 + 0.5*5/10},
		{"exactly at a bound", vectorA1Control, 0.95, 1},
		{"in the +Inf bucket", vectorA1Control, 0.99, 1},
		{"q = 1 in the +Inf bucket", vectorA1Control, 1, 1},
		{"q = 0", vectorA1Control, 0, 0},
		{"q = 0 skips empty buckets", laterStart, 0, 0.2},
		{"after empty buckets", laterStart, 0.5, 0.3},
		{"q = 1 ends at the last bucket with observations", laterStart, 1, 0.4},
		{"first bound not positive", negative, 0.25, -1},
		{"after a bound at 0", negative, 0.75, 0.5},
		// Rounded counts [10, 30, 0, 32, 24, 5], 101 in all: rank 50.5 is 10.5 into bucket 3.
		{"extrapolated counts with a dip", vectorA3Control, 0.5, 0.25 + 0.25*10.5/32},
	}
	for _, tt := range tests {
		got, err := tt.h.Quantile(tt.q)
		if err != nil {
			t.Errorf("%s: Quantile(%v): %v", tt.name, tt.q, err)
			continue
		}
		if math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%s: Quantile(%v) = %v, want %v", tt.name, tt.q, got, tt.want)
		}
	}

	errorCases := []struct {
		name    string
		h       Histogram
		q       float64
		wantErr error
	}{
		{"q NaN", vectorA1Control, math.NaN(), ErrInvalidInput},
		{"q negative", vectorA1Control, -0.01, ErrInvalidInput},
		{"q above 1", vectorA1Control, 1.01, ErrInvalidInput},
		{"invalid histogram", Histogram{Bounds: []float64{1, 2}, Cumulative: []float64{1, 2}}, 0.5, ErrInvalidInput},
		{"no observations", Histogram{Bounds: []float64{1, inf}, Cumulative: []float64{0, 0.2}}, 0.5, ErrNoTraffic},
	}
	for _, tt := range errorCases {
		if _, err := tt.h.Quantile(tt.q); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestBucketedMannWhitneyVectors(t *testing.T) {
	tests := []struct {
		name                                 string
		control, experiment                  Histogram
		n1, n2                               int64
		u, sigma, z, pGreater, pTwoSided     float64
		publishedSigma, publishedZ, publishP float64
	}{
		{name: "a1", control: vectorA1Control, experiment: vectorA1Canary, n1: 100, n2: 100,
			u: 6312.5, sigma: 399.080286881, z: 3.28881190865, pGreater: 0.000503056179508, pTwoSided: 0.00100611235902},
		{name: "a2", control: vectorA2Control, experiment: vectorA2Canary, n1: 12, n2: 12,
			u: 110, sigma: 16.6328642727, z: 2.28463356503, pGreater: 0.0111671615468, pTwoSided: 0.0223343230936},
		{name: "a3", control: vectorA3Control, experiment: vectorA3Canary, n1: 100, n2: 101,
			u: 5245, sigma: 402.848639218, z: 0.484052770735, pGreater: 0.314174209225, pTwoSided: 0.628348418449},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := BucketedMannWhitney(tt.control, tt.experiment)
			if err != nil {
				t.Fatalf("BucketedMannWhitney: %v", err)
			}
			if r.N1 != tt.n1 || r.N2 != tt.n2 || r.U != tt.u || r.Mean != float64(tt.n1*tt.n2)/2 {
				t.Errorf("N1, N2, U, Mean = %d, %d, %v, %v; want %d, %d, %v, %v", r.N1, r.N2, r.U, r.Mean, tt.n1, tt.n2, tt.u, float64(tt.n1*tt.n2)/2)
			}
			for _, c := range []struct {
				name      string
				got, want float64
			}{{"Sigma", r.Sigma, tt.sigma}, {"Z", r.Z, tt.z}, {"PGreater", r.PGreater, tt.pGreater}, {"PTwoSided", r.PTwoSided, tt.pTwoSided}} {
				assertRoundsTo(t, c.name, c.got, c.want, 4)
				assertClose(t, c.name, c.got, c.want, 1e-9)
			}
			assertClose(t, "PLess", r.PLess, 1-tt.pGreater, 1e-9)
			if r.PValue(Greater) != r.PGreater || r.PValue(Less) != r.PLess || r.PValue(TwoSided) != r.PTwoSided {
				t.Errorf("PValue does not pick the matching p-value: %+v", r)
			}
		})
	}
}

func TestBucketedHodgesLehmannVectors(t *testing.T) {
	tests := []struct {
		name                string
		control, experiment Histogram
		estimate, low, high float64
	}{
		{"b1", vectorA1Control, vectorA1Canary, 0.0793666056202, 0.0290801484895, 0.137892327929},
		{"b2", vectorA2Control, vectorA2Canary, 0.16023217538, 0.0197092924287, 0.316421629175},
		{"b3", vectorA3Control, vectorA3Canary, 0.011956454402, -0.0527243838668, 0.0721635553103},
		{"b4", vectorB4Stable, vectorB4Canary, 0.0310881779896, 0.0264591008763, 0.0357525200691},
		{"b5", vectorB4Stable, vectorB4Stable, 0, -0.00335344946951, 0.00335344946951},
	}
	for _, tt := range tests {
		estimate, low, high, err := BucketedHodgesLehmann(tt.control, tt.experiment, 0.95)
		if err != nil {
			t.Fatalf("%s: BucketedHodgesLehmann: %v", tt.name, err)
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{{"estimate", estimate, tt.estimate}, {"low", low, tt.low}, {"high", high, tt.high}} {
			if c.want == 0 {
				if math.Abs(c.got) > 1e-12 {
					t.Errorf("%s: %s = %v, want 0", tt.name, c.name, c.got)
				}
				continue
			}
			assertRoundsTo(t, tt.name+" "+c.name, c.got, c.want, 4)
			assertClose(t, tt.name+" "+c.name, c.got, c.want, 1e-9)
		}
	}
}

// expandHistogram returns one value per observation of h, the bucket's value repeated as many
// times as the bucket has observations, read from the rounded cumulative counts directly.
func expandHistogram(h Histogram, values []float64) []float64 {
	var out []float64
	previous := 0.0
	for k, cumulative := range h.Cumulative {
		rounded := math.Round(cumulative)
		for range int(rounded - previous) {
			out = append(out, values[k])
		}
		previous = rounded
	}
	return out
}

// randomHistogramPair returns two histograms over the same random bounds, with counts small
// enough to expand. Every fourth pair has extrapolated (fractional, sometimes dipping) counts.
func randomHistogramPair(rng *rand.Rand, trial int) (control, experiment Histogram) {
	buckets := 2 + rng.IntN(7)
	bounds := make([]float64, buckets)
	bound := 0.0
	for k := range buckets - 1 {
		bound += 0.01 + rng.Float64()
		bounds[k] = bound
	}
	bounds[buckets-1] = math.Inf(1)
	arm := func() Histogram {
		cumulative := make([]float64, buckets)
		total := 0.0
		for k := range cumulative {
			if rng.IntN(3) > 0 {
				total += float64(rng.IntN(25))
			}
			cumulative[k] = total
			if trial%4 == 3 {
				cumulative[k] = math.Max(0, total+rng.Float64()*3-1.5)
			}
		}
		cumulative[buckets-1]++ // at least one observation
		return Histogram{Bounds: bounds, Cumulative: cumulative}
	}
	return arm(), arm()
}

// TestBucketedMannWhitneyMatchesExpandedSamples checks the bucketed test against MannWhitneyU
// on the histograms expanded into tied observations.
func TestBucketedMannWhitneyMatchesExpandedSamples(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	pairs := [][2]Histogram{{vectorA1Control, vectorA1Canary}, {vectorA2Control, vectorA2Canary}}
	for trial := range 300 {
		control, experiment := randomHistogramPair(rng, trial)
		pairs = append(pairs, [2]Histogram{control, experiment})
	}
	for i, pair := range pairs {
		control, experiment := pair[0], pair[1]
		if control.Total() == 0 || experiment.Total() == 0 {
			continue
		}
		index := make([]float64, len(control.Bounds))
		for k := range index {
			index[k] = float64(k)
		}
		x, y := expandHistogram(experiment, index), expandHistogram(control, index)
		want, err := MannWhitneyU(x, y)
		if err != nil {
			t.Fatalf("pair %d: MannWhitneyU: %v", i, err)
		}
		got, err := BucketedMannWhitney(control, experiment)
		if err != nil {
			t.Fatalf("pair %d: BucketedMannWhitney: %v", i, err)
		}
		if got.U != want.U || got.N1 != int64(want.N1) || got.N2 != int64(want.N2) {
			t.Fatalf("pair %d: U, N1, N2 = %v, %d, %d; want %v, %d, %d", i, got.U, got.N1, got.N2, want.U, want.N1, want.N2)
		}
		if math.Abs(got.Z-want.Z) > 1e-12*math.Max(1, math.Abs(want.Z)) {
			t.Fatalf("pair %d: Z = %v, want %v", i, got.Z, want.Z)
		}
		if math.Abs(got.PTwoSided-want.PAsymptoticNoCorrection) > 1e-12 {
			t.Fatalf("pair %d: PTwoSided = %v, want %v", i, got.PTwoSided, want.PAsymptoticNoCorrection)
		}
		if want.Z != 0 {
			assertClose(t, "Sigma", got.Sigma, (want.U-got.Mean)/want.Z, 1e-10)
		}
	}
}

// narrowHistogramPair returns two histograms whose observations sit in buckets of width 1e-9
// around distinct points, with empty buckets between them, and the values those observations
// stand for: the points, and the largest finite bound for the +Inf bucket, which every fifth
// pair uses.
func narrowHistogramPair(rng *rand.Rand, trial int) (control, experiment Histogram, values []float64) {
	const halfWidth = 5e-10
	points := 1 + rng.IntN(6)
	var bounds []float64
	// Bucket 0 runs from 0 to the first narrow bucket and stays empty; after it, odd buckets
	// are narrow and even ones are the gaps between them.
	values = []float64{0}
	point := 0.0
	for p := range points {
		point += 0.01 + rng.Float64()
		bounds = append(bounds, point-halfWidth, point+halfWidth)
		values = append(values, point)
		if p < points-1 {
			values = append(values, 0) // the gap after it
		}
	}
	bounds = append(bounds, math.Inf(1))
	values = append(values, bounds[len(bounds)-2])
	arm := func() Histogram {
		cumulative := make([]float64, len(bounds))
		total := 0.0
		for k := range cumulative {
			narrow := k%2 == 1 || (k == len(bounds)-1 && trial%5 == 4)
			if narrow && rng.IntN(4) > 0 {
				total += float64(rng.IntN(15))
			}
			cumulative[k] = total
		}
		if total == 0 {
			cumulative[1]++
		}
		return Histogram{Bounds: bounds, Cumulative: cumulative}
	}
	return arm(), arm(), values
}

// TestBucketedHodgesLehmannNarrowBucketsMatchPoints checks that buckets narrow enough to be
// points give the ordinary Hodges-Lehmann estimate of the points, and the order-statistic
// interval [D(k), D(C+1-k)] of their pairwise differences with k from the bucketed Sigma.
// (HodgesLehmann's own interval takes k with a continuity correction, which can differ by one.)
func TestBucketedHodgesLehmannNarrowBucketsMatchPoints(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 9))
	for trial := range 300 {
		control, experiment, values := narrowHistogramPair(rng, trial)
		confidence := []float64{0.8, 0.9, 0.95, 0.99}[trial%4]
		x, y := expandHistogram(experiment, values), expandHistogram(control, values)
		diffs := make([]float64, 0, len(x)*len(y))
		for _, a := range x {
			for _, b := range y {
				diffs = append(diffs, a-b)
			}
		}
		slices.Sort(diffs)
		total := len(diffs)
		mw, err := BucketedMannWhitney(control, experiment)
		if err != nil {
			t.Fatalf("pair %d: %v", trial, err)
		}
		k := max(1, int(math.Floor(float64(total)/2-NormalQuantile((1+confidence)/2)*mw.Sigma)))
		wantLow, wantHigh := diffs[k-1], diffs[total-k]

		estimate, low, high, err := BucketedHodgesLehmann(control, experiment, confidence)
		if err != nil {
			t.Fatalf("pair %d: BucketedHodgesLehmann: %v", trial, err)
		}
		plain, _, _, err := HodgesLehmann(x, y, confidence)
		if err != nil {
			t.Fatalf("pair %d: HodgesLehmann: %v", trial, err)
		}
		if math.Abs(estimate-plain) > 1e-6 || math.Abs(low-wantLow) > 1e-6 || math.Abs(high-wantHigh) > 1e-6 {
			t.Fatalf("pair %d (k=%d of %d): got %v [%v, %v], want %v [%v, %v]",
				trial, k, total, estimate, low, high, plain, wantLow, wantHigh)
		}
	}
}

// TestBucketedHodgesLehmannShiftByWholeBuckets moves one distribution up by whole buckets of
// equal width: spread evenly, the experiment's observations are the control's plus the shift,
// so the differences are symmetric about it.
func TestBucketedHodgesLehmannShiftByWholeBuckets(t *testing.T) {
	const width = 0.005
	bounds := make([]float64, 201)
	for k := range 200 {
		bounds[k] = width * float64(k+1)
	}
	bounds[200] = math.Inf(1)
	// A skewed shape over buckets 20 to 119: a quick rise and a long tail.
	shape := func(k int) float64 {
		if k < 20 || k >= 120 {
			return 0
		}
		u := float64(k-20) / 10
		return math.Round(300 * u * math.Exp(-u/1.5))
	}
	histogram := func(shift int) Histogram {
		cumulative := make([]float64, len(bounds))
		total := 0.0
		for k := range cumulative {
			total += shape(k - shift)
			cumulative[k] = total
		}
		return Histogram{Bounds: bounds, Cumulative: cumulative}
	}
	control := histogram(0)
	for _, shift := range []int{1, 3} {
		want := width * float64(shift)
		estimate, low, high, err := BucketedHodgesLehmann(control, histogram(shift), 0.95)
		if err != nil {
			t.Fatalf("shift by %d buckets: %v", shift, err)
		}
		if math.Abs(estimate-want) > 1e-9 || !(low < want && want < high) || math.Abs((want-low)-(high-want)) > 1e-9 {
			t.Errorf("shift by %d buckets: %v [%v, %v], want %v in the middle", shift, estimate, low, high, want)
		}
	}
}

// TestBucketedHodgesLehmannDefaultBuckets is a canary 30 % slower than stable with Prometheus'
// default buckets, where stable and canary share their two buckets: the shift is still shown to
// exceed a tolerance of 10 % of stable's median, and stable against itself is not.
func TestBucketedHodgesLehmannDefaultBuckets(t *testing.T) {
	spread := func(lo, hi float64) Histogram {
		cumulative := make([]float64, len(defaultBounds))
		for i := range 1000 {
			latency := lo + (hi-lo)*float64(i)/999
			for k, bound := range defaultBounds {
				if latency <= bound {
					cumulative[k]++
				}
			}
		}
		return Histogram{Bounds: defaultBounds, Cumulative: cumulative}
	}
	stable, canary := spread(0.060, 0.140), spread(0.078, 0.182)
	if !slices.Equal(stable.Cumulative, vectorB4Stable.Cumulative) || !slices.Equal(canary.Cumulative, vectorB4Canary.Cumulative) {
		t.Fatalf("histograms %v and %v, want vector b4's", stable.Cumulative, canary.Cumulative)
	}
	median, err := stable.Quantile(0.5)
	if err != nil {
		t.Fatal(err)
	}
	tolerance := 0.1 * median // 10 ms
	_, low, high, err := BucketedHodgesLehmann(stable, canary, 0.95)
	if err != nil || !(low > tolerance) || !(high > low) {
		t.Errorf("canary against stable: [%v, %v], %v; want the low end above %v", low, high, err, tolerance)
	}
	_, low, high, err = BucketedHodgesLehmann(stable, stable, 0.95)
	if err != nil || !(low < 0 && high > 0) {
		t.Errorf("stable against stable: [%v, %v], %v; want 0 inside", low, high, err)
	}

	slower, err := CompareLatency(stable, canary, 0.05, 1, "10%")
	if err != nil || !slower.Slower {
		t.Errorf("CompareLatency(canary): %+v, %v; want Slower", slower, err)
	}
	same, err := CompareLatency(stable, stable, 0.05, 1, "10%")
	if err != nil || same.Slower {
		t.Errorf("CompareLatency(stable): %+v, %v; want not Slower", same, err)
	}
}

// TestBucketedHodgesLehmannProperties checks on random histograms that the interval holds the
// estimate, widens with the confidence, and is negated when the arms are swapped.
func TestBucketedHodgesLehmannProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		control, experiment := randomHistogramPair(rng, trial)
		if control.Total() == 0 || experiment.Total() == 0 {
			continue
		}
		previousLow, previousHigh := math.Inf(1), math.Inf(-1)
		for _, confidence := range []float64{0.5, 0.8, 0.95, 0.999} {
			estimate, low, high, err := BucketedHodgesLehmann(control, experiment, confidence)
			if err != nil {
				t.Fatalf("pair %d: %v", trial, err)
			}
			swapped, swappedLow, swappedHigh, err := BucketedHodgesLehmann(experiment, control, confidence)
			if err != nil {
				t.Fatalf("pair %d swapped: %v", trial, err)
			}
			const slack = 1e-9
			if !(low <= estimate+slack && estimate <= high+slack) || low > previousLow+slack || high < previousHigh-slack {
				t.Fatalf("pair %d at %v: %v [%v, %v], after [%v, %v]", trial, confidence, estimate, low, high, previousLow, previousHigh)
			}
			if math.Abs(estimate+swapped) > slack || math.Abs(low+swappedHigh) > slack || math.Abs(high+swappedLow) > slack {
				t.Fatalf("pair %d at %v: %v [%v, %v], swapped %v [%v, %v]", trial, confidence, estimate, low, high, swapped, swappedLow, swappedHigh)
			}
			previousLow, previousHigh = low, high
		}
	}
}

// TestBucketedHodgesLehmannLargestHistogram runs the largest histograms allowed, every bucket
// holding observations, to keep the cost of the pairwise sums in view.
func TestBucketedHodgesLehmannLargestHistogram(t *testing.T) {
	bounds := make([]float64, maxHistogramBuckets)
	control := Histogram{Bounds: bounds, Cumulative: make([]float64, maxHistogramBuckets)}
	experiment := Histogram{Bounds: bounds, Cumulative: make([]float64, maxHistogramBuckets)}
	for k := range bounds {
		bounds[k] = 0.001 * float64(k+1)
		control.Cumulative[k] = float64(3 * (k + 1))
		experiment.Cumulative[k] = float64(2*(k+1) + k/2)
	}
	bounds[len(bounds)-1] = math.Inf(1)
	estimate, low, high, err := BucketedHodgesLehmann(control, experiment, 0.95)
	if err != nil || !(low < estimate && estimate < high) {
		t.Errorf("%v [%v, %v], %v", estimate, low, high, err)
	}
}

func TestBucketedHugeCounts(t *testing.T) {
	// A billion observations per arm in the proportions of vector a1: N^3 overflows int64, and
	// N1*N2 is beyond the integers float64 holds exactly.
	scale := func(h Histogram) Histogram {
		cumulative := make([]float64, len(h.Cumulative))
		for i, c := range h.Cumulative {
			cumulative[i] = c * 1e7
		}
		return Histogram{Bounds: h.Bounds, Cumulative: cumulative}
	}
	control, experiment := scale(vectorA1Control), scale(vectorA1Canary)
	r, err := BucketedMannWhitney(control, experiment)
	if err != nil {
		t.Fatalf("BucketedMannWhitney: %v", err)
	}
	if r.N1 != 1e9 || r.N2 != 1e9 {
		t.Fatalf("N1, N2 = %d, %d", r.N1, r.N2)
	}
	if math.IsNaN(r.Sigma) || math.IsInf(r.Sigma, 0) || !(r.Sigma > 0) || math.IsNaN(r.Z) || math.IsInf(r.Z, 0) {
		t.Fatalf("Sigma = %v, Z = %v; want finite", r.Sigma, r.Z)
	}
	// The bucket shares are those of vector a1, so U/(N1*N2) is unchanged. Scaling every count
	// by c multiplies Sigma^2 by c^3 (N-1)/N' with N = 200 and N' = c*N - 1 ~ c*N.
	assertClose(t, "U/(N1*N2)", r.U/1e18, 6312.5/1e4, 1e-12)
	assertClose(t, "Sigma/c^1.5", r.Sigma/math.Pow(1e7, 1.5), 399.080286881*math.Sqrt(199.0/200), 1e-6)
	// The formula as written on Sigma, evaluated in float64, agrees.
	counts := [][2]float64{{10, 5}, {30, 15}, {30, 30}, {15, 25}, {10, 15}, {5, 10}}
	n := 2e9
	var ties float64
	for _, c := range counts {
		tk := (c[0] + c[1]) * 1e7
		ties += tk * (tk*tk - 1)
	}
	direct := math.Sqrt(1e18 / 12 * ((n + 1) - ties/(n*(n-1))))
	assertClose(t, "Sigma against the textbook formula", r.Sigma, direct, 1e-6)
	if !(r.PGreater >= 0 && r.PGreater < 1e-100) {
		t.Errorf("PGreater = %v, want tiny", r.PGreater)
	}

	estimate, low, high, err := BucketedHodgesLehmann(control, experiment, 0.95)
	if err != nil {
		t.Fatalf("BucketedHodgesLehmann: %v", err)
	}
	// The distribution of differences depends on the arms' bucket shares only, so the estimate
	// is vector b1's; with this much data the interval shrinks onto it.
	if math.Abs(estimate-0.0793666056202) > 1e-12 || !(low < estimate && estimate < high) || high-low > 1e-4 {
		t.Errorf("estimate %v [%v, %v], want 0.0793666056202 within an interval narrower than 1e-4", estimate, low, high)
	}
}

func TestBucketedSmallCases(t *testing.T) {
	inf := math.Inf(1)
	control := Histogram{Bounds: []float64{0.1, 0.2, inf}, Cumulative: []float64{0, 40, 40}}
	experiment := Histogram{Bounds: []float64{0.1, 0.2, inf}, Cumulative: []float64{0, 7, 7}}
	r, err := BucketedMannWhitney(control, experiment)
	if err != nil {
		t.Fatalf("BucketedMannWhitney: %v", err)
	}
	if r.Sigma != 0 || r.Z != 0 || r.U != r.Mean || r.PGreater != 1 || r.PLess != 1 || r.PTwoSided != 1 {
		t.Errorf("all observations in one bucket: %+v", r)
	}
	// The differences spread over [-0.1, 0.1] symmetrically, but the tie-corrected Sigma is 0,
	// so k is C/2 and the interval shrinks onto the median.
	estimate, low, high, err := BucketedHodgesLehmann(control, experiment, 0.95)
	if err != nil || math.Abs(estimate) > 1e-12 || math.Abs(low) > 1e-12 || math.Abs(high) > 1e-12 {
		t.Errorf("all observations in one bucket: %v [%v, %v], %v; want 0 [0, 0]", estimate, low, high, err)
	}
	// A single observation per arm: the control's spread over [0, 0.1], the experiment's in the
	// +Inf bucket, the point 0.2. The difference is uniform over [0.1, 0.2], and with C = 1 the
	// interval is its median.
	one := Histogram{Bounds: []float64{0.1, 0.2, inf}, Cumulative: []float64{1, 1, 1}}
	other := Histogram{Bounds: []float64{0.1, 0.2, inf}, Cumulative: []float64{0, 0, 1}}
	estimate, low, high, err = BucketedHodgesLehmann(one, other, 0.95)
	if err != nil || math.Abs(estimate-0.15) > 1e-12 || math.Abs(low-0.15) > 1e-12 || math.Abs(high-0.15) > 1e-12 {
		t.Errorf("one observation per arm: %v [%v, %v], %v; want 0.15 [0.15, 0.15]", estimate, low, high, err)
	}
	// Against the experiment's observations in [0, 0.1] and (0.1, 0.2], the differences are
	// triangles centred on 0 and on 0.1 with equal weight, so the median is 0.05.
	pair := Histogram{Bounds: []float64{0.1, 0.2, inf}, Cumulative: []float64{1, 2, 2}}
	estimate, _, _, err = BucketedHodgesLehmann(one, pair, 0.95)
	if err != nil || math.Abs(estimate-0.05) > 1e-12 {
		t.Errorf("two triangles: %v, %v; want 0.05", estimate, err)
	}
	// Points only (a first bound of 0 and the +Inf bucket): differences 0 and 1, one pair each.
	// The distribution function is exactly 1/2 from 0 to 1, so the median is the middle, 0.5,
	// and the interval (k = 1 of 2) is [0, 1], as for the two values 0 and 1.
	points := []float64{0, 1, inf}
	estimate, low, high, err = BucketedHodgesLehmann(Histogram{Bounds: points, Cumulative: []float64{1, 1, 1}},
		Histogram{Bounds: points, Cumulative: []float64{1, 1, 2}}, 0.95)
	if err != nil || math.Abs(estimate-0.5) > 1e-12 || low != 0 || math.Abs(high-1) > 1e-12 {
		t.Errorf("points 0 and 1: %v [%v, %v], %v; want 0.5 [0, 1]", estimate, low, high, err)
	}
}

func TestBucketedErrors(t *testing.T) {
	inf := math.Inf(1)
	bounds := []float64{0.1, 0.5, inf}
	valid := Histogram{Bounds: bounds, Cumulative: []float64{3, 8, 10}}
	empty := Histogram{Bounds: bounds, Cumulative: []float64{0, 0, 0.3}}
	tests := []struct {
		name                string
		control, experiment Histogram
		confidence          float64
		wantErr             []error
	}{
		{"bounds differ", valid, Histogram{Bounds: []float64{0.1, 0.25, inf}, Cumulative: []float64{3, 8, 10}}, 0.95, []error{ErrInvalidInput}},
		{"bucket counts differ", valid, Histogram{Bounds: []float64{0.1, inf}, Cumulative: []float64{3, 10}}, 0.95, []error{ErrInvalidInput}},
		{"negative count in control", Histogram{Bounds: bounds, Cumulative: []float64{-1, 8, 10}}, valid, 0.95, []error{ErrInvalidInput}},
		{"NaN count in experiment", valid, Histogram{Bounds: bounds, Cumulative: []float64{1, math.NaN(), 10}}, 0.95, []error{ErrInvalidInput}},
		{"infinite count", valid, Histogram{Bounds: bounds, Cumulative: []float64{1, 2, inf}}, 0.95, []error{ErrInvalidInput}},
		{"last bound finite", Histogram{Bounds: []float64{0.1, 0.5, 1}, Cumulative: []float64{3, 8, 10}}, Histogram{Bounds: []float64{0.1, 0.5, 1}, Cumulative: []float64{3, 8, 10}}, 0.95, []error{ErrInvalidInput}},
		{"both empty", empty, empty, 0.95, []error{ErrNoTraffic}},
		{"control empty", empty, valid, 0.95, []error{ErrNoTraffic, ErrEmptyArm}},
		{"experiment empty", valid, empty, 0.95, []error{ErrNoTraffic, ErrEmptyArm}},
		{"zero-value histograms", Histogram{}, Histogram{}, 0.95, []error{ErrInvalidInput}},
	}
	for _, tt := range tests {
		_, mwErr := BucketedMannWhitney(tt.control, tt.experiment)
		_, _, _, hlErr := BucketedHodgesLehmann(tt.control, tt.experiment, tt.confidence)
		for _, want := range tt.wantErr {
			if !errors.Is(mwErr, want) || !errors.Is(hlErr, want) {
				t.Errorf("%s: errors %v and %v, want %v", tt.name, mwErr, hlErr, want)
			}
		}
	}
	for _, confidence := range []float64{math.NaN(), 0, 1, -0.5, 1.5, inf} {
		if _, _, _, err := BucketedHodgesLehmann(valid, valid, confidence); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("confidence %v: error = %v, want ErrInvalidInput", confidence, err)
		}
	}
	for _, huge := range [][]float64{{-1e308, 1e308, inf}, {1, 1e308, 1.7e308, inf}} {
		cumulative := make([]float64, len(huge))
		for i := range cumulative {
			cumulative[i] = float64(i + 1)
		}
		h := Histogram{Bounds: huge, Cumulative: cumulative}
		if _, _, _, err := BucketedHodgesLehmann(h, h, 0.95); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("bounds %v: error = %v, want ErrInvalidInput", huge, err)
		}
	}
	// Bounds far from 1 but close enough to subtract work, and scale the result.
	large := Histogram{Bounds: []float64{1e300, 2e300, 3e300, inf}, Cumulative: []float64{0, 10, 20, 20}}
	larger := Histogram{Bounds: large.Bounds, Cumulative: []float64{0, 0, 20, 20}}
	estimate, low, high, err := BucketedHodgesLehmann(large, larger, 0.95)
	if err != nil || math.Abs(estimate/1e300-0.5) > 1e-9 || !(low < estimate && estimate < high) {
		t.Errorf("bounds up to 3e300: %v [%v, %v], %v; want 5e299 inside", estimate, low, high, err)
	}
}

func TestLookAlpha(t *testing.T) {
	// vectors c1 and c2
	tests := []struct {
		look int
		want float64
	}{{1, 0.025}, {2, 0.00833333333333}, {10, 0.000454545454545}, {100, 4.9504950495e-06}}
	for _, tt := range tests {
		got, err := LookAlpha(0.05, tt.look)
		if err != nil {
			t.Fatalf("LookAlpha(0.05, %d): %v", tt.look, err)
		}
		assertRoundsTo(t, "LookAlpha", got, tt.want, 4)
		assertClose(t, "LookAlpha", got, tt.want, 1e-10)
	}
	spent, err := AlphaSpent(0.05, 10)
	if err != nil {
		t.Fatalf("AlphaSpent: %v", err)
	}
	assertRoundsTo(t, "AlphaSpent", spent, 0.0454545454545, 4)
	assertClose(t, "AlphaSpent", spent, 0.0454545454545, 1e-10)

	// The levels of the looks add up to AlphaSpent and never reach alpha.
	var sum float64
	for look := 1; look <= 5000; look++ {
		level, err := LookAlpha(0.05, look)
		if err != nil {
			t.Fatalf("LookAlpha(0.05, %d): %v", look, err)
		}
		sum += level
		if look%1000 == 0 {
			spent, err := AlphaSpent(0.05, look)
			if err != nil || math.Abs(sum-spent) > 1e-14 || spent >= 0.05 {
				t.Errorf("after %d looks: sum %v, AlphaSpent %v (%v)", look, sum, spent, err)
			}
		}
	}
	if spent, err := AlphaSpent(0.05, 0); err != nil || spent != 0 {
		t.Errorf("AlphaSpent(0.05, 0) = %v, %v; want 0", spent, err)
	}
	if level, err := LookAlpha(0.05, math.MaxInt); err != nil || !(level >= 0) || math.IsInf(level, 0) {
		t.Errorf("LookAlpha at the largest look = %v, %v", level, err)
	}

	for _, alpha := range []float64{math.NaN(), 0, 1, -0.1, 1.5, math.Inf(1)} {
		if _, err := LookAlpha(alpha, 1); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("LookAlpha(%v, 1): error = %v, want ErrInvalidInput", alpha, err)
		}
		if _, err := AlphaSpent(alpha, 1); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("AlphaSpent(%v, 1): error = %v, want ErrInvalidInput", alpha, err)
		}
	}
	for _, look := range []int{0, -1, math.MinInt} {
		if _, err := LookAlpha(0.05, look); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("LookAlpha(0.05, %d): error = %v, want ErrInvalidInput", look, err)
		}
	}
	if _, err := AlphaSpent(0.05, -1); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("AlphaSpent(0.05, -1): error = %v, want ErrInvalidInput", err)
	}
}

// LookP is at most alpha exactly when the look's p-value is at most its share of alpha.
func TestLookP(t *testing.T) {
	const alpha = 0.05
	for _, look := range []int{1, 2, 10, 100} {
		share, err := LookAlpha(alpha, look)
		if err != nil {
			t.Fatal(err)
		}
		if got := LookP(share*0.999, look); got > alpha {
			t.Errorf("look %d: LookP just under its share = %v, want at most %v", look, got, alpha)
		}
		if got := LookP(share*1.001, look); got <= alpha {
			t.Errorf("look %d: LookP just over its share = %v, want above %v", look, got, alpha)
		}
	}
	if got := LookP(0.5, 3); got != 1 {
		t.Errorf("LookP(0.5, 3) = %v, want capped at 1", got)
	}
}
