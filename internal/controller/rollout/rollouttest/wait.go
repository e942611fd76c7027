package rollouttest

import (
	"context"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// WaitPhase waits up to timeout until c reads ro in phase, and at step when step is not nil;
// the failure shows the Rollout's status message.
func WaitPhase(t *testing.T, c client.Reader, ro *kultav1alpha1.Rollout, phase kultav1alpha1.Phase, step *int32, timeout time.Duration) {
	t.Helper()
	gomega.NewWithT(t).Eventually(func(g gomega.Gomega) {
		got := &kultav1alpha1.Rollout{}
		g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(ro), got)).To(gomega.Succeed())
		g.Expect(got.Status.Phase).To(gomega.Equal(phase), "message: %s", got.Status.Message)
		if step != nil {
			g.Expect(got.Status.CurrentStepIndex).To(gomega.Equal(step))
		}
	}).WithTimeout(timeout).WithPolling(100 * time.Millisecond).Should(gomega.Succeed())
}

// SetImage sets the image of ro's first container with a JSON patch, a new revision.
func SetImage(t *testing.T, c client.Client, ro *kultav1alpha1.Rollout, image string) {
	t.Helper()
	patch := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"`+image+`"}]`))
	if err := c.Patch(context.Background(), ro.DeepCopy(), patch); err != nil {
		t.Fatalf("setting image %s on Rollout %s: %v", image, ro.Name, err)
	}
}
