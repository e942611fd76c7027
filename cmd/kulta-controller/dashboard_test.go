package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/false-systems/kulta/analysis"
	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

// dashboard is the part of the Grafana dashboard JSON the test reads.
type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboardQueriesReturnData runs the controller binary with a real Prometheus scraping its
// /metrics, drives a canary with analysis to completion (through a confirm-promotion webhook)
// and another to a rollback, and checks that every panel query of the chart's Grafana dashboard
// returns at least one series.
func TestDashboardQueriesReturnData(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var board dashboard
	data, err := os.ReadFile(filepath.Join(e.RepoRoot, "charts", "kulta", "dashboards", "kulta-rollouts.json"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(json.Unmarshal(data, &board)).To(Succeed())
	g.Expect(board.Panels).NotTo(BeEmpty())

	app := testenv.StartTrafficApp(t)
	metricsAddr := freeAddr(t)
	prom := testenv.StartPrometheus(t, metricsAddr, app.Target())
	startStandIns(t, ctx, e)
	bin := buildController(t)
	// A notification service for the notification panels: shop subscribes to it.
	var notified atomic.Int32
	notifications := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		notified.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer notifications.Close()
	notifyConfig := filepath.Join(t.TempDir(), "notifications.yaml")
	g.Expect(os.WriteFile(notifyConfig, []byte("services:\n- name: ops\n  type: webhook\n  url: "+notifications.URL+"/kulta\n"), 0o600)).To(Succeed())
	cmd := exec.Command(bin, "--kubeconfig", kubeconfigFor(t, e), "--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", freeAddr(t), "--prometheus-address", prom.Address(), "--zap-log-level", "error",
		"--notifications-config", notifyConfig)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	g.Expect(cmd.Start()).To(Succeed())
	defer func() {
		if err := cmd.Process.Kill(); err != nil {
			t.Logf("stopping the controller: %v", err)
		}
		if err := cmd.Wait(); err != nil {
			t.Logf("controller exited: %v", err)
		}
	}()

	// A confirm-promotion receiver saying yes, for the webhook panels: shop's promotion calls it
	// once (cart is aborted before its promotion).
	var calls atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer receiver.Close()

	ns := e.CreateNamespace(t, "dashboard")
	for _, name := range []string{"shop", "cart"} {
		for _, svc := range []string{name + "-stable", name + "-canary"} {
			g.Expect(e.Client.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80}}}})).To(Succeed())
		}
		g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, name, name+"-stable", name+"-canary"))).To(Succeed())
		app.Set(ns, name+"-canary", testenv.Traffic{RPS: 50, ErrorRatio: 0.01, Latency: 20 * time.Millisecond})
		ro := testutil.Rollout(ns, name, testutil.WithHTTPRoute(name), testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted()),
			testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
				c.Analysis = &kultav1alpha1.Analysis{Metrics: []kultav1alpha1.Metric{{
					Name: "error-rate", Threshold: "5", Interval: ptr.To[kultav1alpha1.Duration]("5s"),
				}}}
			}))
		if name == "shop" {
			ro.Annotations = map[string]string{kultav1alpha1.NotifyAnnotation: "ops"}
			ro.Spec.Strategy.SetStrategyWebhooks([]kultav1alpha1.Webhook{
				testutil.Hook("approve", kultav1alpha1.WebhookConfirmPromotion, receiver.URL)})
		}
		g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	}
	// A Rollout adopting a Deployment, for the adoption panel: the Deployment's counts are
	// published as long as the Rollout adopts it.
	legacy := map[string]string{"app": "legacy"}
	g.Expect(e.Client.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "legacy"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: legacy},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: legacy},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
			},
		},
	})).To(Succeed())
	adopting := testutil.Rollout(ns, "legacy", testutil.WithSimple(nil))
	adopting.Spec.Template, adopting.Spec.Selector = kultav1alpha1.PodTemplate{}, nil
	adopting.Spec.WorkloadRef = &kultav1alpha1.WorkloadRef{Name: "legacy"}
	g.Expect(e.Client.Create(ctx, adopting)).To(Succeed())
	rollouttest.DriveToCompletionAndRollback(g, e.Client, ns, "shop", "cart", 60*time.Second)
	g.Expect(calls.Load()).To(BeNumerically(">", 0), "confirm-promotion webhook calls")
	g.Eventually(notified.Load).WithTimeout(30*time.Second).Should(BeNumerically(">", 0), "notifications delivered")

	q, err := analysis.NewPrometheus(prom.Address())
	g.Expect(err).NotTo(HaveOccurred())
	// Each canary moved its route twice: to 50/50 once its Pods were ready, then back to 100/0
	// on promotion or abort. The step latency histogram observed those four writes, no more.
	g.Eventually(func() (float64, error) {
		v, err := q.Query(ctx, `sum(kulta_rollout_step_latency_seconds_count{strategy="canary"})`, time.Now())
		if err != nil || len(v) == 0 {
			return 0, err
		}
		return float64(v[0].Value), nil
	}).WithTimeout(30*time.Second).WithPolling(time.Second).Should(Equal(4.0), "step latency observations")
	for _, panel := range board.Panels {
		for _, target := range panel.Targets {
			g.Eventually(func() (int, error) {
				v, err := q.Query(ctx, target.Expr, time.Now())
				return len(v), err
			}).WithTimeout(30*time.Second).WithPolling(time.Second).Should(BeNumerically(">", 0),
				"panel %q query %s returned no series", panel.Title, target.Expr)
		}
	}
}

// startStandIns runs the kubelet and Gateway stand-ins (envtest has neither) until ctx ends.
func startStandIns(t *testing.T, ctx context.Context, e *testenv.Env) {
	t.Helper()
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.AddReplicaSetReadiness(mgr, nil); err != nil {
		t.Fatal(err)
	}
	if err := testenv.AddRouteAcceptor(mgr, nil); err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("stand-ins: %v", err)
		}
	}()
}
