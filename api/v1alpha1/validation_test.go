package v1alpha1_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

// TestExamplesAreAccepted applies every manifest in examples/ unchanged, each file in its own
// namespace, and checks that every object is accepted.
func TestExamplesAreAccepted(t *testing.T) {
	e := testenv.Require(t, env)
	files, err := filepath.Glob(filepath.Join(e.RepoRoot, "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("want at least 6 example files, found %d", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			g := NewWithT(t)
			ns := e.CreateNamespace(t, "example")
			objs, err := testutil.DecodeManifests(file)
			g.Expect(err).NotTo(HaveOccurred())
			rollouts := 0
			for _, obj := range objs {
				obj.SetNamespace(ns)
				g.Expect(e.Client.Create(context.Background(), obj)).To(Succeed(), "creating %s %s", obj.GetKind(), obj.GetName())
				if obj.GetKind() == "Rollout" {
					rollouts++
					var ro kultav1alpha1.Rollout
					g.Expect(e.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), &ro)).To(Succeed())
					g.Expect(ro.Spec.Replicas).NotTo(BeNil())
				}
			}
			g.Expect(rollouts).To(Equal(1))
		})
	}
}

// TestKultaExampleNumbersStayNumbers checks that YAML numbers such as `threshold: 5.0` and
// `confidenceLevel: 0.95` are accepted as numbers and read back with their value.
func TestKultaExampleNumbersStayNumbers(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ns := e.CreateNamespace(t, "numbers")
	for _, file := range []string{"canary-analysis.yaml", "ab-testing.yaml"} {
		objs, err := testutil.DecodeManifests(filepath.Join(e.RepoRoot, "examples", file))
		g.Expect(err).NotTo(HaveOccurred())
		for _, obj := range objs {
			obj.SetNamespace(ns)
			g.Expect(e.Client.Create(context.Background(), obj)).To(Succeed())
		}
	}
	var canary kultav1alpha1.Rollout
	g.Expect(e.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "shop"}, &canary)).To(Succeed())
	threshold, err := canary.Spec.Strategy.Canary.Analysis.Metrics[0].Threshold.Float64()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(threshold).To(Equal(5.0))

	var ab kultav1alpha1.Rollout
	g.Expect(e.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "landing"}, &ab)).To(Succeed())
	confidence, err := ab.Spec.Strategy.ABTesting.Analysis.ConfidenceLevel.Float64()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(confidence).To(Equal(0.95))
}

// TestDefaultsAppliedByAPIServer creates Rollouts that leave every defaulted field out and reads
// back what the API server stored.
func TestDefaultsAppliedByAPIServer(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "defaults")

	canary := testutil.Rollout(ns, "canary", testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
		c.Analysis = &kultav1alpha1.Analysis{Metrics: []kultav1alpha1.Metric{{Name: "error-rate", Threshold: "5"}}}
	}))
	g.Expect(e.Client.Create(ctx, canary)).To(Succeed())
	g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(canary), canary)).To(Succeed())
	g.Expect(canary.Spec.Replicas).To(Equal(ptr.To[int32](1)))
	g.Expect(canary.Spec.MaxSurge).To(Equal(ptr.To(intstr.FromString("25%"))))
	g.Expect(canary.Spec.MaxUnavailable).To(Equal(ptr.To(intstr.FromInt32(0))))
	g.Expect(canary.Spec.ProgressDeadlineSeconds).To(Equal(ptr.To[int32](600)))
	g.Expect(canary.Spec.RevisionHistoryLimit).To(Equal(ptr.To[int32](10)))
	g.Expect(canary.Spec.Strategy.Canary.Port).To(Equal(ptr.To[int32](80)))
	g.Expect(canary.Spec.Strategy.Canary.Analysis.FailurePolicy).To(Equal(kultav1alpha1.FailurePolicyPause))

	bg := testutil.Rollout(ns, "bluegreen", testutil.WithBlueGreen())
	g.Expect(e.Client.Create(ctx, bg)).To(Succeed())
	g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(bg), bg)).To(Succeed())
	g.Expect(bg.Spec.Strategy.BlueGreen.Port).To(Equal(ptr.To[int32](80)))
	g.Expect(bg.Spec.Strategy.BlueGreen.ScaleDownDelaySeconds).To(Equal(ptr.To[int32](30)))

	ab := testutil.Rollout(ns, "ab", testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) {
		ab.Analysis = &kultav1alpha1.ABAnalysis{Metrics: []kultav1alpha1.ABMetric{{Name: "error-rate", Direction: kultav1alpha1.DirectionLower}}}
	}))
	g.Expect(e.Client.Create(ctx, ab)).To(Succeed())
	g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(ab), ab)).To(Succeed())
	g.Expect(ab.Spec.Strategy.ABTesting.Port).To(Equal(ptr.To[int32](80)))
	g.Expect(ab.Spec.Strategy.ABTesting.VariantBMatch.Header.Type).To(Equal(kultav1alpha1.MatchExact))
	g.Expect(ab.Spec.Strategy.ABTesting.Analysis.MinSampleSize).To(Equal(ptr.To[int32](30)))
	g.Expect(ab.Spec.Strategy.ABTesting.Analysis.ConfidenceLevel).NotTo(BeNil())
	confidence, err := ab.Spec.Strategy.ABTesting.Analysis.ConfidenceLevel.Float64()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(confidence).To(Equal(0.95))
}

type invalidCase struct {
	name   string
	mutate testutil.RolloutOption
	// field is the path the API server must name; message is the text it must give.
	field, message string
}

func abAnalysis(mutate func(*kultav1alpha1.ABAnalysis)) testutil.RolloutOption {
	return testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) {
		ab.Analysis = &kultav1alpha1.ABAnalysis{}
		mutate(ab.Analysis)
	})
}

func canaryAnalysis(mutate func(*kultav1alpha1.Analysis)) testutil.RolloutOption {
	return testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
		c.Analysis = &kultav1alpha1.Analysis{Metrics: []kultav1alpha1.Metric{{Name: "error-rate", Threshold: "5"}}}
		mutate(c.Analysis)
	})
}

var invalidRollouts = []invalidCase{
	{
		name:   "no strategy",
		mutate: testutil.WithStrategy(kultav1alpha1.RolloutStrategy{}),
		field:  "spec.strategy", message: "must set exactly one of canary, blueGreen, abTesting or simple",
	},
	{
		name: "two strategies",
		mutate: func(ro *kultav1alpha1.Rollout) {
			ro.Spec.Strategy.Simple = &kultav1alpha1.SimpleStrategy{}
		},
		field: "spec.strategy", message: "must set exactly one of canary, blueGreen, abTesting or simple",
	},
	{
		name:   "setWeight above 100",
		mutate: testutil.WithCanarySteps(testutil.Weight(150)),
		field:  "spec.strategy.canary.steps[0].setWeight", message: "should be less than or equal to 100",
	},
	{
		name:   "negative setWeight",
		mutate: testutil.WithCanarySteps(testutil.Weight(-5)),
		field:  "spec.strategy.canary.steps[0].setWeight", message: "should be greater than or equal to 0",
	},
	{
		name:   "decreasing setWeight",
		mutate: testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseFor("1m"), testutil.Weight(20)),
		field:  "spec.strategy.canary", message: "setWeight must not decrease from one step to the next",
	},
	{
		name:   "canary without steps",
		mutate: testutil.WithCanarySteps([]kultav1alpha1.CanaryStep{}...),
		field:  "spec.strategy.canary.steps", message: "should have at least 1 items",
	},
	{
		name:   "empty step",
		mutate: testutil.WithCanarySteps(testutil.Weight(10), kultav1alpha1.CanaryStep{}),
		field:  "spec.strategy.canary.steps[1]", message: "each canary step must set setWeight, pause (or both), setCanaryScale, analysis, setHeaderRoute or setMirrorRoute",
	},
	{
		name: "canaryMetadata label with KULTA's prefix",
		mutate: func(ro *kultav1alpha1.Rollout) {
			ro.Spec.CanaryMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{kultav1alpha1.RolloutTypeLabel: "x"}}
		},
		field: "spec.canaryMetadata", message: "labels must not use KULTA's prefix rollouts.kulta.io/",
	},
	{
		name: "stableMetadata annotation with KULTA's prefix",
		mutate: func(ro *kultav1alpha1.Rollout) {
			ro.Spec.StableMetadata = &kultav1alpha1.PodMetadata{Annotations: map[string]string{"rollouts.kulta.io/note": "x"}}
		},
		field: "spec.stableMetadata", message: "annotations must not use KULTA's prefix rollouts.kulta.io/",
	},
	{
		name: "stableMetadata setting a selector label",
		mutate: func(ro *kultav1alpha1.Rollout) {
			ro.Spec.StableMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"app": "other"}}
		},
		field: "spec", message: "spec.stableMetadata.labels must not set a label that spec.selector selects on",
	},
	{
		name: "canaryMetadata setting a label the selector's expressions use",
		mutate: func(ro *kultav1alpha1.Rollout) {
			ro.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}}
			ro.Spec.Template.Metadata.Labels["tier"] = "web"
			ro.Spec.CanaryMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"tier": "try"}}
		},
		field: "spec", message: "spec.canaryMetadata.labels must not set a label that spec.selector selects on",
	},
	{
		name: "template and workloadRef both",
		mutate: func(ro *kultav1alpha1.Rollout) {
			ro.Spec.WorkloadRef = &kultav1alpha1.WorkloadRef{Name: "web"}
		},
		field: "spec", message: "spec must set exactly one of template and workloadRef",
	},
	{
		name:   "neither template nor workloadRef",
		mutate: func(ro *kultav1alpha1.Rollout) { ro.Spec.Template = kultav1alpha1.PodTemplate{} },
		field:  "spec", message: "spec must set exactly one of template and workloadRef",
	},
	{
		name:   "workloadRef without a name",
		mutate: adopt(kultav1alpha1.WorkloadRef{}),
		field:  "spec.workloadRef.name", message: "should be at least 1 chars long",
	},
	{
		name:   "workloadRef to a StatefulSet",
		mutate: adopt(kultav1alpha1.WorkloadRef{Kind: "StatefulSet", Name: "web"}),
		field:  "spec.workloadRef.kind", message: `supported values: "Deployment"`,
	},
	{
		name:   "workloadRef with an unknown scaleDown",
		mutate: adopt(kultav1alpha1.WorkloadRef{Name: "web", ScaleDown: "gradually"}),
		field:  "spec.workloadRef.scaleDown", message: `supported values: "never", "onsuccess", "progressively"`,
	},
	{
		name: "template without selector",
		mutate: func(ro *kultav1alpha1.Rollout) {
			ro.Spec.Selector = nil
		},
		field: "spec", message: "spec.selector is required unless spec.workloadRef is set",
	},
	{
		name: "analysis step with a weight",
		mutate: func(ro *kultav1alpha1.Rollout) {
			step := testutil.AnalyzeStep(kultav1alpha1.Metric{Name: "error-rate", Threshold: "5"})
			step.SetWeight = ptr.To[int32](20)
			testutil.WithCanarySteps(step)(ro)
		},
		field: "spec.strategy.canary.steps[0]", message: "a canary step with analysis must not also set setWeight, pause or setCanaryScale",
	},
	{
		name:   "analysis step without metrics",
		mutate: testutil.WithCanarySteps(testutil.Weight(20), testutil.AnalyzeStep()),
		field:  "spec.strategy.canary.steps[1]", message: "a canary step's analysis must list at least one metric",
	},
	{
		name:   "analysis step with an unknown metric and no query",
		mutate: testutil.WithCanarySteps(testutil.Weight(20), testutil.AnalyzeStep(kultav1alpha1.Metric{Name: "saturation", Threshold: "5"})),
		field:  "spec.strategy.canary.steps[1].analysis.metrics[0]", message: "metrics[].name must be error-rate, latency-p95 or latency-p99 unless query is set",
	},
	{
		name:   "setHeaderRoute without trafficRouting",
		mutate: testutil.WithCanarySteps(testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes")), testutil.Weight(50)),
		field:  "spec.strategy.canary", message: "setHeaderRoute needs trafficRouting",
	},
	{
		name: "setHeaderRoute with a weight",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			step := testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes"))
			step.SetWeight = ptr.To[int32](20)
			testutil.WithCanarySteps(step)(ro)
		},
		field: "spec.strategy.canary.steps[0]", message: "a canary step with setHeaderRoute must not also set setWeight, pause, setCanaryScale, analysis or setMirrorRoute",
	},
	{
		name: "setMirrorRoute with a pause",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			step := testutil.MirrorRouteStep("shadow", 20)
			step.Pause = &kultav1alpha1.RolloutPause{}
			testutil.WithCanarySteps(step)(ro)
		},
		field: "spec.strategy.canary.steps[0]", message: "a canary step with setMirrorRoute must not also set setWeight, pause, setCanaryScale or analysis",
	},
	{
		name: "setMirrorRoute beside setHeaderRoute",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			step := testutil.MirrorRouteStep("shadow", 20)
			step.SetHeaderRoute = &kultav1alpha1.SetHeaderRoute{Name: "testers"}
			testutil.WithCanarySteps(step)(ro)
		},
		field: "spec.strategy.canary.steps[0]", message: "a canary step with setHeaderRoute must not also set setWeight, pause, setCanaryScale, analysis or setMirrorRoute",
	},
	{
		name:   "setMirrorRoute without trafficRouting",
		mutate: testutil.WithCanarySteps(testutil.MirrorRouteStep("shadow", 20), testutil.Weight(100)),
		field:  "spec.strategy.canary", message: "spec.strategy.canary.steps[].setMirrorRoute needs trafficRouting: requests are mirrored only by routes",
	},
	{
		name: "setMirrorRoute with ingress-nginx",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithCanarySteps(testutil.MirrorRouteStep("shadow", 20), testutil.Weight(100))(ro)
			ro.Spec.Strategy.Canary.TrafficRouting = &kultav1alpha1.TrafficRouting{NGINX: &kultav1alpha1.NGINXRouting{StableIngress: "web"}}
		},
		field: "spec.strategy.canary", message: "setMirrorRoute needs Gateway API or Istio routes: ingress-nginx cannot copy a share of requests to the canary",
	},
	{
		name: "setMirrorRoute percentage over 100",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(testutil.MirrorRouteStep("shadow", 101))(ro)
		},
		field: "spec.strategy.canary.steps[0].setMirrorRoute.percentage", message: "should be less than or equal to 100",
	},
	{
		name: "setMirrorRoute name numbered like KULTA's rules",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(testutil.MirrorRouteStep("shadow-2", 10))(ro)
		},
		field: "spec.strategy.canary.steps[0].setMirrorRoute.name", message: "setMirrorRoute.name must not end in a dash and digits",
	},
	{
		name: "setMirrorRoute with two cookies",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(testutil.MirrorRouteStep("shadow", 10,
				kultav1alpha1.HeaderRouteMatch{Cookie: &kultav1alpha1.CookieMatch{Name: "a", Value: "1"}},
				kultav1alpha1.HeaderRouteMatch{Cookie: &kultav1alpha1.CookieMatch{Name: "b", Value: "1"}}))(ro)
		},
		field: "spec.strategy.canary.steps[0].setMirrorRoute.match", message: "setMirrorRoute.match may hold one cookie condition",
	},
	{
		name: "setHeaderRoute header without a value",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(testutil.HeaderRouteStep("testers", kultav1alpha1.HeaderRouteMatch{HeaderName: "X-Canary"}))(ro)
		},
		field: "spec.strategy.canary.steps[0].setHeaderRoute.match[0]", message: "match[].headerName needs headerValue",
	},
	{
		name: "setHeaderRoute value with exact and prefix",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			m := testutil.HeaderExact("X-Canary", "yes")
			m.HeaderValue.Prefix = ptr.To("y")
			testutil.WithCanarySteps(testutil.HeaderRouteStep("testers", m))(ro)
		},
		field: "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue", message: "headerValue must set exactly one of exact, prefix and regex",
	},
	{
		name: "setHeaderRoute matching the Cookie header",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(testutil.HeaderRouteStep("testers", testutil.HeaderExact("cookie", "a=b")))(ro)
		},
		field: "spec.strategy.canary.steps[0].setHeaderRoute.match[0]", message: "headerName must not be Cookie",
	},
	{
		name: "setHeaderRoute with two cookies",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			cookie := func(v string) kultav1alpha1.HeaderRouteMatch {
				return kultav1alpha1.HeaderRouteMatch{Cookie: &kultav1alpha1.CookieMatch{Name: "beta", Value: v}}
			}
			testutil.WithCanarySteps(testutil.HeaderRouteStep("testers", cookie("1"), cookie("2")))(ro)
		},
		field: "spec.strategy.canary.steps[0].setHeaderRoute.match", message: "setHeaderRoute.match may hold one cookie condition",
	},
	{
		name: "setHeaderRoute with a name that is no DNS label",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(testutil.HeaderRouteStep("Testers.1", testutil.HeaderExact("X-Canary", "yes")))(ro)
		},
		field: "spec.strategy.canary.steps[0].setHeaderRoute.name", message: "should match",
	},
	{
		name: "setHeaderRoute name ending like KULTA's numbering",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(testutil.HeaderRouteStep("qa-2", testutil.HeaderExact("X-Canary", "yes")))(ro)
		},
		field: "spec.strategy.canary.steps[0].setHeaderRoute.name", message: "must not end in a dash and digits",
	},
	{
		name:   "unknown antiAffinity",
		mutate: func(ro *kultav1alpha1.Rollout) { ro.Spec.AntiAffinity = "Sometimes" },
		field:  "spec.antiAffinity", message: `supported values: "Preferred", "Required"`,
	},
	{
		name:   "setCanaryScale without trafficRouting",
		mutate: testutil.WithCanarySteps(testutil.ScaleCanaryTo(1), testutil.Weight(50)),
		field:  "spec.strategy.canary", message: "setCanaryScale needs trafficRouting",
	},
	{
		name: "setCanaryScale with setWeight in one step",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			step := testutil.ScaleCanaryTo(1)
			step.SetWeight = ptr.To[int32](20)
			testutil.WithCanarySteps(step)(ro)
		},
		field: "spec.strategy.canary.steps[0]", message: "a canary step with setCanaryScale must not also set setWeight or pause",
	},
	{
		name: "setCanaryScale with two sizes",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			step := testutil.ScaleCanaryTo(1)
			step.SetCanaryScale.Weight = ptr.To[int32](20)
			testutil.WithCanarySteps(step)(ro)
		},
		field: "spec.strategy.canary.steps[0].setCanaryScale", message: "setCanaryScale must set exactly one of replicas, weight and matchTrafficWeight: true",
	},
	{
		name: "setCanaryScale with no size",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(kultav1alpha1.CanaryStep{SetCanaryScale: &kultav1alpha1.CanaryScale{MatchTrafficWeight: ptr.To(false)}})(ro)
		},
		field: "spec.strategy.canary.steps[0].setCanaryScale", message: "setCanaryScale must set exactly one of replicas, weight and matchTrafficWeight: true",
	},
	{
		name: "setCanaryScale weight above 100",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(testutil.ScaleCanaryPercent(120))(ro)
		},
		field: "spec.strategy.canary.steps[0].setCanaryScale.weight", message: "should be less than or equal to 100",
	},
	{
		name: "negative setCanaryScale replicas",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(testutil.ScaleCanaryTo(-1))(ro)
		},
		field: "spec.strategy.canary.steps[0].setCanaryScale.replicas", message: "should be greater than or equal to 0",
	},
	{
		name:   "pause duration with unknown unit",
		mutate: testutil.WithCanarySteps(testutil.Weight(10), testutil.PauseFor("5x")),
		field:  "spec.strategy.canary.steps[1].pause.duration", message: "must be a duration such as 30s, 5m, 2h or 1d",
	},
	{
		name:   "pause duration without unit",
		mutate: testutil.WithCanarySteps(testutil.PauseFor("10")),
		field:  "spec.strategy.canary.steps[0].pause.duration", message: "must be a duration such as 30s, 5m, 2h or 1d",
	},
	{
		name:   "same canary and stable service",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) { c.CanaryService = c.StableService }),
		field:  "spec.strategy.canary", message: "canaryService and stableService must name different Services",
	},
	{
		name:   "missing stable service",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) { c.StableService = "" }),
		field:  "spec.strategy.canary.stableService", message: "should be at least 1 chars long",
	},
	{
		name:   "canary port zero",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) { c.Port = ptr.To[int32](0) }),
		field:  "spec.strategy.canary.port", message: "should be greater than or equal to 1",
	},
	{
		name:   "negative canary scaleDownDelaySeconds",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) { c.ScaleDownDelaySeconds = ptr.To[int32](-1) }),
		field:  "spec.strategy.canary.scaleDownDelaySeconds", message: "should be greater than or equal to 0",
	},
	{
		name: "simple scaleDownDelaySeconds above a day",
		mutate: func(ro *kultav1alpha1.Rollout) {
			ro.Spec.Strategy = kultav1alpha1.RolloutStrategy{Simple: &kultav1alpha1.SimpleStrategy{ScaleDownDelaySeconds: ptr.To[int32](86401)}}
		},
		field: "spec.strategy.simple.scaleDownDelaySeconds", message: "should be less than or equal to 86400",
	},
	{
		name:   "negative minReadySeconds",
		mutate: func(ro *kultav1alpha1.Rollout) { ro.Spec.MinReadySeconds = -1 },
		field:  "spec.minReadySeconds", message: "should be greater than or equal to 0",
	},
	{
		name:   "confidenceLevel of 1",
		mutate: abAnalysis(func(a *kultav1alpha1.ABAnalysis) { a.ConfidenceLevel = ptr.To[kultav1alpha1.Decimal]("1") }),
		field:  "spec.strategy.abTesting.analysis.confidenceLevel", message: "must be strictly between 0 and 1",
	},
	{
		name:   "confidenceLevel of 0",
		mutate: abAnalysis(func(a *kultav1alpha1.ABAnalysis) { a.ConfidenceLevel = ptr.To[kultav1alpha1.Decimal]("0.0") }),
		field:  "spec.strategy.abTesting.analysis.confidenceLevel", message: "must be strictly between 0 and 1",
	},
	{
		name: "negative minEffectSize",
		mutate: abAnalysis(func(a *kultav1alpha1.ABAnalysis) {
			a.Metrics = []kultav1alpha1.ABMetric{{Name: "error-rate", Direction: kultav1alpha1.DirectionLower, MinEffectSize: ptr.To[kultav1alpha1.Decimal]("-0.1")}}
		}),
		field: "spec.strategy.abTesting.analysis.metrics[0].minEffectSize", message: "minEffectSize must not be negative",
	},
	{
		name: "unknown metric direction",
		mutate: abAnalysis(func(a *kultav1alpha1.ABAnalysis) {
			a.Metrics = []kultav1alpha1.ABMetric{{Name: "error-rate", Direction: "sideways"}}
		}),
		field: "spec.strategy.abTesting.analysis.metrics[0].direction", message: `supported values: "lower", "higher"`,
	},
	{
		name:   "same active and preview service",
		mutate: testutil.WithBlueGreen(func(bg *kultav1alpha1.BlueGreenStrategy) { bg.PreviewService = bg.ActiveService }),
		field:  "spec.strategy.blueGreen", message: "activeService and previewService must name different Services",
	},
	{
		name:   "autoPromotionSeconds without autoPromotionEnabled",
		mutate: testutil.WithBlueGreen(func(bg *kultav1alpha1.BlueGreenStrategy) { bg.AutoPromotionSeconds = ptr.To[int32](60) }),
		field:  "spec.strategy.blueGreen", message: "autoPromotionSeconds requires autoPromotionEnabled: true",
	},
	{
		name: "autoPromotionSeconds with autoPromotionEnabled false",
		mutate: testutil.WithBlueGreen(func(bg *kultav1alpha1.BlueGreenStrategy) {
			bg.AutoPromotionEnabled = ptr.To(false)
			bg.AutoPromotionSeconds = ptr.To[int32](60)
		}),
		field: "spec.strategy.blueGreen", message: "autoPromotionSeconds requires autoPromotionEnabled: true",
	},
	{
		name:   "same variant services",
		mutate: testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) { ab.VariantBService = ab.VariantAService }),
		field:  "spec.strategy.abTesting", message: "variantAService and variantBService must name different Services",
	},
	{
		name:   "header match without a name",
		mutate: testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) { ab.VariantBMatch.Header.Name = "" }),
		field:  "spec.strategy.abTesting.variantBMatch.header.name", message: "should be at least 1 chars long",
	},
	{
		name:   "header match type unknown",
		mutate: testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) { ab.VariantBMatch.Header.Type = "Prefix" }),
		field:  "spec.strategy.abTesting.variantBMatch.header.type", message: `supported values: "Exact", "RegularExpression"`,
	},
	{
		name:   "variant B match with neither header nor cookie",
		mutate: testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) { ab.VariantBMatch = kultav1alpha1.ABMatch{} }),
		field:  "spec.strategy.abTesting.variantBMatch", message: "must set header or cookie",
	},
	{
		name: "maxDuration that does not parse",
		mutate: testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) {
			ab.MaxDuration = ptr.To[kultav1alpha1.Duration]("forever")
		}),
		field: "spec.strategy.abTesting.maxDuration", message: "must be a duration such as 30s, 5m, 2h or 1d",
	},
	{
		name:   "negative replicas",
		mutate: testutil.WithReplicas(-1),
		field:  "spec.replicas", message: "should be greater than or equal to 0",
	},
	{
		name: "selector that does not match the template",
		mutate: func(ro *kultav1alpha1.Rollout) {
			ro.Spec.Selector = &kultav1alpha1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
		},
		field: "spec", message: "spec.selector.matchLabels must match spec.template.metadata.labels",
	},
	{
		name:   "maxSurge that is not a number or percentage",
		mutate: func(ro *kultav1alpha1.Rollout) { ro.Spec.MaxSurge = ptr.To(intstr.FromString("lots")) },
		field:  "spec.maxSurge", message: "must be a non-negative number or a percentage",
	},
	{
		name:   "negative maxUnavailable",
		mutate: func(ro *kultav1alpha1.Rollout) { ro.Spec.MaxUnavailable = ptr.To(intstr.FromInt32(-1)) },
		field:  "spec.maxUnavailable", message: "must be a non-negative number or a percentage",
	},
	{
		name:   "unknown failurePolicy",
		mutate: canaryAnalysis(func(a *kultav1alpha1.Analysis) { a.FailurePolicy = "Explode" }),
		field:  "spec.strategy.canary.analysis.failurePolicy", message: `supported values: "Pause", "Continue", "Rollback"`,
	},
	{
		name:   "warmupDuration with spaces",
		mutate: canaryAnalysis(func(a *kultav1alpha1.Analysis) { a.WarmupDuration = ptr.To[kultav1alpha1.Duration]("1 minute") }),
		field:  "spec.strategy.canary.analysis.warmupDuration", message: "must be a duration such as 30s, 5m, 2h or 1d",
	},
	{
		name: "metric interval that does not parse",
		mutate: canaryAnalysis(func(a *kultav1alpha1.Analysis) {
			a.Metrics[0].Interval = ptr.To[kultav1alpha1.Duration]("30")
		}),
		field: "spec.strategy.canary.analysis.metrics[0].interval", message: "must be a duration such as 30s, 5m, 2h or 1d",
	},
	{
		name:   "failureThreshold of zero",
		mutate: canaryAnalysis(func(a *kultav1alpha1.Analysis) { a.Metrics[0].FailureThreshold = ptr.To[int32](0) }),
		field:  "spec.strategy.canary.analysis.metrics[0].failureThreshold", message: "should be greater than or equal to 1",
	},
	{
		name: "prometheus address without a scheme",
		mutate: canaryAnalysis(func(a *kultav1alpha1.Analysis) {
			a.Prometheus = &kultav1alpha1.PrometheusConfig{Address: "prometheus:9090"}
		}),
		field: "spec.strategy.canary.analysis.prometheus.address", message: "must be an http:// or https:// URL",
	},
	{
		name: "trafficRouting without a provider",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
			c.TrafficRouting = &kultav1alpha1.TrafficRouting{}
		}),
		field: "spec.strategy.canary.trafficRouting", message: "trafficRouting must set at least one of gatewayAPI, istio or nginx",
	},
	{
		name: "istio with both virtualService and virtualServices",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
			vs := kultav1alpha1.IstioVirtualService{Name: "web"}
			c.TrafficRouting = &kultav1alpha1.TrafficRouting{Istio: &kultav1alpha1.IstioRouting{VirtualService: &vs, VirtualServices: []kultav1alpha1.IstioVirtualService{vs}}}
		}),
		field: "spec.strategy.canary.trafficRouting.istio", message: "istio must set exactly one of virtualService and virtualServices",
	},
	{
		name: "istio without a VirtualService",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
			c.TrafficRouting = &kultav1alpha1.TrafficRouting{Istio: &kultav1alpha1.IstioRouting{}}
		}),
		field: "spec.strategy.canary.trafficRouting.istio", message: "istio must set exactly one of virtualService and virtualServices",
	},
	{
		name: "istio subsets with one name",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
			c.TrafficRouting = &kultav1alpha1.TrafficRouting{Istio: &kultav1alpha1.IstioRouting{
				VirtualService:  &kultav1alpha1.IstioVirtualService{Name: "web"},
				DestinationRule: &kultav1alpha1.IstioDestinationRule{Name: "web", CanarySubsetName: "v", StableSubsetName: "v"},
			}}
		}),
		field: "spec.strategy.canary.trafficRouting.istio.destinationRule", message: "canarySubsetName and stableSubsetName must differ",
	},
	{
		name: "nginx without a stable Ingress",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
			c.TrafficRouting = &kultav1alpha1.TrafficRouting{NGINX: &kultav1alpha1.NGINXRouting{}}
		}),
		field: "spec.strategy.canary.trafficRouting.nginx", message: "nginx must set exactly one of stableIngress and stableIngresses",
	},
	{
		name: "nginx annotation prefix with spaces",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
			c.TrafficRouting = &kultav1alpha1.TrafficRouting{NGINX: &kultav1alpha1.NGINXRouting{StableIngress: "web", AnnotationPrefix: "my prefix"}}
		}),
		field: "spec.strategy.canary.trafficRouting.nginx.annotationPrefix", message: "should match",
	},
	{
		name: "gatewayAPI without a route",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
			c.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{}}
		}),
		field: "spec.strategy.canary.trafficRouting.gatewayAPI", message: "gatewayAPI must name at least one route",
	},
	{
		name: "route of an unknown kind",
		mutate: testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
			c.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{
				Routes: []kultav1alpha1.RouteReference{{Kind: "TCPRoute", Name: "web"}},
			}}
		}),
		field: "spec.strategy.canary.trafficRouting.gatewayAPI.routes[0].kind", message: `supported values: "HTTPRoute", "GRPCRoute"`,
	},
	{
		name: "compareToStable on a query of the user's",
		mutate: canaryAnalysis(func(a *kultav1alpha1.Analysis) {
			a.Metrics[0] = kultav1alpha1.Metric{Name: "queue-depth", Threshold: "10", Query: `sum(queue{service="{{.Service}}"})`, CompareToStable: true}
		}),
		field: "spec.strategy.canary.analysis.metrics[0]", message: "metrics[].compareToStable applies only to the built-in error-rate, latency-p95 and latency-p99 metrics",
	},
	{
		name: "tolerance without compareToStable",
		mutate: canaryAnalysis(func(a *kultav1alpha1.Analysis) {
			a.Metrics[0] = kultav1alpha1.Metric{Name: "latency-p95", Threshold: "500", Tolerance: "10%"}
		}),
		field: "spec.strategy.canary.analysis.metrics[0]", message: "metrics[].tolerance applies only to latency-p95 and latency-p99 with compareToStable: true",
	},
	{
		name: "tolerance on the error rate",
		mutate: canaryAnalysis(func(a *kultav1alpha1.Analysis) {
			a.Metrics[0].CompareToStable, a.Metrics[0].Tolerance = true, "10%"
		}),
		field: "spec.strategy.canary.analysis.metrics[0]", message: "metrics[].tolerance applies only to latency-p95 and latency-p99",
	},
	{
		name: "tolerance that is neither milliseconds nor a percentage",
		mutate: canaryAnalysis(func(a *kultav1alpha1.Analysis) {
			a.Metrics[0] = kultav1alpha1.Metric{Name: "latency-p95", Threshold: "500", CompareToStable: true, Tolerance: "1s"}
		}),
		field: "spec.strategy.canary.analysis.metrics[0].tolerance", message: "should match",
	},
	{
		name: "analysis confidenceLevel of 1",
		mutate: canaryAnalysis(func(a *kultav1alpha1.Analysis) {
			a.ConfidenceLevel = ptr.To[kultav1alpha1.Decimal]("1")
		}),
		field: "spec.strategy.canary.analysis.confidenceLevel", message: "analysis.confidenceLevel must be strictly between 0 and 1",
	},
	{
		name: "compareToStable in the simple strategy",
		mutate: testutil.WithSimple(&kultav1alpha1.Analysis{Metrics: []kultav1alpha1.Metric{
			{Name: "error-rate", Threshold: "5", CompareToStable: true},
		}}),
		field: "spec.strategy.simple", message: "compareToStable needs a stable Service to compare with",
	},
	{
		name:   "webhook URL that is no URL",
		mutate: testutil.WithWebhooks(testutil.Hook("gate", kultav1alpha1.WebhookConfirmPromotion, "not a url")),
		field:  "spec.strategy.canary.webhooks[0].url", message: "must be an absolute http or https URL",
	},
	{
		name:   "webhook URL of another scheme",
		mutate: testutil.WithWebhooks(testutil.Hook("gate", kultav1alpha1.WebhookConfirmPromotion, "ftp://hooks.example.com/gate")),
		field:  "spec.strategy.canary.webhooks[0].url", message: "must be an absolute http or https URL",
	},
	{
		name:   "webhook URL without a host",
		mutate: testutil.WithWebhooks(testutil.Hook("gate", kultav1alpha1.WebhookConfirmPromotion, "http:///gate")),
		field:  "spec.strategy.canary.webhooks[0].url", message: "must be an absolute http or https URL",
	},
	{
		name:   "webhook of an unknown type",
		mutate: testutil.WithWebhooks(testutil.Hook("gate", "confirm-everything", "http://hooks.example.com/")),
		field:  "spec.strategy.canary.webhooks[0].type", message: "Unsupported value",
	},
	{
		name: "webhook with both url and urlFrom",
		mutate: testutil.WithWebhooks(kultav1alpha1.Webhook{Name: "gate", Type: kultav1alpha1.WebhookRollback, URL: "http://hooks.example.com/",
			URLFrom: &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "url"}}),
		field: "spec.strategy.canary.webhooks[0]", message: "set exactly one of url and urlFrom",
	},
	{
		name:   "webhook with neither url nor urlFrom",
		mutate: testutil.WithWebhooks(kultav1alpha1.Webhook{Name: "gate", Type: kultav1alpha1.WebhookRollback}),
		field:  "spec.strategy.canary.webhooks[0]", message: "set exactly one of url and urlFrom",
	},
	{
		name: "failureThreshold on a gate",
		mutate: testutil.WithWebhooks(kultav1alpha1.Webhook{Name: "gate", Type: kultav1alpha1.WebhookConfirmPromotion, URL: "http://hooks.example.com/",
			FailureThreshold: ptr.To[int32](3)}),
		field: "spec.strategy.canary.webhooks[0]", message: "failureThreshold applies to rollout webhooks only",
	},
	{
		name: "interval on a gate",
		mutate: testutil.WithWebhooks(kultav1alpha1.Webhook{Name: "gate", Type: kultav1alpha1.WebhookConfirmPromotion, URL: "http://hooks.example.com/",
			Interval: ptr.To[kultav1alpha1.Duration]("30s")}),
		field: "spec.strategy.canary.webhooks[0]", message: "interval applies to rollout webhooks only",
	},
	{
		name: "two webhooks of one name",
		mutate: testutil.WithWebhooks(testutil.Hook("gate", kultav1alpha1.WebhookConfirmPromotion, "http://hooks.example.com/a"),
			testutil.Hook("gate", kultav1alpha1.WebhookRollback, "http://hooks.example.com/b")),
		field: "spec.strategy.canary.webhooks[1]", message: "Duplicate value",
	},
	{
		name: "webhook timeout that is no duration",
		mutate: testutil.WithWebhooks(kultav1alpha1.Webhook{Name: "gate", Type: kultav1alpha1.WebhookConfirmPromotion, URL: "http://hooks.example.com/",
			Timeout: ptr.To[kultav1alpha1.Duration]("soon")}),
		field: "spec.strategy.canary.webhooks[0].timeout", message: "must be a duration",
	},
	{
		name: "confirm-traffic-increase in blue-green",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithBlueGreen()(ro)
			testutil.WithWebhooks(testutil.Hook("more", kultav1alpha1.WebhookConfirmTrafficIncrease, "http://hooks.example.com/"))(ro)
		},
		field: "spec.strategy.blueGreen", message: "confirm-traffic-increase gates canary weight steps",
	},
	{
		name: "rollout webhook in an A/B test",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithABTesting()(ro)
			testutil.WithWebhooks(testutil.Hook("load", kultav1alpha1.WebhookRollout, "http://hooks.example.com/"))(ro)
		},
		field: "spec.strategy.abTesting", message: "confirm-traffic-increase and rollout webhooks need canary steps",
	},
	{
		name: "confirm-traffic-increase in a rolling update",
		mutate: func(ro *kultav1alpha1.Rollout) {
			testutil.WithSimple(nil)(ro)
			testutil.WithWebhooks(testutil.Hook("more", kultav1alpha1.WebhookConfirmTrafficIncrease, "http://hooks.example.com/"))(ro)
		},
		field: "spec.strategy.simple", message: "confirm-traffic-increase gates canary weight steps",
	},
}

// TestInvalidRolloutsRejected checks that the API server refuses each invalid Rollout with a
// message that names the offending field.
func TestInvalidRolloutsRejected(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.CreateNamespace(t, "invalid")
	if len(invalidRollouts) < 20 {
		t.Fatalf("want at least 20 invalid cases, have %d", len(invalidRollouts))
	}
	for i, tc := range invalidRollouts {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ro := testutil.Rollout(ns, fmt.Sprintf("invalid-%02d", i), tc.mutate)
			err := e.Client.Create(context.Background(), ro)
			g.Expect(err).To(HaveOccurred(), "case %d was accepted", i)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.field+":"), "the error must name the field")
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
		})
	}
}

// TestValidVariantsAccepted guards the rules above against rejecting what they should allow.
func TestValidVariantsAccepted(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.CreateNamespace(t, "valid")
	cases := map[string]testutil.RolloutOption{
		"equal weights":     testutil.WithCanarySteps(testutil.Weight(20), testutil.Weight(20), testutil.Weight(100)),
		"pause only":        testutil.WithCanarySteps(testutil.PauseFor("1d")),
		"compound duration": testutil.WithCanarySteps(testutil.Weight(5), testutil.PauseFor("1h30m")),
		"milliseconds":      testutil.WithCanarySteps(testutil.Weight(5), testutil.PauseFor("500ms")),
		"adopting with the Deployment's selector": adopt(kultav1alpha1.WorkloadRef{Name: "web", ScaleDown: kultav1alpha1.ScaleDownProgressively}),
		"adopting with a selector of its own": func(ro *kultav1alpha1.Rollout) {
			selector := ro.Spec.Selector
			adopt(kultav1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", ScaleDown: kultav1alpha1.ScaleDownOnSuccess})(ro)
			ro.Spec.Selector = selector
			ro.Spec.CanaryMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "canary"}}
		},
		"header routes": func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(
				testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes"), kultav1alpha1.HeaderRouteMatch{HeaderName: "User-Agent", HeaderValue: &kultav1alpha1.StringMatch{Prefix: ptr.To("Mozilla")}}),
				testutil.HeaderRouteStep("beta", kultav1alpha1.HeaderRouteMatch{Cookie: &kultav1alpha1.CookieMatch{Name: "beta", Value: "1"}},
					kultav1alpha1.HeaderRouteMatch{HeaderName: "X-Region", HeaderValue: &kultav1alpha1.StringMatch{Regex: ptr.To("eu-.*")}}),
				testutil.Weight(20), testutil.HeaderRouteStep("testers"), testutil.Weight(100))(ro)
		},
		"mirror routes": func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(
				testutil.MirrorRouteStep("shadow", 25),
				testutil.MirrorRouteStep("api", 0, kultav1alpha1.HeaderRouteMatch{HeaderName: "X-Api", HeaderValue: &kultav1alpha1.StringMatch{Prefix: ptr.To("v2")}}),
				testutil.HeaderRouteStep("shadow", testutil.HeaderExact("X-Canary", "yes")),
				testutil.Weight(20), testutil.MirrorRouteStep("api", 0), testutil.Weight(100))(ro)
		},
		"analysis steps": testutil.WithCanarySteps(testutil.Weight(10), testutil.AnalyzeStep(kultav1alpha1.Metric{Name: "error-rate", Threshold: "1"}),
			testutil.Weight(50), testutil.PauseFor("1m"), testutil.AnalyzeStep(kultav1alpha1.Metric{Name: "latency-p99", Threshold: "300", CompareToStable: true})),
		"preferred anti-affinity": func(ro *kultav1alpha1.Rollout) { ro.Spec.AntiAffinity = kultav1alpha1.AntiAffinityPreferred },
		"role metadata": func(ro *kultav1alpha1.Rollout) {
			ro.Spec.CanaryMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "canary", "example.com/tier": "", "v": "1.2_rc-1"},
				Annotations: map[string]string{"team.io/role": "the canary, as a sentence"}}
			ro.Spec.StableMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "stable"}}
		},
		"every canary scale": func(ro *kultav1alpha1.Rollout) {
			testutil.WithHTTPRoute("web")(ro)
			testutil.WithCanarySteps(testutil.ScaleCanaryTo(2), testutil.Weight(20), testutil.ScaleCanaryPercent(50),
				testutil.PauseUntilPromoted(), testutil.ScaleCanaryWithWeight(), testutil.Weight(100))(ro)
		},
		"maxSurge as plain string": func(ro *kultav1alpha1.Rollout) { ro.Spec.MaxSurge = ptr.To(intstr.FromString("1")) },
		"zero replicas":            testutil.WithReplicas(0),
		"auto promotion": testutil.WithBlueGreen(func(bg *kultav1alpha1.BlueGreenStrategy) {
			bg.AutoPromotionEnabled = ptr.To(true)
			bg.AutoPromotionSeconds = ptr.To[int32](30)
		}),
		"cookie only": testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) {
			ab.VariantBMatch = kultav1alpha1.ABMatch{Cookie: &kultav1alpha1.CookieMatch{Name: "ab_variant", Value: "B"}}
		}),
		"integer confidence text": abAnalysis(func(a *kultav1alpha1.ABAnalysis) { a.ConfidenceLevel = ptr.To[kultav1alpha1.Decimal]("0.9") }),
		"simple":                  testutil.WithSimple(nil),
		"simple with analysis": testutil.WithSimple(&kultav1alpha1.Analysis{Metrics: []kultav1alpha1.Metric{
			{Name: "error-rate", Threshold: "5"},
		}}),
		"latency compared with stable": canaryAnalysis(func(a *kultav1alpha1.Analysis) {
			a.ConfidenceLevel = ptr.To[kultav1alpha1.Decimal]("0.99")
			a.Metrics = append(a.Metrics,
				kultav1alpha1.Metric{Name: "latency-p95", Threshold: "500", CompareToStable: true, Tolerance: "20ms"},
				kultav1alpha1.Metric{Name: "latency-p99", Threshold: "900", CompareToStable: true, Tolerance: "12.5%"},
			)
			a.Metrics[0].CompareToStable = true
		}),
		"every webhook type": testutil.WithWebhooks(
			testutil.Hook("ask", kultav1alpha1.WebhookConfirmRollout, "https://hooks.example.com/confirm?team=shop"),
			testutil.Hook("prepare", kultav1alpha1.WebhookPreRollout, "http://10.0.0.7:8080/"),
			kultav1alpha1.Webhook{Name: "load", Type: kultav1alpha1.WebhookRollout, URL: "http://loadtester.test/", FailureThreshold: ptr.To[int32](3), Interval: ptr.To[kultav1alpha1.Duration]("30s"),
				Timeout: ptr.To[kultav1alpha1.Duration]("1m"), Metadata: map[string]string{"cmd": "hey -z 1m http://shop-canary/"}},
			testutil.Hook("more", kultav1alpha1.WebhookConfirmTrafficIncrease, "http://hooks.example.com/"),
			kultav1alpha1.Webhook{Name: "promote", Type: kultav1alpha1.WebhookConfirmPromotion,
				URLFrom: &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "promote-url"}, TokenFrom: &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "token"}},
			testutil.Hook("tell", kultav1alpha1.WebhookPostRollout, "http://hooks.example.com/"),
			testutil.Hook("stop", kultav1alpha1.WebhookRollback, "http://hooks.example.com/"),
		),
		"gates of a blue-green": func(ro *kultav1alpha1.Rollout) {
			testutil.WithBlueGreen()(ro)
			testutil.WithWebhooks(testutil.Hook("promote", kultav1alpha1.WebhookConfirmPromotion, "http://hooks.example.com/"),
				testutil.Hook("load", kultav1alpha1.WebhookRollout, "http://hooks.example.com/"))(ro)
		},
		"blue-green compared with active": testutil.WithBlueGreen(func(bg *kultav1alpha1.BlueGreenStrategy) {
			bg.Analysis = &kultav1alpha1.Analysis{Metrics: []kultav1alpha1.Metric{{Name: "latency-p95", Threshold: "500", CompareToStable: true}}}
		}),
	}
	i := 0
	for name, opt := range cases {
		i++
		t.Run(name, func(t *testing.T) {
			ro := testutil.Rollout(ns, fmt.Sprintf("valid-%02d", i), opt)
			if err := e.Client.Create(context.Background(), ro); err != nil {
				t.Fatalf("valid Rollout %q rejected: %v", name, err)
			}
		})
	}
}

// TestSelectorIsImmutable checks the transition rule on spec.selector.
func TestSelectorIsImmutable(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "immutable")
	ro := testutil.Rollout(ns, "web")
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	ro.Spec.Selector.MatchLabels["tier"] = "front"
	ro.Spec.Template.Metadata.Labels["tier"] = "front"
	err := e.Client.Update(ctx, ro)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.selector: Invalid value"))
	g.Expect(err.Error()).To(ContainSubstring("spec.selector is immutable"))
}

// adopt turns a Rollout into one that adopts a Deployment: workloadRef instead of template,
// and no selector of its own.
func adopt(ref kultav1alpha1.WorkloadRef) testutil.RolloutOption {
	return func(ro *kultav1alpha1.Rollout) {
		ro.Spec.Template = kultav1alpha1.PodTemplate{}
		ro.Spec.Selector = nil
		ro.Spec.WorkloadRef = &ref
	}
}

// TestWorkloadRefDefaultsAndTransitions checks what the API server fills in for workloadRef
// and the transition rules: a Rollout keeps the Deployment it adopted (switching would leave it
// scaled down), and cannot gain or lose spec.selector.
func TestWorkloadRefDefaultsAndTransitions(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "workloadref")
	ro := testutil.Rollout(ns, "web", adopt(kultav1alpha1.WorkloadRef{Name: "web"}))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), ro)).To(Succeed())
	g.Expect(*ro.Spec.WorkloadRef).To(Equal(kultav1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", ScaleDown: kultav1alpha1.ScaleDownNever}))
	g.Expect(ro.Spec.Template.Spec.Containers).To(BeEmpty())

	switched := ro.DeepCopy()
	switched.Spec.WorkloadRef.Name = "api"
	err := e.Client.Update(ctx, switched)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.workloadRef.name is immutable"))

	selected := ro.DeepCopy()
	selected.Spec.Selector = &kultav1alpha1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	err = e.Client.Update(ctx, selected)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.selector cannot be added or removed after creation"))

	mode := ro.DeepCopy()
	mode.Spec.WorkloadRef.ScaleDown = kultav1alpha1.ScaleDownProgressively
	g.Expect(e.Client.Update(ctx, mode)).To(Succeed(), "scaleDown may change")

	// Even with a selector of its own, a Rollout neither moves to another Deployment nor drops
	// the one it adopted for a template: the adopted one would stay scaled down.
	own := testutil.Rollout(ns, "own", func(r *kultav1alpha1.Rollout) {
		selector := r.Spec.Selector
		adopt(kultav1alpha1.WorkloadRef{Name: "web"})(r)
		r.Spec.Selector = selector
	})
	g.Expect(e.Client.Create(ctx, own)).To(Succeed())
	moved := own.DeepCopy()
	moved.Spec.WorkloadRef.Name = "web-v2"
	err = e.Client.Update(ctx, moved)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.workloadRef.name is immutable"))
	templated := testutil.Rollout(ns, "own")
	templated.ObjectMeta = own.ObjectMeta
	err = e.Client.Update(ctx, templated)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.workloadRef cannot be added or removed after creation"))
}

// TestScaleSubresource scales a Rollout through /scale, as an HPA or `kubectl scale` does.
func TestScaleSubresource(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "scale")
	ro := testutil.Rollout(ns, "web", testutil.WithReplicas(2))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())

	scale := &autoscalingv1.Scale{}
	g.Expect(e.Client.SubResource("scale").Get(ctx, ro, scale)).To(Succeed())
	g.Expect(scale.Spec.Replicas).To(Equal(int32(2)))

	scale.Spec.Replicas = 5
	g.Expect(e.Client.SubResource("scale").Update(ctx, ro, client.WithSubResourceBody(scale))).To(Succeed())
	g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), ro)).To(Succeed())
	g.Expect(ro.Spec.Replicas).To(Equal(ptr.To[int32](5)))
}
