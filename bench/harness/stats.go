package harness

import (
	"math"
	"sort"
	"time"
)

// StepsPerWave is the number of canary steps (setWeight 20, 50, 100) each Rollout takes in one
// update wave. A "step" in the reports is one of them; the wave's other work (creating the
// new ReplicaSet, the final promotion that makes it stable and scales the old one down) is
// spread over the three.
const StepsPerWave = 3

// FloorWritesPerStep is the minimum writes for one step: one route patch (the weights) and one
// Rollout status patch.
const FloorWritesPerStep = 2

// PerStep divides a number of writes made during waves by the steps N Rollouts took in them.
func PerStep(writes float64, rollouts, waves int) float64 {
	steps := float64(rollouts * waves * StepsPerWave)
	if steps == 0 {
		return math.NaN()
	}
	return writes / steps
}

// Percentiles summarises durations: count, p50, p99 and max, in seconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50Seconds"`
	P99   float64 `json:"p99Seconds"`
	Max   float64 `json:"maxSeconds"`
}

// Summarise computes the nearest-rank percentiles of ds.
func Summarise(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	sorted := append([]time.Duration(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return Percentiles{
		Count: len(sorted),
		P50:   nearestRank(sorted, 0.50).Seconds(),
		P99:   nearestRank(sorted, 0.99).Seconds(),
		Max:   sorted[len(sorted)-1].Seconds(),
	}
}

// nearestRank is the smallest value with at least q of the values at or below it.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

// Ratio is a/b, NaN when b is zero.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// Finite returns x, or 0 when x is NaN or infinite (no data), so results encode as JSON.
func Finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
