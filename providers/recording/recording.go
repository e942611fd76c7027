// Package recording is a TrafficRouter that remembers what it was asked to do and moves no
// traffic. Tests use it to see the reconciler's traffic decisions without a Gateway.
package recording

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

var _ providers.TrafficRouter = (*Router)(nil)

// Router records calls per Rollout. The zero value is ready to use.
type Router struct {
	mu      sync.Mutex
	weights map[types.NamespacedName][]providers.Weights
	headers map[types.NamespacedName]map[string]providers.HeaderRoute
	// NotAccepted, when set, makes Verify report the routes as not accepted.
	NotAccepted bool
}

// SetWeights records w when it differs from the last weights recorded for ro.
func (r *Router) SetWeights(_ context.Context, ro *kultav1alpha1.Rollout, w providers.Weights) error {
	if w.Stable+w.Canary != 100 || w.Stable < 0 || w.Canary < 0 {
		return fmt.Errorf("weights %d/%d do not add up to 100", w.Stable, w.Canary)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.weights == nil {
		r.weights = map[types.NamespacedName][]providers.Weights{}
	}
	key := types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
	if h := r.weights[key]; len(h) > 0 && h[len(h)-1] == w {
		return nil
	}
	r.weights[key] = append(r.weights[key], w)
	return nil
}

// SetHeaderRoute records hr.
func (r *Router) SetHeaderRoute(_ context.Context, ro *kultav1alpha1.Rollout, hr providers.HeaderRoute) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.headers == nil {
		r.headers = map[types.NamespacedName]map[string]providers.HeaderRoute{}
	}
	key := types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
	if r.headers[key] == nil {
		r.headers[key] = map[string]providers.HeaderRoute{}
	}
	r.headers[key][hr.Name] = hr
	return nil
}

// RemoveHeaderRoute forgets the header route named name.
func (r *Router) RemoveHeaderRoute(_ context.Context, ro *kultav1alpha1.Rollout, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.headers[types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}], name)
	return nil
}

// Verify reports acceptance unless NotAccepted is set.
func (r *Router) Verify(_ context.Context, ro *kultav1alpha1.Rollout) (providers.Verification, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := providers.Verification{Accepted: !r.NotAccepted}
	if r.NotAccepted {
		v.Message = fmt.Sprintf("routes of %s/%s not accepted", ro.Namespace, ro.Name)
	}
	if h := r.weights[types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}]; len(h) > 0 {
		last := h[len(h)-1]
		v.Weights = &last
	}
	return v, nil
}

// Cleanup forgets the header routes of ro and records all traffic on stable.
func (r *Router) Cleanup(ctx context.Context, ro *kultav1alpha1.Rollout) error {
	r.mu.Lock()
	delete(r.headers, types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name})
	r.mu.Unlock()
	return r.SetWeights(ctx, ro, providers.Weights{Stable: 100})
}

// Weights returns the distinct weights recorded for the Rollout, in order.
func (r *Router) Weights(key types.NamespacedName) []providers.Weights {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]providers.Weights(nil), r.weights[key]...)
}

// HeaderRoutes returns the header routes currently set for the Rollout.
func (r *Router) HeaderRoutes(key types.NamespacedName) map[string]providers.HeaderRoute {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]providers.HeaderRoute{}
	for k, v := range r.headers[key] {
		out[k] = v
	}
	return out
}
