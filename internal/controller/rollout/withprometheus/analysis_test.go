package withprometheus_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/false-systems/kulta/analysis"
	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

const (
	// timeout bounds a wait for the reconciler or Prometheus.
	timeout = 60 * time.Second
	// poll is how often the waits look.
	poll = 100 * time.Millisecond
	// app is the name of every scenario's Rollout and HTTPRoute; the Services are app-stable
	// and app-canary.
	app           = "shop"
	stableService = app + "-stable"
	canaryService = app + "-canary"
	// newImage makes the new revision every scenario rolls out.
	newImage = "nginx:1.28"
	// minSampleSize is the analysis's minimum number of requests in the window.
	minSampleSize = 20
	// rollbackScaleDownDelay is how long a rolled-back canary keeps its Pods.
	rollbackScaleDownDelay = 30 * time.Second
)

// suite is what the scenarios share: one API server, one traffic application, one Prometheus
// scraping it and one manager whose reconciler analyses with analysis.Checker.
type suite struct {
	env  *testenv.Env
	app  *testenv.TrafficApp
	prom *testenv.Prometheus
}

// startSuite starts a traffic application, a Prometheus scraping it and a manager whose
// analyzer queries that Prometheus; all stop when the test ends, the manager first.
func startSuite(t *testing.T) *suite {
	t.Helper()
	e := testenv.Require(t, env)
	start := time.Now()
	trafficApp := testenv.StartTrafficApp(t)
	prom := testenv.StartPrometheus(t, trafficApp.Target())
	t.Logf("Prometheus ready at %s after %s", prom.Address(), time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := rollouttest.Start(ctx, e, rollouttest.WithAnalyzer(&analysis.Checker{DefaultAddress: prom.Address()}))
	if err != nil {
		cancel()
		t.Fatalf("starting the manager: %v", err)
	}
	// Cleanups run last-registered first: the manager stops before Prometheus and the app.
	t.Cleanup(func() {
		defer cancel()
		if err := mgr.Stop(); err != nil {
			t.Errorf("stopping the manager: %v", err)
		}
	})
	return &suite{env: e, app: trafficApp, prom: prom}
}

// TestCanaryAnalysisWithPrometheus runs canaries gated by the built-in error-rate and latency
// metrics, as real Prometheus computes them from traffic the test controls. The scenarios run
// in parallel, each in its own namespace; those of the sequential checks are in
// sequential_test.go.
func TestCanaryAnalysisWithPrometheus(t *testing.T) {
	s := startSuite(t)
	t.Run("healthy canary completes", s.testHealthyCanary)
	t.Run("erroring canary rolls back", s.testErroringCanary)
	t.Run("canary without traffic holds its step", s.testCanaryWithoutTraffic)
	t.Run("unreachable Prometheus never promotes", s.testUnreachablePrometheus)
	s.sequentialScenarios(t)
}

// testHealthyCanary: 0.5% errors pass every step and the new revision becomes stable.
func (s *suite) testHealthyCanary(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := s.env.CreateNamespace(t, "healthy")
	ro, first := s.startCanary(t, ns, errorRate(kultav1alpha1.FailurePolicyRollback, "10s"))
	weights := rollouttest.WatchWeights(t, s.env, ns, app, stableService, canaryService)
	s.app.Set(ns, canaryService, testenv.Traffic{RPS: 100, ErrorRatio: 0.005, Latency: 20 * time.Millisecond})
	s.waitForRequests(t, ns, canaryService, 5*minSampleSize)

	setImage(t, s.env, ro, newImage)
	var done *kultav1alpha1.Rollout
	g.Eventually(func(g Gomega) {
		done = s.get(g, ro)
		g.Expect(done.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted), "message: %s", done.Status.Message)
		g.Expect(done.Status.StablePodTemplateHash).NotTo(Equal(first))
		g.Expect(done.Status.StablePodTemplateHash).To(Equal(done.Status.CurrentPodTemplateHash))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	result := done.Status.Analysis
	g.Expect(result).NotTo(BeNil(), "the last analysis stays in the status")
	g.Expect(result.Revision).To(Equal(done.Status.StablePodTemplateHash))
	g.Expect(result.Verdict).To(Equal(kultav1alpha1.VerdictPass), "analysis: %s", result.Message)
	g.Expect(result.Reason).To(Equal(string(analysis.ReasonWithinThreshold)))
	m := metricStatus(g, result, "error-rate")
	g.Expect(m.Value).NotTo(BeNil(), "a passing check records its value")
	g.Expect(decimal(g, *m.Value)).To(BeNumerically("<", 5))
	g.Expect(m.SampleSize).To(HaveValue(BeNumerically(">=", minSampleSize)))
	g.Expect(m.Threshold).To(HaveValue(Equal(kultav1alpha1.Decimal("5"))))
	analysisCond := condition(done, kultav1alpha1.ConditionAnalysis)
	g.Expect(analysisCond.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(analysisCond.Reason).To(Equal(string(analysis.ReasonWithinThreshold)))

	// Each step with weight was let through by a passing analysis, recorded with its decision.
	for _, step := range []int32{0, 1} {
		d := decision(done, func(d kultav1alpha1.Decision) bool {
			return d.Action == kultav1alpha1.ActionStepAdvance && ptr.Equal(d.FromStep, ptr.To(step))
		})
		g.Expect(d).NotTo(BeNil(), "no StepAdvance from step %d in %+v", step, done.Status.Decisions)
		snap, ok := d.Metrics["error-rate"]
		g.Expect(ok).To(BeTrue(), "the StepAdvance from step %d records the analysis: %+v", step, d)
		g.Expect(snap.Passed).To(BeTrue())
		g.Expect(decimal(g, snap.Value)).To(BeNumerically("<", 5))
		g.Expect(snap.Threshold).To(HaveValue(Equal(kultav1alpha1.Decimal("5"))))
	}
	g.Eventually(weights).WithTimeout(timeout).Should(Equal([]providers.Weights{
		{Stable: 100}, {Stable: 50, Canary: 50}, {Stable: 100},
	}))
}

// errorRateValue finds the error rate an analysis message reports.
var errorRateValue = regexp.MustCompile(`error-rate = ([0-9.eE+-]+) `)

// testErroringCanary: 10% errors fail the first check; Rollback sends all traffic back to the
// stable revision and scales the canary down after its delay.
func (s *suite) testErroringCanary(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := s.env.CreateNamespace(t, "erroring")
	ro, first := s.startCanary(t, ns, errorRate(kultav1alpha1.FailurePolicyRollback, "10s"))
	s.app.Set(ns, canaryService, testenv.Traffic{RPS: 100, ErrorRatio: 0.1, Latency: 20 * time.Millisecond})
	s.waitForRequests(t, ns, canaryService, 10*minSampleSize)

	setImage(t, s.env, ro, newImage)
	var failed *kultav1alpha1.Rollout
	g.Eventually(func(g Gomega) {
		failed = s.get(g, ro)
		g.Expect(failed.Status.Phase).To(Equal(kultav1alpha1.PhaseFailed), "message: %s", failed.Status.Message)
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	st := failed.Status
	g.Expect(st.StablePodTemplateHash).To(Equal(first), "a rolled-back canary never becomes stable")
	g.Expect(st.CurrentPodTemplateHash).NotTo(Equal(first))
	g.Expect(st.CurrentStepIndex).To(Equal(ptr.To[int32](0)), "the first step's analysis failed")

	rollback := lastDecision(failed, kultav1alpha1.ActionRollback)
	g.Expect(rollback).NotTo(BeNil(), "decisions: %+v", st.Decisions)
	g.Expect(rollback.Reason).To(Equal("AnalysisFailed"))
	g.Expect(rollback.Message).To(ContainSubstring("error-rate = "))
	snap, ok := rollback.Metrics["error-rate"]
	g.Expect(ok).To(BeTrue(), "the rollback records the failing metric: %+v", rollback)
	g.Expect(snap.Passed).To(BeFalse())
	g.Expect(decimal(g, snap.Value)).To(BeNumerically("~", 10, 2))
	progressing := condition(failed, kultav1alpha1.ConditionProgressing)
	g.Expect(progressing.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(progressing.Reason).To(Equal("AnalysisFailed"))

	match := errorRateValue.FindStringSubmatch(st.Message)
	g.Expect(match).NotTo(BeNil(), "the message names error-rate and its value: %s", st.Message)
	reported, err := strconv.ParseFloat(match[1], 64)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reported).To(BeNumerically("~", 10, 2), "message: %s", st.Message)
	g.Expect(st.Analysis).NotTo(BeNil())
	g.Expect(st.Analysis.Verdict).To(Equal(kultav1alpha1.VerdictFail))
	g.Expect(st.Analysis.Reason).To(Equal(string(analysis.ReasonThresholdExceeded)))
	g.Expect(condition(failed, kultav1alpha1.ConditionAnalysis).Status).To(Equal(metav1.ConditionFalse))

	g.Eventually(func(g Gomega) providers.Weights {
		return s.routeWeights(g, ns)
	}).WithTimeout(timeout).WithPolling(poll).Should(Equal(providers.Weights{Stable: 100}), "all traffic back to stable")

	// The canary keeps its Pods while requests in flight finish, then is scaled to zero.
	failedAt := rollback.Timestamp.Time
	g.Expect(s.replicas(g, ns, st.CurrentPodTemplateHash)).To(BeNumerically(">", 0), "scaled down only after the delay")
	g.Eventually(func(g Gomega) int32 {
		return s.replicas(g, ns, st.CurrentPodTemplateHash)
	}).WithTimeout(rollbackScaleDownDelay + 30*time.Second).WithPolling(250 * time.Millisecond).Should(BeZero())
	// Decision timestamps have whole seconds; allow one more for the annotation's precision.
	g.Expect(time.Since(failedAt)).To(BeNumerically(">=", rollbackScaleDownDelay-time.Second))
	g.Expect(s.replicas(g, ns, first)).To(Equal(int32(2)), "the stable revision keeps full scale")
	g.Expect(s.get(g, ro).Status.StablePodTemplateHash).To(Equal(first))
}

// testCanaryWithoutTraffic: without requests there is no verdict, so the first step holds.
func (s *suite) testCanaryWithoutTraffic(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		idle   bool // the canary's series exist but never grow
		reason analysis.Reason
	}{
		"no series":   {idle: false, reason: analysis.ReasonNoData},
		"idle series": {idle: true, reason: analysis.ReasonNoTraffic},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			ns := s.env.CreateNamespace(t, "notraffic")
			ro, first := s.startCanary(t, ns, errorRate(kultav1alpha1.FailurePolicyRollback, "10s"))
			if tc.idle {
				s.app.Set(ns, canaryService, testenv.Traffic{})
				s.waitForRequests(t, ns, canaryService, 0)
			}
			setImage(t, s.env, ro, newImage)
			var firstCheck metav1.Time
			g.Eventually(func(g Gomega) {
				got := s.get(g, ro)
				a := got.Status.Analysis
				g.Expect(a).NotTo(BeNil())
				g.Expect(a.Revision).To(Equal(got.Status.CurrentPodTemplateHash))
				g.Expect(a.Revision).NotTo(Equal(first))
				g.Expect(a.Verdict).To(Equal(kultav1alpha1.VerdictInconclusive), "analysis: %s", a.Message)
				g.Expect(a.Reason).To(Equal(string(tc.reason)), "analysis: %s", a.Message)
				firstCheck = a.CheckedAt
			}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

			var last metav1.Time
			g.Consistently(func(g Gomega) {
				got := s.get(g, ro)
				g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseProgressing), "message: %s", got.Status.Message)
				g.Expect(got.Status.CurrentStepIndex).To(Equal(ptr.To[int32](0)), "no verdict, no next step")
				g.Expect(got.Status.StablePodTemplateHash).To(Equal(first))
				cond := condition(got, kultav1alpha1.ConditionAnalysis)
				g.Expect(cond.Status).To(Equal(metav1.ConditionUnknown), "Analysis condition: %+v", cond)
				g.Expect(cond.Reason).To(Equal(string(tc.reason)))
				g.Expect(s.routeWeights(g, ns)).To(Equal(providers.Weights{Stable: 50, Canary: 50}), "the canary keeps its weight while the step waits")
				last = got.Status.Analysis.CheckedAt
			}).WithTimeout(15 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
			g.Expect(last.After(firstCheck.Time)).To(BeTrue(), "the analysis ran again within its 10s interval (first %s, last %s)", firstCheck, last)
		})
	}
}

// testUnreachablePrometheus: a Rollout whose Prometheus is down holds its step for as long as
// it lasts, saying why, and is neither promoted nor failed: an outage of the monitoring is no
// evidence about the revision. A query that Prometheus rejects is another matter: the third in a
// row fails the analysis, and failurePolicy Pause holds the step.
func (s *suite) testUnreachablePrometheus(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := s.env.CreateNamespace(t, "unreachable")
	spec := errorRate(kultav1alpha1.FailurePolicyPause, "2s")
	spec.Prometheus = &kultav1alpha1.PrometheusConfig{Address: fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))}
	ro, first := s.startCanary(t, ns, spec)
	// The controller's default Prometheus sees a healthy canary; the Rollout must not ask it.
	s.app.Set(ns, canaryService, testenv.Traffic{RPS: 100, Latency: 20 * time.Millisecond})
	s.waitForRequests(t, ns, canaryService, minSampleSize)

	setImage(t, s.env, ro, newImage)
	g.Eventually(func(g Gomega) {
		got := s.get(g, ro)
		g.Expect(got.Status.CurrentPodTemplateHash).NotTo(Equal(first))
		g.Expect(got.Status.Analysis).NotTo(BeNil())
		g.Expect(got.Status.Analysis.Revision).To(Equal(got.Status.CurrentPodTemplateHash))
		g.Expect(got.Status.Analysis.Reason).To(Equal(string(analysis.ReasonProviderUnavailable)), "analysis: %s", got.Status.Analysis.Message)
		g.Expect(got.Status.Analysis.Message).To(ContainSubstring(spec.Prometheus.Address))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed(), "an unreachable Prometheus is reported as such")
	g.Consistently(func(g Gomega) {
		got := s.get(g, ro)
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseProgressing), "message: %s; decisions %+v", got.Status.Message, got.Status.Decisions)
		g.Expect(got.Status.CurrentStepIndex).To(Equal(ptr.To[int32](0)))
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(first))
		g.Expect(metricStatus(g, got.Status.Analysis, "error-rate").ConsecutiveErrors).To(BeZero())
	}).WithTimeout(4*time.Duration(analysis.DefaultErrorLimit)*time.Second).WithPolling(250*time.Millisecond).Should(Succeed(),
		"held, never promoted nor failed, for longer than the error limit of checks every 2s")

	// Now point the metric at the real Prometheus with a query it rejects.
	got := &kultav1alpha1.Rollout{}
	g.Expect(s.env.Client.Get(context.Background(), client.ObjectKeyFromObject(ro), got)).To(Succeed())
	before := got.DeepCopy()
	got.Spec.Strategy.Canary.Analysis.Prometheus = nil
	got.Spec.Strategy.Canary.Analysis.Metrics[0].Query = `sum(rate(http_requests_total{service="{{ .Service }}"}[{{ .Window }}])`
	g.Expect(s.env.Client.Patch(context.Background(), got, client.MergeFrom(before))).To(Succeed())

	var paused *kultav1alpha1.Rollout
	g.Eventually(func(g Gomega) {
		paused = s.get(g, ro)
		g.Expect(paused.Status.Phase).To(Equal(kultav1alpha1.PhasePaused), "message: %s", paused.Status.Message)
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	st := paused.Status
	g.Expect(st.CurrentStepIndex).To(Equal(ptr.To[int32](0)))
	g.Expect(st.StablePodTemplateHash).To(Equal(first))
	g.Expect(st.Analysis.Verdict).To(Equal(kultav1alpha1.VerdictFail))
	g.Expect(st.Analysis.Reason).To(Equal(string(analysis.ReasonConsecutiveErrors)))
	g.Expect(metricStatus(g, st.Analysis, "error-rate").ConsecutiveErrors).To(BeNumerically(">=", analysis.DefaultErrorLimit))
	pausedCond := condition(paused, kultav1alpha1.ConditionPaused)
	g.Expect(pausedCond.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(pausedCond.Reason).To(Equal("AnalysisFailed"))
	g.Expect(pausedCond.Message).To(ContainSubstring("bad_data"))
	pause := lastDecision(paused, kultav1alpha1.ActionPause)
	g.Expect(pause).NotTo(BeNil(), "decisions: %+v", st.Decisions)
	g.Expect(pause.Reason).To(Equal("AnalysisFailed"))
	g.Expect(pause.Message).To(ContainSubstring(fmt.Sprintf("%d consecutive query errors", analysis.DefaultErrorLimit)),
		"the analysis fails at the third rejected query in a row")

	g.Consistently(func(g Gomega) {
		got := s.get(g, ro)
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhasePaused), "message: %s", got.Status.Message)
		g.Expect(got.Status.CurrentStepIndex).To(Equal(ptr.To[int32](0)))
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(first))
	}).WithTimeout(5*time.Second).WithPolling(250*time.Millisecond).Should(Succeed(), "never promoted past a failed analysis")
}

// errorRate is an analysis of the built-in error-rate metric: at most 5%, checked every
// interval on every request since the revision started, with at least minSampleSize requests.
func errorRate(policy kultav1alpha1.FailurePolicy, interval kultav1alpha1.Duration) *kultav1alpha1.Analysis {
	return &kultav1alpha1.Analysis{
		FailurePolicy: policy,
		Metrics: []kultav1alpha1.Metric{{
			Name:          "error-rate",
			Threshold:     "5",
			Interval:      ptr.To(interval),
			MinSampleSize: ptr.To[int32](minSampleSize),
		}},
	}
}

// startCanary creates the Services, the HTTPRoute and a two-replica Rollout stepping through
// [setWeight 50, pause 2s] with analysis a, changed by opts (which may replace the replicas or
// the steps), waits until its first revision is stable and returns it with that revision's hash.
func (s *suite) startCanary(t *testing.T, ns string, a *kultav1alpha1.Analysis, opts ...testutil.RolloutOption) (*kultav1alpha1.Rollout, string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	for _, name := range []string{stableService, canaryService} {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{{Port: 80}}},
		}
		g.Expect(s.env.Client.Create(ctx, svc)).To(Succeed())
	}
	g.Expect(s.env.Client.Create(ctx, rollouttest.Route(ns, app, stableService, canaryService))).To(Succeed())
	ro := testutil.Rollout(ns, app,
		testutil.WithReplicas(2),
		testutil.WithHTTPRoute(app),
		testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseFor("2s")),
		testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) { c.Analysis = a }))
	for _, opt := range opts {
		opt(ro)
	}
	g.Expect(s.env.Client.Create(ctx, ro)).To(Succeed())
	var first string
	g.Eventually(func(g Gomega) {
		got := s.get(g, ro)
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted), "message: %s", got.Status.Message)
		first = got.Status.StablePodTemplateHash
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(first).NotTo(BeEmpty())
	return ro, first
}

// waitForRequests waits until Prometheus counts at least n requests of the service in the last
// 10s, with the query the built-in metrics count samples with. With n = 0 it waits until the
// count has a value at all: two scrapes of the series.
func (s *suite) waitForRequests(t *testing.T, ns, service string, n float64) {
	t.Helper()
	query := fmt.Sprintf(`sum(increase(http_requests_total{namespace=%q,service=%q}[10s]))`, ns, service)
	NewWithT(t).Eventually(func(g Gomega) {
		value, ok, err := s.prom.Query(context.Background(), query)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeTrue(), "%s: no value yet", query)
		g.Expect(value).To(BeNumerically(">=", n), query)
	}).WithTimeout(timeout).WithPolling(250 * time.Millisecond).Should(Succeed())
}

// get reads the Rollout from the API server.
func (s *suite) get(g Gomega, ro *kultav1alpha1.Rollout) *kultav1alpha1.Rollout {
	out := &kultav1alpha1.Rollout{}
	g.Expect(s.env.Client.Get(context.Background(), client.ObjectKeyFromObject(ro), out)).To(Succeed())
	return out
}

// routeWeights reads the stable and canary weights of the scenario's HTTPRoute.
func (s *suite) routeWeights(g Gomega, ns string) providers.Weights {
	route := &gatewayv1.HTTPRoute{}
	g.Expect(s.env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: app}, route)).To(Succeed())
	w, ok := rollouttest.RouteWeights(route, stableService, canaryService)
	g.Expect(ok).To(BeTrue(), "the route lost its backends: %+v", route.Spec.Rules)
	return w
}

// replicas is spec.replicas of the ReplicaSet of revision hash.
func (s *suite) replicas(g Gomega, ns, hash string) int32 {
	var list appsv1.ReplicaSetList
	g.Expect(s.env.Client.List(context.Background(), &list, client.InNamespace(ns),
		client.MatchingLabels{kultav1alpha1.PodTemplateHashLabel: hash})).To(Succeed())
	g.Expect(list.Items).To(HaveLen(1), "ReplicaSets of revision %s", hash)
	return ptr.Deref(list.Items[0].Spec.Replicas, 1)
}

// setImage changes the image of the Rollout's first container, making a new revision.
func setImage(t *testing.T, e *testenv.Env, ro *kultav1alpha1.Rollout, image string) {
	t.Helper()
	patch := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"`+image+`"}]`))
	if err := e.Client.Patch(context.Background(), ro.DeepCopy(), patch); err != nil {
		t.Fatalf("setting image %s: %v", image, err)
	}
}

// metricStatus is the named metric's entry in an analysis.
func metricStatus(g Gomega, a *kultav1alpha1.AnalysisStatus, name string) kultav1alpha1.MetricStatus {
	for _, m := range a.Metrics {
		if m.Name == name {
			return m
		}
	}
	g.Expect(a.Metrics).To(ContainElement(HaveField("Name", name)))
	return kultav1alpha1.MetricStatus{}
}

// decimal parses an API decimal.
func decimal(g Gomega, d kultav1alpha1.Decimal) float64 {
	f, err := d.Float64()
	g.Expect(err).NotTo(HaveOccurred())
	return f
}

// condition is the Rollout's condition of condType, or a zero condition.
func condition(ro *kultav1alpha1.Rollout, condType string) metav1.Condition {
	for _, c := range ro.Status.Conditions {
		if c.Type == condType {
			return c
		}
	}
	return metav1.Condition{}
}

// decision is the first decision that match accepts, or nil.
func decision(ro *kultav1alpha1.Rollout, match func(kultav1alpha1.Decision) bool) *kultav1alpha1.Decision {
	for i := range ro.Status.Decisions {
		if match(ro.Status.Decisions[i]) {
			return &ro.Status.Decisions[i]
		}
	}
	return nil
}

// lastDecision is the latest decision with action, or nil.
func lastDecision(ro *kultav1alpha1.Rollout, action kultav1alpha1.DecisionAction) *kultav1alpha1.Decision {
	for i := len(ro.Status.Decisions) - 1; i >= 0; i-- {
		if ro.Status.Decisions[i].Action == action {
			return &ro.Status.Decisions[i]
		}
	}
	return nil
}
