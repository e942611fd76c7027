package gatewayapi_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

// TestTrimRoute checks what a cached route keeps (golden), that trimming twice changes nothing,
// and that every answer the router draws from a route is the same from the trimmed copy.
func TestTrimRoute(t *testing.T) {
	full := load(t, "cached")
	trimmed := full.DeepCopy()
	gatewayapi.TrimRoute(trimmed)
	golden(t, "cached-trimmed", trimmed)

	again := trimmed.DeepCopy()
	gatewayapi.TrimRoute(again)
	if !equality.Semantic.DeepEqual(again.Object, trimmed.Object) {
		t.Errorf("trimming twice changed the route:\n%v\nwant\n%v", again.Object, trimmed.Object)
	}

	for _, route := range []*unstructured.Unstructured{full, trimmed} {
		w, err := gatewayapi.CurrentWeights(route, web)
		if err != nil {
			t.Fatal(err)
		}
		if w == nil || *w != (providers.Weights{Stable: 80, Canary: 20}) {
			t.Errorf("weights %v, want 80/20", w)
		}
	}
	for _, generation := range []int64{3, 4} {
		full.SetGeneration(generation)
		trimmed.SetGeneration(generation)
		okFull, msgFull := gatewayapi.Accepted(full)
		okTrimmed, msgTrimmed := gatewayapi.Accepted(trimmed)
		if okFull != (generation == 3) || okFull != okTrimmed || msgFull != msgTrimmed {
			t.Errorf("generation %d: Accepted from the full copy (%v, %q), from the trimmed one (%v, %q); want both %v with one message",
				generation, okFull, msgFull, okTrimmed, msgTrimmed, generation == 3)
		}
	}

	// Each change the router makes is decided the same way from either copy.
	hr := providers.HeaderRoute{Name: "kulta-web-header"}
	for name, change := range map[string]func(*unstructured.Unstructured) (bool, error){
		"same weights": func(u *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetWeights(u, web, providers.Weights{Stable: 80, Canary: 20})
		},
		"new weights": func(u *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetWeights(u, web, providers.Weights{Stable: 50, Canary: 50})
		},
		"header route":  func(u *unstructured.Unstructured) (bool, error) { return gatewayapi.SetHeaderRoute(u, web, hr) },
		"remove header": func(u *unstructured.Unstructured) (bool, error) { return gatewayapi.RemoveHeaderRoute(u, web, hr) },
	} {
		fromFull, errFull := change(full.DeepCopy())
		fromTrimmed, errTrimmed := change(trimmed.DeepCopy())
		if fromFull != fromTrimmed || (errFull == nil) != (errTrimmed == nil) {
			t.Errorf("%s: full copy says changed=%v (%v), trimmed copy changed=%v (%v)", name, fromFull, errFull, fromTrimmed, errTrimmed)
		}
	}

	other := &unstructured.Unstructured{}
	other.SetAPIVersion("v1")
	other.SetKind("Service")
	if gatewayapi.IsRoute(other) {
		t.Error("a Service was taken for a route")
	}
	if !gatewayapi.IsRoute(full) {
		t.Error("an HTTPRoute was not recognised as a route")
	}
}

// BenchmarkCachedRoute measures what one route costs in the informer cache: trimmed, as an
// unstructured object, and trimmed and packed, as the provider's trim caches it. B/route is
// the heap a thousand cached copies keep after a collection, per copy, each decoded from the
// API server's JSON as an informer decodes it.
func BenchmarkCachedRoute(b *testing.B) {
	raw, err := testutil.ReadUnstructured(b, "testdata/cached.in.yaml").MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	trim := gatewayapi.NewProvider(nil, gatewayapi.Capabilities{HTTPRoute: true}).Trim
	for _, c := range []struct {
		name  string
		cache func(*unstructured.Unstructured) any
	}{
		{"trimmed", func(u *unstructured.Unstructured) any { gatewayapi.TrimRoute(u); return u }},
		{"packed", func(u *unstructured.Unstructured) any { out, _ := trim(u); return out }},
	} {
		b.Run(c.name, func(b *testing.B) {
			testutil.ReportRetained(b, 1000, "B/route", func() (any, error) {
				u := &unstructured.Unstructured{}
				if err := u.UnmarshalJSON(raw); err != nil {
					return nil, err
				}
				return c.cache(u), nil
			})
		})
	}
}
