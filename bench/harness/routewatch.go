package harness

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// RouteWatch notes, from the stand-ins' route informer, since when each route has carried its
// current generation and whether its parents accepted it. A route KULTA wrote that stays
// unaccepted holds its Rollout until the progress deadline rolls it back, and the rollback's
// write is accepted at once, so what went wrong is gone by the time the Rollout reads Failed.
// The bench reports such a route while it is still waiting (Stuck), with what the API server
// holds, which tells a write the stand-in never saw, a status it never wrote, and a status
// the controller never read apart.
type RouteWatch struct {
	mu     sync.Mutex
	routes map[client.ObjectKey]*routeSeen
}

type routeSeen struct {
	generation int64
	since      time.Time
	// accepted is the generation every parent accepted, -1 for none.
	accepted int64
	reported bool
}

// NewRouteWatch returns a watch that notes nothing until Register.
func NewRouteWatch() *RouteWatch { return &RouteWatch{routes: map[client.ObjectKey]*routeSeen{}} }

// Register adds the watch's handler to c's HTTPRoute informer.
func (rw *RouteWatch) Register(ctx context.Context, c cache.Cache) error {
	inf, err := c.GetInformer(ctx, &gatewayv1.HTTPRoute{})
	if err != nil {
		return fmt.Errorf("informer for HTTPRoutes: %w", err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { rw.observe(o, time.Now()) },
		UpdateFunc: func(_, o any) { rw.observe(o, time.Now()) },
	}); err != nil {
		return fmt.Errorf("handler for HTTPRoutes: %w", err)
	}
	return nil
}

func (rw *RouteWatch) observe(o any, now time.Time) {
	route, ok := o.(*gatewayv1.HTTPRoute)
	if !ok {
		return
	}
	key := client.ObjectKeyFromObject(route)
	rw.mu.Lock()
	defer rw.mu.Unlock()
	seen := rw.routes[key]
	if seen == nil || seen.generation != route.Generation {
		seen = &routeSeen{generation: route.Generation, since: now}
		rw.routes[key] = seen
	}
	seen.accepted = AcceptedGeneration(route)
}

// AcceptedGeneration is the generation every parent of route reports Accepted=True at, -1 when
// a parent reports none or parents disagree.
func AcceptedGeneration(route *gatewayv1.HTTPRoute) int64 {
	if len(route.Status.Parents) == 0 {
		return -1
	}
	generation := int64(-1)
	for i, ps := range route.Status.Parents {
		c := meta.FindStatusCondition(ps.Conditions, "Accepted")
		if c == nil || c.Status != metav1.ConditionTrue || (i > 0 && c.ObservedGeneration != generation) {
			return -1
		}
		generation = c.ObservedGeneration
	}
	return generation
}

// StuckRoute is a route whose current generation has gone unaccepted.
type StuckRoute struct {
	Key        client.ObjectKey
	Generation int64
	Accepted   int64
	For        time.Duration
}

// Stuck returns, oldest first, up to limit routes whose current generation has gone unaccepted
// for longer than after and that were not returned before (each is reported once), and how
// many routes are unaccepted for that long in all.
func (rw *RouteWatch) Stuck(now time.Time, after time.Duration, limit int) ([]StuckRoute, int) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	var stuck []StuckRoute
	total := 0
	for key, seen := range rw.routes {
		waited := now.Sub(seen.since)
		if seen.accepted == seen.generation || waited <= after {
			continue
		}
		total++
		if !seen.reported {
			stuck = append(stuck, StuckRoute{Key: key, Generation: seen.generation, Accepted: seen.accepted, For: waited})
		}
	}
	slices.SortFunc(stuck, func(a, b StuckRoute) int { return cmp.Compare(b.For, a.For) })
	if len(stuck) > limit {
		stuck = stuck[:limit]
	}
	for _, s := range stuck {
		rw.routes[s.Key].reported = true
	}
	return stuck, total
}
