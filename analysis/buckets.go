package analysis

import (
	"fmt"
	"math"
	"math/big"
	"slices"
)

// Latency comparisons from Prometheus histogram buckets.
//
// A latency metric scraped as a classic histogram gives, for each arm, how many requests took
// at most each bucket bound. The individual latencies are gone. The Mann-Whitney U test below
// treats every observation in one bucket as tied with the others in it, and loses nothing else
// with the tie correction; the Hodges-Lehmann shift spreads each bucket's observations evenly
// over the bucket, as histogram_quantile does, so that it can see shifts smaller than a bucket.
// Both arms must use the same buckets.

// maxHistogramBuckets bounds the number of buckets of a Histogram. Classic Prometheus
// histograms have a few dozen; the Hodges-Lehmann estimate visits every pair of buckets some
// hundred times.
const maxHistogramBuckets = 512

// maxHistogramCount bounds every cumulative count of a Histogram. Counts up to it are integers
// that float64 holds exactly, and the bucket counts of the largest histogram allowed sum to far
// less than the largest int64.
const maxHistogramCount = 1e15

// Histogram is a latency histogram over one range, as Prometheus reports its _bucket series.
// Bounds are the upper bounds (the le label) in strictly increasing order, the last being +Inf;
// Cumulative[i] is the number of observations at most Bounds[i]. Counts taken with increase()
// or rate()*range are extrapolated and need not be integers, so each is rounded to the nearest
// integer before use.
type Histogram struct {
	// Bounds are the bucket upper bounds, finite except the last, which is +Inf.
	Bounds []float64
	// Cumulative holds, for each bound, the count of observations at or below it.
	Cumulative []float64
}

// Validate reports ErrInvalidInput, naming the first problem found, unless the histogram has
// between 2 and 512 buckets, as many cumulative counts as bounds, finite bounds in strictly
// increasing order followed by +Inf, and counts that are finite, non-negative and at most 1e15.
// Counts that decrease from one bucket to the next are accepted (see BucketCounts), and so is a
// histogram with no observations at all.
func (h Histogram) Validate() error {
	last := len(h.Bounds) - 1
	switch {
	case len(h.Bounds) == 0:
		return fmt.Errorf("%w: histogram has no buckets", ErrInvalidInput)
	case len(h.Bounds) != len(h.Cumulative):
		return fmt.Errorf("%w: histogram has %d bounds but %d cumulative counts", ErrInvalidInput, len(h.Bounds), len(h.Cumulative))
	case !math.IsInf(h.Bounds[last], 1):
		return fmt.Errorf("%w: the last histogram bound must be +Inf, got %v", ErrInvalidInput, h.Bounds[last])
	case last == 0:
		return fmt.Errorf("%w: histogram has only the +Inf bucket; at least one finite bound is needed", ErrInvalidInput)
	case len(h.Bounds) > maxHistogramBuckets:
		return fmt.Errorf("%w: histogram has %d buckets, more than %d", ErrInvalidInput, len(h.Bounds), maxHistogramBuckets)
	}
	for i, bound := range h.Bounds[:last] {
		if math.IsNaN(bound) || math.IsInf(bound, 0) {
			return fmt.Errorf("%w: histogram bound %d is %v; all bounds but the last must be finite", ErrInvalidInput, i, bound)
		}
		if i > 0 && bound <= h.Bounds[i-1] {
			return fmt.Errorf("%w: histogram bounds must increase strictly, but bound %d (%v) follows %v", ErrInvalidInput, i, bound, h.Bounds[i-1])
		}
	}
	for i, count := range h.Cumulative {
		if math.IsNaN(count) || count < 0 || count > maxHistogramCount {
			return fmt.Errorf("%w: histogram count %d (le=%v) is %v; counts must be finite, non-negative and at most %g",
				ErrInvalidInput, i, h.Bounds[i], count, float64(maxHistogramCount))
		}
	}
	return nil
}

// BucketCounts returns the number of observations in each bucket: round(Cumulative[i]) minus
// round(Cumulative[i-1]), or 0 where that is negative. Extrapolated counts can dip slightly from
// one bucket to the next; such a dip is read as an empty bucket, and the bucket after it counts
// from the lower value. It returns nil for a histogram that fails Validate.
func (h Histogram) BucketCounts() []int64 {
	if h.Validate() != nil {
		return nil
	}
	counts := make([]int64, len(h.Cumulative))
	var previous int64
	for i, cumulative := range h.Cumulative {
		rounded := int64(math.Round(cumulative))
		counts[i] = max(0, rounded-previous)
		previous = rounded
	}
	return counts
}

// Total returns the number of observations, the sum of BucketCounts; 0 for a histogram that
// fails Validate.
func (h Histogram) Total() int64 {
	return sumCounts(h.BucketCounts())
}

// Quantile estimates the q-quantile of the observations as Prometheus' histogram_quantile does:
// it finds the bucket holding the observation of rank q*Total() and interpolates linearly
// between the bucket's bounds, taking 0 as the lower bound of the first bucket. Three cases
// cannot be interpolated: a rank in the +Inf bucket gives the largest finite bound, a rank in a
// first bucket whose bound is 0 or less gives that bound, and q = 0 gives the lower bound of the
// first bucket that has observations (where Prometheus can return NaN).
//
// Errors: ErrInvalidInput for q outside [0, 1] or an invalid histogram, ErrNoTraffic when the
// histogram has no observations.
func (h Histogram) Quantile(q float64) (float64, error) {
	if math.IsNaN(q) || q < 0 || q > 1 {
		return 0, fmt.Errorf("%w: quantile must be within [0, 1], got %v", ErrInvalidInput, q)
	}
	if err := h.Validate(); err != nil {
		return 0, err
	}
	counts := h.BucketCounts()
	total := sumCounts(counts)
	if total == 0 {
		return 0, fmt.Errorf("%w: histogram has no observations", ErrNoTraffic)
	}
	rank := q * float64(total)
	last := len(counts) - 1
	var below int64 // observations in the buckets before b
	for b, count := range counts {
		if count == 0 || float64(below+count) < rank {
			below += count
			continue
		}
		upper := h.Bounds[b]
		switch {
		case b == last:
			return h.Bounds[last-1], nil
		case b == 0 && upper <= 0:
			return upper, nil
		}
		lower := 0.0
		if b > 0 {
			lower = h.Bounds[b-1]
		}
		return lower + (upper-lower)*(rank-float64(below))/float64(count), nil
	}
	// Not reached: rank <= total, so some bucket with observations holds it.
	return h.Bounds[last-1], nil
}

// sumCounts returns the sum of counts.
func sumCounts(counts []int64) int64 {
	var total int64
	for _, c := range counts {
		total += c
	}
	return total
}

// BucketedMannWhitneyResult is the outcome of a Mann-Whitney U test on two histograms, with all
// observations in one bucket tied.
type BucketedMannWhitneyResult struct {
	// U is the experiment's statistic: the number of (experiment, control) pairs in which the
	// experiment's observation lies in a higher bucket, plus half the pairs in the same bucket.
	// With a and b the control's and the experiment's bucket counts it is
	// sum over buckets k of b[k] * (a[0] + ... + a[k-1] + a[k]/2).
	U float64
	// N1 and N2 are the numbers of observations of the experiment and of the control.
	N1, N2 int64
	// Mean is N1*N2/2, the expected U when both arms have the same distribution.
	Mean float64
	// Sigma is the tie-corrected standard deviation of U under that hypothesis,
	// sqrt(N1*N2/12 * ((N+1) - sum t(t^2-1) / (N(N-1)))) with N = N1+N2 and t the number of
	// observations of both arms in each bucket. It is 0 when all observations share a bucket.
	Sigma float64
	// Z is (U - Mean)/Sigma, positive when the experiment tends to be slower; 0 when Sigma is 0.
	Z float64
	// PGreater, PLess and PTwoSided are the normal-approximation p-values of Z, without
	// continuity correction, for the experiment being slower, faster, and either. They are 1
	// when Sigma is 0: the histograms cannot tell the arms apart.
	PGreater, PLess, PTwoSided float64
}

// PValue returns the p-value for alt, where Greater means the experiment tends to be slower.
// An unknown alt is treated as TwoSided.
func (r BucketedMannWhitneyResult) PValue(alt Alternative) float64 {
	switch alt {
	case Greater:
		return r.PGreater
	case Less:
		return r.PLess
	default:
		return r.PTwoSided
	}
}

// BucketedMannWhitney runs the Mann-Whitney U test of the experiment's latencies against the
// control's from their histograms over the same range, treating the observations in one bucket
// as tied. The p-values use the normal approximation with the tie correction and no continuity
// correction, which is accurate for the thousands of requests a histogram usually holds; the
// test only sees the order of buckets, so it cannot tell apart latencies within one bucket.
//
// The variance is computed as N1*N2 * sum t(N-t)(N+t) / (12 N (N-1)), which equals the formula
// on Sigma but adds only non-negative terms, so it stays accurate when nearly every observation
// falls into one bucket; all sums of products are taken in float64, as N^3 exceeds int64 for a
// billion requests per arm.
//
// Errors: ErrInvalidInput for an invalid histogram or bounds that differ between the two;
// ErrNoTraffic when either histogram has no observations (wrapped together with ErrEmptyArm
// when only one of them is empty).
func BucketedMannWhitney(control, experiment Histogram) (BucketedMannWhitneyResult, error) {
	a, b, err := pairedBucketCounts(control, experiment)
	if err != nil {
		return BucketedMannWhitneyResult{}, err
	}
	return bucketedMannWhitney(a, b), nil
}

// pairedBucketCounts validates the histograms of both arms and returns their bucket counts.
func pairedBucketCounts(control, experiment Histogram) (a, b []int64, err error) {
	if err := control.Validate(); err != nil {
		return nil, nil, fmt.Errorf("control histogram: %w", err)
	}
	if err := experiment.Validate(); err != nil {
		return nil, nil, fmt.Errorf("experiment histogram: %w", err)
	}
	if !slices.Equal(control.Bounds, experiment.Bounds) {
		return nil, nil, fmt.Errorf("%w: the histograms have different bucket bounds: control %v, experiment %v",
			ErrInvalidInput, control.Bounds, experiment.Bounds)
	}
	a, b = control.BucketCounts(), experiment.BucketCounts()
	nA, nB := sumCounts(a), sumCounts(b)
	switch {
	case nA == 0 && nB == 0:
		return nil, nil, fmt.Errorf("%w: neither histogram has observations", ErrNoTraffic)
	case nA == 0 || nB == 0:
		return nil, nil, fmt.Errorf("%w: %w: the control histogram has %d observations, the experiment's %d",
			ErrNoTraffic, ErrEmptyArm, nA, nB)
	}
	return a, b, nil
}

// bucketedMannWhitney computes the test from the control's bucket counts a and the
// experiment's b, both with observations.
func bucketedMannWhitney(a, b []int64) BucketedMannWhitneyResult {
	n2, n1 := sumCounts(a), sumCounts(b)
	n := n1 + n2
	// U - Mean is summed directly as 1/2 sum b[k] * (control below k - control above k), which
	// avoids cancellation when U is close to its mean.
	var u, excess, spread float64
	var controlBelow int64
	for k := range a {
		controlAbove := n2 - controlBelow - a[k]
		u += float64(b[k]) * (float64(controlBelow) + float64(a[k])/2)
		excess += float64(b[k]) * float64(controlBelow-controlAbove) / 2
		t := a[k] + b[k]
		spread += float64(t) * float64(n-t) * float64(n+t)
		controlBelow += a[k]
	}
	fn1, fn2, fn := float64(n1), float64(n2), float64(n)
	r := BucketedMannWhitneyResult{U: u, N1: n1, N2: n2, Mean: fn1 * fn2 / 2}
	r.Sigma = math.Sqrt(fn1 * fn2 / (12 * fn * (fn - 1)) * spread)
	r.PGreater, r.PLess, r.PTwoSided = 1, 1, 1
	if r.Sigma > 0 {
		r.Z = excess / r.Sigma
		r.PGreater = NormalUpperTail(r.Z)
		r.PLess = NormalUpperTail(-r.Z)
		r.PTwoSided = NormalTwoSidedP(r.Z)
	}
	return r
}

// BucketedHodgesLehmann estimates how much slower the experiment is than the control
// (experiment minus control, in the unit of the bounds, usually seconds) from their histograms
// over the same range, with a distribution-free confidence interval at the given level.
//
// The observations of each bucket are taken to be spread evenly over it, as histogram_quantile
// assumes: the first bucket spans [0, Bounds[0]] (or is the single point Bounds[0] when that is
// 0 or less) and bucket k spans (Bounds[k-1], Bounds[k]]. The +Inf bucket is a single point at
// the largest finite bound: a histogram cannot say how far beyond it those observations lie, so
// a shift in the slowest requests is understated.
//
// The difference D = Y - X between an experiment observation Y and a control observation X,
// each drawn at random, then has the distribution function
//
//	F(d) = sum over buckets i, j of a[i] * b[j] * P(U[j] - U[i] <= d) / (N1*N2)
//
// with a and b the control's and the experiment's bucket counts and U[k] uniform over bucket k:
// a mixture of trapezoidal densities that stands in for the N1*N2 pairwise differences of the
// ordinary Hodges-Lehmann estimate. The estimate is the median of D; where F stays at exactly
// 1/2 over a stretch, the middle of that stretch, as the median of an even number of values is
// the mean of the middle two.
//
// The interval is the continuous analogue of the order-statistic interval [D(k), D(C+1-k)] of
// HodgesLehmann: with C = N1*N2 and k = floor(C/2 - z*Sigma), at least 1 and at most C/2, where z
// is the normal quantile at (1+confidence)/2 and Sigma the tie-corrected standard deviation of U
// from BucketedMannWhitney, low is the smallest d with F(d) >= k/C and high the smallest d with
// F(d) > 1 - k/C. Where F rises steadily these are its k/C and 1-k/C quantiles; the two rules
// make swapping the arms negate the interval, and give [D(k), D(C+1-k)] of the bucket values
// when every bucket is a narrow range around one value. When C is 1, k/C is capped at 1/2 and
// the interval is the estimate alone.
//
// Sigma keeps its correction for ties within buckets, as the rank test sees only the buckets,
// although the spread observations are no longer tied; the correction makes Sigma smaller and
// the interval a little narrower than untied data would give. With every observation in one
// bucket Sigma is 0, k is C/2, and the interval shrinks onto the estimate. The interval is only
// as good as the assumption that latencies are spread evenly within each bucket, which the
// histogram cannot check.
//
// Quantiles are found by bisecting F over the range of possible differences, to about 1e-12
// relative or 100 halvings at most; each step visits every pair of non-empty buckets. Whole
// pairs are counted exactly, so that a level F reaches exactly (common with small counts, empty
// buckets or single points) is not missed by rounding.
//
// Errors: as BucketedMannWhitney, and ErrInvalidInput for a confidence outside (0, 1) or bounds
// so far apart that their differences overflow.
func BucketedHodgesLehmann(control, experiment Histogram, confidence float64) (estimate, low, high float64, err error) {
	a, b, err := pairedBucketCounts(control, experiment)
	if err != nil {
		return 0, 0, 0, err
	}
	if err := checkOpenUnit("confidence", confidence); err != nil {
		return 0, 0, 0, err
	}
	bounds := control.Bounds
	if bottom, top := math.Min(0, bounds[0]), bounds[len(bounds)-2]; math.IsInf(4*(top-bottom), 0) {
		return 0, 0, 0, fmt.Errorf("%w: histogram bounds from %v to %v are too far apart to subtract",
			ErrInvalidInput, bounds[0], top)
	}
	shift := newBucketShift(bounds, a, b)

	sigma := bucketedMannWhitney(a, b).Sigma
	z := -NormalQuantile((1 - confidence) / 2)
	rank := math.Floor(float64(shift.n1)*float64(shift.n2)/2 - z*sigma)
	if !(rank >= 1) {
		rank = 1
	}
	// Levels are counted in half pairs, so that half of C is whole: the median is at level C,
	// the interval's ends at min(2k, C) and 2C minus that.
	lowLevel, _ := big.NewFloat(2 * rank).Int(nil)
	if lowLevel.Cmp(shift.pairs) > 0 {
		lowLevel.Set(shift.pairs)
	}
	highLevel := new(big.Int).Lsh(shift.pairs, 1)
	highLevel.Sub(highLevel, lowLevel)

	estimate = (shift.quantile(shift.pairs, false) + shift.quantile(shift.pairs, true)) / 2
	return estimate, shift.quantile(lowLevel, false), shift.quantile(highLevel, true), nil
}

// bucketSpan is a non-empty bucket: the range its observations are spread over, lower to upper
// (a single point when the two are equal), and how many observations it holds.
type bucketSpan struct {
	lower, upper, width float64
	count               int64
}

// bucketSpans returns the non-empty buckets of counts, in order, over bounds, which must pass
// Validate: the first bucket spans [0, Bounds[0]], or is the point Bounds[0] when that is 0 or
// less; bucket k spans [Bounds[k-1], Bounds[k]]; the +Inf bucket is the point at the largest
// finite bound. Neither end of the spans falls as k grows.
func bucketSpans(bounds []float64, counts []int64) []bucketSpan {
	last := len(bounds) - 1
	var spans []bucketSpan
	for k, count := range counts {
		if count == 0 {
			continue
		}
		var lower, upper float64
		switch {
		case k == last:
			lower, upper = bounds[last-1], bounds[last-1]
		case k == 0 && bounds[0] <= 0:
			lower, upper = bounds[0], bounds[0]
		case k == 0:
			lower, upper = 0, bounds[0]
		default:
			lower, upper = bounds[k-1], bounds[k]
		}
		spans = append(spans, bucketSpan{lower: lower, upper: upper, width: upper - lower, count: count})
	}
	return spans
}

// bucketShift is the distribution of the difference between an experiment observation and a
// control observation when each is spread evenly over its bucket, counted in pairs of
// observations.
type bucketShift struct {
	// control and experiment are the arms' non-empty buckets.
	control, experiment []bucketSpan
	// n1 and n2 are the numbers of observations of the experiment and of the control.
	n1, n2 int64
	// pairs is N1*N2, exact: it can exceed both int64 and the integers float64 holds exactly.
	pairs *big.Int
	// lowest and highest are the smallest and the largest possible difference.
	lowest, highest float64
}

// maxBisections bounds the halvings of the range of differences when a quantile is sought.
const maxBisections = 100

// newBucketShift returns the distribution of differences for the control's bucket counts a and
// the experiment's b over bounds, which must pass Validate; both arms must have observations,
// and the bounds must be close enough that four times their span is finite.
func newBucketShift(bounds []float64, a, b []int64) bucketShift {
	s := bucketShift{control: bucketSpans(bounds, a), experiment: bucketSpans(bounds, b), n1: sumCounts(b), n2: sumCounts(a)}
	s.pairs = new(big.Int).Mul(big.NewInt(s.n1), big.NewInt(s.n2))
	// Floating-point subtraction is monotone in each argument, so no pair's computed ends lie
	// outside these.
	first, last := s.control[0], s.control[len(s.control)-1]
	s.lowest = s.experiment[0].lower - last.upper
	s.highest = s.experiment[len(s.experiment)-1].upper - first.lower
	return s
}

// pairsAtMost counts the pairs of observations whose difference is at most d. The pairs whose
// buckets put every difference at most d are added to whole, exactly; the pairs whose buckets
// straddle d are returned as the expected number of them at most d, part.
func (s bucketShift) pairsAtMost(d float64, whole *big.Int) (part float64) {
	var term, below big.Int
	for _, y := range s.experiment {
		var controlBelow int64
		var straddling float64
		for _, x := range s.control {
			if d >= y.upper-x.lower {
				controlBelow += x.count
				continue
			}
			lowest := y.lower - x.upper
			if d <= lowest {
				continue
			}
			straddling += float64(x.count) * uniformSumCDF(d-lowest, y.width, x.width)
		}
		term.SetInt64(y.count)
		below.SetInt64(controlBelow)
		whole.Add(whole, term.Mul(&term, &below))
		part += float64(y.count) * straddling
	}
	return part
}

// reaches reports whether twice the number of pairs with difference at most d reaches level, or
// exceeds it when strict.
func (s bucketShift) reaches(d float64, level *big.Int, strict bool) bool {
	missing := new(big.Int)
	part := s.pairsAtMost(d, missing)
	missing.Sub(level, missing.Lsh(missing, 1))
	switch missing.Sign() {
	case -1:
		return true
	case 0:
		return !strict || part > 0
	}
	need, _ := new(big.Float).SetInt(missing).Float64()
	if strict {
		return 2*part > need
	}
	return 2*part >= need
}

// quantile returns the smallest difference d at which twice the number of pairs with
// difference at most d reaches level (exceeds it when strict), found by bisection to about
// 1e-12 relative. level must be below twice the number of pairs when strict, and at most that
// otherwise, so that the largest difference qualifies.
func (s bucketShift) quantile(level *big.Int, strict bool) float64 {
	lo, hi := s.lowest, s.highest
	if s.reaches(lo, level, strict) {
		return lo
	}
	for range maxBisections {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if s.reaches(mid, level, strict) {
			hi = mid
		} else {
			lo = mid
		}
		if hi-lo <= 1e-12*math.Max(math.Abs(lo), math.Abs(hi)) {
			break
		}
	}
	return hi
}

// uniformSumCDF returns P(V1 + V2 <= s) for independent V1 uniform on [0, w1] and V2 uniform on
// [0, w2], a width of 0 standing for the point 0. With p <= q the two widths, the density of
// V1 + V2 is a trapezoid: rising over [0, p], flat at 1/q over [p, q], falling over [q, p+q].
func uniformSumCDF(s, w1, w2 float64) float64 {
	p, q := math.Min(w1, w2), math.Max(w1, w2)
	switch {
	case s <= 0:
		return 0
	case s >= p+q:
		return 1
	case s <= p: // so p > 0
		return s / p * (s / q) / 2
	case s <= q: // so q > 0
		return (s - p/2) / q
	default: // q < s < p+q, so p > 0
		r := p + q - s
		return 1 - r/p*(r/q)/2
	}
}

// LookAlpha returns the significance level of look number look (1 for the first) when a test
// is repeated at every analysis interval and the family-wise error rate over all looks must
// stay at alpha: look k may spend alpha/(k(k+1)). These levels add up to alpha*n/(n+1) after n
// looks (AlphaSpent), below alpha however many looks are taken, so by the union bound the
// chance of any false alarm is at most alpha whatever the correlation between looks. The price
// is power: the tenth look runs at alpha/110.
//
// Errors: ErrInvalidInput for alpha outside (0, 1) or look below 1.
func LookAlpha(alpha float64, look int) (float64, error) {
	if err := checkOpenUnit("alpha", alpha); err != nil {
		return 0, err
	}
	if look < 1 {
		return 0, fmt.Errorf("%w: look must be 1 or more, got %d", ErrInvalidInput, look)
	}
	k := float64(look)
	return alpha / (k * (k + 1)), nil
}

// LookP turns the p-value of look number look into one that may be compared with alpha itself:
// min(1, p*look*(look+1)). It is at most alpha exactly when p is at most LookAlpha(alpha, look),
// and by the same union bound it is a valid p-value whatever the number of looks. A look below 1
// counts as the first.
func LookP(p float64, look int) float64 {
	k := float64(max(look, 1))
	return math.Min(1, p*k*(k+1))
}

// AlphaSpent returns the part of alpha that the first looks have spent under LookAlpha,
// alpha*looks/(looks+1); 0 before the first look.
//
// Errors: ErrInvalidInput for alpha outside (0, 1) or a negative number of looks.
func AlphaSpent(alpha float64, looks int) (float64, error) {
	if err := checkOpenUnit("alpha", alpha); err != nil {
		return 0, err
	}
	if looks < 0 {
		return 0, fmt.Errorf("%w: number of looks must not be negative, got %d", ErrInvalidInput, looks)
	}
	n := float64(looks)
	return alpha * n / (n + 1), nil
}
