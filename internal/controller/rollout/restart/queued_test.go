package restart_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

// TestCountsWaitBehindQueuedWrites runs a controller whose client, by the limit it is told,
// is never free of queued writes to Rollouts (0.001 writes/s): the writes that move the
// Rollout (its steps and promotion) are made at once all the same, while the write that only
// records the old revision's Pods gone (its counts, and its scale-down mark dropped) waits
// for room until CountsBound, and is made then.
func TestCountsWaitBehindQueuedWrites(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "queued")
	ro := createWeb(g, ns, testutil.WithCanarySteps(testutil.Weight(50), testutil.Weight(100)),
		testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) { c.ScaleDownDelaySeconds = ptr.To[int32](1) }))
	key := client.ObjectKeyFromObject(ro)

	const bound = 5 * time.Second
	c, err := rollouttest.Start(ctx, e, func(r *rollout.Reconciler) {
		r.ClientQPS, r.ClientBurst, r.CountsBound = 0.001, 1, bound
	})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { g.Expect(c.Stop()).To(Succeed()) }()
	old := newImageOnceCompleted(g, ro)
	g.Eventually(func(g Gomega) {
		now := getRollout(g, key)
		g.Expect(now.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(now.Status.StablePodTemplateHash).NotTo(Equal(old))
	}).WithTimeout(30*time.Second).Should(Succeed(), "the steps and the promotion are written while the client is queued")

	g.Eventually(func(g Gomega) int32 {
		list := &appsv1.ReplicaSetList{}
		g.Expect(env.Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{kultav1alpha1.PodTemplateHashLabel: old})).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
		return list.Items[0].Status.Replicas
	}).WithTimeout(30 * time.Second).Should(BeZero())
	gone := func(g Gomega) {
		now := getRollout(g, key)
		g.Expect(now.Status.Replicas).To(Equal(int32(2)))
		g.Expect(now.Status.ScaleDowns).To(BeEmpty())
	}
	// The interval (1 s in rollouttest) is over well before this; the client's queue holds the
	// write until the bound.
	g.Consistently(func(g Gomega) {
		now := getRollout(g, key)
		g.Expect(now.Status.Replicas).To(Equal(int32(4)), "the counts were written before the bound, with the client queued")
		g.Expect(now.Status.ScaleDowns).To(HaveLen(1))
	}).WithTimeout(bound - 2*time.Second).Should(Succeed())
	g.Eventually(gone).WithTimeout(30*time.Second).Should(Succeed(), "the counts are written once the bound has passed")
}
