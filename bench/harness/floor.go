package harness

import (
	"context"
	"fmt"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers/nginx"
)

// RunFloor is the plain-client baseline: for every Rollout and each of the three steps, in
// order, exactly one write of the step's weight and one merge patch of the Rollout's status
// (step index and weight), on workers goroutines through c (which carries the same client-side
// rate limit as the controller). The weight's write is provider's: a merge patch of the route
// (Gateway API), or, for NGINX, the canary Ingress KULTA keeps beside the stable one created at
// the first step, patched at the second and deleted at the last (whose weight, 100, is the
// promotion that hands every request back to the stable Ingress). It returns the wall time.
// Run it with the controller stopped, so that the status patches do not set it off.
func RunFloor(ctx context.Context, c client.Client, refs []Ref, workers int, provider string) (time.Duration, error) {
	write := floorRoute
	if provider == ProviderNGINX {
		write = floorCanaryIngress
	}
	start := time.Now()
	err := ForEach(ctx, refs, workers, func(ctx context.Context, r Ref) error {
		for i, w := range StepWeights {
			if err := write(ctx, c, r, i, w); err != nil {
				return err
			}
			if err := floorStatus(ctx, c, r, int32(i), w); err != nil {
				return err
			}
		}
		return nil
	})
	return time.Since(start), err
}

func floorRoute(ctx context.Context, c client.Client, r Ref, _ int, weight int32) error {
	route := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name}}
	routePatch := fmt.Appendf(nil,
		`{"spec":{"rules":[{"backendRefs":[{"name":%q,"port":80,"weight":%d},{"name":%q,"port":80,"weight":%d}]}]}}`,
		r.Name+"-stable", 100-weight, r.Name+"-canary", weight)
	if err := c.Patch(ctx, route, client.RawPatch(types.MergePatchType, routePatch)); err != nil {
		return fmt.Errorf("floor route patch: %w", err)
	}
	return nil
}

// floorCanaryIngress writes step i of r's canary Ingress as KULTA builds it (nginx.CanaryIngress):
// a create, a merge patch of what the next weight changes, a delete.
func floorCanaryIngress(ctx context.Context, c client.Client, r Ref, i int, weight int32) error {
	if i == len(StepWeights)-1 {
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: nginx.CanaryIngressName(r.Name, r.Name)}}
		if err := c.Delete(ctx, ing); err != nil {
			return fmt.Errorf("floor canary Ingress delete: %w", err)
		}
		return nil
	}
	ing, err := floorIngressAt(r, weight)
	if err != nil {
		return err
	}
	if i == 0 {
		if err := c.Create(ctx, ing); err != nil {
			return fmt.Errorf("floor canary Ingress create: %w", err)
		}
		return nil
	}
	before, err := floorIngressAt(r, StepWeights[i-1])
	if err != nil {
		return err
	}
	if err := c.Patch(ctx, ing, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("floor canary Ingress patch: %w", err)
	}
	return nil
}

// floorUID stands in for the UID of the Rollout in the floor's canary Ingresses' controller
// reference: the floor reads nothing, and no garbage collector runs beside the bench's API
// server to act on it.
const floorUID = "00000000-0000-0000-0000-00000000f100"

// floorIngressAt is the canary Ingress KULTA builds for r's Rollout at canary weight weight.
func floorIngressAt(r Ref, weight int32) (*networkingv1.Ingress, error) {
	ro := rolloutOf(r, ProviderNGINX)
	ro.UID = floorUID
	ing, err := nginx.CanaryIngress(ro, stableIngress(r), nginx.State{CanaryWeight: weight})
	if err != nil {
		return nil, fmt.Errorf("building the floor's canary Ingress of %s/%s: %w", r.Namespace, r.Name, err)
	}
	return ing, nil
}

func floorStatus(ctx context.Context, c client.Client, r Ref, index, weight int32) error {
	ro := &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name}}
	statusPatch := fmt.Appendf(nil, `{"status":{"currentStepIndex":%d,"currentWeight":%d}}`, index, weight)
	if err := c.Status().Patch(ctx, ro, client.RawPatch(types.MergePatchType, statusPatch)); err != nil {
		return fmt.Errorf("floor status patch: %w", err)
	}
	return nil
}
