package rollout

import (
	"strings"
	"testing"

	"k8s.io/client-go/tools/events"

	"github.com/false-systems/kulta/analysis"
	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

// The sample-ratio-mismatch check compares the observed split with the one KULTA actually set:
// the routes' weights with traffic routing, the share of ready Pods without.
func TestCanarySplit(t *testing.T) {
	revisions := func(stableReady, canaryReady int32) map[string]*Revision {
		return map[string]*Revision{"old": {Hash: "old", Ready: stableReady}, "new": {Hash: "new", Ready: canaryReady}}
	}
	routed := func() *kultav1alpha1.Rollout {
		return testutil.Rollout("shop", "web", testutil.WithHTTPRoute("web"))
	}
	for _, tc := range []struct {
		name string
		ro   *kultav1alpha1.Rollout
		obs  Observation
		want analysis.Split
	}{
		{
			name: "routed: the routes' weights",
			ro:   routed(),
			obs:  Observation{Traffic: &providers.Verification{Weights: &providers.Weights{Stable: 80, Canary: 20}}, Revisions: revisions(4, 1)},
			want: analysis.Split{CanaryPercent: 20, Known: true},
		},
		{
			name: "routed, routes disagree: unknown",
			ro:   routed(),
			obs:  Observation{Traffic: &providers.Verification{}, Revisions: revisions(4, 1)},
		},
		{
			name: "not routed: the share of ready Pods",
			ro:   testutil.Rollout("shop", "web"),
			obs:  Observation{Revisions: revisions(3, 1)},
			want: analysis.Split{CanaryPercent: 25, Known: true},
		},
		{
			name: "not routed, nothing ready: unknown",
			ro:   testutil.Rollout("shop", "web"),
			obs:  Observation{Revisions: revisions(0, 0)},
		},
		{
			name: "blue-green: no split to check",
			ro:   testutil.Rollout("shop", "web", testutil.WithBlueGreen()),
			obs:  Observation{Revisions: revisions(3, 3)},
		},
	} {
		tc.ro.Status.StablePodTemplateHash, tc.ro.Status.CurrentPodTemplateHash = "old", "new"
		tc.obs.Rollout = tc.ro
		if got := CanarySplit(tc.obs); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// A sample-ratio mismatch is a Warning Event when it starts, not at every check while it lasts.
func TestWarnOfMismatch(t *testing.T) {
	recorder := events.NewFakeRecorder(10)
	r := &Reconciler{Recorder: recorder}
	ro := testutil.Rollout("shop", "web")
	mismatch := &kultav1alpha1.AnalysisStatus{Revision: "new", Message: "error-rate: split does not match", Metrics: []kultav1alpha1.MetricStatus{
		{Name: "error-rate", Reason: string(analysis.ReasonSampleRatioMismatch)},
	}}
	r.warnOfMismatch(ro, mismatch)
	ro.Status.Analysis = mismatch
	r.warnOfMismatch(ro, mismatch)
	if got := len(recorder.Events); got != 1 {
		t.Fatalf("%d Events for a mismatch seen twice, want 1", got)
	}
	if e := <-recorder.Events; !strings.HasPrefix(e, "Warning SampleRatioMismatch") || !strings.Contains(e, "split does not match") {
		t.Errorf("Event %q", e)
	}
	healthy := &kultav1alpha1.AnalysisStatus{Revision: "new", Metrics: []kultav1alpha1.MetricStatus{{Name: "error-rate", Reason: "WithinThreshold"}}}
	r.warnOfMismatch(ro, healthy)
	if got := len(recorder.Events); got != 0 {
		t.Errorf("%d Events without a mismatch", got)
	}
}
