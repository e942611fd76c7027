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
//     (SequentialState, AlwaysValidPValue, TwoProportionTrialsNeeded);
//   - an anytime-valid confidence sequence for one proportion and the
//     sequential test of a threshold built on it (ProportionConfidenceSequence,
//     TestProportionThreshold);
//   - Mann-Whitney U and the Hodges-Lehmann shift on histogram buckets, with
//     alpha spent look by look (BucketedMannWhitney, BucketedHodgesLehmann,
//     LookAlpha, CompareLatency).
//
// Repeated looks: every test the controller repeats at each analysis
// interval is fed counts accumulated since the revision (or experiment)
// started, taken over the same range for both arms, and is one whose error
// rate holds at any look: the always-valid tests by Ville's inequality, the
// latency comparison by spending alpha/(k(k+1)) at look k. A p-value from a
// sliding window is never carried from one look to the next.
//
// Gathering (query.go, template.go, gather.go, builtin.go): a Querier runs
// PromQL instant queries; Prometheus implements it on client_golang's HTTP
// API with per-query timeouts, bearer or basic authentication and TLS
// options. Gather fills query templates with a Target's escaped label
// values (RenderQuery) and returns a Measurement: the value with its sample
// count, and for proportions its event count, all from one window at one
// instant, or a typed Outcome saying why there is none (NoData, NoTraffic,
// QueryError, MultipleSeries, InvalidValue). The built-in metrics are
// error-rate and latency-p95 (BuiltinMetric); GatherComparison measures two
// targets at once for TwoProportionZTest.
//
// Evaluation (threshold.go): EvaluateThreshold judges a Measurement against
// a ThresholdSpec with the CheckState kept between checks, and returns a
// Verdict (Pass, Fail or Inconclusive) with a typed Reason; Combine joins
// the verdicts of one check. A proportion with a Confidence is judged by the
// sequential threshold test, anything else by a plain comparison. No data is
// never a pass. Checker (checker.go, stable.go, experiment_check.go) is what
// the controller calls: Analyze for canary, blue-green and simple analysis,
// with the comparison against stable and the sample-ratio-mismatch check, and
// Compare for A/B experiments (EvaluateExperiment).
//
// What this package must not do: call a Kubernetes client, read the clock,
// start goroutines, or keep global mutable state. Only the Querier
// implementation talks to an outside system (Prometheus), and only when
// Gather asks it to; the time of a query is passed in. Every evaluation and
// statistics function is a pure function of its arguments, so each one can
// be tested against published reference values without a cluster.
// Invalid input is reported with the sentinel errors declared in errors.go
// and gather.go, wrapped with the offending values; nothing here panics.
package analysis
