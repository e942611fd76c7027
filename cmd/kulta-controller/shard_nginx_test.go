package main

import (
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/shard"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers/nginx"
)

// TestShardMarksNGINXIngresses moves an NGINX-routed Rollout, paused mid-canary by an unsharded
// replica (its stable Ingress and canary Ingress unmarked), to shard a and to another stable
// Ingress, and runs a replica of shard a, whose cache holds only the Ingresses marked
// shard.kulta.io/a. The canary Ingress made unsharded, which the Rollout no longer needs, is
// marked when the replica first sees the Rollout, so that the router finds it through its index
// and deletes it; the canary Ingress of the new stable Ingress is created marked; the new stable
// Ingress is marked on first read; promoted, the Rollout completes and its canary Ingress goes.
// Then, in shard a, an abort mid-canary removes the canary Ingress, a fix pushed after it gets a
// marked one, and deleting the Rollout mid-canary removes that and leaves the stable Ingress.
// The Ingresses of a Rollout moved to shard b, paused with a canary Ingress in the same
// namespace, stay unmarked and as they were.
func TestShardMarksNGINXIngresses(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, bin, kubeconfig, ns := processSetup(t, e, "shardnginx")
	const providers = "--traffic-providers=nginx"
	mark := shard.Label("a")
	weightKey := nginx.DefaultAnnotationPrefix + "/canary-weight"
	ingress := func(g Gomega, name string) *networkingv1.Ingress {
		ing := &networkingv1.Ingress{}
		g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ing)).To(Succeed())
		return ing
	}
	marked := func(g Gomega, name string) bool {
		_, ok := ingress(g, name).Labels[mark]
		return ok
	}
	gone := func(name string) func() bool {
		return func() bool {
			return apierrors.IsNotFound(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &networkingv1.Ingress{}))
		}
	}
	rollout := func(name, shardKey string) *kultav1alpha1.Rollout {
		createServices(ctx, g, e, ns, name)
		g.Expect(e.Client.Create(ctx, rollouttest.StableIngress(ns, name, name+".example.com", name+"-stable"))).To(Succeed())
		ro := testutil.Rollout(ns, name, testutil.WithNGINX(name),
			testutil.WithCanarySteps(testutil.Weight(30), testutil.PauseUntilPromoted(), testutil.Weight(100)),
			testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) { c.ScaleDownDelaySeconds = ptr.To[int32](0) }))
		if shardKey != "" {
			ro.Labels = map[string]string{kultav1alpha1.ShardLabel: shardKey}
		}
		g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
		return ro
	}
	phase := func(ro *kultav1alpha1.Rollout, want kultav1alpha1.Phase, image string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			got := &kultav1alpha1.Rollout{}
			g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), got)).To(Succeed())
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.Phase).To(Equal(want))
			g.Expect(got.Spec.Template.Spec.Containers[0].Image).To(Equal(image))
		}).WithTimeout(30*time.Second).Should(Succeed(), "Rollout %s %s at %s", ro.Name, want, image)
	}
	patch := func(ro *kultav1alpha1.Rollout, typ types.PatchType, body string) {
		t.Helper()
		g.Expect(e.Client.Patch(ctx, ro.DeepCopy(), client.RawPatch(typ, []byte(body)))).To(Succeed())
	}
	newImage := `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`

	// Both paused at 30 by an unsharded replica: nothing is marked.
	moved, other := rollout("moved", ""), rollout("other", "")
	unsharded := startReplica(t, bin, kubeconfig, ns, providers)
	for _, ro := range []*kultav1alpha1.Rollout{moved, other} {
		phase(ro, kultav1alpha1.PhaseCompleted, firstImage)
		patch(ro, types.JSONPatchType, newImage)
		phase(ro, kultav1alpha1.PhasePaused, "nginx:1.28")
	}
	oldCanary, otherCanary := nginx.CanaryIngressName("moved", "moved"), nginx.CanaryIngressName("other", "other")
	g.Expect(ingress(g, oldCanary).Annotations[weightKey]).To(Equal("30"))
	g.Expect(ingress(g, otherCanary).Annotations[weightKey]).To(Equal("30"))
	g.Expect(unsharded.cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	<-unsharded.exited
	for _, name := range []string{"moved", oldCanary, "other", otherCanary} {
		g.Expect(marked(g, name)).To(BeFalse(), "Ingress %s marked by an unsharded replica", name)
	}

	// other goes to shard b, which has no replica running. moved goes to shard a and to stable
	// Ingress moved-next: the canary Ingress of moved is left over.
	patch(other, types.MergePatchType, `{"metadata":{"labels":{"`+kultav1alpha1.ShardLabel+`":"b"}}}`)
	g.Expect(e.Client.Create(ctx, rollouttest.StableIngress(ns, "moved-next", "next.moved.example.com", "moved-stable"))).To(Succeed())
	patch(moved, types.MergePatchType, `{"metadata":{"labels":{"`+kultav1alpha1.ShardLabel+`":"a"}},`+
		`"spec":{"strategy":{"canary":{"trafficRouting":{"nginx":{"stableIngress":"moved-next"}}}}}}`)
	a := startReplica(t, bin, kubeconfig, ns, "--shard-key=a", providers)
	g.Eventually(a.leading).WithTimeout(30 * time.Second).Should(BeTrue())
	g.Eventually(gone(oldCanary)).WithTimeout(20*time.Second).Should(BeTrue(),
		"the canary Ingress made unsharded, marked when shard a first sees the Rollout, is found through the index and deleted")
	newCanary := nginx.CanaryIngressName("moved", "moved-next")
	g.Eventually(func(g Gomega) {
		ing := ingress(g, newCanary)
		g.Expect(ing.Annotations[weightKey]).To(Equal("30"))
		g.Expect(ing.Labels).To(HaveKey(mark), "shard a creates its canary Ingresses marked")
	}).WithTimeout(20 * time.Second).Should(Succeed())
	g.Expect(marked(g, "moved-next")).To(BeTrue(), "the stable Ingress is marked on first read")

	// Promoted, the Rollout completes through what shard a marked: its canary Ingress goes.
	patch(moved, types.MergePatchType, `{"metadata":{"annotations":{"`+kultav1alpha1.PromoteAnnotation+`":"true"}}}`)
	phase(moved, kultav1alpha1.PhaseCompleted, "nginx:1.28")
	g.Eventually(gone(newCanary)).WithTimeout(20*time.Second).Should(BeTrue(), "the promotion deletes the canary Ingress")

	// In shard a, a new revision paused at 30 and aborted loses its canary Ingress; a fix pushed
	// after the abort gets one, marked, and deleting the Rollout mid-canary removes it (the
	// finalizer's clean-up) and leaves the stable Ingress.
	patch(moved, types.JSONPatchType, `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.29"}]`)
	phase(moved, kultav1alpha1.PhasePaused, "nginx:1.29")
	g.Expect(ingress(g, newCanary).Labels).To(HaveKey(mark))
	patch(moved, types.MergePatchType, `{"metadata":{"annotations":{"`+kultav1alpha1.AbortAnnotation+`":"true"}}}`)
	g.Eventually(gone(newCanary)).WithTimeout(20*time.Second).Should(BeTrue(), "the abort deletes the canary Ingress")
	patch(moved, types.JSONPatchType, `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.30"}]`)
	g.Eventually(func(g Gomega) {
		ing := ingress(g, newCanary)
		g.Expect(ing.Annotations[weightKey]).To(Equal("30"))
		g.Expect(ing.Labels).To(HaveKey(mark))
	}).WithTimeout(30*time.Second).Should(Succeed(), "the fix pushed after the abort gets a marked canary Ingress")
	g.Expect(e.Client.Delete(ctx, moved.DeepCopy())).To(Succeed())
	g.Eventually(gone(newCanary)).WithTimeout(20*time.Second).Should(BeTrue(), "deleting the Rollout mid-canary deletes its canary Ingress")
	g.Eventually(func() bool {
		return apierrors.IsNotFound(e.Client.Get(ctx, client.ObjectKeyFromObject(moved), &kultav1alpha1.Rollout{}))
	}).WithTimeout(20*time.Second).Should(BeTrue(), "shard a finalizes the Rollout")
	g.Expect(marked(g, "moved-next")).To(BeTrue(), "the stable Ingress stays")

	// Shard a's first look at moved listed the namespace's unmarked canary Ingresses, other's
	// among them: it marked only moved's.
	g.Consistently(func(g Gomega) {
		for _, name := range []string{"other", otherCanary} {
			g.Expect(marked(g, name)).To(BeFalse(), "shard b's Ingress %s marked by shard a", name)
		}
		g.Expect(ingress(g, otherCanary).Annotations[weightKey]).To(Equal("30"), "shard b's canary Ingress left as it was")
	}).WithTimeout(2 * time.Second).Should(Succeed())
}
