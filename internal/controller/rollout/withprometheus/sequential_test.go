package withprometheus_test

import (
	"math"
	"regexp"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/false-systems/kulta/analysis"
	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

// The scenarios of this file exercise the sequential checks of analysis.Checker: error-rate
// thresholds judged by the anytime-valid confidence sequence of every request since the
// revision started, and latency compared with stable from the histogram buckets. They run in
// TestCanaryAnalysisWithPrometheus, beside the scenarios of analysis_test.go.

const (
	// sequentialInterval is the analysis interval of these scenarios: short, so that a canary
	// is looked at many times.
	sequentialInterval = 2 * time.Second
	// sequentialTimeout bounds the wait for a canary that takes several steps after the
	// sequential check has decided.
	sequentialTimeout = 90 * time.Second
	// errorThreshold is the error-rate threshold of these scenarios, in percent.
	errorThreshold = 5.0

	// slowerRPS is the request rate of both stable and the slower canary: about 1000 requests
	// each when the comparison first looks, once the revision has had the latency metric's 10s
	// interval of traffic.
	slowerRPS = 100
	// stableLatency and stableSpread put stable's latencies evenly over 60-140ms, across the
	// 50-100ms and 100-250ms buckets of Prometheus' default histogram.
	stableLatency, stableSpread = 100 * time.Millisecond, 40 * time.Millisecond
	// slowerFactor makes the slower canary's every latency 30% longer than stable's: 78-182ms.
	slowerFactor = 1.3

	// belowRPS is the request rate of the canary at 4% errors. The check needs about 4,400
	// requests at 4% to show the rate below 5% (requestsToDecide), which at 100 requests a
	// second take about 44s, so the checks that count from the 2s interval on see the rate
	// undecided for many looks, and the canary holds its first step before it may advance.
	belowRPS = 100
	// belowErrorRatio fails exactly every 25th request.
	belowErrorRatio = 0.04

	// aboveRPS is the request rate of the canary at 10% errors.
	aboveRPS = 200
	// aboveErrorRatio fails exactly every 10th request, twice the threshold.
	aboveErrorRatio = 0.10
)

// sequentialScenarios runs the scenarios of this file as subtests of t, each in parallel with
// the others in its own namespace.
func (s *suite) sequentialScenarios(t *testing.T) {
	t.Run("canary 30% slower than stable rolls back", s.testSlowerCanary)
	t.Run("canary at 4% errors against 5% completes", s.testBelowThresholdCanary)
	t.Run("canary at 10% errors against 5% rolls back promptly", s.testAboveThresholdCanary)
}

// testSlowerCanary: stable's latencies spread over 60-140ms, the canary's are 30% longer
// (78-182ms), and both answer 1% errors. The latency comparison with stable (compareToStable,
// default tolerance 10% of stable's median) shows the canary slower at its first look, once the
// revision has had the metric's 10s interval of traffic, and Rollback sends all traffic back to
// stable; the error rate, well within its threshold, passes and is not the cause.
func (s *suite) testSlowerCanary(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := s.env.CreateNamespace(t, "slower")
	spec := &kultav1alpha1.Analysis{
		FailurePolicy: kultav1alpha1.FailurePolicyRollback,
		Metrics: []kultav1alpha1.Metric{
			{
				Name:          analysis.MetricErrorRate,
				Threshold:     "5",
				Interval:      ptr.To[kultav1alpha1.Duration]("2s"),
				MinSampleSize: ptr.To[int32](minSampleSize),
			},
			{
				// The quantile's own threshold is far above both revisions' p95: only the
				// comparison with stable can fail.
				Name:            analysis.MetricLatencyP95,
				Threshold:       "500",
				Interval:        ptr.To[kultav1alpha1.Duration]("10s"),
				CompareToStable: true,
			},
		},
	}
	ro, first := s.startCanary(t, ns, spec)
	versions := rollouttest.WatchRollout(t, s.env, ns, app)
	s.app.Set(ns, stableService, testenv.Traffic{RPS: slowerRPS, ErrorRatio: 0.01, Latency: stableLatency, LatencySpread: stableSpread})
	s.app.Set(ns, canaryService, testenv.Traffic{RPS: slowerRPS, ErrorRatio: 0.01,
		Latency: scaled(stableLatency, slowerFactor), LatencySpread: scaled(stableSpread, slowerFactor)})
	s.waitForRequests(t, ns, stableService, minSampleSize)
	s.waitForRequests(t, ns, canaryService, minSampleSize)

	failed := s.updateUntilFailed(t, g, ro, first, sequentialTimeout)
	st := failed.Status
	g.Expect(st.Message).To(ContainSubstring(analysis.MetricLatencyP95))

	// The latency comparison failed the analysis; the error rate passed.
	g.Expect(st.Analysis).NotTo(BeNil())
	g.Expect(st.Analysis.Verdict).To(Equal(kultav1alpha1.VerdictFail), "analysis: %s", st.Analysis.Message)
	g.Expect(st.Analysis.Reason).To(Equal(string(analysis.ReasonSlowerThanStable)), "analysis: %s", st.Analysis.Message)
	latency := metricStatus(g, st.Analysis, analysis.MetricLatencyP95)
	g.Expect(latency.Verdict).To(Equal(kultav1alpha1.VerdictFail), "latency: %+v", latency)
	g.Expect(latency.Reason).To(Equal(string(analysis.ReasonSlowerThanStable)))
	g.Expect(latency.Looks).To(Equal(int32(1)), "slower at the first look, with 10s of traffic on both sides")
	firstLookAlpha, err := analysis.LookAlpha(1-analysis.DefaultConfidence, 1)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(latency.PValue).NotTo(BeNil(), "latency: %+v", latency)
	g.Expect(decimal(g, *latency.PValue)).To(BeNumerically("<", firstLookAlpha), "latency: %+v", latency)
	g.Expect(latency.StableValue).NotTo(BeNil(), "the comparison records stable's median: %+v", latency)
	stableMedian := decimal(g, *latency.StableValue)
	g.Expect(stableMedian).To(BeNumerically("~", 100, 10), "stable's median (ms), interpolated within its bucket")
	errorRateStatus := metricStatus(g, st.Analysis, analysis.MetricErrorRate)
	g.Expect(errorRateStatus.Verdict).To(Equal(kultav1alpha1.VerdictPass), "error-rate: %+v; analysis: %s", errorRateStatus, st.Analysis.Message)
	g.Expect(errorRateStatus.UpperBound).To(HaveValue(WithTransform(func(d kultav1alpha1.Decimal) float64 { return decimal(g, d) },
		BeNumerically("<", errorThreshold))), "error-rate: %+v", errorRateStatus)

	rollback := lastDecision(failed, kultav1alpha1.ActionRollback)
	g.Expect(rollback).NotTo(BeNil(), "decisions: %+v", st.Decisions)
	g.Expect(rollback.Reason).To(Equal("AnalysisFailed"))
	g.Expect(rollback.Message).To(ContainSubstring(analysis.MetricLatencyP95+": shift"), "decision: %s", rollback.Message)
	g.Expect(rollback.Message).To(ContainSubstring("shown slower than the tolerance"), "decision: %s", rollback.Message)
	g.Expect(rollback.Metrics).To(HaveKeyWithValue(analysis.MetricLatencyP95, HaveField("Passed", BeFalse())))
	g.Expect(rollback.Metrics).To(HaveKeyWithValue(analysis.MetricErrorRate, HaveField("Passed", BeTrue())),
		"the error rate is not the cause: %+v", rollback.Metrics)

	// The shift of the canary's latencies against stable's is about 30% of stable's 100ms,
	// and the lower end of its interval clears the default tolerance, 10% of stable's median.
	shift, low, high := latencyShift(g, rollback.Message)
	g.Expect(shift).To(BeNumerically("~", 30, 10), "shift (ms): %s", rollback.Message)
	g.Expect(low).To(BeNumerically(">", stableMedian/10), "lower end (ms) against the tolerance: %s", rollback.Message)
	g.Expect(low).To(BeNumerically("<=", shift))
	g.Expect(high).To(BeNumerically(">=", shift))

	progressing := condition(failed, kultav1alpha1.ConditionProgressing)
	g.Expect(progressing.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(progressing.Reason).To(Equal("AnalysisFailed"))
	analysisCond := condition(failed, kultav1alpha1.ConditionAnalysis)
	g.Expect(analysisCond.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(analysisCond.Reason).To(Equal(string(analysis.ReasonSlowerThanStable)))

	// Before the failing look, the comparison had no data to judge: never a pass.
	looks := analysesUntil(g, versions, st.Analysis)
	for _, a := range looks[:len(looks)-1] {
		m := metricStatus(g, &a, analysis.MetricLatencyP95)
		g.Expect(m.Verdict).To(Equal(kultav1alpha1.VerdictInconclusive), "look at %s: %s", a.CheckedAt, a.Message)
		g.Expect(m.Looks).To(BeZero(), "look at %s: %s", a.CheckedAt, a.Message)
	}
	t.Logf("rolled back after %d checks: %s", len(looks), rollback.Message)

	g.Eventually(func(g Gomega) providers.Weights {
		return s.routeWeights(g, ns)
	}).WithTimeout(timeout).WithPolling(poll).Should(Equal(providers.Weights{Stable: 100}), "all traffic back to stable")
}

// testBelowThresholdCanary: a canary failing exactly every 25th request (4%) against a 5%
// threshold, checked every 2s through six steps. Until its requests show the rate below 5%
// the checks are undecided and hold the first step; then every step passes, and the canary
// completes. No look ever fails it: the confidence sequence never lies wholly above 5%.
func (s *suite) testBelowThresholdCanary(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	needed := requestsToDecide(t, belowErrorRatio, errorThreshold/100)
	undecidedFor := time.Duration(float64(needed) / belowRPS * float64(time.Second))
	shortest := min(sequentialInterval, analysis.MinWindow)
	if undecidedFor <= shortest+4*sequentialInterval {
		t.Fatalf("%d requests at %d a second take %s, too few undecided looks; lower belowRPS", needed, belowRPS, undecidedFor)
	}
	ns := s.env.CreateNamespace(t, "belowthreshold")
	ro, first := s.startCanary(t, ns, errorRate(kultav1alpha1.FailurePolicyRollback, "2s"),
		testutil.WithReplicas(4),
		testutil.WithCanarySteps(
			testutil.Weight(25), testutil.PauseFor("4s"),
			testutil.Weight(50), testutil.PauseFor("4s"),
			testutil.Weight(75), testutil.PauseFor("4s")))
	versions := rollouttest.WatchRollout(t, s.env, ns, app)
	s.app.Set(ns, canaryService, testenv.Traffic{RPS: belowRPS, ErrorRatio: belowErrorRatio, Latency: 20 * time.Millisecond})
	s.waitForRequests(t, ns, canaryService, minSampleSize)

	setImage(t, s.env, ro, newImage)
	var done *kultav1alpha1.Rollout
	g.Eventually(func(g Gomega) {
		done = s.get(g, ro)
		g.Expect(done.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted), "message: %s", done.Status.Message)
		g.Expect(done.Status.StablePodTemplateHash).NotTo(Equal(first))
		g.Expect(done.Status.StablePodTemplateHash).To(Equal(done.Status.CurrentPodTemplateHash))
	}).WithTimeout(sequentialTimeout).WithPolling(poll).Should(Succeed())
	second := done.Status.CurrentPodTemplateHash
	g.Expect(done.Status.Analysis).NotTo(BeNil(), "the last analysis stays in the status")
	g.Expect(done.Status.Analysis.Revision).To(Equal(second))

	// Every version of the Rollout seen: never rolled back, failed, or paused by a failed
	// analysis (the timed pause steps show as phase Paused, for the reason PausedForDuration).
	looks := analysesUntil(g, versions, done.Status.Analysis)
	seen := versions()
	for _, v := range seen {
		g.Expect(v.Status.Phase).NotTo(Equal(kultav1alpha1.PhaseFailed), "message: %s", v.Status.Message)
		if v.Status.Phase == kultav1alpha1.PhasePaused {
			g.Expect(condition(v, kultav1alpha1.ConditionPaused).Reason).To(Equal("PausedForDuration"), "message: %s", v.Status.Message)
		}
		for _, d := range v.Status.Decisions {
			g.Expect(d.Action).NotTo(Equal(kultav1alpha1.ActionRollback), "decision: %+v", d)
			g.Expect(d.Reason).NotTo(Equal("AnalysisFailed"), "decision: %+v", d)
		}
	}
	g.Expect(rollouttest.StepHistory(done)).To(Equal([]string{"0->1", "1->2", "2->3", "3->4", "4->5", "5->6"}))
	for step := range int32(6) {
		d := decision(done, func(d kultav1alpha1.Decision) bool {
			return d.Action == kultav1alpha1.ActionStepAdvance && ptr.Equal(d.FromStep, ptr.To(step))
		})
		g.Expect(d).NotTo(BeNil(), "no StepAdvance from step %d in %+v", step, done.Status.Decisions)
		g.Expect(d.Metrics).To(HaveKeyWithValue(analysis.MetricErrorRate, HaveField("Passed", BeTrue())), "step %d: %+v", step, d)
		// A passing look has counted the thousands of requests that decide 4% against 5%, so its
		// rate lies within twoRequests(2000), a tenth of a percent, of 4.
		g.Expect(decimal(g, d.Metrics[analysis.MetricErrorRate].Value)).To(BeNumerically("~", 4, 0.1), "step %d: %+v", step, d)
	}

	// Every look that counted requests had the confidence sequence reach below 5%; it passed
	// exactly when the sequence lay wholly below, and was undecided before that.
	var undecided, passed int
	for _, a := range looks {
		g.Expect(a.Verdict).NotTo(Equal(kultav1alpha1.VerdictFail), "look at %s: %s", a.CheckedAt, a.Message)
		m := metricStatus(g, &a, analysis.MetricErrorRate)
		g.Expect(m.Reason).NotTo(Equal(string(analysis.ReasonThresholdExceeded)), "look at %s: %s", a.CheckedAt, a.Message)
		if waitedForData(m.Reason) {
			continue
		}
		g.Expect(m.LowerBound).NotTo(BeNil(), "look at %s: %s", a.CheckedAt, a.Message)
		g.Expect(m.UpperBound).NotTo(BeNil(), "look at %s: %s", a.CheckedAt, a.Message)
		lower, upper := decimal(g, *m.LowerBound), decimal(g, *m.UpperBound)
		g.Expect(lower).To(BeNumerically("<", errorThreshold), "look at %s: %s", a.CheckedAt, a.Message)
		g.Expect(m.SampleSize).NotTo(BeNil(), "look at %s: %s", a.CheckedAt, a.Message)
		g.Expect(decimal(g, *m.Value)).To(BeNumerically("~", 4, twoRequests(*m.SampleSize)), "look at %s: %s", a.CheckedAt, a.Message)
		switch m.Verdict {
		case kultav1alpha1.VerdictPass:
			passed++
			g.Expect(upper).To(BeNumerically("<", errorThreshold), "look at %s: %s", a.CheckedAt, a.Message)
		default:
			undecided++
			g.Expect(m.Reason).To(Equal(string(analysis.ReasonInsufficientEvidence)), "look at %s: %s", a.CheckedAt, a.Message)
			g.Expect(upper).To(BeNumerically(">=", errorThreshold), "look at %s: %s", a.CheckedAt, a.Message)
			g.Expect(a.Message).To(ContainSubstring("more requests would decide it"))
		}
	}
	t.Logf("%d requests decide 4%% against 5%% (%s at %d a second); %d undecided and %d passing looks",
		needed, undecidedFor.Round(100*time.Millisecond), belowRPS, undecided, passed)
	// From the shortest window (the 2s interval) until about `needed` requests, one look every
	// 2s is undecided: about twenty; a third of them leaves room for slow reconciles.
	g.Expect(undecided).To(BeNumerically(">=", int((undecidedFor-shortest)/sequentialInterval)/3))
	g.Expect(passed).To(BeNumerically(">=", 6), "one passing look per step")
}

// testAboveThresholdCanary: a canary failing exactly every 10th request against a 5%
// threshold is rolled back at the first look that counts its requests, and the decision
// carries the confidence sequence that shows its rate above 5%.
func (s *suite) testAboveThresholdCanary(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := s.env.CreateNamespace(t, "abovethreshold")
	ro, first := s.startCanary(t, ns, errorRate(kultav1alpha1.FailurePolicyRollback, "2s"))
	versions := rollouttest.WatchRollout(t, s.env, ns, app)
	s.app.Set(ns, canaryService, testenv.Traffic{RPS: aboveRPS, ErrorRatio: aboveErrorRatio, Latency: 20 * time.Millisecond})
	s.waitForRequests(t, ns, canaryService, minSampleSize)

	failed := s.updateUntilFailed(t, g, ro, first, timeout)
	st := failed.Status
	rollback := lastDecision(failed, kultav1alpha1.ActionRollback)
	g.Expect(rollback).NotTo(BeNil(), "decisions: %+v", st.Decisions)
	g.Expect(rollback.Reason).To(Equal("AnalysisFailed"))
	g.Expect(st.Analysis).NotTo(BeNil())
	g.Expect(st.Analysis.Reason).To(Equal(string(analysis.ReasonThresholdExceeded)), "analysis: %s", st.Analysis.Message)
	g.Expect(st.Analysis.CountingSince).NotTo(BeNil())

	// Promptly: the sequential check needs about `needed` (some 300) requests at 10% to show
	// the rate above 5%, which the canary serves within two seconds at aboveRPS. The requests
	// counted are those the samples show, from the series' first sample in the range, at most a
	// scrape after the revision started, to its last, at most a scrape before the look: two
	// scrape intervals more. No
	// check counts before the shortest window (the smaller of the metric's interval and
	// analysis.MinWindow) has passed, so the first check with both decides, at most one interval
	// later; the decision can trail by a reconcile, and timestamps keep whole seconds, hence 2s
	// more.
	needed := requestsToDecide(t, aboveErrorRatio, errorThreshold/100)
	shortest := min(sequentialInterval, analysis.MinWindow)
	dataTime := time.Duration(float64(needed)/aboveRPS*float64(time.Second)) + 2*testenv.PrometheusScrapeInterval
	bound := max(shortest, dataTime) + sequentialInterval + 2*time.Second
	elapsed := rollback.Timestamp.Sub(st.Analysis.CountingSince.Time)
	t.Logf("%d requests decide 10%% against 5%% (%s at %d a second); rolled back %s after the revision started (bound %s)",
		needed, dataTime, aboveRPS, elapsed, bound)
	g.Expect(elapsed).To(BeNumerically(">=", shortest), "no check counts requests before the shortest window")
	g.Expect(elapsed).To(BeNumerically("<=", bound))
	looks := analysesUntil(g, versions, st.Analysis)
	for _, a := range looks[:len(looks)-1] {
		g.Expect(waitedForData(a.Reason) || a.Reason == string(analysis.ReasonInsufficientEvidence)).To(BeTrue(),
			"every look before the failing one waited for data: %s", a.Message)
	}

	// The decision carries the confidence sequence: above 5% and around the measured 10%.
	cs := confidenceSequence(g, rollback.Message)
	g.Expect(cs.confidence).To(Equal(100 * analysis.DefaultConfidence))
	g.Expect(cs.value).To(BeNumerically("~", 10, 1), "decision: %s", rollback.Message)
	g.Expect(cs.requests).To(BeNumerically(">=", needed), "decision: %s", rollback.Message)
	g.Expect(cs.low).To(BeNumerically(">", errorThreshold), "decision: %s", rollback.Message)
	g.Expect(cs.low).To(BeNumerically("<=", cs.value))
	g.Expect(cs.high).To(BeNumerically(">=", cs.value))
	g.Expect(rollback.Message).To(ContainSubstring("shown past the threshold"))
	m := metricStatus(g, st.Analysis, analysis.MetricErrorRate)
	g.Expect(m.Verdict).To(Equal(kultav1alpha1.VerdictFail))
	g.Expect(m.LowerBound).To(HaveValue(WithTransform(func(d kultav1alpha1.Decimal) float64 { return decimal(g, d) },
		BeNumerically("~", cs.low, 0.01))))
	g.Expect(m.UpperBound).To(HaveValue(WithTransform(func(d kultav1alpha1.Decimal) float64 { return decimal(g, d) },
		BeNumerically("~", cs.high, 0.01))))
	g.Expect(m.SampleSize).To(HaveValue(BeNumerically("==", cs.requests)))

	g.Eventually(func(g Gomega) providers.Weights {
		return s.routeWeights(g, ns)
	}).WithTimeout(timeout).WithPolling(poll).Should(Equal(providers.Weights{Stable: 100}), "all traffic back to stable")
}

// waitedForData reports whether a look's reason says it counted too little to judge: the range
// not yet filled, no series, no requests, or fewer than minSampleSize.
func waitedForData(reason string) bool {
	switch analysis.Reason(reason) {
	case analysis.ReasonWindowNotFilled, analysis.ReasonNoData, analysis.ReasonNoTraffic, analysis.ReasonBelowMinSample:
		return true
	}
	return false
}

// twoRequests is how far, in percent, the error rate of n requests of the traffic app can lie
// from its ratio: it fails exactly every 1/ratio-th request, so n consecutive requests hold the
// floor or the ceiling of n times the ratio in errors, one request's worth apart (3.636% for 8
// of 220 requests at 4%), and the errors KULTA takes over the n requests its samples show are
// increase()'s proportion scaled to n and rounded, a request's worth more. The slack covers
// the decimal's rounding.
func twoRequests(n int64) float64 {
	return 2*100/float64(n) + 1e-6
}

// requestsToDecide is how many requests failing at rate the sequential error-rate check needs,
// at the default confidence, to decide on which side of threshold (both fractions) the rate
// lies: the "about N more requests would decide it" of an undecided check, counted from 100.
func requestsToDecide(t *testing.T, rate, threshold float64) int64 {
	t.Helper()
	const n = 100
	e, err := analysis.TestProportionThreshold(int64(math.Round(rate*n)), n, threshold,
		1-analysis.DefaultConfidence, analysis.ThresholdMixingVariance(threshold))
	if err != nil {
		t.Fatalf("testing %v against %v: %v", rate, threshold, err)
	}
	if e.MoreTrials < 0 {
		t.Fatalf("no number of requests decides %v against %v", rate, threshold)
	}
	return n + e.MoreTrials
}

// scaled is d times factor.
func scaled(d time.Duration, factor float64) time.Duration {
	return time.Duration(math.Round(float64(d) * factor))
}

// shiftPattern finds the Hodges-Lehmann shift and its interval, in milliseconds, in the message
// of a latency comparison.
var shiftPattern = regexp.MustCompile(`shift ([-+0-9.eE]+)ms \[([-+0-9.eE]+), ([-+0-9.eE]+)\]`)

// latencyShift is the shift and its interval that message reports, in milliseconds.
func latencyShift(g Gomega, message string) (shift, low, high float64) {
	match := shiftPattern.FindStringSubmatch(message)
	g.Expect(match).NotTo(BeNil(), "the message reports the shift and its interval: %s", message)
	return parseFloat(g, match[1]), parseFloat(g, match[2]), parseFloat(g, match[3])
}

// sequencePattern finds the value, the request count, the confidence and the confidence
// sequence of an error-rate check in an analysis message.
var sequencePattern = regexp.MustCompile(`error-rate = ([0-9.eE+-]+) of ([0-9]+) requests, ([0-9.]+)% confidence sequence \[([0-9.eE+-]+), ([0-9.eE+-]+)\]`)

// errorRateSequence is what an error-rate check's message says: the rate (percent) over a
// number of requests and its confidence sequence (percent) at a confidence (percent).
type errorRateSequence struct {
	value, confidence, low, high float64
	requests                     int64
}

// confidenceSequence reads the error-rate check's confidence sequence out of message.
func confidenceSequence(g Gomega, message string) errorRateSequence {
	match := sequencePattern.FindStringSubmatch(message)
	g.Expect(match).NotTo(BeNil(), "the message reports the confidence sequence: %s", message)
	requests, err := strconv.ParseInt(match[2], 10, 64)
	g.Expect(err).NotTo(HaveOccurred())
	return errorRateSequence{
		value: parseFloat(g, match[1]), requests: requests, confidence: parseFloat(g, match[3]),
		low: parseFloat(g, match[4]), high: parseFloat(g, match[5]),
	}
}

// parseFloat parses a number out of a message.
func parseFloat(g Gomega, s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	g.Expect(err).NotTo(HaveOccurred())
	return f
}

// updateUntilFailed rolls ro out to newImage and waits until its first step's analysis has
// failed it: the new revision never becomes stable.
func (s *suite) updateUntilFailed(t *testing.T, g Gomega, ro *kultav1alpha1.Rollout, first string, within time.Duration) *kultav1alpha1.Rollout {
	t.Helper()
	setImage(t, s.env, ro, newImage)
	var failed *kultav1alpha1.Rollout
	g.Eventually(func(g Gomega) {
		failed = s.get(g, ro)
		g.Expect(failed.Status.Phase).To(Equal(kultav1alpha1.PhaseFailed), "message: %s", failed.Status.Message)
	}).WithTimeout(within).WithPolling(poll).Should(Succeed())
	st := failed.Status
	g.Expect(st.StablePodTemplateHash).To(Equal(first), "a failed revision never becomes stable")
	g.Expect(st.CurrentPodTemplateHash).NotTo(Equal(first))
	g.Expect(st.CurrentStepIndex).To(Equal(ptr.To[int32](0)), "the first step's analysis failed")
	return failed
}

// analysesUntil waits until the watched versions have carried last, the latest analysis of its
// revision, and returns every analysis of that revision up to it, one per check, oldest first.
func analysesUntil(g Gomega, versions func() []*kultav1alpha1.Rollout, last *kultav1alpha1.AnalysisStatus) []kultav1alpha1.AnalysisStatus {
	g.Expect(last).NotTo(BeNil())
	var out []kultav1alpha1.AnalysisStatus
	g.Eventually(func(g Gomega) {
		out = analysesOf(versions(), last.Revision)
		g.Expect(out).NotTo(BeEmpty())
		g.Expect(equality.Semantic.DeepEqual(out[len(out)-1], *last)).To(BeTrue(), "the watch has not seen the analysis of %s yet", last.CheckedAt)
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	return out
}

// analysesOf is the analyses of revision that versions carried, one per check, oldest first.
func analysesOf(versions []*kultav1alpha1.Rollout, revision string) []kultav1alpha1.AnalysisStatus {
	var out []kultav1alpha1.AnalysisStatus
	for _, v := range versions {
		a := v.Status.Analysis
		if a == nil || a.Revision != revision {
			continue
		}
		if n := len(out); n > 0 && equality.Semantic.DeepEqual(out[n-1], *a) {
			continue
		}
		out = append(out, *a)
	}
	return out
}
