package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/nginx"
)

// StepWeights are the canary weights of the bench's three steps.
var StepWeights = []int32{20, 50, 100}

// Tracker times, per Rollout and step, how long KULTA takes from the moment a step's
// condition is met to the moment the next weight is on the route, as seen by watches in the
// bench process (the stand-ins' informers, so no extra watch):
//   - step 1 (weight 20): from the new ReplicaSet first seen ready to the route first seen
//     carrying canary weight 20;
//   - steps 2 and 3: from the route first seen Accepted at the generation carrying the previous
//     weight to the route first seen carrying the next weight (for the last step, 100, the
//     route back at 100/0 once the stable Service serves the new revision: see promoted).
//
// Through NGINX the route is the canary Ingress KULTA keeps beside the stable one: its weight is
// its canary-weight, it is accepted once seen (ingress-nginx reports no acceptance, and KULTA
// takes a canary Ingress in the API server as accepted), and its deletion is the route back at
// 100/0.
//
// Both ends pass through the same watch, so its delay mostly cancels out.
type Tracker struct {
	mu     sync.Mutex
	image  string
	tracks map[string]*track
}

type track struct {
	rsReady  time.Time
	accepted map[int32]time.Time
	weightAt map[int32]time.Time
	next     int
}

// NewTracker returns a tracker that records nothing until StartWave.
func NewTracker() *Tracker { return &Tracker{} }

// StartWave forgets the previous wave and starts timing a wave rolling out image.
func (t *Tracker) StartWave(image string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.image = image
	t.tracks = map[string]*track{}
}

func (t *Tracker) get(key string) *track {
	tr := t.tracks[key]
	if tr == nil {
		tr = &track{accepted: map[int32]time.Time{}, weightAt: map[int32]time.Time{}}
		t.tracks[key] = tr
	}
	return tr
}

// Register adds the tracker's handlers to the HTTPRoute, Ingress and ReplicaSet informers of c.
func (t *Tracker) Register(ctx context.Context, c cache.Cache) error {
	for _, obj := range []struct {
		proto  client.Object
		handle func(any)
		gone   func(any)
	}{
		{&gatewayv1.HTTPRoute{}, t.onRoute, nil},
		{&networkingv1.Ingress{}, t.onCanaryIngress, t.onCanaryIngressDeleted},
		{&appsv1.ReplicaSet{}, t.onReplicaSet, nil},
	} {
		inf, err := c.GetInformer(ctx, obj.proto)
		if err != nil {
			return fmt.Errorf("informer for %T: %w", obj.proto, err)
		}
		handle, gone := obj.handle, obj.gone
		if gone == nil {
			gone = func(any) {}
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    handle,
			UpdateFunc: func(_, o any) { handle(o) },
			DeleteFunc: gone,
		}); err != nil {
			return fmt.Errorf("handler for %T: %w", obj.proto, err)
		}
	}
	return nil
}

func (t *Tracker) onRoute(o any) {
	route, ok := o.(*gatewayv1.HTTPRoute)
	if !ok {
		return
	}
	now := time.Now()
	w, ok := rollouttest.RouteWeights(route, route.Name+"-stable", route.Name+"-canary")
	if !ok {
		return
	}
	t.observe(route.Namespace+"/"+route.Name, w, AcceptedGeneration(route) == route.Generation, now)
}

// observe records that the route of Rollout key was seen at now carrying weights w, accepted
// or not.
func (t *Tracker) observe(key string, w providers.Weights, accepted bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tracks == nil {
		return
	}
	tr := t.get(key)
	if tr.next < len(StepWeights) && (w.Canary == StepWeights[tr.next] || promoted(tr.next, w)) {
		tr.weightAt[StepWeights[tr.next]] = now
		tr.next++
	}
	if _, seen := tr.weightAt[w.Canary]; seen && accepted {
		if _, done := tr.accepted[w.Canary]; !done {
			tr.accepted[w.Canary] = now
		}
	}
}

// canaryIngressOf is the Rollout key of o when it is a canary Ingress KULTA keeps for one.
func canaryIngressOf(o any) (*networkingv1.Ingress, string, bool) {
	ing, ok := o.(*networkingv1.Ingress)
	if !ok || ing.Labels[nginx.CanaryIngressLabel] != "true" {
		return nil, "", false
	}
	owner := metav1.GetControllerOf(ing)
	if owner == nil || owner.Kind != "Rollout" {
		return nil, "", false
	}
	return ing, ing.Namespace + "/" + owner.Name, true
}

func (t *Tracker) onCanaryIngress(o any) {
	ing, key, ok := canaryIngressOf(o)
	if !ok {
		return
	}
	now := time.Now()
	if w := nginx.WeightsOf(ing, nginx.DefaultAnnotationPrefix); w != nil {
		t.observe(key, *w, true, now)
	}
}

// onCanaryIngressDeleted takes a canary Ingress's deletion as its route back at 100/0.
func (t *Tracker) onCanaryIngressDeleted(o any) {
	if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = tomb.Obj
	}
	if _, key, ok := canaryIngressOf(o); ok {
		t.observe(key, providers.Weights{Stable: 100}, true, time.Now())
	}
}

// promoted reports whether weights w, seen while waiting for step next, are the promotion that
// stands for a last step of weight 100: KULTA points the stable Service at the new revision and
// then writes 100/0, without a 0/100 in between, so a route at 100/0 after the previous steps'
// weights carries all the traffic to the new revision.
func promoted(next int, w providers.Weights) bool {
	return next > 0 && next == len(StepWeights)-1 && StepWeights[next] == 100 && w.Stable == 100 && w.Canary == 0
}

func (t *Tracker) onReplicaSet(o any) {
	rs, ok := o.(*appsv1.ReplicaSet)
	if !ok || len(rs.Spec.Template.Spec.Containers) == 0 || rs.Status.ReadyReplicas < 1 {
		return
	}
	owner := metav1.GetControllerOf(rs)
	if owner == nil || owner.Kind != "Rollout" {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tracks == nil || rs.Spec.Template.Spec.Containers[0].Image != t.image {
		return
	}
	if tr := t.get(rs.Namespace + "/" + owner.Name); tr.rsReady.IsZero() {
		tr.rsReady = now
	}
}

// StepLatencies are the tracker's measurements for one wave.
type StepLatencies struct {
	// PerStep has one summary per step (weights 20, 50, 100).
	PerStep []Percentiles `json:"perStep"`
	// All pools the three steps.
	All Percentiles `json:"all"`
	// Missing counts steps where one end was not seen; Reordered counts steps whose weight was
	// seen before their condition (left out of the percentiles).
	Missing   int `json:"missing"`
	Reordered int `json:"reordered"`
}

// Latencies computes the wave's step latencies.
func (t *Tracker) Latencies() StepLatencies {
	t.mu.Lock()
	defer t.mu.Unlock()
	per := make([][]time.Duration, len(StepWeights))
	var all []time.Duration
	out := StepLatencies{}
	for _, tr := range t.tracks {
		for i, w := range StepWeights {
			from := tr.rsReady
			if i > 0 {
				from = tr.accepted[StepWeights[i-1]]
			}
			to := tr.weightAt[w]
			switch {
			case from.IsZero() || to.IsZero():
				out.Missing++
			case to.Before(from):
				out.Reordered++
			default:
				per[i] = append(per[i], to.Sub(from))
				all = append(all, to.Sub(from))
			}
		}
	}
	for _, ds := range per {
		out.PerStep = append(out.PerStep, Summarise(ds))
	}
	out.All = Summarise(all)
	return out
}
