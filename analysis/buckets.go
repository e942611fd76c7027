package analysis

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"slices"
)

// Latency comparisons from Prometheus histogram buckets.
//
// A latency metric scraped as a classic histogram gives, for each arm, how many requests took
// at most each bucket bound. The individual latencies are gone, so the rank tests below treat
// every observation in one bucket as tied with the others in it: the Mann-Whitney U test with
// the tie correction loses nothing else, and the Hodges-Lehmann shift stands each bucket in by
// one representative value. Both arms must use the same buckets.

// maxHistogramBuckets bounds the number of buckets of a Histogram. Classic Prometheus
// histograms have a few dozen; the Hodges-Lehmann estimate sorts the squared number of buckets.
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
// Each observation stands in for the midpoint of its bucket, (Bounds[k-1]+Bounds[k])/2, with 0
// as the lower bound of the first bucket (a first bucket whose bound is 0 or less stands in for
// that bound). Observations in the +Inf bucket count as the largest finite bound: a histogram
// cannot say how far beyond it they lie, so a shift in the slowest requests is understated, and
// a shift within one bucket is invisible.
//
// The pairwise differences of those values, r[j] - r[i] with weight b[j]*a[i] (b the
// experiment's bucket counts, a the control's), stand for all N1*N2 differences of individual
// observations. The estimate is their weighted median: the middle difference, or the mean of
// the two middle ones when the cumulative weight of the differences up to one of them is
// exactly N1*N2/2, as the median of an even number of values is taken. The interval is
// [D(k), D(N1*N2+1-k)], D(i) being the i-th smallest difference counted with its weight and
// k = floor(N1*N2/2 - z*Sigma) (at least 1) with z the normal quantile at (1+confidence)/2 and
// Sigma the tie-corrected standard deviation of U from BucketedMannWhitney. When no interval
// reaches the level, k is 1 and the interval spans all differences.
//
// Errors: as BucketedMannWhitney, and ErrInvalidInput for a confidence outside (0, 1) or bounds
// so large that the differences overflow.
func BucketedHodgesLehmann(control, experiment Histogram, confidence float64) (estimate, low, high float64, err error) {
	a, b, err := pairedBucketCounts(control, experiment)
	if err != nil {
		return 0, 0, 0, err
	}
	if err := checkOpenUnit("confidence", confidence); err != nil {
		return 0, 0, 0, err
	}
	values := bucketRepresentatives(control.Bounds)
	if spanned := values[len(values)-1] - values[0]; math.IsInf(spanned, 0) || slices.ContainsFunc(values, isInf) {
		return 0, 0, 0, fmt.Errorf("%w: histogram bounds from %v to %v are too large to average and subtract",
			ErrInvalidInput, control.Bounds[0], control.Bounds[len(control.Bounds)-2])
	}
	diffs := weightedDifferences(values, a, b)
	n1, n2 := sumCounts(b), sumCounts(a)
	total := new(big.Int).Mul(big.NewInt(n1), big.NewInt(n2))
	estimate = weightedMedian(diffs, total)

	sigma := bucketedMannWhitney(a, b).Sigma
	z := -NormalQuantile((1 - confidence) / 2)
	rank := math.Floor(float64(n1)*float64(n2)/2 - z*sigma)
	if !(rank >= 1) {
		rank = 1
	}
	k, _ := big.NewFloat(rank).Int(nil)
	low, high = weightedOrderStatistics(diffs, k)
	return estimate, low, high, nil
}

// isInf reports whether v is infinite.
func isInf(v float64) bool { return math.IsInf(v, 0) }

// bucketRepresentatives returns the value each bucket's observations stand in for: the midpoint
// of the bucket, the bound itself for a first bucket whose bound is 0 or less, and the largest
// finite bound for the +Inf bucket. bounds must pass Validate.
func bucketRepresentatives(bounds []float64) []float64 {
	last := len(bounds) - 1
	values := make([]float64, len(bounds))
	lower := 0.0
	for k, upper := range bounds[:last] {
		values[k] = (lower + upper) / 2
		if k == 0 && upper <= 0 {
			values[k] = upper
		}
		lower = upper
	}
	values[last] = bounds[last-1]
	return values
}

// weightedDifference is one difference of bucket values with the number of pairs of
// observations it stands for.
type weightedDifference struct {
	value  float64
	weight *big.Int
}

// weightedDifferences returns values[j] - values[i] weighted by b[j]*a[i] for every pair of
// buckets with observations, sorted by value. Weights are exact: their sum, N1*N2, can exceed
// both int64 and the integers float64 holds exactly.
func weightedDifferences(values []float64, a, b []int64) []weightedDifference {
	diffs := make([]weightedDifference, 0, len(values)*len(values))
	for j, bj := range b {
		if bj == 0 {
			continue
		}
		for i, ai := range a {
			if ai == 0 {
				continue
			}
			weight := new(big.Int).Mul(big.NewInt(bj), big.NewInt(ai))
			diffs = append(diffs, weightedDifference{value: values[j] - values[i], weight: weight})
		}
	}
	slices.SortFunc(diffs, func(x, y weightedDifference) int { return cmp.Compare(x.value, y.value) })
	return diffs
}

// weightedMedian returns the median of the sorted weighted differences whose weights sum to
// total: the first difference at which the cumulative weight reaches half the total, averaged
// with the next one when it reaches exactly half.
func weightedMedian(diffs []weightedDifference, total *big.Int) float64 {
	cumulative, twice := new(big.Int), new(big.Int)
	for i, d := range diffs {
		cumulative.Add(cumulative, d.weight)
		switch twice.Lsh(cumulative, 1).Cmp(total) {
		case 0:
			// The remaining weight is half the total, so a next difference exists.
			return (d.value + diffs[i+1].value) / 2
		case 1:
			return d.value
		}
	}
	// Not reached: the cumulative weight ends at total.
	return diffs[len(diffs)-1].value
}

// weightedOrderStatistics returns the k-th smallest and the k-th largest of the sorted weighted
// differences, each difference counted as many times as its weight; k must be at least 1 and at
// most the sum of the weights.
func weightedOrderStatistics(diffs []weightedDifference, k *big.Int) (low, high float64) {
	kth := func(index func(int) int) float64 {
		cumulative := new(big.Int)
		for i := range diffs {
			d := diffs[index(i)]
			if cumulative.Add(cumulative, d.weight).Cmp(k) >= 0 {
				return d.value
			}
		}
		return diffs[index(len(diffs)-1)].value
	}
	low = kth(func(i int) int { return i })
	high = kth(func(i int) int { return len(diffs) - 1 - i })
	return low, high
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
