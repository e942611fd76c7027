package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/shard"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

// replica is one kulta-controller process.
type replica struct {
	cmd         *exec.Cmd
	metricsAddr string
	// exited is closed once the process has exited; waitErr is then its exit error.
	exited  chan struct{}
	waitErr error
}

// buildController compiles the controller binary once for the process tests.
func buildController(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kulta-controller")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building kulta-controller: %v\n%s", err, out)
	}
	return bin
}

func kubeconfigFor(t *testing.T, e *testenv.Env) string {
	t.Helper()
	user, err := e.Environment().AddUser(envtest.User{Name: "kulta-controller", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startReplica starts a controller process with leader election in namespace, watching only
// that namespace; extra are further flags, such as a shard key. Without a shard key its Lease
// is kulta-NAMESPACE; with one, the shard's own Lease in that namespace.
func startReplica(t *testing.T, bin, kubeconfig, namespace string, extra ...string) *replica {
	t.Helper()
	metricsAddr := freeAddr(t)
	args := []string{"--kubeconfig", kubeconfig, "--leader-elect", "--leader-election-namespace", namespace,
		"--leader-election-lease-duration", "4s", "--leader-election-renew-deadline", "3s", "--leader-election-retry-period", "500ms",
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", freeAddr(t),
		"--namespaces", namespace, "--graceful-shutdown-timeout", "5s", "--zap-log-level", "error"}
	if !slices.ContainsFunc(extra, func(arg string) bool { return strings.HasPrefix(arg, "--shard-key") }) {
		args = append(args, "--leader-election-id", "kulta-"+namespace)
	}
	return startProcess(t, exec.Command(bin, append(args, extra...)...), metricsAddr)
}

// startProcess starts cmd, a controller process serving its metrics on metricsAddr, and kills
// it when t ends if it is still running. Its output goes to cmd's, or to standard error.
func startProcess(t *testing.T, cmd *exec.Cmd, metricsAddr string) *replica {
	t.Helper()
	r := &replica{cmd: cmd, metricsAddr: metricsAddr, exited: make(chan struct{})}
	if r.cmd.Stdout == nil {
		r.cmd.Stdout = os.Stderr
	}
	if r.cmd.Stderr == nil {
		r.cmd.Stderr = os.Stderr
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.waitErr = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
			return
		default:
		}
		if err := r.cmd.Process.Kill(); err != nil {
			t.Logf("killing controller process: %v", err)
		}
		<-r.exited
	})
	return r
}

// processSetup starts the stand-ins (ReplicaSet readiness, route acceptance), builds the
// controller and gives it a kubeconfig, and creates a namespace named after prefix; the
// stand-ins stop when t ends.
func processSetup(t *testing.T, e *testenv.Env, prefix string) (ctx context.Context, bin, kubeconfig, ns string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	startStandIns(t, ctx, e)
	return ctx, buildController(t), kubeconfigFor(t, e), e.CreateNamespace(t, prefix)
}

// createServices creates NAME-stable and NAME-canary, selecting app: NAME.
func createServices(ctx context.Context, g Gomega, e *testenv.Env, ns, name string) {
	for _, svc := range []string{name + "-stable", name + "-canary"} {
		g.Expect(e.Client.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80}}}})).To(Succeed())
	}
}

// leading reports whether the replica holds the Lease, from its own leader-election metric.
func (r *replica) leading() bool {
	resp, err := httpGet("http://" + r.metricsAddr + "/metrics")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(resp, "\n") {
		if strings.HasPrefix(line, "leader_election_master_status{") && strings.HasSuffix(line, " 1") {
			return true
		}
	}
	return false
}

// TestLeaderFailover runs two controller processes with leader election: only the leader
// reconciles; SIGKILL hands the Lease over within its duration and the rollout goes on with no
// step repeated or skipped; SIGTERM makes the next leader exit within its grace period.
func TestLeaderFailover(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, bin, kubeconfig, ns := processSetup(t, e, "ha")
	createServices(ctx, g, e, ns, "web")

	replicas := []*replica{startReplica(t, bin, kubeconfig, ns), startReplica(t, bin, kubeconfig, ns)}
	var leader, standby *replica
	g.Eventually(func() bool {
		a, b := replicas[0].leading(), replicas[1].leading()
		switch {
		case a && !b:
			leader, standby = replicas[0], replicas[1]
		case b && !a:
			leader, standby = replicas[1], replicas[0]
		}
		return leader != nil
	}).WithTimeout(30*time.Second).Should(BeTrue(), "exactly one replica leads")
	g.Consistently(standby.leading).WithTimeout(2*time.Second).Should(BeFalse(), "only one leader")

	ro := testutil.Rollout(ns, "web", testutil.WithReplicas(2), testutil.WithCanarySteps(
		testutil.Weight(25), testutil.PauseUntilPromoted(), testutil.Weight(50), testutil.PauseUntilPromoted(), testutil.Weight(75)))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	key := client.ObjectKeyFromObject(ro)
	get := func(g Gomega) *kultav1alpha1.Rollout {
		out := &kultav1alpha1.Rollout{}
		g.Expect(e.Client.Get(ctx, key, out)).To(Succeed())
		return out
	}
	g.Eventually(func(g Gomega) kultav1alpha1.Phase { return get(g).Status.Phase }).WithTimeout(30 * time.Second).Should(Equal(kultav1alpha1.PhaseCompleted))
	patch := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`))
	g.Expect(e.Client.Patch(ctx, ro, patch)).To(Succeed())
	g.Eventually(func(g Gomega) *int32 { return get(g).Status.CurrentStepIndex }).WithTimeout(30 * time.Second).Should(Equal(ptr.To[int32](1)))

	// SIGKILL the leader: no graceful release, the Lease must expire.
	g.Expect(leader.cmd.Process.Signal(syscall.SIGKILL)).To(Succeed())
	<-leader.exited
	killedAt := time.Now()
	g.Eventually(standby.leading).WithTimeout(20 * time.Second).Should(BeTrue())
	t.Logf("standby took over %s after SIGKILL (lease duration 4s)", time.Since(killedAt).Round(100*time.Millisecond))
	// The Lease lasts 4 s; allow for retries and a busy CI machine, not for a second lease period
	// on top of a slow one.
	g.Expect(time.Since(killedAt)).To(BeNumerically("<", 12*time.Second), "hand-over within the lease duration plus retries")

	promote := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"kulta.io/promote":"true"}}}`))
	g.Expect(e.Client.Patch(ctx, ro, promote)).To(Succeed())
	g.Eventually(func(g Gomega) *int32 { return get(g).Status.CurrentStepIndex }).WithTimeout(30 * time.Second).Should(Equal(ptr.To[int32](3)))
	g.Expect(rollouttest.StepHistory(get(g))).To(Equal([]string{"0->1", "1->2", "2->3"}), "no step repeated or skipped across the failover")

	// SIGTERM the new leader: it exits within its grace period.
	g.Expect(standby.cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	select {
	case <-standby.exited:
		g.Expect(standby.waitErr).NotTo(HaveOccurred(), "a clean exit on SIGTERM")
	case <-time.After(15 * time.Second):
		t.Fatal("the controller did not exit within its grace period after SIGTERM")
	}

	// The next leader resumes where the rollout stands.
	next := startReplica(t, bin, kubeconfig, ns)
	g.Eventually(next.leading).WithTimeout(15 * time.Second).Should(BeTrue())
	g.Expect(e.Client.Patch(ctx, ro, promote)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := get(g)
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(got.Status.CurrentPodTemplateHash))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(rollouttest.StepHistory(get(g))).To(Equal([]string{"0->1", "1->2", "2->3", "3->4", "4->5"}))
}

// rollouts lists the Rollouts the replica publishes kulta_rollout_info for: the ones it
// reconciled.
func (r *replica) rollouts() []string {
	resp, err := httpGet("http://" + r.metricsAddr + "/metrics")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(resp, "\n") {
		if !strings.HasPrefix(line, "kulta_rollout_info{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `rollout="`)
		name, _, _ := strings.Cut(rest, `"`)
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// leaderOf waits until exactly one of replicas leads and returns it and the others.
func leaderOf(t *testing.T, g Gomega, replicas ...*replica) (leader *replica, standbys []*replica) {
	t.Helper()
	g.Eventually(func() int {
		leader, standbys = nil, nil
		n := 0
		for _, r := range replicas {
			if r.leading() {
				leader, n = r, n+1
			} else {
				standbys = append(standbys, r)
			}
		}
		return n
	}).WithTimeout(30*time.Second).Should(Equal(1), "exactly one replica leads")
	return leader, standbys
}

// createShardRollout creates the Services of a Rollout named name and the Rollout, a canary of
// one step of 50 %, labelled for shard (unlabelled for "").
func createShardRollout(ctx context.Context, g Gomega, e *testenv.Env, ns, name, shard string) *kultav1alpha1.Rollout {
	createServices(ctx, g, e, ns, name)
	ro := testutil.Rollout(ns, name, testutil.WithCanarySteps(testutil.Weight(50)))
	if shard != "" {
		ro.Labels = map[string]string{kultav1alpha1.ShardLabel: shard}
	}
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	return ro
}

// firstImage is the image testutil.Rollout starts with.
const firstImage = "nginx:1.27"

// TestShardsSplitTheRollouts runs two shards of controller processes, a (a leader and a
// standby) and b, and later the replica for the Rollouts no shard claims: each reconciles only
// its own Rollouts, a Rollout of a shard that has no replica waits untouched, and SIGKILL of
// shard a's leader hands shard a (and only it) to its standby within the Lease.
func TestShardsSplitTheRollouts(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, bin, kubeconfig, ns := processSetup(t, e, "shards")
	rollout := func(name, shard string) *kultav1alpha1.Rollout { return createShardRollout(ctx, g, e, ns, name, shard) }
	get := func(g Gomega, ro *kultav1alpha1.Rollout) *kultav1alpha1.Rollout {
		out := &kultav1alpha1.Rollout{}
		g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), out)).To(Succeed())
		return out
	}
	completed := func(ro *kultav1alpha1.Rollout, image string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			got := get(g, ro)
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
			g.Expect(got.Spec.Template.Spec.Containers[0].Image).To(Equal(image))
			g.Expect(got.Status.StablePodTemplateHash).To(Equal(got.Status.CurrentPodTemplateHash))
		}).WithTimeout(30*time.Second).Should(Succeed(), "Rollout %s", ro.Name)
	}
	untouched := func(ro *kultav1alpha1.Rollout) {
		t.Helper()
		g.Consistently(func(g Gomega) {
			got := get(g, ro)
			g.Expect(got.Status.ObservedGeneration).To(BeZero(), "no status written")
			g.Expect(got.Finalizers).To(BeEmpty(), "no finalizer added")
		}).WithTimeout(3*time.Second).Should(Succeed(), "Rollout %s of no running shard", ro.Name)
	}

	a := []*replica{startReplica(t, bin, kubeconfig, ns, "--shard-key=a"), startReplica(t, bin, kubeconfig, ns, "--shard-key=a")}
	b := startReplica(t, bin, kubeconfig, ns, "--shard-key=b")
	leaderA, standbysA := leaderOf(t, g, a...)
	leaderOf(t, g, b) // its own Lease: shard a's leader does not stop it leading

	ra, rb, rest := rollout("ra", "a"), rollout("rb", "b"), rollout("rest", "")
	completed(ra, firstImage)
	completed(rb, firstImage)
	untouched(rest)
	g.Eventually(leaderA.rollouts).Should(Equal([]string{"ra"}), "shard a reconciles ra alone")
	g.Eventually(b.rollouts).Should(Equal([]string{"rb"}), "shard b reconciles rb alone")
	g.Expect(standbysA[0].rollouts()).To(BeEmpty(), "a standby reconciles nothing")

	// SIGKILL shard a's leader: its standby takes shard a over within the Lease; shard b goes on.
	g.Expect(leaderA.cmd.Process.Signal(syscall.SIGKILL)).To(Succeed())
	<-leaderA.exited
	killedAt := time.Now()
	g.Eventually(standbysA[0].leading).WithTimeout(20 * time.Second).Should(BeTrue())
	t.Logf("shard a's standby took over %s after SIGKILL (lease duration 4s)", time.Since(killedAt).Round(100*time.Millisecond))
	g.Expect(time.Since(killedAt)).To(BeNumerically("<", 12*time.Second), "hand-over within the lease duration plus retries")
	g.Expect(b.leading()).To(BeTrue(), "shard b keeps its leader")
	patch := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`))
	for _, ro := range []*kultav1alpha1.Rollout{ra, rb} {
		g.Expect(e.Client.Patch(ctx, ro.DeepCopy(), patch)).To(Succeed())
	}
	completed(ra, "nginx:1.28")
	completed(rb, "nginx:1.28")
	g.Expect(standbysA[0].rollouts()).To(Equal([]string{"ra"}))
	untouched(rest)

	// The replica for every Rollout no shard claims.
	main := startReplica(t, bin, kubeconfig, ns, "--watch-label-selector=!"+kultav1alpha1.ShardLabel)
	g.Eventually(main.leading).WithTimeout(30 * time.Second).Should(BeTrue())
	completed(rest, firstImage)
	g.Eventually(main.rollouts).Should(Equal([]string{"rest"}))
	// A process keeps a Rollout's record from its first reconcile of it: over a while, with
	// every shard running, none has reconciled another's Rollout.
	g.Consistently(func(g Gomega) {
		g.Expect(standbysA[0].rollouts()).To(Equal([]string{"ra"}), "shard a's new leader")
		g.Expect(b.rollouts()).To(Equal([]string{"rb"}), "shard b")
		g.Expect(main.rollouts()).To(Equal([]string{"rest"}), "the replica for unclaimed Rollouts")
	}).WithTimeout(3 * time.Second).Should(Succeed())
}

// TestShardMarksItsObjects moves a Rollout that an unsharded replica rolled out (its Services,
// route and first ReplicaSet unmarked) to shard a, and runs a replica of shard a, whose cache
// holds only the objects marked shard.kulta.io/a: it marks the Rollout's first ReplicaSet the
// first time it sees the Rollout, its Services and route on first read, and creates the next
// revision marked; the next rollout then moves the route and scales the first revision down as
// unsharded. The objects of a Rollout of shard b stay unmarked.
func TestShardMarksItsObjects(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, bin, kubeconfig, ns := processSetup(t, e, "shardmarks")
	mark := shard.Label("a")
	objects := func(name string) []client.Object {
		return []client.Object{
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-stable"}},
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-canary"}},
			&gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
		}
	}
	rollout := func(name string) *kultav1alpha1.Rollout {
		createServices(ctx, g, e, ns, name)
		g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, name, name+"-stable", name+"-canary"))).To(Succeed())
		ro := testutil.Rollout(ns, name, testutil.WithCanarySteps(testutil.Weight(50)), testutil.WithHTTPRoute(name),
			testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) { c.ScaleDownDelaySeconds = ptr.To[int32](0) }))
		g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
		return ro
	}
	completed := func(ro *kultav1alpha1.Rollout, image string) *kultav1alpha1.Rollout {
		t.Helper()
		got := &kultav1alpha1.Rollout{}
		g.Eventually(func(g Gomega) {
			g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), got)).To(Succeed())
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
			g.Expect(got.Spec.Template.Spec.Containers[0].Image).To(Equal(image))
			g.Expect(got.Status.StablePodTemplateHash).To(Equal(got.Status.CurrentPodTemplateHash))
		}).WithTimeout(30*time.Second).Should(Succeed(), "Rollout %s", ro.Name)
		return got
	}
	replicaSet := func(g Gomega, ro *kultav1alpha1.Rollout, hash string) *appsv1.ReplicaSet {
		rs := &appsv1.ReplicaSet{}
		g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: ro.Name + "-" + hash}, rs)).To(Succeed())
		return rs
	}
	marked := func(g Gomega, obj client.Object) bool {
		g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		_, ok := obj.GetLabels()[mark]
		return ok
	}

	// Rolled out unsharded: nothing is marked.
	unsharded := startReplica(t, bin, kubeconfig, ns)
	moved := rollout("moved")
	first := completed(moved, firstImage).Status.StablePodTemplateHash
	g.Expect(unsharded.cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	<-unsharded.exited
	for _, obj := range append(objects("moved"), replicaSet(g, moved, first)) {
		g.Expect(marked(g, obj)).To(BeFalse(), "%s marked by an unsharded replica", obj.GetName())
	}

	other := rollout("other")
	g.Expect(e.Client.Patch(ctx, other, client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"`+kultav1alpha1.ShardLabel+`":"b"}}}`)))).To(Succeed())
	g.Expect(e.Client.Patch(ctx, moved, client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"`+kultav1alpha1.ShardLabel+`":"a"}}}`)))).To(Succeed())
	a := startReplica(t, bin, kubeconfig, ns, "--shard-key=a")
	g.Eventually(a.leading).WithTimeout(30 * time.Second).Should(BeTrue())
	g.Eventually(func(g Gomega) {
		g.Expect(marked(g, replicaSet(g, moved, first))).To(BeTrue())
	}).WithTimeout(20*time.Second).Should(Succeed(), "the first revision, created unsharded, is marked when shard a first sees the Rollout")

	patch := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`))
	g.Expect(e.Client.Patch(ctx, moved.DeepCopy(), patch)).To(Succeed())
	second := completed(moved, "nginx:1.28").Status.StablePodTemplateHash
	g.Expect(second).NotTo(Equal(first))
	g.Expect(marked(g, replicaSet(g, moved, second))).To(BeTrue(), "shard a creates its revisions marked")
	for _, obj := range objects("moved") {
		g.Expect(marked(g, obj)).To(BeTrue(), "%s marked on first read", obj.GetName())
	}
	route := &gatewayv1.HTTPRoute{}
	g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "moved"}, route)).To(Succeed())
	w, ok := rollouttest.RouteWeights(route, "moved-stable", "moved-canary")
	g.Expect(ok).To(BeTrue())
	g.Expect([]int32{w.Stable, w.Canary}).To(Equal([]int32{100, 0}), "the route, read through the mark, is handed back to stable")
	g.Eventually(func(g Gomega) {
		g.Expect(replicaSet(g, moved, first).Spec.Replicas).To(Equal(ptr.To[int32](0)))
	}).WithTimeout(20*time.Second).Should(Succeed(), "the first revision, seen through its mark, is scaled down")

	for _, obj := range objects("other") {
		g.Expect(marked(g, obj)).To(BeFalse(), "%s of shard b marked by shard a", obj.GetName())
	}
	rs := &appsv1.ReplicaSetList{}
	g.Expect(e.Client.List(ctx, rs, client.InNamespace(ns))).To(Succeed())
	for _, item := range rs.Items {
		if item.Labels["app"] == "other" {
			t.Errorf("shard a created ReplicaSet %s for shard b's Rollout", item.Name)
		}
	}

	// Deleted, the moved Rollout is finalized by shard a through what it marked: its Services get
	// their own selectors back and the Rollout goes.
	g.Expect(e.Client.Delete(ctx, moved.DeepCopy())).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(e.Client.Get(ctx, client.ObjectKeyFromObject(moved), &kultav1alpha1.Rollout{}))
	}).WithTimeout(30*time.Second).Should(BeTrue(), "shard a finalizes the Rollout it took over")
	for _, name := range []string{"moved-stable", "moved-canary"} {
		svc := &corev1.Service{}
		g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, svc)).To(Succeed())
		g.Expect(svc.Spec.Selector).To(Equal(map[string]string{"app": "moved"}), "Service %s has its own selector back", name)
	}
}
