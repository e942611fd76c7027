package withprometheus_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
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
	// abApp is the name of every A/B scenario's Rollout and HTTPRoute; testutil.WithABTesting
	// names the variants' Services abApp-a and abApp-b.
	abApp           = "checkout"
	variantAService = abApp + "-a"
	variantBService = abApp + "-b"
	// variantBRule is the HTTPRoute rule KULTA adds for variant B, placed before the one rule of
	// rollouttest.Route.
	variantBRule = "kulta-" + abApp + "-variant-b-0"
	// abInterval is how often the variants are compared, and the window of the comparison.
	abInterval = "5s"
	// abMinSampleSize is the fewest requests per variant before a verdict.
	abMinSampleSize = 50
	// abRPS is each variant's request rate: about 1000 requests in a 5s window.
	abRPS = 200
	// abConcludeTimeout bounds the wait for the statistics to conclude.
	abConcludeTimeout = 60 * time.Second
)

// TestABExperimentWithPrometheus runs A/B experiments concluded by the sequential test of
// analysis.Checker.Compare on error rates that a real Prometheus computes from traffic the test
// controls. It starts its own traffic application, Prometheus and manager, after
// TestCanaryAnalysisWithPrometheus has stopped its own (top-level tests run one at a time), and
// runs its scenarios one after the other.
func TestABExperimentWithPrometheus(t *testing.T) {
	s := startSuite(t)
	t.Run("variant B significantly better wins and is promoted", s.testABVariantBWins)
	t.Run("variant B significantly worse loses and is rolled back", s.testABVariantBLoses)
}

// testABVariantBWins: A answers 10% errors, B 1%. The experiment concludes with B the winner,
// keeps the variant B rule until kulta.io/promote=true, then B becomes stable and the rule goes.
func (s *suite) testABVariantBWins(t *testing.T) {
	g := NewWithT(t)
	ns := s.env.CreateNamespace(t, "abwin")
	ro, first := s.startABTest(t, ns)
	rules := watchRuleNames(t, s.env, ns, abApp)
	s.app.Set(ns, variantAService, testenv.Traffic{RPS: abRPS, ErrorRatio: 0.10, Latency: 20 * time.Millisecond})
	s.app.Set(ns, variantBService, testenv.Traffic{RPS: abRPS, ErrorRatio: 0.01, Latency: 20 * time.Millisecond})
	s.waitForWindow(t, ns, variantAService)
	s.waitForWindow(t, ns, variantBService)

	setImage(t, s.env, ro, newImage)
	var concluded *kultav1alpha1.Rollout
	g.Eventually(func(g Gomega) {
		concluded = s.get(g, ro)
		g.Expect(concluded.Status.Phase).To(Equal(kultav1alpha1.PhaseConcluded), "message: %s", concluded.Status.Message)
	}).WithTimeout(abConcludeTimeout).WithPolling(poll).Should(Succeed())
	st := concluded.Status
	second := st.CurrentPodTemplateHash
	g.Expect(second).NotTo(Equal(first))
	g.Expect(st.StablePodTemplateHash).To(Equal(first), "B is not stable before promotion")
	exp := st.ABExperiment
	g.Expect(exp).NotTo(BeNil())
	g.Expect(exp.ConcludedAt).NotTo(BeNil())
	t.Logf("concluded %s after the experiment started: %s", exp.ConcludedAt.Sub(exp.StartedAt.Time), exp.Message)
	g.Expect(exp.ConclusionReason).To(Equal("SignificanceReached"), "experiment: %s", exp.Message)
	g.Expect(exp.Winner).To(Equal(kultav1alpha1.VariantB), "experiment: %s", exp.Message)
	g.Expect(exp.CheckedAt).NotTo(BeNil())
	g.Expect(exp.ConcludedAt.Time).NotTo(BeTemporally("<", exp.StartedAt.Time))
	expectABResult(g, exp, kultav1alpha1.VariantB, 10, 1)
	g.Expect(exp.Message).To(ContainSubstring("B is better"))
	paused := condition(concluded, kultav1alpha1.ConditionPaused)
	g.Expect(paused.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(paused.Reason).To(Equal("WaitingForPromotion"))

	started := decision(concluded, func(d kultav1alpha1.Decision) bool { return d.Reason == "ExperimentStarted" })
	g.Expect(started).NotTo(BeNil(), "decisions: %+v", st.Decisions)
	conclude := lastDecision(concluded, kultav1alpha1.ActionConclude)
	g.Expect(conclude).NotTo(BeNil(), "decisions: %+v", st.Decisions)
	g.Expect(conclude.Reason).To(Equal("SignificanceReached"))
	g.Expect(conclude.Message).To(ContainSubstring("variant B wins"))

	// Until promotion the experiment's routing stays: B's rule before the route's own rule, the
	// original rule still all on A, each Service on its variant's revision.
	g.Consistently(func(g Gomega) {
		got := s.get(g, ro)
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseConcluded), "message: %s", got.Status.Message)
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(first))
		route := s.abRoute(g, ns)
		expectVariantBRule(g, route)
		w, ok := rollouttest.RouteWeights(route, variantAService, variantBService)
		g.Expect(ok).To(BeTrue(), "the route lost its backends: %+v", route.Spec.Rules)
		g.Expect(w).To(Equal(providers.Weights{Stable: 100}))
		g.Expect(s.selectorHash(g, ns, variantAService)).To(Equal(first))
		g.Expect(s.selectorHash(g, ns, variantBService)).To(Equal(second))
	}).WithTimeout(3*time.Second).WithPolling(250*time.Millisecond).Should(Succeed(), "a concluded experiment waits for kulta.io/promote")

	promoteAB(t, s.env, ro)
	var done *kultav1alpha1.Rollout
	g.Eventually(func(g Gomega) {
		done = s.get(g, ro)
		g.Expect(done.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted), "message: %s", done.Status.Message)
		g.Expect(done.Status.StablePodTemplateHash).To(Equal(second))
		g.Expect(done.Annotations).NotTo(HaveKey(kultav1alpha1.PromoteAnnotation), "the annotation is consumed")
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(done.Status.CurrentPodTemplateHash).To(Equal(second))
	complete := lastDecision(done, kultav1alpha1.ActionComplete)
	g.Expect(complete).NotTo(BeNil(), "decisions: %+v", done.Status.Decisions)
	g.Expect(complete.Reason).To(Equal("ManualPromotion"))
	g.Expect(condition(done, kultav1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))

	g.Eventually(func(g Gomega) []string {
		return ruleNames(s.abRoute(g, ns))
	}).WithTimeout(timeout).WithPolling(poll).Should(Equal([]string{""}), "the variant B rule is removed after promotion")
	g.Eventually(func(g Gomega) {
		g.Expect(s.selectorHash(g, ns, variantAService)).To(Equal(second))
		g.Expect(s.selectorHash(g, ns, variantBService)).To(Equal(second))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed(), "both Services on the promoted revision")
	g.Eventually(rules).WithTimeout(timeout).Should(Equal([][]string{{""}, {variantBRule, ""}, {""}}),
		"the route carried B's rule only during the experiment")
}

// testABVariantBLoses: A answers 1% errors, B 10%. The experiment concludes with A the winner,
// and the rollout fails: the rule goes and the stable revision stays.
func (s *suite) testABVariantBLoses(t *testing.T) {
	g := NewWithT(t)
	ns := s.env.CreateNamespace(t, "ablose")
	ro, first := s.startABTest(t, ns)
	rules := watchRuleNames(t, s.env, ns, abApp)
	s.app.Set(ns, variantAService, testenv.Traffic{RPS: abRPS, ErrorRatio: 0.01, Latency: 20 * time.Millisecond})
	s.app.Set(ns, variantBService, testenv.Traffic{RPS: abRPS, ErrorRatio: 0.10, Latency: 20 * time.Millisecond})
	s.waitForWindow(t, ns, variantAService)
	s.waitForWindow(t, ns, variantBService)

	setImage(t, s.env, ro, newImage)
	var failed *kultav1alpha1.Rollout
	g.Eventually(func(g Gomega) {
		failed = s.get(g, ro)
		g.Expect(failed.Status.Phase).To(Equal(kultav1alpha1.PhaseFailed), "message: %s", failed.Status.Message)
	}).WithTimeout(abConcludeTimeout).WithPolling(poll).Should(Succeed())
	st := failed.Status
	g.Expect(st.StablePodTemplateHash).To(Equal(first), "a losing variant B never becomes stable")
	second := st.CurrentPodTemplateHash
	g.Expect(second).NotTo(Equal(first))
	exp := st.ABExperiment
	g.Expect(exp).NotTo(BeNil())
	g.Expect(exp.ConcludedAt).NotTo(BeNil())
	t.Logf("concluded %s after the experiment started: %s", exp.ConcludedAt.Sub(exp.StartedAt.Time), exp.Message)
	g.Expect(exp.ConclusionReason).To(Equal("SignificanceReached"), "experiment: %s", exp.Message)
	g.Expect(exp.Winner).To(Equal(kultav1alpha1.VariantA), "experiment: %s", exp.Message)
	expectABResult(g, exp, kultav1alpha1.VariantA, 1, 10)
	g.Expect(exp.Message).To(ContainSubstring("A is better"))

	g.Expect(st.Decisions).NotTo(BeEmpty())
	last := st.Decisions[len(st.Decisions)-1]
	g.Expect(last.Action).To(Equal(kultav1alpha1.ActionRollback), "decisions: %+v", st.Decisions)
	g.Expect(last.Reason).To(Equal("VariantBLost"))
	conclude := lastDecision(failed, kultav1alpha1.ActionConclude)
	g.Expect(conclude).NotTo(BeNil(), "decisions: %+v", st.Decisions)
	g.Expect(conclude.Reason).To(Equal("SignificanceReached"))
	g.Expect(conclude.Message).To(ContainSubstring("variant A wins"))
	progressing := condition(failed, kultav1alpha1.ConditionProgressing)
	g.Expect(progressing.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(progressing.Reason).To(Equal("VariantBLost"))

	g.Eventually(func(g Gomega) []string {
		return ruleNames(s.abRoute(g, ns))
	}).WithTimeout(timeout).WithPolling(poll).Should(Equal([]string{""}), "the variant B rule is removed after the rollback")
	g.Eventually(rules).WithTimeout(timeout).Should(Equal([][]string{{""}, {variantBRule, ""}, {""}}),
		"the route carried B's rule only during the experiment")
	g.Consistently(func(g Gomega) {
		got := s.get(g, ro)
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseFailed), "message: %s", got.Status.Message)
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(first))
		g.Expect(got.Status.ABExperiment.Winner).To(Equal(kultav1alpha1.VariantA))
		route := s.abRoute(g, ns)
		g.Expect(ruleNames(route)).To(Equal([]string{""}))
		w, ok := rollouttest.RouteWeights(route, variantAService, variantBService)
		g.Expect(ok).To(BeTrue(), "the route lost its backends: %+v", route.Spec.Rules)
		g.Expect(w).To(Equal(providers.Weights{Stable: 100}))
		g.Expect(s.selectorHash(g, ns, variantAService)).To(Equal(first))
	}).WithTimeout(2*time.Second).WithPolling(250*time.Millisecond).Should(Succeed(), "a lost experiment stays rolled back")
}

// startABTest creates the variants' Services, the HTTPRoute and a two-replica A/B Rollout whose
// analysis compares error-rate every abInterval, waits until its first revision is stable and
// returns it with that revision's hash.
func (s *suite) startABTest(t *testing.T, ns string) (*kultav1alpha1.Rollout, string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	for _, name := range []string{variantAService, variantBService} {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": abApp}, Ports: []corev1.ServicePort{{Port: 80}}},
		}
		g.Expect(s.env.Client.Create(ctx, svc)).To(Succeed())
	}
	g.Expect(s.env.Client.Create(ctx, rollouttest.Route(ns, abApp, variantAService, variantBService))).To(Succeed())
	ro := testutil.Rollout(ns, abApp,
		testutil.WithReplicas(2),
		testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) {
			ab.Analysis = &kultav1alpha1.ABAnalysis{
				Interval:        ptr.To[kultav1alpha1.Duration](abInterval),
				MinSampleSize:   ptr.To[int32](abMinSampleSize),
				ConfidenceLevel: ptr.To(kultav1alpha1.Decimal("0.95")),
				Metrics:         []kultav1alpha1.ABMetric{{Name: "error-rate", Direction: kultav1alpha1.DirectionLower}},
			}
		}),
		testutil.WithHTTPRoute(abApp))
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

// expectABResult checks the one error-rate comparison of a concluded experiment: significant,
// won by winner, with the variants' error rates near a and b percent, over enough requests.
func expectABResult(g Gomega, exp *kultav1alpha1.ABExperimentStatus, winner kultav1alpha1.ABVariant, a, b float64) {
	g.Expect(exp.Results).To(HaveLen(1), "experiment: %s", exp.Message)
	r := exp.Results[0]
	g.Expect(r.Name).To(Equal("error-rate"))
	g.Expect(r.IsSignificant).To(BeTrue(), "result: %+v", r)
	g.Expect(r.Winner).To(Equal(winner), "result: %+v", r)
	g.Expect(r.Reason).To(Equal(string(analysis.ReasonSignificant)))
	g.Expect(decimal(g, r.ValueA)).To(BeNumerically("~", a, tolerance(a)), "valueA (percent): %+v", r)
	g.Expect(decimal(g, r.ValueB)).To(BeNumerically("~", b, tolerance(b)), "valueB (percent): %+v", r)
	g.Expect(decimal(g, r.Confidence)).To(BeNumerically(">=", 0.95), "result: %+v", r)
	g.Expect(exp.SampleSizeA).To(HaveValue(BeNumerically(">", abMinSampleSize)))
	g.Expect(exp.SampleSizeB).To(HaveValue(BeNumerically(">", abMinSampleSize)))
}

// tolerance is how far a measured error rate (percent) may be from the one the traffic app
// sends: Prometheus extrapolates increase() to the window's edges.
func tolerance(percent float64) float64 {
	return max(0.5, percent/5)
}

// expectVariantBRule checks that the route's first rule is variant B's: the X-Variant: B header
// match, all of it to B's Service.
func expectVariantBRule(g Gomega, route *gatewayv1.HTTPRoute) {
	g.Expect(ruleNames(route)).To(Equal([]string{variantBRule, ""}))
	rule := route.Spec.Rules[0]
	g.Expect(rule.Matches).To(HaveLen(1))
	g.Expect(rule.Matches[0].Headers).To(HaveLen(1))
	header := rule.Matches[0].Headers[0]
	g.Expect(header.Name).To(Equal(gatewayv1.HTTPHeaderName("X-Variant")))
	g.Expect(header.Value).To(Equal("B"))
	g.Expect(ptr.Deref(header.Type, gatewayv1.HeaderMatchExact)).To(Equal(gatewayv1.HeaderMatchExact))
	g.Expect(rule.BackendRefs).To(HaveLen(1))
	g.Expect(string(rule.BackendRefs[0].Name)).To(Equal(variantBService))
}

// waitForWindow waits until Prometheus counts most of a full comparison window of the service's
// requests, with the query the built-in error-rate counts samples with.
func (s *suite) waitForWindow(t *testing.T, ns, service string) {
	t.Helper()
	window, err := kultav1alpha1.Duration(abInterval).Parse()
	if err != nil {
		t.Fatal(err)
	}
	query := fmt.Sprintf(`sum(increase(http_requests_total{namespace=%q,service=%q}[%s]))`, ns, service, abInterval)
	want := 0.8 * abRPS * window.Seconds()
	NewWithT(t).Eventually(func(g Gomega) {
		value, ok, err := s.prom.Query(context.Background(), query)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeTrue(), "%s: no value yet", query)
		g.Expect(value).To(BeNumerically(">=", want), query)
	}).WithTimeout(timeout).WithPolling(250 * time.Millisecond).Should(Succeed())
}

// abRoute reads the scenario's HTTPRoute.
func (s *suite) abRoute(g Gomega, ns string) *gatewayv1.HTTPRoute {
	route := &gatewayv1.HTTPRoute{}
	g.Expect(s.env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: abApp}, route)).To(Succeed())
	return route
}

// selectorHash is the revision a Service selects.
func (s *suite) selectorHash(g Gomega, ns, name string) string {
	svc := &corev1.Service{}
	g.Expect(s.env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, svc)).To(Succeed())
	return svc.Spec.Selector[kultav1alpha1.PodTemplateHashLabel]
}

// ruleNames lists the names of a route's rules, "" for an unnamed rule.
func ruleNames(route *gatewayv1.HTTPRoute) []string {
	names := make([]string, 0, len(route.Spec.Rules))
	for _, r := range route.Spec.Rules {
		names = append(names, string(ptr.Deref(r.Name, "")))
	}
	return names
}

// watchRuleNames watches one HTTPRoute and returns a function giving the distinct lists of rule
// names it has carried so far, in order.
func watchRuleNames(t *testing.T, e *testenv.Env, ns, name string) func() [][]string {
	t.Helper()
	return rollouttest.WatchRoute(t, e, ns, name, func(route *gatewayv1.HTTPRoute) ([]string, bool) {
		return ruleNames(route), true
	}, slices.Equal[[]string])
}

// promoteAB annotates the Rollout with kulta.io/promote=true.
func promoteAB(t *testing.T, e *testenv.Env, ro *kultav1alpha1.Rollout) {
	t.Helper()
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+kultav1alpha1.PromoteAnnotation+`":"true"}}}`))
	if err := e.Client.Patch(context.Background(), ro.DeepCopy(), patch); err != nil {
		t.Fatalf("annotating %s: %v", kultav1alpha1.PromoteAnnotation, err)
	}
}
