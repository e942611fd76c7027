package shard

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/nginx"
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

// ingressScheme is client-go's scheme, which holds networking.k8s.io/v1 Ingresses.
func ingressScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return scheme
}

var ingressKind = schema.GroupKind{Group: "networking.k8s.io", Kind: "Ingress"}

// TestClientMarksWhatItCreates: an object of a scoped kind created through a shard's client
// carries the shard's label (its own labels kept), and one that exists already with the same
// controller is marked where it is; one of a kind not scoped is not.
func TestClientMarksWhatItCreates(t *testing.T) {
	live := fake.NewClientBuilder().WithScheme(ingressScheme(t)).Build()
	c := NewClient(live, live, "alpha", ingressKind)
	ctx := context.Background()
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-web-canary", Labels: map[string]string{"app": "web"}}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "settings"}}
	for _, obj := range []client.Object{ing, cm} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	stored := &networkingv1.Ingress{}
	if err := live.Get(ctx, client.ObjectKeyFromObject(ing), stored); err != nil {
		t.Fatal(err)
	}
	if _, ok := stored.Labels[Label("alpha")]; !ok || stored.Labels["app"] != "web" {
		t.Errorf("Ingress created through the shard's client: labels %v, want the shard's beside app", stored.Labels)
	}
	// One that exists unmarked with the same controller, made by another shard's replica, is
	// marked; one with another controller, or none, is left alone; each is reported.
	controlledBy := func(uid types.UID) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "kulta.io/v1alpha1", Kind: "Rollout", Name: "cart", UID: uid, Controller: ptr.To(true)}}
	}
	for _, tc := range []struct {
		name   string
		owners []metav1.OwnerReference
		marked bool
	}{
		{"cart-cart-canary", controlledBy("rollout-cart"), true},
		{"cart-other-canary", controlledBy("rollout-other"), false},
		{"cart-users-canary", nil, false},
	} {
		existing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: tc.name, OwnerReferences: tc.owners}}
		if err := live.Create(ctx, existing); err != nil {
			t.Fatal(err)
		}
		again := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: tc.name, Labels: map[string]string{"app": "cart"},
			OwnerReferences: controlledBy("rollout-cart")}}
		if err := c.Create(ctx, again); !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating Ingress %s that exists: %v, want AlreadyExists", tc.name, err)
		}
		if err := live.Get(ctx, client.ObjectKeyFromObject(existing), stored); err != nil {
			t.Fatal(err)
		}
		if _, ok := stored.Labels[Label("alpha")]; ok != tc.marked || stored.Labels["app"] != "" {
			t.Errorf("Ingress %s that existed: labels %v, want marked %t and no other label", tc.name, stored.Labels, tc.marked)
		}
	}
	storedCM := &corev1.ConfigMap{}
	if err := live.Get(ctx, client.ObjectKeyFromObject(cm), storedCM); err != nil {
		t.Fatal(err)
	}
	if len(storedCM.Labels) != 0 {
		t.Errorf("ConfigMap, not scoped: labels %v, want none", storedCM.Labels)
	}
}

// TestOwnObjectStaysInTheCache: a Get marked providers.OwnObject of an object the scoped cache
// misses answers NotFound without reading or marking it on the API server; the same Get
// unmarked finds and marks it.
func TestOwnObjectStaysInTheCache(t *testing.T) {
	scheme := ingressScheme(t)
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	live := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ing).Build()
	cached := fake.NewClientBuilder().WithScheme(scheme).Build()
	r := NewReader(cached, live, live, "alpha", ingressKind)
	ctx := context.Background()
	if err := r.Get(ctx, client.ObjectKeyFromObject(ing), &networkingv1.Ingress{}, providers.OwnObject{}); !apierrors.IsNotFound(err) {
		t.Fatalf("own object missing from the cache: %v, want NotFound", err)
	}
	stored := &networkingv1.Ingress{}
	if err := live.Get(ctx, client.ObjectKeyFromObject(ing), stored); err != nil {
		t.Fatal(err)
	}
	if _, ok := stored.Labels[Label("alpha")]; ok {
		t.Fatal("a Get of an own object marked it on the API server")
	}
	if err := r.Get(ctx, client.ObjectKeyFromObject(ing), &networkingv1.Ingress{}); err != nil {
		t.Fatalf("the same Ingress read as another's: %v", err)
	}
	if err := live.Get(ctx, client.ObjectKeyFromObject(ing), stored); err != nil {
		t.Fatal(err)
	}
	if _, ok := stored.Labels[Label("alpha")]; !ok {
		t.Error("an Ingress read from the API server was not marked")
	}
}

// TestAdoptCreated marks the canary Ingresses the NGINX router made for a Rollout before it came
// to the shard, and only those: not another Rollout's, not a stable Ingress, not one already
// marked (not listed), not one being deleted.
func TestAdoptCreated(t *testing.T) {
	const owner = types.UID("rollout-web")
	canary := func(name string, uid types.UID, extra map[string]string) *networkingv1.Ingress {
		labels := map[string]string{nginx.CanaryIngressLabel: "true"}
		for k, v := range extra {
			labels[k] = v
		}
		return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "kulta.io/v1alpha1", Kind: "Rollout", Name: "x", UID: uid, Controller: ptr.To(true)}}}}
	}
	deleting := canary("web-gone-canary", owner, nil)
	deleting.Finalizers = []string{"example.com/hold"}
	objs := []client.Object{
		canary("web-web-canary", owner, nil),
		canary("web-old-canary", owner, nil),
		canary("web-marked-canary", owner, map[string]string{Label("alpha"): ""}),
		canary("cart-cart-canary", "rollout-cart", nil),
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}},
		deleting,
	}
	live := fake.NewClientBuilder().WithScheme(ingressScheme(t)).WithObjects(objs...).Build()
	ctx := context.Background()
	if err := live.Delete(ctx, deleting); err != nil {
		t.Fatal(err)
	}
	created := nginx.NewProvider(nil).Created[0]
	n, err := AdoptCreated(ctx, live, live, "alpha", "shop", created, owner)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("marked %d, want 2", n)
	}
	for name, want := range map[string]bool{"web-web-canary": true, "web-old-canary": true, "web-marked-canary": true, "cart-cart-canary": false, "web": false, "web-gone-canary": false} {
		got := &networkingv1.Ingress{}
		if err := live.Get(ctx, types.NamespacedName{Namespace: "shop", Name: name}, got); err != nil {
			t.Fatal(err)
		}
		if _, marked := got.Labels[Label("alpha")]; marked != want {
			t.Errorf("Ingress %s marked %t, want %t", name, marked, want)
		}
	}
}

// TestAdoptReplicaSets marks the revisions a Rollout had before it came to the shard: those it
// controls and the orphans its selector matches (which the reconciler would adopt), not another
// controller's, not one without the hash label, and no orphan when there is no selector.
func TestAdoptReplicaSets(t *testing.T) {
	const owner, hash = types.UID("rollout-web"), "pod-template-hash"
	rs := func(name string, uid types.UID, labels map[string]string) *appsv1.ReplicaSet {
		out := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: labels}}
		if uid != "" {
			out.OwnerReferences = []metav1.OwnerReference{{APIVersion: "kulta.io/v1alpha1", Kind: "Rollout", Name: "web", UID: uid, Controller: ptr.To(true)}}
		}
		return out
	}
	web := func(extra ...string) map[string]string {
		l := map[string]string{"app": "web"}
		for _, k := range extra {
			l[k] = "x"
		}
		return l
	}
	live := fake.NewClientBuilder().WithScheme(ingressScheme(t)).WithObjects(
		rs("web-1", owner, web(hash)),
		rs("web-orphan", "", web(hash)),
		rs("web-other", "rollout-other", web(hash)),
		rs("web-unhashed", owner, web()),
	).Build()
	ctx := context.Background()
	n, err := AdoptReplicaSets(ctx, live, live, "alpha", "shop", map[string]string{"app": "web"}, hash, owner)
	if err != nil || n != 2 {
		t.Fatalf("marked %d (%v), want 2", n, err)
	}
	for name, want := range map[string]bool{"web-1": true, "web-orphan": true, "web-other": false, "web-unhashed": false} {
		got := &appsv1.ReplicaSet{}
		if err := live.Get(ctx, types.NamespacedName{Namespace: "shop", Name: name}, got); err != nil {
			t.Fatal(err)
		}
		if _, marked := got.Labels[Label("alpha")]; marked != want {
			t.Errorf("ReplicaSet %s marked %t, want %t", name, marked, want)
		}
	}
	// Without a selector no orphan is taken; marked ones are not listed again.
	if n, err := AdoptReplicaSets(ctx, live, live, "beta", "shop", nil, hash, owner); err != nil || n != 1 {
		t.Errorf("without a selector: marked %d (%v), want 1 (web-1 alone)", n, err)
	}
	if n, err := AdoptReplicaSets(ctx, live, live, "alpha", "shop", map[string]string{"app": "web"}, hash, owner); err != nil || n != 0 {
		t.Errorf("again: marked %d (%v), want 0", n, err)
	}
}
