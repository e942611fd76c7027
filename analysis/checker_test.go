package analysis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
)

// serviceQuerier answers by service: requests and 5xx counts per Service label value.
type serviceQuerier struct {
	requests, errors map[string]float64
	fail             error
}

func (f *serviceQuerier) Query(_ context.Context, query string, _ time.Time) (model.Vector, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	for svc, n := range f.requests {
		if !strings.Contains(query, `service="`+svc+`"`) {
			continue
		}
		v := n
		if strings.Contains(query, `code=~"5.."`) {
			v = f.errors[svc]
		}
		return model.Vector{{Value: model.SampleValue(v)}}, nil
	}
	return model.Vector{}, nil
}

func checker(q Querier) *Checker {
	return &Checker{DefaultAddress: "http://prometheus.test", NewQuerier: func(string) (Querier, error) { return q, nil }}
}

func canary(t *testing.T) (*kultav1alpha1.Rollout, *kultav1alpha1.Analysis) {
	t.Helper()
	ro := testutil.Rollout("shop", "web")
	ro.Status.CurrentPodTemplateHash = "abc"
	ro.Status.CurrentStepIndex = ptr.To[int32](1)
	ro.Status.Decisions = []kultav1alpha1.Decision{
		{Action: kultav1alpha1.ActionInitialize, Reason: "NewRevision", Timestamp: metav1.NewTime(time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC))},
	}
	a := &kultav1alpha1.Analysis{Metrics: []kultav1alpha1.Metric{{
		Name: "error-rate", Threshold: "5", FailureThreshold: ptr.To[int32](2), MinSampleSize: ptr.To[int32](100),
	}}}
	return ro, a
}

func TestCheckerAnalyze(t *testing.T) {
	ro, spec := canary(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := &serviceQuerier{requests: map[string]float64{"web-canary": 1000}, errors: map[string]float64{"web-canary": 100}}
	st, err := checker(q).Analyze(context.Background(), ro, spec, Split{}, now)
	if err != nil {
		t.Fatal(err)
	}
	m := st.Metrics[0]
	if st.Verdict != kultav1alpha1.VerdictInconclusive || m.ConsecutiveFailures != 1 || *m.Value != "10" || *m.SampleSize != 1000 {
		t.Fatalf("first failing check: verdict %s, metric %+v", st.Verdict, m)
	}
	if st.Revision != "abc" || *st.StepIndex != 1 || !st.CheckedAt.Time.Equal(now) {
		t.Errorf("status identifies %s step %v at %v", st.Revision, st.StepIndex, st.CheckedAt)
	}
	ro.Status.Analysis = st
	st, err = checker(q).Analyze(context.Background(), ro, spec, Split{}, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if st.Verdict != kultav1alpha1.VerdictFail || st.Metrics[0].ConsecutiveFailures != 2 || !strings.Contains(st.Message, "error-rate = 10") {
		t.Fatalf("second failing check must fail: %s %s", st.Verdict, st.Message)
	}
	// A new step starts the counters again.
	ro.Status.CurrentStepIndex = ptr.To[int32](2)
	st, _ = checker(q).Analyze(context.Background(), ro, spec, Split{}, now.Add(2*time.Minute))
	if st.Metrics[0].ConsecutiveFailures != 1 {
		t.Errorf("counters carried into a new step: %+v", st.Metrics[0])
	}
}

func TestCheckerNeverPassesWithoutPrometheus(t *testing.T) {
	ro, spec := canary(t)
	for name, c := range map[string]*Checker{
		"no address":  {},
		"unreachable": checker(&serviceQuerier{fail: errors.New("connection refused")}),
	} {
		st, err := c.Analyze(context.Background(), ro, spec, Split{}, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Verdict == kultav1alpha1.VerdictPass || st.Metrics[0].Reason != string(ReasonQueryError) {
			t.Errorf("%s: verdict %s reason %s", name, st.Verdict, st.Metrics[0].Reason)
		}
	}
}

func TestCheckerCompare(t *testing.T) {
	ro := testutil.Rollout("shop", "land", testutil.WithABTesting())
	ro.Status.ABExperiment = &kultav1alpha1.ABExperimentStatus{}
	spec := &kultav1alpha1.ABAnalysis{Metrics: []kultav1alpha1.ABMetric{{Name: "error-rate", Direction: kultav1alpha1.DirectionLower}}}
	q := &serviceQuerier{
		requests: map[string]float64{"land-a": 5000, "land-b": 5000},
		errors:   map[string]float64{"land-a": 500, "land-b": 100},
	}
	exp, err := checker(q).Compare(context.Background(), ro, spec, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if exp.Winner != kultav1alpha1.VariantB || *exp.SampleSizeA != 5000 || *exp.SampleSizeB != 5000 {
		t.Fatalf("winner %q, samples %v/%v: %s", exp.Winner, exp.SampleSizeA, exp.SampleSizeB, exp.Message)
	}
	r := exp.Results[0]
	if r.ValueA != "10" || r.ValueB != "2" || !r.IsSignificant || r.Winner != kultav1alpha1.VariantB {
		t.Errorf("result %+v", r)
	}
}

func TestCheckerComparesCanaryWithStable(t *testing.T) {
	ro, spec := canary(t)
	ro.Status.CurrentWeight = ptr.To[int32](50)
	spec.Metrics[0].FailureThreshold = nil
	spec.Metrics[0].CompareToStable = true
	now := time.Now()

	// 4 % errors passes the 5 % threshold, but the stable revision has 1 %: harm.
	q := &serviceQuerier{
		requests: map[string]float64{"web-canary": 20000, "web-stable": 20000},
		errors:   map[string]float64{"web-canary": 800, "web-stable": 200},
	}
	st, err := checker(q).Analyze(context.Background(), ro, spec, Split{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Verdict != kultav1alpha1.VerdictFail || st.Metrics[0].Reason != string(ReasonWorseThanStable) {
		t.Fatalf("a canary worse than stable must fail: %s %s: %s", st.Verdict, st.Metrics[0].Reason, st.Message)
	}

	// The same numbers without the comparison pass: the absolute threshold alone misses it.
	spec.Metrics[0].CompareToStable = false
	if st, _ := checker(q).Analyze(context.Background(), ro, spec, Split{}, now); st.Verdict != kultav1alpha1.VerdictPass {
		t.Fatalf("threshold only: %s", st.Verdict)
	}

	// A traffic split far from the one KULTA set makes the comparison untrustworthy. The first
	// check of a split only records it: there is no traffic under it yet.
	spec.Metrics[0].CompareToStable = true
	q.requests["web-stable"] = 60000
	half := Split{CanaryPercent: 50, Known: true}
	st, _ = checker(q).Analyze(context.Background(), ro, spec, half, now)
	if st.Metrics[0].Reason == string(ReasonSampleRatioMismatch) || st.SplitSince == nil || !st.SplitSince.Time.Equal(now.Truncate(time.Second)) && !st.SplitSince.Time.Equal(now) {
		t.Fatalf("first check of the split: reason %s, split since %v", st.Metrics[0].Reason, st.SplitSince)
	}
	for look := 1; look <= DefaultErrorLimit; look++ {
		ro.Status.Analysis = st
		at := now.Add(time.Duration(look) * time.Minute)
		st, _ = checker(q).Analyze(context.Background(), ro, spec, half, at)
		want := kultav1alpha1.VerdictInconclusive
		if look == DefaultErrorLimit {
			want = kultav1alpha1.VerdictFail // a mismatch cannot hold the rollout for ever
		}
		if st.Verdict != want || st.Metrics[0].Reason != string(ReasonSampleRatioMismatch) || st.Metrics[0].ConsecutiveErrors != int32(look) {
			t.Fatalf("mismatch look %d: %s %s errors %d: %s", look, st.Verdict, st.Metrics[0].Reason, st.Metrics[0].ConsecutiveErrors, st.Message)
		}
	}
	// Under the split the metrics did see (75/25), the same counts are no mismatch.
	ro.Status.Analysis = st
	quarter := Split{CanaryPercent: 25, Known: true}
	st, _ = checker(q).Analyze(context.Background(), ro, spec, quarter, now.Add(10*time.Minute))
	ro.Status.Analysis = st
	st, _ = checker(q).Analyze(context.Background(), ro, spec, quarter, now.Add(11*time.Minute))
	if st.Metrics[0].Reason != string(ReasonWorseThanStable) {
		t.Fatalf("matching split: %s %s: %s", st.Verdict, st.Metrics[0].Reason, st.Message)
	}
}

// Without stable data, or without a stable Service, a comparison never passes.
func TestCheckerNeverPassesWithoutStable(t *testing.T) {
	ro, spec := canary(t)
	spec.Metrics[0].FailureThreshold = nil
	spec.Metrics[0].CompareToStable = true
	q := &serviceQuerier{requests: map[string]float64{"web-canary": 20000}, errors: map[string]float64{"web-canary": 20}}
	st, err := checker(q).Analyze(context.Background(), ro, spec, Split{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Verdict != kultav1alpha1.VerdictInconclusive || st.Metrics[0].Reason != string(ReasonNoStableData) {
		t.Fatalf("no stable series: %s %s: %s", st.Verdict, st.Metrics[0].Reason, st.Message)
	}
	simple := testutil.Rollout("shop", "web", testutil.WithSimple(spec))
	simple.Status = ro.Status
	q.requests["web"], q.errors["web"] = 20000, 20
	st, _ = checker(q).Analyze(context.Background(), simple, spec, Split{}, time.Now())
	if st.Verdict != kultav1alpha1.VerdictInconclusive || st.Metrics[0].Reason != string(ReasonNoStableData) {
		t.Fatalf("no stable Service: %s %s: %s", st.Verdict, st.Metrics[0].Reason, st.Message)
	}
}

// windowQuerier records the range of every query it answers, with traffic for any service.
type windowQuerier struct{ queries []string }

func (f *windowQuerier) Query(_ context.Context, query string, _ time.Time) (model.Vector, error) {
	f.queries = append(f.queries, query)
	return model.Vector{{Value: 1000}}, nil
}

func TestBoundWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		window time.Duration
		age    time.Duration // how long before now the revision started; -1 for never recorded
		want   time.Duration
		filled bool
	}{
		{"no start recorded", 5 * time.Minute, -1, 5 * time.Minute, true},
		{"older than the window", 5 * time.Minute, 6 * time.Minute, 5 * time.Minute, true},
		{"exactly the window", 5 * time.Minute, 5 * time.Minute, 5 * time.Minute, true},
		{"shortened to its age in whole seconds", 5 * time.Minute, 90*time.Second + 700*time.Millisecond, 90 * time.Second, true},
		{"at the shortest window", 5 * time.Minute, MinWindow, MinWindow, true},
		{"younger than the shortest window", 5 * time.Minute, 29 * time.Second, 0, false},
		{"short window, filled", 5 * time.Second, 5 * time.Second, 5 * time.Second, true},
		{"short window, not filled", 5 * time.Second, 4 * time.Second, 0, false},
		{"start in the future", 5 * time.Second, -time.Minute, 0, false},
	} {
		since := time.Time{}
		if tc.age != -1 {
			since = now.Add(-tc.age)
		}
		got, filled := BoundWindow(tc.window, since, now)
		if got != tc.want || filled != tc.filled {
			t.Errorf("%s: BoundWindow(%s, now-%s) = %s, %t; want %s, %t", tc.name, tc.window, tc.age, got, filled, tc.want, tc.filled)
		}
	}
}

// A canary's Service still holds the previous revision's requests for a while: the first
// checks of a new revision wait for its own traffic and then never look back past its start.
func TestCheckerWindowStartsWithTheRevision(t *testing.T) {
	ro, spec := canary(t)
	spec.Metrics[0].Interval = ptr.To(kultav1alpha1.Duration("2m"))
	started := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ro.Status.Decisions = []kultav1alpha1.Decision{
		{Action: kultav1alpha1.ActionInitialize, Reason: "Initialization", Timestamp: metav1.NewTime(started.Add(-time.Hour))},
		{Action: kultav1alpha1.ActionInitialize, Reason: "NewRevision", Timestamp: metav1.NewTime(started)},
		{Action: kultav1alpha1.ActionStepAdvance, Reason: "WeightReached", Timestamp: metav1.NewTime(started.Add(5 * time.Second))},
	}
	q := &windowQuerier{}
	ro.Status.Analysis = &kultav1alpha1.AnalysisStatus{Revision: "abc", StepIndex: ptr.To[int32](1),
		Metrics: []kultav1alpha1.MetricStatus{{Name: "error-rate", ConsecutiveFailures: 1, ConsecutiveErrors: 1}}}
	st, err := checker(q).Analyze(context.Background(), ro, spec, Split{}, started.Add(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m := st.Metrics[0]
	if st.Verdict != kultav1alpha1.VerdictInconclusive || m.Reason != string(ReasonWindowNotFilled) || len(q.queries) != 0 {
		t.Fatalf("20s into the revision: verdict %s, reason %s, %d queries; want Inconclusive/%s without a query", st.Verdict, m.Reason, len(q.queries), ReasonWindowNotFilled)
	}
	if m.ConsecutiveFailures != 1 || m.ConsecutiveErrors != 1 || !strings.Contains(st.Message, "waiting for 30s of this revision's traffic, 20s so far") {
		t.Errorf("waiting check: counters %+v, message %q", m, st.Message)
	}

	// Error rates count every request since the revision started; latency looks back over
	// its interval.
	spec.Metrics = append(spec.Metrics, kultav1alpha1.Metric{Name: "latency-p95", Threshold: "500", Interval: ptr.To(kultav1alpha1.Duration("2m"))})
	for _, tc := range []struct {
		after         time.Duration
		want, latency string
	}{{45 * time.Second, "[45s]", "[45s]"}, {2 * time.Minute, "[2m]", "[2m]"}, {time.Hour, "[1h]", "[2m]"}} {
		q.queries = nil
		if _, err := checker(q).Analyze(context.Background(), ro, spec, Split{}, started.Add(tc.after)); err != nil {
			t.Fatal(err)
		}
		if len(q.queries) == 0 {
			t.Fatalf("%s into the revision: no query", tc.after)
		}
		for _, query := range q.queries {
			want := tc.want
			if strings.Contains(query, "duration") {
				want = tc.latency
			}
			if !strings.Contains(query, want) {
				t.Errorf("%s into the revision: query %q, want the range %s", tc.after, query, want)
			}
		}
	}
}

func TestRevisionStart(t *testing.T) {
	at := func(s int) metav1.Time { return metav1.NewTime(time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC)) }
	ro := testutil.Rollout("shop", "web")
	if got := revisionStart(ro); !got.IsZero() {
		t.Errorf("no decisions: %v, want zero", got)
	}
	ro.Status.Decisions = []kultav1alpha1.Decision{
		{Action: kultav1alpha1.ActionInitialize, Reason: "Initialization", Timestamp: at(1)},
	}
	if got := revisionStart(ro); !got.IsZero() {
		t.Errorf("first revision only: %v, want zero (its Services carried nothing before)", got)
	}
	ro.Status.Decisions = append(ro.Status.Decisions,
		kultav1alpha1.Decision{Action: kultav1alpha1.ActionInitialize, Reason: "NewRevision", Timestamp: at(2)},
		kultav1alpha1.Decision{Action: kultav1alpha1.ActionRollback, Reason: "AnalysisFailed", Timestamp: at(3)},
		kultav1alpha1.Decision{Action: kultav1alpha1.ActionResume, Reason: "Retry", Timestamp: at(4)},
		kultav1alpha1.Decision{Action: kultav1alpha1.ActionStepAdvance, Reason: "WeightReached", Timestamp: at(5)},
	)
	if got := revisionStart(ro); !got.Equal(at(4).Time) {
		t.Errorf("after a retry: %v, want the retry at %v", got, at(4))
	}
}

// Variant B's Service may have carried another revision before the experiment: comparisons
// wait for the experiment's own traffic and never look back past its start.
func TestCheckerCompareWindowStartsWithTheExperiment(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	ro := testutil.Rollout("shop", "land", testutil.WithABTesting())
	ro.Status.ABExperiment = &kultav1alpha1.ABExperimentStatus{StartedAt: metav1.NewTime(now.Add(-10 * time.Second))}
	spec := &kultav1alpha1.ABAnalysis{Metrics: []kultav1alpha1.ABMetric{{Name: "error-rate", Direction: kultav1alpha1.DirectionLower}}}
	q := &windowQuerier{}
	exp, err := checker(q).Compare(context.Background(), ro, spec, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.queries) != 0 || exp.Winner != "" || exp.CheckedAt == nil || !strings.Contains(exp.Message, "waiting for 30s") {
		t.Fatalf("10s into the experiment: %d queries, winner %q, checked %v, message %q", len(q.queries), exp.Winner, exp.CheckedAt, exp.Message)
	}
	ro.Status.ABExperiment.StartedAt = metav1.NewTime(now.Add(-40 * time.Second))
	if _, err := checker(q).Compare(context.Background(), ro, spec, now); err != nil {
		t.Fatal(err)
	}
	if len(q.queries) == 0 {
		t.Fatal("40s into the experiment: no query")
	}
	for _, query := range q.queries {
		if !strings.Contains(query, "[40s]") {
			t.Errorf("40s into the experiment: query %q, want the range [40s]", query)
		}
	}
}

// The range a sequential check counts over is in the status: a controller that restarts, or a
// decision history that has dropped the revision's start, counts from the same instant; a retry
// starts counting again.
func TestCheckerCountsSinceTheRevisionStarted(t *testing.T) {
	ro, spec := canary(t)
	started := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ro.Status.Decisions = []kultav1alpha1.Decision{{Action: kultav1alpha1.ActionInitialize, Reason: "NewRevision", Timestamp: metav1.NewTime(started)}}
	q := &windowQuerier{}
	st, err := checker(q).Analyze(context.Background(), ro, spec, Split{}, started.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if st.CountingSince == nil || !st.CountingSince.Time.Equal(started) {
		t.Fatalf("counting since %v, want %v", st.CountingSince, started)
	}

	// A new controller, and the decision history no longer holds the start.
	ro.Status.Analysis, ro.Status.Decisions = st, nil
	q.queries = nil
	st, _ = checker(q).Analyze(context.Background(), ro, spec, Split{}, started.Add(20*time.Minute))
	if !st.CountingSince.Time.Equal(started) || !strings.Contains(q.queries[0], "[20m]") {
		t.Fatalf("after a restart: counting since %v, query %q; want %v and [20m]", st.CountingSince, q.queries[0], started)
	}

	// A retry of the same revision counts its own requests only.
	retried := started.Add(30 * time.Minute)
	ro.Status.Analysis = st
	ro.Status.Decisions = []kultav1alpha1.Decision{{Action: kultav1alpha1.ActionResume, Reason: "Retry", Timestamp: metav1.NewTime(retried)}}
	q.queries = nil
	st, _ = checker(q).Analyze(context.Background(), ro, spec, Split{}, retried.Add(time.Minute))
	if !st.CountingSince.Time.Equal(retried) || !strings.Contains(q.queries[0], "[1m]") {
		t.Fatalf("after a retry: counting since %v, query %q; want %v and [1m]", st.CountingSince, q.queries[0], retried)
	}

	// Another revision starts from scratch, and until it has had MinWindow of traffic it waits.
	ro.Status.CurrentPodTemplateHash = "def"
	ro.Status.Decisions = []kultav1alpha1.Decision{{Action: kultav1alpha1.ActionInitialize, Reason: "NewRevision", Timestamp: metav1.NewTime(retried.Add(2 * time.Minute))}}
	st, _ = checker(q).Analyze(context.Background(), ro, spec, Split{}, retried.Add(2*time.Minute+10*time.Second))
	if st.Metrics[0].Reason != string(ReasonWindowNotFilled) || !st.CountingSince.Time.Equal(retried.Add(2*time.Minute)) {
		t.Fatalf("new revision: reason %s, counting since %v", st.Metrics[0].Reason, st.CountingSince)
	}
}

// A blue-green preview is compared with the active Service: its latency, slower by a third,
// fails the check; the same latency does not, and no active traffic is no comparison.
func TestCheckerComparesPreviewWithActive(t *testing.T) {
	started := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	spec := &kultav1alpha1.Analysis{Metrics: []kultav1alpha1.Metric{{Name: MetricLatencyP95, Threshold: "10000", CompareToStable: true}}}
	for _, tc := range []struct {
		name           string
		active, review simArm
		activeTraffic  bool
		result         kultav1alpha1.Verdict
		reason         Reason
	}{
		{"slower preview", simArm{median: 0.1}, simArm{median: 0.133}, true, kultav1alpha1.VerdictFail, ReasonSlowerThanStable},
		{"same latency", simArm{median: 0.1}, simArm{median: 0.1}, true, kultav1alpha1.VerdictPass, ReasonWithinThreshold},
		{"no active traffic", simArm{median: 0.1}, simArm{median: 0.1}, false, kultav1alpha1.VerdictInconclusive, ReasonNoStableData},
	} {
		world := newSimWorld(42)
		ro := testutil.Rollout("shop", "web", testutil.WithBlueGreen())
		ro.Status.StablePodTemplateHash, ro.Status.CurrentPodTemplateHash = "old", "new"
		ro.Status.Decisions = []kultav1alpha1.Decision{{Action: kultav1alpha1.ActionInitialize, Reason: "NewRevision", Timestamp: metav1.NewTime(started)}}
		now := started.Add(time.Minute)
		if tc.activeTraffic {
			world.add("web-active", now, tc.active.load())
		}
		world.add("web-preview", now, tc.review.load())
		st, err := checker(world).Analyze(context.Background(), ro, spec, Split{}, now)
		if err != nil {
			t.Fatal(err)
		}
		if st.Verdict != tc.result || st.Metrics[0].Reason != string(tc.reason) {
			t.Errorf("%s: %s %s: %s", tc.name, st.Verdict, st.Metrics[0].Reason, st.Message)
		}
	}
}
