package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

var (
	env        *testenv.Env
	kubeconfig string
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, func(ctx context.Context, e *testenv.Env) error {
		user, err := e.Environment().AddUser(envtest.User{Name: "kubectl-kulta", Groups: []string{"system:masters"}}, nil)
		if err != nil {
			return err
		}
		data, err := user.KubeConfig()
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "kubectl-kulta")
		if err != nil {
			return err
		}
		kubeconfig = filepath.Join(dir, "kubeconfig")
		if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
			return err
		}
		_, err = rollouttest.Start(ctx, e)
		return err
	}))
}

// kulta runs the plugin as `kubectl kulta ARGS -n NS` would, returning its exit code and output.
func kulta(t *testing.T, ns string, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append(args, "--kubeconfig", kubeconfig, "-n", ns), &out, &errOut)
	return code, out.String() + errOut.String()
}

func setup(t *testing.T, name string, opts ...testutil.RolloutOption) (string, *kultav1alpha1.Rollout) {
	t.Helper()
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "plugin")
	for _, svc := range []string{name + "-stable", name + "-canary"} {
		g.Expect(e.Client.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80}}}})).To(Succeed())
	}
	ro := testutil.Rollout(ns, name, append([]testutil.RolloutOption{testutil.WithReplicas(2)}, opts...)...)
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	g.Eventually(func() int { code, _ := kulta(t, ns, "status", name); return code }).WithTimeout(30 * time.Second).Should(Equal(exitOK))
	return ns, ro
}

func rollout(g Gomega, ro *kultav1alpha1.Rollout) *kultav1alpha1.Rollout {
	out := &kultav1alpha1.Rollout{}
	g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(ro), out)).To(Succeed())
	return out
}

func setImage(t *testing.T, ro *kultav1alpha1.Rollout, image string) {
	t.Helper()
	g := NewWithT(t)
	// The controller writes the Rollout's status meanwhile; read again on a conflict.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := rollout(g, ro)
		cur.Spec.Template.Spec.Containers[0].Image = image
		return env.Client.Update(context.Background(), cur)
	})).To(Succeed())
}

func TestVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "kubectl-kulta") {
		t.Errorf("version: %d %q", code, out.String())
	}
	if code := run([]string{"promote"}, &out, &errOut); code != exitError {
		t.Errorf("promote without a name exited %d, want %d", code, exitError)
	}
}

func TestPromoteGetListAndStatus(t *testing.T) {
	g := NewWithT(t)
	ns, ro := setup(t, "web", testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted()))
	setImage(t, ro, "nginx:1.28")
	g.Eventually(func() string { _, out := kulta(t, ns, "get", "rollout", "web"); return out }).WithTimeout(30 * time.Second).
		Should(And(ContainSubstring("Phase:"), ContainSubstring("Paused"), ContainSubstring("Step:"), ContainSubstring("1/2"),
			ContainSubstring("50% to the current revision"), ContainSubstring("nginx:1.27"), ContainSubstring("nginx:1.28"),
			ContainSubstring("(stable)"), ContainSubstring("(current)"), ContainSubstring("WaitingForPromotion")))

	code, out := kulta(t, ns, "status", "web")
	g.Expect(code).To(Equal(exitTimedOut), out)
	code, out = kulta(t, ns, "status", "web", "--watch", "--timeout", "2s", "--interval", "200ms")
	g.Expect(code).To(Equal(exitTimedOut), out)
	g.Expect(out).To(ContainSubstring("timed out"))

	code, out = kulta(t, ns, "list")
	g.Expect(code).To(Equal(exitOK))
	g.Expect(out).To(MatchRegexp(`web\s+canary\s+Paused\s+1\s+50`))

	code, out = kulta(t, ns, "promote", "web")
	g.Expect(code).To(Equal(exitOK), out)
	code, out = kulta(t, ns, "status", "web", "--watch", "--timeout", "30s", "--interval", "200ms")
	g.Expect(code).To(Equal(exitOK), out)
	g.Expect(out).To(ContainSubstring("completed"))
}

func TestPromoteFullAbortRetryPauseResume(t *testing.T) {
	g := NewWithT(t)
	ns, ro := setup(t, "api", testutil.WithCanarySteps(testutil.Weight(25), testutil.PauseUntilPromoted(), testutil.Weight(50), testutil.PauseUntilPromoted()))

	setImage(t, ro, "nginx:1.28")
	g.Eventually(func() kultav1alpha1.Phase { return rollout(g, ro).Status.Phase }).WithTimeout(30 * time.Second).Should(Equal(kultav1alpha1.PhasePaused))
	code, out := kulta(t, ns, "abort", "api")
	g.Expect(code).To(Equal(exitOK), out)
	g.Eventually(func() int { code, _ := kulta(t, ns, "status", "api"); return code }).WithTimeout(30 * time.Second).Should(Equal(exitFailed))

	code, out = kulta(t, ns, "retry", "api")
	g.Expect(code).To(Equal(exitOK), out)
	g.Eventually(func() kultav1alpha1.Phase { return rollout(g, ro).Status.Phase }).WithTimeout(30 * time.Second).Should(Equal(kultav1alpha1.PhasePaused))

	code, out = kulta(t, ns, "pause", "api")
	g.Expect(code).To(Equal(exitOK), out)
	g.Expect(rollout(g, ro).Spec.Paused).To(BeTrue())
	g.Eventually(func() string {
		for _, c := range rollout(g, ro).Status.Conditions {
			if c.Type == kultav1alpha1.ConditionPaused {
				return c.Reason
			}
		}
		return ""
	}).WithTimeout(30*time.Second).Should(Equal("PausedByUser"), "the controller shows the pause")
	code, out = kulta(t, ns, "promote", "api", "--full")
	g.Expect(code).To(Equal(exitOK), out)
	g.Consistently(func() *int32 { return rollout(g, ro).Status.CurrentStepIndex }).WithTimeout(2*time.Second).
		Should(Equal(ptr.To[int32](1)), "a paused rollout does not move")
	code, out = kulta(t, ns, "resume", "api")
	g.Expect(code).To(Equal(exitOK), out)
	code, out = kulta(t, ns, "conclude", "api")
	g.Expect(code).To(Equal(exitOK), out)
	g.Expect(out).To(ContainSubstring("annotated kulta.io/conclude-experiment=true"))
	code, out = kulta(t, ns, "status", "api", "--watch", "--timeout", "30s", "--interval", "200ms")
	g.Expect(code).To(Equal(exitOK), out)
}

func TestUndoReturnsToThePreviousRevision(t *testing.T) {
	g := NewWithT(t)
	ns, ro := setup(t, "shop", testutil.WithCanarySteps(testutil.Weight(100)))
	first := rollout(g, ro).Status.StablePodTemplateHash
	setImage(t, ro, "nginx:1.28")
	g.Eventually(func() int { code, _ := kulta(t, ns, "status", "shop"); return code }).WithTimeout(30 * time.Second).Should(Equal(exitOK))
	g.Expect(rollout(g, ro).Status.StablePodTemplateHash).NotTo(Equal(first))

	code, out := kulta(t, ns, "undo", "shop")
	g.Expect(code).To(Equal(exitOK), out)
	g.Expect(out).To(ContainSubstring("rolled back to revision 1"))
	g.Eventually(func(g Gomega) {
		got := rollout(g, ro)
		g.Expect(got.Spec.Template.Spec.Containers[0].Image).To(Equal("nginx:1.27"))
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(first), "the old revision keeps its hash")
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	code, out = kulta(t, ns, "undo", "shop", "--to-revision", "9")
	g.Expect(code).To(Equal(exitError), out)
	g.Expect(out).To(ContainSubstring("no revision 9"))
	code, out = kulta(t, ns, "get", "rollout", "missing")
	g.Expect(code).To(Equal(exitError))
	g.Expect(out).To(ContainSubstring("not found"))
}
