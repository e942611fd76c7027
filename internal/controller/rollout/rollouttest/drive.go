package rollouttest

import (
	"context"
	"time"

	"github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// DriveToCompletionAndRollback takes two canaries in ns, each with a `pause: {}` step, through
// a new image: the first is promoted to Completed, the second aborted to Failed. Both must have
// reached Completed on their first revision within timeout.
func DriveToCompletionAndRollback(g gomega.Gomega, c client.Client, ns, completed, rolledBack string, timeout time.Duration) {
	ctx := context.Background()
	phase := func(name string) func(g gomega.Gomega) kultav1alpha1.Phase {
		return func(g gomega.Gomega) kultav1alpha1.Phase {
			ro := &kultav1alpha1.Rollout{}
			g.Expect(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ro)).To(gomega.Succeed())
			return ro.Status.Phase
		}
	}
	patch := func(name, body string, pt types.PatchType) {
		ro := &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		g.Expect(c.Patch(ctx, ro, client.RawPatch(pt, []byte(body)))).To(gomega.Succeed())
	}
	for _, name := range []string{completed, rolledBack} {
		g.Eventually(phase(name)).WithTimeout(timeout).Should(gomega.Equal(kultav1alpha1.PhaseCompleted))
		patch(name, `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`, types.JSONPatchType)
		g.Eventually(phase(name)).WithTimeout(timeout).Should(gomega.Equal(kultav1alpha1.PhasePaused))
	}
	patch(completed, `{"metadata":{"annotations":{"kulta.io/promote":"true"}}}`, types.MergePatchType)
	patch(rolledBack, `{"metadata":{"annotations":{"kulta.io/abort":"true"}}}`, types.MergePatchType)
	g.Eventually(phase(completed)).WithTimeout(timeout).Should(gomega.Equal(kultav1alpha1.PhaseCompleted))
	g.Eventually(phase(rolledBack)).WithTimeout(timeout).Should(gomega.Equal(kultav1alpha1.PhaseFailed))
}
