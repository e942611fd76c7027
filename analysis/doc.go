// Package analysis decides whether a canary is healthy from metric data.
//
// It works in two phases. First, gathering: code at the boundary (a
// Prometheus querier, for example) fills plain input values such as event
// and trial counts taken over one query window, or latency samples. Second,
// evaluation: pure functions turn those numbers into results that carry the
// statistics behind them (test statistic, p-value, confidence interval,
// sample size) and, for verdicts, a reason a human can read.
//
// The statistics in this package are:
//   - normal tail probabilities and quantiles that stay accurate far into the
//     tails (NormalTwoSidedP, NormalUpperTail, NormalQuantile);
//   - the two-proportion z-test for error rates and its power and sample
//     size (TwoProportionZTest, TwoProportionPower, TwoProportionSampleSize);
//   - the chi-square goodness-of-fit test and the sample ratio mismatch check
//     built on it (ChiSquareGoodnessOfFit, SampleRatioMismatch);
//   - the Mann-Whitney U test and the Hodges-Lehmann shift estimate with its
//     distribution-free confidence interval, for latencies (MannWhitneyU,
//     HodgesLehmann);
//   - Holm's step-down correction when several metrics are tested at once
//     (HolmAdjust, HolmReject);
//   - an always-valid sequential test for two proportions, which may be
//     checked at every analysis interval without inflating false positives
//     (SequentialState, AlwaysValidPValue).
//
// What this package must not do: call a Kubernetes client or any other
// outside system, read the clock, start goroutines, or keep global mutable
// state. Every function here is a pure function of its arguments, so each
// one can be tested against published reference values without a cluster.
// Invalid input is reported with the sentinel errors declared in errors.go,
// wrapped with the offending values; nothing here panics.
package analysis
