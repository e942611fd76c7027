package main

import (
	"bytes"
	"context"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	kultascheme "github.com/false-systems/kulta/internal/scheme"
)

// TestObserverRecordsWeightsFromBeforeTheChange checks that a phase's route history starts at
// the weights the route had before the update, even when the controller moved the route before
// the observer's next look: the demo's summary once showed "80/20 -> 50/50 -> 100/0" for a
// canary that started at 100/0.
func TestObserverRecordsWeightsFromBeforeTheChange(t *testing.T) {
	ctx := context.Background()
	scheme, err := kultascheme.New()
	if err != nil {
		t.Fatal(err)
	}
	ro := &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}
	route := rollouttest.Route("default", "web", "web-stable", "web-canary")
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ro, route).Build()
	o := &observer{client: c, out: newConsole(&bytes.Buffer{}), rollout: client.ObjectKeyFromObject(ro),
		route: client.ObjectKeyFromObject(route), stable: "web-stable", canary: "web-canary"}

	before, err := o.look(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.weights != "100/0" {
		t.Fatalf("route starts at %s, want 100/0", before.weights)
	}
	o.resetWeights(before)
	for _, w := range [][2]int32{{80, 20}, {80, 20}, {50, 50}, {100, 0}} {
		setWeights(t, c, client.ObjectKeyFromObject(route), w[0], w[1])
		if _, err := o.look(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"100/0", "80/20", "50/50", "100/0"}; !slices.Equal(o.weights, want) {
		t.Errorf("recorded weights %v, want %v", o.weights, want)
	}
}

// setWeights writes stable/canary weights into the route's first rule, as the controller would.
func setWeights(t *testing.T, c client.Client, key client.ObjectKey, stable, canary int32) {
	t.Helper()
	route := &gatewayv1.HTTPRoute{}
	if err := c.Get(context.Background(), key, route); err != nil {
		t.Fatal(err)
	}
	refs := route.Spec.Rules[0].BackendRefs
	refs[0].Weight, refs[1].Weight = ptr.To(stable), ptr.To(canary)
	if err := c.Update(context.Background(), route); err != nil {
		t.Fatal(err)
	}
}
