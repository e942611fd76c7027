package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

// TestControllerRunsOnOldestGatewayAPI runs the controller binary against an API server
// with the oldest Gateway API CRDs KULTA supports, which serve no GRPCRoute and keep no rule
// names: it must start (watching only HTTPRoutes) and move a canary's traffic on an HTTPRoute.
func TestControllerRunsOnOldestGatewayAPI(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	dir, err := testenv.GatewayAPICRDDirAt(e.RepoRoot, gatewayapi.MinimumVersion)
	g.Expect(err).NotTo(HaveOccurred())
	old, err := testenv.StartWithGatewayAPI(dir)
	g.Expect(err).NotTo(HaveOccurred())
	// A cleanup, not a defer: it must run after the namespace's (cleanups run last first).
	t.Cleanup(func() {
		if err := old.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startStandIns(t, ctx, old)

	// A process of its own: controller names are unique within a process, and TestControllerRuns
	// runs one in this one.
	probeAddr := freeAddr(t)
	cmd := exec.Command(buildController(t), "--kubeconfig", kubeconfigFor(t, old), "--metrics-bind-address", "0",
		"--health-probe-bind-address", probeAddr, "--zap-log-level", "error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	g.Expect(cmd.Start()).To(Succeed())
	// exited is closed once the controller exits, with exitErr set.
	exited := make(chan struct{})
	var exitErr error
	go func() {
		exitErr = cmd.Wait()
		close(exited)
	}()
	defer func() {
		if err := cmd.Process.Kill(); err != nil {
			t.Logf("stopping the controller: %v", err)
		}
		<-exited
	}()
	g.Eventually(func() int { return status(probeAddr, "/readyz") }).WithTimeout(30*time.Second).Should(Equal(http.StatusOK),
		"the controller must start where GRPCRoute is not served")

	ns := old.CreateNamespace(t, "oldest")
	for _, name := range []string{"web-stable", "web-canary"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
		g.Expect(old.Client.Create(ctx, svc)).To(Succeed())
	}
	route := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
		"parentRefs": []any{map[string]any{"name": "public"}},
		"rules": []any{map[string]any{"backendRefs": []any{
			map[string]any{"name": "web-stable", "port": int64(80), "weight": int64(100)},
			map[string]any{"name": "web-canary", "port": int64(80), "weight": int64(0)},
		}}},
	}}}
	route.SetAPIVersion(gatewayapi.Group + "/v1")
	route.SetKind("HTTPRoute")
	route.SetNamespace(ns)
	route.SetName("web")
	g.Expect(old.Client.Create(ctx, route)).To(Succeed())
	ro := testutil.Rollout(ns, "web", testutil.WithReplicas(2), testutil.WithHTTPRoute("web"))
	g.Expect(old.Client.Create(ctx, ro)).To(Succeed())
	phase := func() kultav1alpha1.Phase {
		var got kultav1alpha1.Rollout
		if err := old.Client.Get(ctx, client.ObjectKeyFromObject(ro), &got); err != nil {
			return ""
		}
		return got.Status.Phase
	}
	g.Eventually(phase).WithTimeout(20 * time.Second).Should(Equal(kultav1alpha1.PhaseCompleted))

	patch := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`))
	g.Expect(old.Client.Patch(ctx, ro, patch)).To(Succeed())
	weights := func() []int64 {
		stored := route.DeepCopy()
		if err := old.Client.Get(ctx, client.ObjectKeyFromObject(route), stored); err != nil {
			return nil
		}
		rules, _, _ := unstructured.NestedSlice(stored.Object, "spec", "rules")
		var out []int64
		for _, ref := range rules[0].(map[string]any)["backendRefs"].([]any) {
			out = append(out, ref.(map[string]any)["weight"].(int64))
		}
		return out
	}
	g.Eventually(weights).WithTimeout(20 * time.Second).Should(Equal([]int64{80, 20}))
	routed := func() metav1.ConditionStatus {
		var got kultav1alpha1.Rollout
		if err := old.Client.Get(ctx, client.ObjectKeyFromObject(ro), &got); err != nil {
			return ""
		}
		if c := meta.FindStatusCondition(got.Status.Conditions, kultav1alpha1.ConditionTrafficRouted); c != nil {
			return c.Status
		}
		return ""
	}
	g.Eventually(routed).WithTimeout(20*time.Second).Should(Equal(metav1.ConditionTrue), "the accepted route carries the step's weights")
	g.Eventually(phase).WithTimeout(20*time.Second).Should(Equal(kultav1alpha1.PhasePaused), "the step is done, the pause begins")

	select {
	case <-exited:
		t.Fatalf("the controller exited: %v", exitErr)
	default:
	}
}
