package conformance

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

// allStable is the split at rest.
var allStable = providers.Weights{Stable: 100}

func testWeights(t testing.TB, h Harness) {
	f := h.NewFixture(t, false)
	ctx := context.Background()
	for _, w := range []providers.Weights{{Stable: 80, Canary: 20}, {Stable: 50, Canary: 50}, {Stable: 0, Canary: 100}, allStable} {
		if err := h.NewRouter(h.Client).SetWeights(ctx, f.Rollout(), w); err != nil {
			t.Fatalf("SetWeights(%v): %v", w, err)
		}
		if got := f.Weights(t); got != w {
			t.Errorf("objects carry %v, want %v", got, w)
		}
		v, err := h.NewRouter(h.Client).Verify(ctx, f.Rollout())
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if v.Weights == nil || *v.Weights != w {
			t.Errorf("Verify weights %v, want %v", v.Weights, w)
		}
		if v.Accepted != h.AcceptedWithoutController {
			t.Errorf("Verify accepted %v (%s), want %v with no controller running", v.Accepted, v.Message, h.AcceptedWithoutController)
		}
		f.Intact(t)
	}
}

func testIdempotent(t testing.TB, h Harness) {
	f := h.NewFixture(t, false)
	ctx := context.Background()
	c := &countingClient{Client: h.Client}
	for _, w := range []providers.Weights{{Stable: 70, Canary: 30}, allStable} {
		if err := h.NewRouter(c).SetWeights(ctx, f.Rollout(), w); err != nil {
			t.Fatalf("SetWeights(%v): %v", w, err)
		}
		c.writes()
		for range 3 {
			if err := h.NewRouter(c).SetWeights(ctx, f.Rollout(), w); err != nil {
				t.Fatalf("SetWeights(%v) again: %v", w, err)
			}
		}
		if n := c.writes(); n != 0 {
			t.Errorf("setting %v again wrote %d times", w, n)
		}
	}
}

// headerRoute is the Rollout's header route, matching a header or a cookie of value cookieValue.
func headerRoute(ro *kultav1alpha1.Rollout, cookie bool, cookieValue string) providers.HeaderRoute {
	hr := providers.HeaderRoute{Name: providers.HeaderRouteName(ro)}
	if !cookie {
		hr.Header = &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B", Type: kultav1alpha1.MatchExact}
		return hr
	}
	if cookieValue == "" {
		cookieValue = "B"
	}
	hr.Cookie = &kultav1alpha1.CookieMatch{Name: "ab", Value: cookieValue}
	return hr
}

func testHeaderRoute(t testing.TB, h Harness) {
	testHeaderRouteWith(t, h, func(ro *kultav1alpha1.Rollout) providers.HeaderRoute { return headerRoute(ro, false, "") })
}

func testCookieRoute(t testing.TB, h Harness) {
	testHeaderRouteWith(t, h, func(ro *kultav1alpha1.Rollout) providers.HeaderRoute { return headerRoute(ro, true, h.CookieValue) })
}

// testStepHeaderRoute: a canary's setHeaderRoute step with one condition, a header's prefix.
func testStepHeaderRoute(t testing.TB, h Harness) {
	testHeaderRouteWith(t, h, func(ro *kultav1alpha1.Rollout) providers.HeaderRoute {
		return providers.StepHeaderRoute(ro, &kultav1alpha1.SetHeaderRoute{Name: "testers", Match: []kultav1alpha1.HeaderRouteMatch{
			{HeaderName: "User-Agent", HeaderValue: &kultav1alpha1.StringMatch{Prefix: ptr.To("Mozilla/5.0")}},
		}})
	})
}

// testAllConditionsRoute: a setHeaderRoute step whose request must meet two conditions.
func testAllConditionsRoute(t testing.TB, h Harness) {
	testHeaderRouteWith(t, h, func(ro *kultav1alpha1.Rollout) providers.HeaderRoute {
		return providers.StepHeaderRoute(ro, &kultav1alpha1.SetHeaderRoute{Name: "qa", Match: []kultav1alpha1.HeaderRouteMatch{
			{HeaderName: "X-Canary", HeaderValue: &kultav1alpha1.StringMatch{Exact: ptr.To("yes")}},
			{HeaderName: "X-Team", HeaderValue: &kultav1alpha1.StringMatch{Regex: ptr.To("qa-[0-9]+")}},
		}})
	})
}

// testMirrorRoute: a canary's setMirrorRoute step copying a quarter of the requests with a
// header. Where the provider supports mirrors, the mirror is written once, the weights set
// after it are what Verify reads (the mirror's split moves with the managed one's), and its
// removal restores the objects; where it does not, it is an UnsupportedMatch RouteError and
// nothing is written.
func testMirrorRoute(t testing.TB, h Harness) {
	f := h.NewFixture(t, false)
	ctx := context.Background()
	c := &countingClient{Client: h.Client}
	ro := f.Rollout()
	hr := providers.StepMirrorRoute(ro, &kultav1alpha1.SetMirrorRoute{Name: "shadow", Percentage: ptr.To[int32](25), Match: []kultav1alpha1.HeaderRouteMatch{
		{HeaderName: "X-Shadow", HeaderValue: &kultav1alpha1.StringMatch{Exact: ptr.To("1")}},
	}})
	w := providers.Weights{Stable: 70, Canary: 30}
	if err := h.NewRouter(c).SetWeights(ctx, ro, w); err != nil {
		t.Fatalf("SetWeights(%v): %v", w, err)
	}
	before := f.Snapshot(t)
	c.writes()
	err := h.NewRouter(c).SetHeaderRoute(ctx, ro, hr)
	if !h.supports(FeatureMirror) {
		var re *providers.RouteError
		if !errors.As(err, &re) || re.Reason != providers.ReasonUnsupportedMatch {
			t.Fatalf("SetHeaderRoute of a mirror route: %v, want an UnsupportedMatch RouteError", err)
		}
		if n := c.writes(); n != 0 {
			t.Errorf("a refused mirror route wrote %d times", n)
		}
		return
	}
	if err != nil {
		t.Fatalf("SetHeaderRoute of a mirror route: %v", err)
	}
	if f.Snapshot(t) == before {
		t.Fatal("the mirror route changed nothing")
	}
	c.writes()
	if err := h.NewRouter(c).SetHeaderRoute(ctx, ro, hr); err != nil {
		t.Fatalf("SetHeaderRoute of the mirror route again: %v", err)
	}
	if n := c.writes(); n != 0 {
		t.Errorf("setting the same mirror route again wrote %d times", n)
	}
	for _, w := range []providers.Weights{{Stable: 40, Canary: 60}, {Stable: 70, Canary: 30}} {
		if err := h.NewRouter(c).SetWeights(ctx, ro, w); err != nil {
			t.Fatalf("SetWeights(%v) beside the mirror route: %v", w, err)
		}
		v, err := h.NewRouter(c).Verify(ctx, ro)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if v.Weights == nil || *v.Weights != w {
			t.Errorf("Verify weights %v beside the mirror route, want %v", v.Weights, w)
		}
	}
	f.Intact(t)
	if err := h.NewRouter(c).RemoveHeaderRoute(ctx, ro, hr.Name); err != nil {
		t.Fatalf("RemoveHeaderRoute of the mirror route: %v", err)
	}
	if after := f.Snapshot(t); after != before {
		t.Errorf("removing the mirror route did not restore the objects:\n got %s\nwant %s", after, before)
	}
}

// testHeaderRouteWith adds the header route of the fixture's Rollout, again (no write), and
// removes it: the objects route as they did before, and nothing else changed on the way.
func testHeaderRouteWith(t testing.TB, h Harness, route func(*kultav1alpha1.Rollout) providers.HeaderRoute) {
	f := h.NewFixture(t, false)
	ctx := context.Background()
	c := &countingClient{Client: h.Client}
	hr := route(f.Rollout())
	before := f.Snapshot(t)
	if err := h.NewRouter(c).SetHeaderRoute(ctx, f.Rollout(), hr); err != nil {
		t.Fatalf("SetHeaderRoute: %v", err)
	}
	if !f.HasHeaderRoute(t, hr) {
		t.Fatal("the header route is not in place")
	}
	c.writes()
	if err := h.NewRouter(c).SetHeaderRoute(ctx, f.Rollout(), hr); err != nil {
		t.Fatalf("SetHeaderRoute again: %v", err)
	}
	if n := c.writes(); n != 0 {
		t.Errorf("setting the same header route again wrote %d times", n)
	}
	f.Intact(t)
	if err := h.NewRouter(c).RemoveHeaderRoute(ctx, f.Rollout(), hr.Name); err != nil {
		t.Fatalf("RemoveHeaderRoute: %v", err)
	}
	if f.HasHeaderRoute(t, hr) {
		t.Error("the header route survived its removal")
	}
	if after := f.Snapshot(t); after != before {
		t.Errorf("removing the header route did not restore the objects:\n got %s\nwant %s", after, before)
	}
	f.Intact(t)
}

// testConflictRetry makes the provider's first update, then its first delete if it deletes,
// conflict with a concurrent change: it must retry from a fresh read and keep that change.
func testConflictRetry(t testing.TB, h Harness) {
	f := h.NewFixture(t, false)
	ctx := context.Background()
	// Objects the provider creates on its first write exist before the conflicting write.
	if err := h.NewRouter(h.Client).SetWeights(ctx, f.Rollout(), providers.Weights{Stable: 80, Canary: 20}); err != nil {
		t.Fatalf("SetWeights: %v", err)
	}
	for _, w := range []providers.Weights{{Stable: 60, Canary: 40}, allStable} {
		cc := &conflictingClient{Client: h.Client}
		if err := h.NewRouter(cc).SetWeights(ctx, f.Rollout(), w); err != nil {
			t.Fatalf("SetWeights(%v) after a conflict: %v", w, err)
		}
		if cc.edited == nil {
			t.Fatalf("SetWeights(%v): the provider never updated or deleted", w)
		}
		got := cc.edited.DeepCopyObject().(client.Object)
		err := h.Client.Get(ctx, client.ObjectKeyFromObject(got), got)
		switch {
		case err == nil && got.GetLabels()["edited-by"] != "someone-else":
			t.Errorf("SetWeights(%v): the concurrent change to %s was overwritten", w, got.GetName())
		case client.IgnoreNotFound(err) != nil:
			t.Fatalf("reading %s: %v", got.GetName(), err)
		}
		if got := f.Weights(t); got != w {
			t.Errorf("weights %v after retry, want %v", got, w)
		}
	}
}

func testDrift(t testing.TB, h Harness) {
	f := h.NewFixture(t, false)
	ctx := context.Background()
	w := providers.Weights{Stable: 75, Canary: 25}
	if err := h.NewRouter(h.Client).SetWeights(ctx, f.Rollout(), w); err != nil {
		t.Fatalf("SetWeights: %v", err)
	}
	f.Drift(t)
	v, err := h.NewRouter(h.Client).Verify(ctx, f.Rollout())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if v.Weights == nil || *v.Weights != allStable {
		t.Fatalf("Verify must report the drifted weights %v, got %v", allStable, v.Weights)
	}
	if err := h.NewRouter(h.Client).SetWeights(ctx, f.Rollout(), w); err != nil {
		t.Fatalf("SetWeights after drift: %v", err)
	}
	if got := f.Weights(t); got != w {
		t.Errorf("drift not corrected: %v, want %v", got, w)
	}
	f.Intact(t)
}

// testCleanup leaves the objects routing as they were created, and a second clean-up writes
// nothing.
func testCleanup(t testing.TB, h Harness) {
	f := h.NewFixture(t, false)
	ctx := context.Background()
	created := f.Snapshot(t)
	hr := headerRoute(f.Rollout(), false, "")
	if err := h.NewRouter(h.Client).SetWeights(ctx, f.Rollout(), providers.Weights{Stable: 10, Canary: 90}); err != nil {
		t.Fatalf("SetWeights: %v", err)
	}
	if err := h.NewRouter(h.Client).SetHeaderRoute(ctx, f.Rollout(), hr); err != nil {
		t.Fatalf("SetHeaderRoute: %v", err)
	}
	c := &countingClient{Client: h.Client}
	if err := h.NewRouter(c).Cleanup(ctx, f.Rollout()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if got := f.Weights(t); got != allStable {
		t.Errorf("after clean-up the objects carry %v, want all on stable", got)
	}
	if f.HasHeaderRoute(t, hr) {
		t.Error("the header route survived clean-up")
	}
	if got := f.Snapshot(t); got != created {
		t.Errorf("after clean-up the objects route\n %s\nwant, as created,\n %s", got, created)
	}
	f.Intact(t)
	c.writes()
	if err := h.NewRouter(c).Cleanup(ctx, f.Rollout()); err != nil {
		t.Fatalf("Cleanup again: %v", err)
	}
	if n := c.writes(); n != 0 {
		t.Errorf("cleaning up again wrote %d times", n)
	}
}

// testNotUsable checks that missing and malformed objects are RouteErrors naming the object,
// from SetWeights and Verify alike, and that nothing is written.
func testNotUsable(t testing.TB, h Harness) {
	f := h.NewFixture(t, false)
	ctx := context.Background()
	c := &countingClient{Client: h.Client}
	for _, u := range f.Unusable() {
		err := h.NewRouter(c).SetWeights(ctx, u.Rollout, providers.Weights{Stable: 50, Canary: 50})
		var routeErr *providers.RouteError
		switch {
		case !errors.As(err, &routeErr) || !errors.Is(err, providers.ErrRouteNotUsable):
			t.Errorf("%s: SetWeights: want a RouteError, got %v", u.Case, err)
			continue
		case !strings.Contains(routeErr.Message, u.Object):
			t.Errorf("%s: the RouteError %q does not name %s", u.Case, routeErr.Message, u.Object)
		}
		if _, err := h.NewRouter(c).Verify(ctx, u.Rollout); !errors.As(err, &routeErr) || !errors.Is(err, providers.ErrRouteNotUsable) {
			t.Errorf("%s: Verify must fail the same way, got %v", u.Case, err)
		}
	}
	if n := c.writes(); n != 0 {
		t.Errorf("unusable objects were written %d times", n)
	}
	f.Intact(t)
}

func testCrossNamespace(t testing.TB, h Harness) {
	f := h.NewFixture(t, true)
	p, ok := f.(Permitter)
	if !ok {
		t.Fatalf("%s supports %s, but its Fixture cannot Permit", h.Name, FeatureCrossNamespaceRoute)
	}
	ctx := context.Background()
	w := providers.Weights{Stable: 90, Canary: 10}
	err := h.NewRouter(h.Client).SetWeights(ctx, f.Rollout(), w)
	var routeErr *providers.RouteError
	if !errors.As(err, &routeErr) || routeErr.Reason != providers.ReasonRouteNotPermitted {
		t.Fatalf("before Permit: want a RouteError %s, got %v", providers.ReasonRouteNotPermitted, err)
	}
	p.Permit(t)
	if err := h.NewRouter(h.Client).SetWeights(ctx, f.Rollout(), w); err != nil {
		t.Fatalf("after Permit: %v", err)
	}
	if got := f.Weights(t); got != w {
		t.Errorf("weights %v, want %v", got, w)
	}
	f.Intact(t)
}
