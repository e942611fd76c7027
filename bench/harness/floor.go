package harness

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// RunFloor is the plain-client baseline: for every Rollout and each of the three steps, in
// order, exactly one merge patch of the route's weights and one merge patch of the Rollout's
// status (step index and weight), on workers goroutines through c (which carries the same
// client-side rate limit as the controller). It returns the wall time. Run it with the
// controller stopped, so that the status patches do not set it off.
func RunFloor(ctx context.Context, c client.Client, refs []Ref, workers int) (time.Duration, error) {
	start := time.Now()
	err := ForEach(ctx, refs, workers, func(ctx context.Context, r Ref) error {
		for i, w := range StepWeights {
			if err := floorStep(ctx, c, r, int32(i), w); err != nil {
				return err
			}
		}
		return nil
	})
	return time.Since(start), err
}

func floorStep(ctx context.Context, c client.Client, r Ref, index, weight int32) error {
	route := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name}}
	routePatch := fmt.Appendf(nil,
		`{"spec":{"rules":[{"backendRefs":[{"name":%q,"port":80,"weight":%d},{"name":%q,"port":80,"weight":%d}]}]}}`,
		r.Name+"-stable", 100-weight, r.Name+"-canary", weight)
	if err := c.Patch(ctx, route, client.RawPatch(types.MergePatchType, routePatch)); err != nil {
		return fmt.Errorf("floor route patch: %w", err)
	}
	ro := &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name}}
	statusPatch := fmt.Appendf(nil, `{"status":{"currentStepIndex":%d,"currentWeight":%d}}`, index, weight)
	if err := c.Status().Patch(ctx, ro, client.RawPatch(types.MergePatchType, statusPatch)); err != nil {
		return fmt.Errorf("floor status patch: %w", err)
	}
	return nil
}
