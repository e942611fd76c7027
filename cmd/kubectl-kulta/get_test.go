package main

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
)

// A metric's line shows the evidence behind its verdict: the confidence sequence of a
// sequential check, stable's value and the comparison's p-value.
func TestMetricLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    kultav1alpha1.MetricStatus
		want string
	}{
		{
			name: "no value",
			m:    kultav1alpha1.MetricStatus{Name: "error-rate", Verdict: kultav1alpha1.VerdictInconclusive, Reason: "NoTraffic"},
			want: "Inconclusive NoTraffic = no value",
		},
		{
			name: "sequential threshold",
			m: kultav1alpha1.MetricStatus{
				Name: "error-rate", Verdict: kultav1alpha1.VerdictPass, Reason: "WithinThreshold",
				Value: ptr.To[kultav1alpha1.Decimal]("4"), Threshold: ptr.To[kultav1alpha1.Decimal]("5"),
				LowerBound: ptr.To[kultav1alpha1.Decimal]("3.61"), UpperBound: ptr.To[kultav1alpha1.Decimal]("4.43"),
				SampleSize: ptr.To[int64](20000),
			},
			want: "Pass WithinThreshold = 4 (threshold 5), confidence sequence [3.61, 4.43], 20000 requests",
		},
		{
			name: "compared with stable",
			m: kultav1alpha1.MetricStatus{
				Name: "latency-p95", Verdict: kultav1alpha1.VerdictFail, Reason: "SlowerThanStable",
				Value: ptr.To[kultav1alpha1.Decimal]("180"), Threshold: ptr.To[kultav1alpha1.Decimal]("500"),
				StableValue: ptr.To[kultav1alpha1.Decimal]("98.5"), PValue: ptr.To[kultav1alpha1.Decimal]("1e-12"), Looks: 4,
			},
			want: "Fail SlowerThanStable = 180 (threshold 500), stable 98.5, p=1e-12 at look 4",
		},
	} {
		if got := metricLine(tc.m); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// An experiment's metric line shows both variants and the p-value the decision used.
func TestExperimentResultLine(t *testing.T) {
	r := kultav1alpha1.ABMetricResult{
		Name: "error-rate", ValueA: "8", ValueB: "1", Reason: "Significant", IsSignificant: true,
		Winner: kultav1alpha1.VariantB, PValue: ptr.To[kultav1alpha1.Decimal]("3.2e-09"), Looks: 7,
	}
	if got, want := experimentResultLine(r), "Significant: A 8, B 1, p=3.2e-09 at look 7, B better"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	r = kultav1alpha1.ABMetricResult{Name: "latency-p95", ValueA: "0", ValueB: "0", Reason: "NoTraffic"}
	if got, want := experimentResultLine(r), "NoTraffic: A 0, B 0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The Step row names what the current step does, as the manifest says it.
func TestStepLine(t *testing.T) {
	for _, tc := range []struct {
		step kultav1alpha1.CanaryStep
		want string
	}{
		{testutil.Weight(20), "setWeight 20%"},
		{testutil.PauseFor("30s"), "pause 30s"},
		{testutil.PauseUntilPromoted(), "pause until promoted"},
		{kultav1alpha1.CanaryStep{SetWeight: ptr.To[int32](50), Pause: &kultav1alpha1.RolloutPause{}}, "setWeight 50%, pause until promoted"},
		{testutil.ScaleCanaryTo(2), "setCanaryScale 2 Pods"},
		{testutil.ScaleCanaryPercent(75), "setCanaryScale 75% of replicas"},
		{testutil.ScaleCanaryWithWeight(), "setCanaryScale matching the traffic weight"},
		{testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes")), "header route testers (1 condition)"},
		{testutil.HeaderRouteStep("qa", testutil.HeaderExact("X-Canary", "yes"), testutil.HeaderExact("X-Team", "qa")), "header route qa (all of 2 conditions)"},
		{testutil.HeaderRouteStep("testers"), "remove header route testers"},
		{testutil.MirrorRouteStep("shadow", 25), "mirror route shadow (25% of all requests)"},
		{testutil.MirrorRouteStep("api", 0, testutil.HeaderExact("X-Api", "v2")), "mirror route api (100% of requests meeting 1 condition)"},
		{testutil.MirrorRouteStep("shadow", 0), "remove mirror route shadow"},
		{testutil.AnalyzeStep(kultav1alpha1.Metric{Name: "error-rate"}, kultav1alpha1.Metric{Name: "latency-p99"}), "analysis of error-rate, latency-p99"},
	} {
		if got := stepLine(tc.step); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestWorkloadLine(t *testing.T) {
	ref := &kultav1alpha1.WorkloadRef{Name: "shop", ScaleDown: kultav1alpha1.ScaleDownProgressively}
	adopted := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{kultav1alpha1.AdoptedReplicasAnnotation: "3"}},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](0)},
	}
	running := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3)}, Status: appsv1.DeploymentStatus{AvailableReplicas: 2}}
	for _, tc := range []struct {
		ref  *kultav1alpha1.WorkloadRef
		d    *appsv1.Deployment
		want string
	}{
		{ref, adopted, "Deployment shop (scaleDown progressively): 0 of 0 Pods available, 3 before adoption"},
		{&kultav1alpha1.WorkloadRef{Name: "shop"}, running, "Deployment shop (scaleDown never): 2 of 3 Pods available"},
		{ref, nil, "Deployment shop (scaleDown progressively): not found"},
	} {
		if got := workloadLine(tc.ref, tc.d); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// The routes in place are named with what each does, as the last step of its name says: a
// header route sends matching requests to the canary, a mirror route copies a share there, and
// a name no step gives any more (the spec changed since) is shown by itself.
func TestCanaryRoutesLine(t *testing.T) {
	ro := testutil.Rollout("shop", "web", testutil.WithHTTPRoute("web"), testutil.WithCanarySteps(
		testutil.HeaderRouteStep("shadow", testutil.HeaderExact("X-Canary", "yes")),
		testutil.MirrorRouteStep("shadow", 25),
		testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes"))))
	ro.Status.HeaderRoutes = []string{"gone", "shadow", "testers"}
	want := "gone, shadow (25% of matching requests copied to the canary), testers (matching requests reach the canary)"
	if got := canaryRoutesLine(ro); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestWebhookLine(t *testing.T) {
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	since := metav1.NewTime(now.Add(-90 * time.Second))
	for _, tc := range []struct {
		w    kultav1alpha1.WebhookStatus
		want string
	}{
		{kultav1alpha1.WebhookStatus{Name: "more", Type: kultav1alpha1.WebhookConfirmTrafficIncrease, Revision: "new", StepIndex: ptr.To[int32](2),
			Result: kultav1alpha1.WebhookHeld, Message: "HTTP 503: not yet", Since: since},
			"confirm-traffic-increase Held at step 2 since 90s ago: HTTP 503: not yet"},
		{kultav1alpha1.WebhookStatus{Name: "tell", Type: kultav1alpha1.WebhookPostRollout, Revision: "old", Outcome: "Failed",
			Result: kultav1alpha1.WebhookPassed, Message: "HTTP 200", Since: since},
			"post-rollout Passed (told Failed) for revision old since 90s ago: HTTP 200"},
	} {
		if got := webhookLine(tc.w, "new", now); got != tc.want {
			t.Errorf("got %q\nwant %q", got, tc.want)
		}
	}
}
