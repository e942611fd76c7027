package restart_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
)

// TestPodsReadyOneByOneMakeOneWrite scales a stable Rollout from 2 to 6 replicas whose Pods
// turn ready one after another, 100 ms apart (testenv.StaggerAnnotation). The new generation is
// recorded at once; the four Pods turning ready then change only the Pod counts, and are
// recorded together in one write once CountsInterval (3 s here) has passed, rather than in one
// write each.
func TestPodsReadyOneByOneMakeOneWrite(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "one-by-one")
	ro := createWeb(g, ns, func(ro *kultav1alpha1.Rollout) {
		ro.Spec.Template.Metadata.Annotations = map[string]string{testenv.StaggerAnnotation: "100ms"}
	})
	key := client.ObjectKeyFromObject(ro)
	c, err := rollouttest.Start(ctx, e, func(r *rollout.Reconciler) { r.CountsInterval = 3 * time.Second })
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { g.Expect(c.Stop()).To(Succeed()) }()
	g.Eventually(func(g Gomega) {
		now := getRollout(g, key)
		g.Expect(now.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(now.Status.ReadyReplicas).To(Equal(int32(2)))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	versions := rollouttest.WatchRollout(t, e, ns, "web")
	g.Expect(env.Client.Patch(ctx, ro, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":6}}`)))).To(Succeed())
	generation := ro.Generation
	g.Eventually(func(g Gomega) {
		now := getRollout(g, key)
		g.Expect(now.Status.ObservedGeneration).To(Equal(generation))
		g.Expect(now.Status.ReadyReplicas).To(Equal(int32(6)))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// The versions KULTA wrote at the new generation: the watch may deliver the last one after
	// the read above saw it.
	var ready []int32
	g.Eventually(func(g Gomega) {
		ready = nil
		for _, v := range versions() {
			if v.Status.ObservedGeneration == generation {
				ready = append(ready, v.Status.ReadyReplicas)
			}
		}
		g.Expect(ready).NotTo(BeEmpty())
		g.Expect(ready[len(ready)-1]).To(Equal(int32(6)))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(ready).To(HaveLen(2), "status writes at the new generation, by ready Pods: the generation at once, then the four Pods together")
	g.Expect(ready[0]).To(BeNumerically("<", 6), "the new generation was recorded only once all Pods were ready")
}
