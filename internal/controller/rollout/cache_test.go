package rollout

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"
	"unsafe"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/randfill"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/revision"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

// TestCachedReplicaSetsKeepWhatTheReconcilerReads trims a ReplicaSet as KULTA builds it and
// checks that what the reconciler reads survives and the pod template is gone, and that the
// cache, which holds it packed, hands the trimmed ReplicaSet out.
func TestCachedReplicaSetsKeepWhatTheReconcilerReads(t *testing.T) {
	ro := testutil.Rollout("default", "web", testutil.WithReplicas(3))
	ro.Spec.CanaryMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "canary"}}
	rs, hash := buildRevision(t, ro, revision.RoleCanary, 2, 7)
	rs.Status = appsv1.ReplicaSetStatus{Replicas: 2, ReadyReplicas: 1, AvailableReplicas: 1, ObservedGeneration: 3,
		Conditions: []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: "True"}}}
	if _, ok := rs.Annotations[revision.TemplateAnnotation]; !ok {
		t.Fatalf("revision.Build no longer sets %s; this test needs a ReplicaSet that carries it", revision.TemplateAnnotation)
	}
	want := rs.DeepCopy()

	out, err := trimReplicaSet(rs)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*appsv1.ReplicaSet)
	if len(got.Spec.Template.Spec.Containers) != 0 || got.Spec.Template.Labels != nil || got.Spec.Selector != nil {
		t.Errorf("template or selector kept: %+v / %v", got.Spec.Template, got.Spec.Selector)
	}
	if _, ok := got.Annotations[revision.TemplateAnnotation]; ok || got.Status.Conditions != nil {
		t.Error("template annotation or status conditions kept")
	}
	for _, key := range []string{revision.DigestAnnotation, revision.RevisionAnnotation, revision.PodMetadataAnnotation} {
		if got.Annotations[key] != want.Annotations[key] || got.Annotations[key] == "" {
			t.Errorf("annotation %s = %q, want %q", key, got.Annotations[key], want.Annotations[key])
		}
	}
	if got.Labels[kultav1alpha1.PodTemplateHashLabel] != hash || len(got.Labels) != len(want.Labels) {
		t.Errorf("labels %v, want %v", got.Labels, want.Labels)
	}
	if len(got.OwnerReferences) != 1 || !equality.Semantic.DeepEqual(got.OwnerReferences, want.OwnerReferences) {
		t.Errorf("owner references %v, want %v", got.OwnerReferences, want.OwnerReferences)
	}
	if ptr.Deref(got.Spec.Replicas, 0) != 2 || got.Status.ReadyReplicas != 1 || got.Status.AvailableReplicas != 1 ||
		got.Status.Replicas != 2 || got.Status.ObservedGeneration != 3 {
		t.Errorf("replicas %v, status %+v", got.Spec.Replicas, got.Status)
	}
	if _, err := trimReplicaSet(ro); err == nil {
		t.Error("trimming a Rollout as a ReplicaSet did not fail")
	}

	// The cache holds it packed, and a read gets the trimmed ReplicaSet back, a copy of its own.
	packed, err := packReplicaSet(want.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	held, ok := packed.(client.Object)
	if _, unpacked := packed.(*appsv1.ReplicaSet); !ok || unpacked || held.GetName() != want.Name ||
		held.GetLabels()[kultav1alpha1.PodTemplateHashLabel] != hash || metav1.GetControllerOf(held) == nil {
		t.Fatalf("the cache would hold a %T, want a packed ReplicaSet with its metadata", packed)
	}
	if held.(*packedReplicaSet).Labels != nil || held.(*packedReplicaSet).Annotations != nil {
		t.Error("the packed ReplicaSet keeps its labels or annotations as maps")
	}
	if !maps.Equal(held.GetLabels(), got.Labels) || !maps.Equal(held.GetAnnotations(), got.Annotations) {
		t.Errorf("packed labels %v and annotations %v, want %v and %v", held.GetLabels(), held.GetAnnotations(), got.Labels, got.Annotations)
	}
	if metaOf, ok := held.(metav1.ObjectMetaAccessor); !ok || metaOf.GetObjectMeta().GetLabels()[kultav1alpha1.PodTemplateHashLabel] != hash {
		t.Error("GetObjectMeta of the packed ReplicaSet does not give its labels")
	}
	held.GetLabels()["changed"] = "yes"
	if _, changed := held.GetLabels()["changed"]; changed {
		t.Error("changing the map GetLabels gave changed the cached ReplicaSet")
	}
	if again, err := packReplicaSet(packed); err != nil || again != packed {
		t.Errorf("packing twice gave %T (%v), want the packed ReplicaSet as it was", again, err)
	}
	read, ok := held.DeepCopyObject().(*appsv1.ReplicaSet)
	if !ok {
		t.Fatalf("a cache read would get a %T, want *appsv1.ReplicaSet", held.DeepCopyObject())
	}
	if !equality.Semantic.DeepEqual(read, got) {
		t.Errorf("a cache read gets\n%+v\nwant the trimmed ReplicaSet\n%+v", read, got)
	}
	*read.Spec.Replicas = 9
	read.Labels["changed"] = "yes"
	if again := held.DeepCopyObject().(*appsv1.ReplicaSet); *again.Spec.Replicas != 2 || again.Labels["changed"] != "" {
		t.Error("changing what a read got changed the cached ReplicaSet")
	}
	if _, err := packReplicaSet(ro); err == nil {
		t.Error("packing a Rollout as a ReplicaSet did not fail")
	}
}

// TestOnlyKultaReplicaSetsAreCached checks the cache's label selector: KULTA's ReplicaSets
// are cached, a Deployment's are not.
func TestOnlyKultaReplicaSetsAreCached(t *testing.T) {
	opts, err := CacheOptions()
	if err != nil {
		t.Fatal(err)
	}
	var sel labels.Selector
	for obj, by := range opts.ByObject {
		if _, ok := obj.(*appsv1.ReplicaSet); ok {
			sel = by.Label
		}
	}
	if sel == nil {
		t.Fatal("no label selector for ReplicaSets")
	}
	if !sel.Matches(labels.Set{"app": "web", kultav1alpha1.PodTemplateHashLabel: "abc"}) {
		t.Error("a ReplicaSet of KULTA's is not cached")
	}
	if sel.Matches(labels.Set{"app": "web", "pod-template-hash": "abc"}) {
		t.Error("a Deployment's ReplicaSet is cached")
	}
}

// TestCachedServicesKeepTheirSelector checks that a cached Service keeps what KULTA reads and
// patches (its name, resourceVersion and selector) and drops the rest.
func TestCachedServicesKeepTheirSelector(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-canary", ResourceVersion: "42", UID: "u1",
			Labels:      map[string]string{"app": "web"},
			Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: `{"big":"copy"}`, kultav1alpha1.OriginalSelectorAnnotation: `{"app":"web"}`}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web", kultav1alpha1.PodTemplateHashLabel: "abc"},
			Ports: []corev1.ServicePort{{Port: 80}}, ClusterIP: "10.0.0.1", ClusterIPs: []string{"10.0.0.1"}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}}},
	}
	want := svc.DeepCopy()
	out, err := trimService(svc)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Service)
	if got.Name != want.Name || got.ResourceVersion != "42" || got.UID != "u1" || !equality.Semantic.DeepEqual(got.Labels, want.Labels) {
		t.Errorf("metadata %+v, want the name, resourceVersion, UID and labels of %+v", got.ObjectMeta, want.ObjectMeta)
	}
	if !equality.Semantic.DeepEqual(got.Spec, corev1.ServiceSpec{Selector: want.Spec.Selector}) {
		t.Errorf("spec %+v, want only the selector %v", got.Spec, want.Spec.Selector)
	}
	if !equality.Semantic.DeepEqual(got.Annotations, map[string]string{kultav1alpha1.OriginalSelectorAnnotation: `{"app":"web"}`}) || len(got.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("annotations %v or status %+v kept; want only KULTA's record of the selector", got.Annotations, got.Status)
	}
	if _, err := trimService(&appsv1.ReplicaSet{}); err == nil {
		t.Error("trimming a ReplicaSet as a Service did not fail")
	}

	// The cache holds it packed, and a read hands out the trimmed Service, a copy of its own.
	cached, err := packService(want.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	packed, ok := cached.(*packedService)
	if !ok {
		t.Fatalf("Service cached as %T, want it packed", cached)
	}
	read, ok := packed.DeepCopyObject().(*corev1.Service)
	if !ok || !equality.Semantic.DeepEqual(read, got) {
		t.Fatalf("packed Service read back as %+v, want %+v", packed.DeepCopyObject(), got)
	}
	if !maps.Equal(packed.GetLabels(), got.Labels) || !maps.Equal(packed.GetAnnotations(), got.Annotations) || packed.Labels != nil || packed.Annotations != nil {
		t.Errorf("the cached metadata gives labels %v and annotations %v, want %v and %v, held as pairs", packed.GetLabels(), packed.GetAnnotations(), got.Labels, got.Annotations)
	}
	read.Spec.Selector["app"] = "changed"
	read.Labels["app"] = "changed"
	if again := packed.DeepCopyObject().(*corev1.Service); !equality.Semantic.DeepEqual(again, got) {
		t.Errorf("a change to one read shows in the next: %+v", again)
	}
	if again, err := packService(packed); err != nil || again != packed {
		t.Errorf("packing a packed Service gave %p (error %v), want it kept as it is", again, err)
	}
	external, err := packService(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if sel := external.(*packedService).DeepCopyObject().(*corev1.Service).Spec.Selector; sel != nil {
		t.Errorf("a Service without a selector read back with %v", sel)
	}
	if _, err := packService(&appsv1.ReplicaSet{}); err == nil {
		t.Error("packing a ReplicaSet as a Service did not fail")
	}
}

// BenchmarkCachedService measures what one Service costs the cache: a Service as the bench
// creates them (headless, one port, a selector), decoded from protobuf as an informer decodes
// it, trimmed, and packed as the cache holds it. Each Rollout names two.
func BenchmarkCachedService(b *testing.B) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench-000", Name: "ro-00001-canary", ResourceVersion: "123456789",
			UID: "2b3e0c39-3f5a-4b4e-9a57-3c3f2a9d8f11", Labels: map[string]string{"bench.kulta.io/run": "true"},
			CreationTimestamp: metav1.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC),
			Annotations:       map[string]string{kultav1alpha1.OriginalSelectorAnnotation: `{"app":"ro-00001"}`}},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone}, Type: corev1.ServiceTypeClusterIP,
			Selector:        map[string]string{"app": "ro-00001", kultav1alpha1.PodTemplateHashLabel: "585c6995db"},
			Ports:           []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
			SessionAffinity: corev1.ServiceAffinityNone, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}},
	}
	raw, err := svc.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	benchmarkCached(b, "B/service", trimService, packService, func() (*corev1.Service, error) {
		var decoded corev1.Service
		return &decoded, decoded.Unmarshal(raw)
	})
}

// TestCachedRolloutsDropLastApplied checks that a cached Rollout loses `kubectl apply`'s copy
// of its spec and keeps everything else, KULTA's action annotations included.
func TestCachedRolloutsDropLastApplied(t *testing.T) {
	ro := testutil.Rollout("default", "web", testutil.WithReplicas(3))
	ro.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: `{"spec":"copy"}`, kultav1alpha1.PromoteAnnotation: "true"}
	want := ro.DeepCopy()
	delete(want.Annotations, corev1.LastAppliedConfigAnnotation)
	out, err := trimRollout(ro)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(*kultav1alpha1.Rollout); !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("trimmed Rollout %+v, want %+v", got, want)
	}
	if _, err := trimRollout(&corev1.Service{}); err == nil {
		t.Error("trimming a Service as a Rollout did not fail")
	}
}

// TestDefaultTrimRoutesAndStripsManagedFields checks the cache's default transform: routes are
// trimmed and packed by the Gateway API provider, every other object only loses its
// managedFields.
func TestDefaultTrimRoutesAndStripsManagedFields(t *testing.T) {
	trim := trimDefault([]providers.Provider{gatewayapi.NewProvider(nil, gatewayapi.Capabilities{})})
	route := gatewayapi.RouteObject("GRPCRoute")
	route.SetName("web")
	route.SetAnnotations(map[string]string{"team": "storefront"})
	route.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl"}})
	if err := unstructured.SetNestedStringSlice(route.Object, []string{"shop.example"}, "spec", "hostnames"); err != nil {
		t.Fatal(err)
	}
	out, err := trim(route)
	if err != nil {
		t.Fatal(err)
	}
	// The cache holds the route packed, and hands out its copy (DeepCopyObject) unpacked.
	held, ok := out.(client.Object)
	if !ok {
		t.Fatalf("the cache would hold a %T, want a client.Object", out)
	}
	if _, unpacked := held.(*unstructured.Unstructured); unpacked || held.GetName() != "web" {
		t.Errorf("the cache would hold a %T named %q, want the route packed", held, held.GetName())
	}
	got, ok := held.DeepCopyObject().(*unstructured.Unstructured)
	if !ok {
		t.Fatalf("a cache reader would get a %T, want *unstructured.Unstructured", held.DeepCopyObject())
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "hostnames"); found || got.GetAnnotations() != nil || got.GetManagedFields() != nil || got.GetName() != "web" {
		t.Errorf("route not trimmed: %v", got.Object)
	}

	other := &unstructured.Unstructured{}
	other.SetAPIVersion("v1")
	other.SetKind("ConfigMap")
	other.SetAnnotations(map[string]string{"team": "storefront"})
	other.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl"}})
	out, err = trim(other)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(*unstructured.Unstructured); got.GetManagedFields() != nil || got.GetAnnotations()["team"] != "storefront" {
		t.Errorf("another unstructured object: managedFields %v, annotations %v; want no managedFields and the annotations kept",
			got.GetManagedFields(), got.GetAnnotations())
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"team": "storefront"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	out, err = trim(svc)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(*corev1.Service); got.ManagedFields != nil || got.Annotations["team"] != "storefront" {
		t.Errorf("typed object: managedFields %v, annotations %v", got.ManagedFields, got.Annotations)
	}
}

// buildRevision builds ro's ReplicaSet of its template's revision as KULTA does, and returns
// it with the revision's hash.
func buildRevision(tb testing.TB, ro *kultav1alpha1.Rollout, role revision.Role, replicas int32, number int64) (*appsv1.ReplicaSet, string) {
	tb.Helper()
	hash, err := revision.Hash(&ro.Spec.Template, 0)
	if err != nil {
		tb.Fatal(err)
	}
	digest, err := revision.Digest(&ro.Spec.Template)
	if err != nil {
		tb.Fatal(err)
	}
	rs, err := revision.Build(ro, hash, digest, role, replicas, number, "")
	if err != nil {
		tb.Fatal(err)
	}
	return rs, hash
}

// BenchmarkCachedReplicaSet measures what one old revision costs the cache: a ReplicaSet as
// KULTA builds it, scaled to zero, decoded from protobuf as an informer decodes it, trimmed,
// and packed as the cache holds it. B/revision is the heap a thousand cached copies keep after
// a collection, per copy. Each Rollout keeps up to revisionHistoryLimit (default 10) of them.
func BenchmarkCachedReplicaSet(b *testing.B) {
	ro := testutil.Rollout("shop", "web-00001", testutil.WithReplicas(3))
	ro.UID = "0b3e0c39-3f5a-4b4e-9a57-3c3f2a9d8f11"
	rs, _ := buildRevision(b, ro, revision.RoleStable, 0, 4)
	rs.UID = "1b3e0c39-3f5a-4b4e-9a57-3c3f2a9d8f11"
	rs.ResourceVersion = "123456789"
	rs.Generation = 3
	rs.CreationTimestamp = metav1.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	rs.Annotations[revision.ScaleDownAtAnnotation] = "2026-12-06T06:10:00Z"
	rs.Status = appsv1.ReplicaSetStatus{ObservedGeneration: 3, TerminatingReplicas: ptr.To[int32](0)}
	rs.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kulta-controller", Operation: metav1.ManagedFieldsOperationUpdate,
		APIVersion: "apps/v1", FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{"f:annotations":{}}}`)}}
	raw, err := rs.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	benchmarkCached(b, "B/revision", trimReplicaSet, packReplicaSet, func() (*appsv1.ReplicaSet, error) {
		var decoded appsv1.ReplicaSet
		return &decoded, decoded.Unmarshal(raw)
	})
}

// TestCachedRolloutsReadBackWhole packs Rollouts as the cache does and checks that a read
// hands each one out as trimRollout left it: the testdata Rollout after a wave (conditions,
// decisions, scale-downs), every example, and randomly filled ones, so that a field JSON
// would lose fails here. The Rollout index reads a packed Rollout as it reads a typed one.
func TestCachedRolloutsReadBackWhole(t *testing.T) {
	var rollouts []*kultav1alpha1.Rollout
	after := testutil.ReadUnstructured(t, "testdata/cached-rollout.yaml")
	examples, err := filepath.Glob("../../../examples/*.yaml")
	if err != nil || len(examples) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	objs := []*unstructured.Unstructured{after}
	for _, file := range examples {
		decoded, err := testutil.DecodeManifests(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		objs = append(objs, decoded...)
	}
	for _, u := range objs {
		if u.GetKind() != "Rollout" {
			continue
		}
		ro := &kultav1alpha1.Rollout{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ro); err != nil {
			t.Fatalf("%s: %v", u.GetName(), err)
		}
		rollouts = append(rollouts, ro)
	}
	if len(rollouts) < 10 || len(rollouts[0].Status.Decisions) == 0 {
		t.Fatalf("%d Rollouts decoded, the first with %d decisions; want the testdata Rollout and the examples", len(rollouts), len(rollouts[0].Status.Decisions))
	}
	fill := randfill.NewWithSeed(17).NilChance(0.2).NumElements(1, 3).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewQuantity(c.Int63n(1<<20), resource.DecimalSI)
		},
		// A Decimal reads only as a number: the informer's decoding refuses any other.
		func(d *kultav1alpha1.Decimal, c randfill.Continue) { *d = kultav1alpha1.NewDecimal(c.NormFloat64()) },
		// As do managed fields: JSON.
		func(f *metav1.FieldsV1, c randfill.Continue) {
			*f = *metav1.NewFieldsV1(fmt.Sprintf(`{"f:%d":{}}`, c.Intn(100)))
		},
	)
	for range 50 {
		ro := &kultav1alpha1.Rollout{}
		fill.Fill(ro)
		rollouts = append(rollouts, ro)
	}

	for i, ro := range rollouts {
		want := ro.DeepCopy()
		want.ManagedFields = nil
		delete(want.Annotations, corev1.LastAppliedConfigAnnotation)
		cached, err := packRollout(ro.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		packed, ok := cached.(*packedRollout)
		if !ok {
			t.Fatalf("Rollout %d cached as %T, want it packed", i, cached)
		}
		if again, err := packRollout(packed); err != nil || again != packed {
			t.Errorf("Rollout %d: packing a packed Rollout gave %p (error %v), want it kept as it is", i, again, err)
		}
		read, ok := packed.DeepCopyObject().(*kultav1alpha1.Rollout)
		if !ok {
			t.Fatalf("Rollout %d: a read gave %T", i, packed.DeepCopyObject())
		}
		if !equality.Semantic.DeepEqual(read, want) {
			t.Errorf("Rollout %d read back as\n%+v\nwant\n%+v", i, read, want)
			continue
		}
		// Change the read in place: its maps and pointers must be its own, not the cache's.
		for k := range read.Labels {
			read.Labels[k] = "changed by the reader"
		}
		for k := range read.Annotations {
			read.Annotations[k] = "changed by the reader"
		}
		if read.Spec.Replicas != nil {
			*read.Spec.Replicas = 99
		}
		if again := packed.DeepCopyObject().(*kultav1alpha1.Rollout); !equality.Semantic.DeepEqual(again, want) {
			t.Errorf("Rollout %d: a change to one read shows in the next", i)
		}
		if !maps.Equal(packed.GetLabels(), want.Labels) || !maps.Equal(packed.GetAnnotations(), want.Annotations) || packed.Labels != nil || packed.Annotations != nil {
			t.Errorf("Rollout %d: the cached metadata gives labels %v and annotations %v, want %v and %v, held as pairs",
				i, packed.GetLabels(), packed.GetAnnotations(), want.Labels, want.Annotations)
		}
		if got, want := serviceNamesOf(packed), serviceNamesOf(want); !equality.Semantic.DeepEqual(got, want) {
			t.Errorf("Rollout %d indexed by Services %v packed, %v typed", i, got, want)
		}
		if got, want := workloadNameOf(packed), workloadNameOf(want); !equality.Semantic.DeepEqual(got, want) {
			t.Errorf("Rollout %d indexed by workload %v packed, %v typed", i, got, want)
		}
	}
	if _, err := packRollout(&corev1.Service{}); err == nil {
		t.Error("packing a Service as a Rollout did not fail")
	}
}

// TestCachedRolloutThatCannotBePackedStaysTyped: a Rollout whose spec does not marshal (a
// threshold that is not a number, which the informer's decoding would have refused) is cached
// trimmed and typed, and indexed as any other.
func TestCachedRolloutThatCannotBePackedStaysTyped(t *testing.T) {
	ro := testutil.Rollout("default", "web", testutil.WithHTTPRoute("web"),
		testutil.WithCanarySteps(testutil.AnalyzeStep(kultav1alpha1.Metric{Name: "error-rate", Threshold: "not a number"})))
	ro.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: `{"spec":"copy"}`}
	cached, err := packRollout(ro)
	if err != nil {
		t.Fatal(err)
	}
	typed, ok := cached.(*kultav1alpha1.Rollout)
	if !ok {
		t.Fatalf("a Rollout that cannot be packed was cached as %T, want it typed", cached)
	}
	if _, kept := typed.Annotations[corev1.LastAppliedConfigAnnotation]; kept {
		t.Error("a Rollout cached typed kept kubectl's copy of its spec: it was not trimmed")
	}
	if names := serviceNamesOf(typed); len(names) != 2 {
		t.Errorf("a typed cached Rollout indexed by Services %v, want its two", names)
	}
}

// TestCachedRolloutThatCannotBeReadFailsTheRead checks what a packed Rollout whose JSON does
// not decode gives: a cache read refuses it (its copy is not a Rollout), and the indexes skip it.
func TestCachedRolloutThatCannotBeReadFailsTheRead(t *testing.T) {
	ro := testutil.Rollout("default", "web", testutil.WithHTTPRoute("web"))
	ro.Labels = map[string]string{"team": "shop"}
	cached, err := packRollout(ro)
	if err != nil {
		t.Fatal(err)
	}
	packed := cached.(*packedRollout)
	if len(serviceNamesOf(packed)) != 2 {
		t.Fatalf("packed Rollout indexed by Services %v, want its two", serviceNamesOf(packed))
	}
	packed.spec = []byte(`{"replicas":"three"}`)
	if got, ok := packed.DeepCopyObject().(*packedRollout); !ok || got.Name != "web" {
		t.Errorf("a read of a Rollout that cannot be unpacked gave %T, want a packedRollout a cache read refuses", packed.DeepCopyObject())
	} else {
		got.Name = "changed"
		if got.GetLabels()["team"] != "shop" || packed.Name != "web" {
			t.Errorf("the refused copy has labels %v and the cached name became %q; want the labels kept and a copy of its own", got.GetLabels(), packed.Name)
		}
	}
	if names := serviceNamesOf(packed); names != nil {
		t.Errorf("a Rollout that cannot be unpacked indexed by Services %v", names)
	}
}

// BenchmarkCachedRollout measures what one Rollout costs the cache: the testdata Rollout (after
// a wave of the bench: three steps, seven decisions), decoded from JSON as an informer decodes
// it, trimmed, and packed as the cache holds it. B/rollout is the heap a thousand cached copies
// keep after a collection, per copy.
func BenchmarkCachedRollout(b *testing.B) {
	raw, err := testutil.ReadUnstructured(b, "testdata/cached-rollout.yaml").MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	benchmarkCached(b, "B/rollout", trimRollout, packRollout, func() (*kultav1alpha1.Rollout, error) {
		var decoded kultav1alpha1.Rollout
		return &decoded, json.Unmarshal(raw, &decoded)
	})
}

// benchmarkCached reports, per object, the heap a thousand objects keep as the cache holds
// them trimmed and as it holds them packed, each decoded afresh by decode as an informer
// decodes it.
func benchmarkCached[T any](b *testing.B, unit string, trim, pack toolscache.TransformFunc, decode func() (T, error)) {
	b.Helper()
	for _, c := range []struct {
		name  string
		cache toolscache.TransformFunc
	}{{"trimmed", trim}, {"packed", pack}} {
		b.Run(c.name, func(b *testing.B) {
			testutil.ReportRetained(b, 1000, unit, func() (any, error) {
				decoded, err := decode()
				if err != nil {
					return nil, err
				}
				return c.cache(decoded)
			})
		})
	}
}

// TestPairsKeepAMap checks the pairs a packed ReplicaSet keeps its labels and annotations in:
// a map reads back equal and of its own, sorted by key, an empty one as nil, and KULTA's own
// keys are held as its constants rather than as copies decoded from the watch.
func TestPairsKeepAMap(t *testing.T) {
	decoded := string([]byte(kultav1alpha1.PodTemplateHashLabel))
	m := map[string]string{"app": "web", decoded: "abc", "team": ""}
	ps := pairsOf(m)
	if want := (pairs{"app", "web", kultav1alpha1.PodTemplateHashLabel, "abc", "team", ""}); !slices.Equal(ps, want) {
		t.Fatalf("pairs %q, want %q", ps, want)
	}
	if unsafe.StringData(ps[2]) != unsafe.StringData(kultav1alpha1.PodTemplateHashLabel) {
		t.Error("KULTA's own key is held as the decoded copy, not its constant")
	}
	back := ps.toMap()
	if !maps.Equal(back, m) {
		t.Errorf("read back %v, want %v", back, m)
	}
	back["app"] = "changed"
	if ps[1] != "web" {
		t.Error("changing the map read back changed the pairs")
	}
	if pairsOf(map[string]string{}) != nil || pairsOf(nil) != nil || pairs(nil).toMap() != nil {
		t.Error("an empty map is not held as nil, or nil pairs read back as a map")
	}
}
