package shard

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestScopeNarrowsEachKind: an entry's own selector is kept and the shard's label required
// beside it; a kind without an entry gets one (unstructured kinds by their GroupVersionKind);
// other kinds are left cached whole.
func TestScopeNarrowsEachKind(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	hashed := labels.SelectorFromSet(labels.Set{"hash": "x"})
	rs, cm := &appsv1.ReplicaSet{}, &corev1.ConfigMap{}
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{rs: {Label: hashed}, cm: {}}}
	route := &unstructured.Unstructured{}
	route.SetGroupVersionKind(schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"})
	if err := Scope(&opts, "alpha", scheme, &appsv1.ReplicaSet{}, &corev1.Service{}, route); err != nil {
		t.Fatal(err)
	}
	if len(opts.ByObject) != 4 {
		t.Fatalf("%d entries, want 4 (ReplicaSet kept as one, Service and HTTPRoute added, ConfigMap kept)", len(opts.ByObject))
	}
	for obj, by := range opts.ByObject {
		sel := by.Label
		if obj == cm {
			if sel != nil {
				t.Errorf("ConfigMaps narrowed to %q; they are not scoped", sel)
			}
			continue
		}
		marked := labels.Set{"shard.kulta.io/alpha": ""}
		if sel == nil || !sel.Matches(marked) && obj != rs {
			t.Errorf("%T: selector %v does not select objects marked for alpha", obj, sel)
		}
		if sel.Matches(labels.Set{"shard.kulta.io/beta": "", "hash": "x"}) {
			t.Errorf("%T: selector %q selects another shard's objects", obj, sel)
		}
		if obj == rs {
			if !sel.Matches(labels.Set{"shard.kulta.io/alpha": "", "hash": "x"}) || sel.Matches(marked) {
				t.Errorf("ReplicaSets: selector %q lost its own requirement or the shard's", sel)
			}
		}
	}
}

// TestClientMarksWhatTheCacheMisses: a Service the cache does not hold but the API server does
// is returned and labelled for the shard there; a kind not scoped, and an object missing from
// both, stay NotFound (recognisable as such through the wrapping).
func TestClientMarksWhatTheCacheMisses(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-stable"}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "settings"}}
	live := fake.NewClientBuilder().WithScheme(scheme).WithObjects(svc, cm).Build()
	cached := fake.NewClientBuilder().WithScheme(scheme).Build()
	c := NewClient(cached, live, "alpha", schema.GroupKind{Kind: "Service"})
	// The cache's client writes: here the live one, so the mark lands where it is read back.
	c.adopter.writer = live

	got := &corev1.Service{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(svc), got); err != nil {
		t.Fatalf("Service only the API server holds: %v", err)
	}
	stored := &corev1.Service{}
	if err := live.Get(context.Background(), client.ObjectKeyFromObject(svc), stored); err != nil {
		t.Fatal(err)
	}
	if _, ok := stored.Labels["shard.kulta.io/alpha"]; !ok {
		t.Errorf("the Service was not labelled for the shard: %v", stored.Labels)
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(cm), &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap, not scoped, missing from the cache: %v, want NotFound", err)
	}
	err := c.Get(context.Background(), types.NamespacedName{Namespace: "shop", Name: "gone"}, &corev1.Service{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("Service missing everywhere: %v, want NotFound", err)
	}
}
