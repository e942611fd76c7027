package analysis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
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
	a := &kultav1alpha1.Analysis{Metrics: []kultav1alpha1.Metric{{
		Name: "error-rate", Threshold: "5", FailureThreshold: ptr.To[int32](2), MinSampleSize: ptr.To[int32](100),
	}}}
	return ro, a
}

func TestCheckerAnalyze(t *testing.T) {
	ro, spec := canary(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := &serviceQuerier{requests: map[string]float64{"web-canary": 1000}, errors: map[string]float64{"web-canary": 100}}
	st, err := checker(q).Analyze(context.Background(), ro, spec, now)
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
	st, err = checker(q).Analyze(context.Background(), ro, spec, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if st.Verdict != kultav1alpha1.VerdictFail || st.Metrics[0].ConsecutiveFailures != 2 || !strings.Contains(st.Message, "error-rate = 10") {
		t.Fatalf("second failing check must fail: %s %s", st.Verdict, st.Message)
	}
	// A new step starts the counters again.
	ro.Status.CurrentStepIndex = ptr.To[int32](2)
	st, _ = checker(q).Analyze(context.Background(), ro, spec, now.Add(2*time.Minute))
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
		st, err := c.Analyze(context.Background(), ro, spec, time.Now())
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
	st, err := checker(q).Analyze(context.Background(), ro, spec, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Verdict != kultav1alpha1.VerdictFail || st.Metrics[0].Reason != string(ReasonWorseThanStable) {
		t.Fatalf("a canary worse than stable must fail: %s %s: %s", st.Verdict, st.Metrics[0].Reason, st.Message)
	}

	// The same numbers without the comparison pass: the absolute threshold alone misses it.
	spec.Metrics[0].CompareToStable = false
	if st, _ := checker(q).Analyze(context.Background(), ro, spec, now); st.Verdict != kultav1alpha1.VerdictPass {
		t.Fatalf("threshold only: %s", st.Verdict)
	}

	// A traffic split far from the weights makes the comparison untrustworthy.
	spec.Metrics[0].CompareToStable = true
	q.requests["web-stable"] = 60000
	st, _ = checker(q).Analyze(context.Background(), ro, spec, now)
	if st.Verdict != kultav1alpha1.VerdictInconclusive || st.Metrics[0].Reason != string(ReasonSampleRatioMismatch) {
		t.Fatalf("sample ratio mismatch: %s %s: %s", st.Verdict, st.Metrics[0].Reason, st.Message)
	}
}
