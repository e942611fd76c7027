//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/events"
)

// eventTimeout bounds the wait for Events and CDEvents, which are sent after the status write.
const eventTimeout = 15 * time.Second

// transitions are the Kubernetes Events ("Type/Reason") and CDEvent types of a Rollout, in
// order.
type transitions struct{ events, cdevents []string }

// The transitions of a first revision followed by one update that completes, by strategy.
var (
	canaryUpdated = transitions{
		// Each step's analysis decides in a reconcile of its own, after the one that moved the
		// weight, so no StepAdvanced shares a reconcile (and an Event) with the next transition.
		events: []string{"Normal/RolloutCompleted", "Normal/RolloutStarted",
			"Normal/StepAdvanced", "Normal/RolloutPaused", "Normal/StepAdvanced",
			"Normal/StepAdvanced", "Normal/RolloutPaused", "Normal/StepAdvanced", "Normal/RolloutCompleted"},
		cdevents: []string{"service.deployed", "service.published",
			"service.deployed", "service.upgraded", "service.upgraded", "service.upgraded", "service.upgraded", "service.published"},
	}
	blueGreenUpdated = transitions{
		events:   []string{"Normal/RolloutCompleted", "Normal/RolloutStarted", "Normal/PreviewReady", "Normal/RolloutCompleted"},
		cdevents: []string{"service.deployed", "service.published", "service.deployed", "service.published"},
	}
	abUpdated = transitions{
		events: []string{"Normal/RolloutCompleted", "Normal/RolloutStarted", "Normal/ExperimentStarted",
			"Normal/ExperimentConcluded", "Normal/RolloutCompleted"},
		cdevents: []string{"service.deployed", "service.published",
			"service.deployed", "service.upgraded", "service.published", "service.published"},
	}
	simpleUpdated = transitions{
		events:   []string{"Normal/RolloutCompleted", "Normal/RolloutStarted", "Normal/RolloutCompleted"},
		cdevents: []string{"service.deployed", "service.published", "service.deployed", "service.published"},
	}
)

// eventReasons returns the Rollout's Kubernetes Events as "Type/Reason", oldest first.
func (a *app) eventReasons(ctx context.Context) ([]string, error) {
	var list eventsv1.EventList
	if err := a.w.client.List(ctx, &list, client.InNamespace(a.namespace)); err != nil {
		return nil, fmt.Errorf("listing Events in %s: %w", a.namespace, err)
	}
	var mine []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "Rollout" && e.Regarding.Name == a.name {
			mine = append(mine, e)
		}
	}
	sort.SliceStable(mine, func(i, j int) bool { return mine[i].EventTime.Before(&mine[j].EventTime) })
	out := make([]string, 0, len(mine))
	for _, e := range mine {
		out = append(out, e.Type+"/"+e.Reason)
	}
	return out, nil
}

// expectEvents waits until the Rollout's Events (see eventReasons) are want.
func (a *app) expectEvents(ctx context.Context, t *testing.T, want ...string) {
	t.Helper()
	waitFor(ctx, t, eventTimeout, func() error {
		got, err := a.eventReasons(ctx)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("Events of Rollout %s/%s: %v, want %v", a.namespace, a.name, got, want)
		}
		return nil
	})
}

// expectCDEvents waits until the CDEvents received for the Rollout are want, in order
// (service.deployed and so on), and checks that nothing else arrived.
func (a *app) expectCDEvents(ctx context.Context, t *testing.T, want ...string) {
	t.Helper()
	source := events.RolloutURI(a.namespace, a.name)
	waitFor(ctx, t, eventTimeout, func() error {
		if got := a.w.cdevents.Types(source); !slices.Equal(got, want) {
			return fmt.Errorf("CDEvents of Rollout %s/%s: %v, want %v", a.namespace, a.name, got, want)
		}
		return nil
	})
	if n := a.w.cdevents.Rejected(); n > 0 {
		t.Errorf("the CDEvents receiver rejected %d requests that were not CloudEvents", n)
	}
}

// expectRevisions waits until the ReplicaSet of newHash wants and has want ready Pods, with as
// many ready Pods of that revision, and every ReplicaSet of oldHashes wants none and runs none.
func (a *app) expectRevisions(ctx context.Context, t *testing.T, timeout time.Duration, newHash string, want int32, oldHashes ...string) {
	t.Helper()
	waitFor(ctx, t, timeout, func() error {
		rs, err := a.replicaSet(ctx, newHash)
		if err != nil {
			return err
		}
		if rs.Spec.Replicas == nil || *rs.Spec.Replicas != want || rs.Status.ReadyReplicas != want {
			return fmt.Errorf("ReplicaSet %s: %d ready of %d wanted, want %d of %d", rs.Name, rs.Status.ReadyReplicas, ptr.Deref(rs.Spec.Replicas, -1), want, want)
		}
		ready, err := a.readyPods(ctx, newHash)
		if err != nil {
			return err
		}
		if ready != int(want) {
			return fmt.Errorf("%d ready Pods of revision %s, want %d", ready, newHash, want)
		}
		for _, hash := range oldHashes {
			old, err := a.replicaSet(ctx, hash)
			if err != nil {
				return err
			}
			if old.Spec.Replicas == nil || *old.Spec.Replicas != 0 || old.Status.Replicas != 0 {
				return fmt.Errorf("old ReplicaSet %s: %d wanted, %d running, want 0", old.Name, ptr.Deref(old.Spec.Replicas, -1), old.Status.Replicas)
			}
		}
		return nil
	})
}

// expectRoute waits until the route's state (see routeState) is want.
func (a *app) expectRoute(ctx context.Context, t *testing.T, want string) {
	t.Helper()
	waitFor(ctx, t, 30*time.Second, func() error {
		route, err := a.route(ctx)
		if err != nil {
			return err
		}
		if got := a.routeState(route); got != want {
			return fmt.Errorf("route %s/%s is %s, want %s", a.namespace, a.name, got, want)
		}
		return nil
	})
}

// actions is the Rollout's decisions as "Action/Reason", in order.
func actions(ro *kultav1alpha1.Rollout) []string {
	out := make([]string, 0, len(ro.Status.Decisions))
	for _, d := range ro.Status.Decisions {
		out = append(out, string(d.Action)+"/"+d.Reason)
	}
	return out
}

// route reads the app's HTTPRoute.
func (a *app) route(ctx context.Context) (*gatewayv1.HTTPRoute, error) {
	route := &gatewayv1.HTTPRoute{}
	if err := a.w.client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: a.name}, route); err != nil {
		return nil, fmt.Errorf("reading HTTPRoute %s/%s: %w", a.namespace, a.name, err)
	}
	return route, nil
}

// expectMetric waits until Prometheus, which scrapes the controller, answers query with a
// value of at least want.
func (w *world) expectMetric(ctx context.Context, t *testing.T, query string, want float64) {
	t.Helper()
	waitFor(ctx, t, 30*time.Second, func() error {
		got, ok, err := w.prometheus.Query(ctx, query)
		if err != nil {
			return err
		}
		if !ok || got < want {
			return fmt.Errorf("prometheus: %s = %v (present %t), want at least %v", query, got, ok, want)
		}
		return nil
	})
}

// expectRouteHistory waits until the route is at the last of want, stops watch and checks that
// the route's states (see routeState) went through exactly want, each change once.
func (a *app) expectRouteHistory(ctx context.Context, t *testing.T, watch *weightWatch, want ...string) {
	t.Helper()
	a.expectRoute(ctx, t, want[len(want)-1])
	watch.Stop()
	seen, err := watch.Seen()
	if err != nil {
		t.Errorf("watching the route %s/%s: %v", a.namespace, a.name, err)
	}
	if !slices.Equal(seen, want) {
		t.Errorf("the route %s/%s went %v, want %v", a.namespace, a.name, seen, want)
	}
}
