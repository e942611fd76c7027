package objects

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// route is an HTTPRoute as the API server answers it, with a field no Gateway API release has
// (futureField), numbers whole and not, and an empty list and map.
const route = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: shop
  uid: 6f1c0a52-5b7e-4a53-9d1e-2f3a4b5c6d7e
  resourceVersion: "4711"
  generation: 3
  creationTimestamp: "2026-12-06T06:00:00Z"
  labels: {app: web, shard.kulta.io/s1: ""}
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: owner, uid: 0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6}
spec:
  parentRefs: [{name: public, sectionName: https}]
  rules:
  - name: primary
    matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs:
    - {name: web-stable, port: 80, weight: 80}
    - {name: web-canary, port: 80, weight: 20}
    filters: []
    futureField: {ratio: 0.25, nested: {}}
status:
  parents:
  - parentRef: {name: public}
    conditions:
    - {type: Accepted, status: "True", observedGeneration: 3}
`

func load(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(route), &u.Object); err != nil {
		t.Fatal(err)
	}
	// Numbers as the API server's answers decode: int64 where whole.
	u.SetUnstructuredContent(fromJSON(t, u))
	return u
}

func fromJSON(t *testing.T, u *unstructured.Unstructured) map[string]any {
	t.Helper()
	raw, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	out := &unstructured.Unstructured{}
	if err := out.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	return out.Object
}

// TestPackKeepsTheObject checks that a packed object unpacks to the object it was, number
// types included, that a cache reader's copy (DeepCopyObject) is that object as an
// *unstructured.Unstructured of its own, and that the metadata informers read is there.
func TestPackKeepsTheObject(t *testing.T) {
	u := load(t)
	before := u.DeepCopy()
	p, err := Pack(u)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(u.Object, before.Object) {
		t.Error("Pack changed the object it was given")
	}
	got, err := p.Unpack()
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got.Object, before.Object) {
		t.Errorf("unpacked\n%v\nwant\n%v", got.Object, before.Object)
	}
	rules, _, _ := unstructured.NestedSlice(got.Object, "spec", "rules")
	if len(rules) != 1 {
		t.Fatalf("unpacked %d rules, want 1", len(rules))
	}
	weight := rules[0].(map[string]any)["backendRefs"].([]any)[1].(map[string]any)["weight"]
	if _, ok := weight.(int64); !ok {
		t.Errorf("a weight unpacked as %T, want int64 as the API server's answers decode", weight)
	}

	copied, ok := p.DeepCopyObject().(*unstructured.Unstructured)
	if !ok {
		t.Fatalf("DeepCopyObject gave %T, want *unstructured.Unstructured", p.DeepCopyObject())
	}
	if !equality.Semantic.DeepEqual(copied.Object, before.Object) {
		t.Errorf("the cache reader's copy differs from the object:\n%v", copied.Object)
	}
	// Changing one copy leaves the packed object, and so the next copy, as they were.
	if err := unstructured.SetNestedField(copied.Object, int64(50), "spec", "parentRefs"); err != nil {
		t.Fatal(err)
	}
	copied.SetLabels(nil)
	if again := p.DeepCopyObject().(*unstructured.Unstructured); !equality.Semantic.DeepEqual(again.Object, before.Object) {
		t.Error("changing a copy changed the packed object")
	}

	if p.GetName() != "web" || p.GetNamespace() != "shop" || p.GetResourceVersion() != "4711" || p.GetGeneration() != 3 ||
		p.GetLabels()["app"] != "web" || len(p.GetOwnerReferences()) != 1 ||
		p.GroupVersionKind() != (schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}) {
		t.Errorf("packed metadata %+v, kind %v", p.ObjectMeta, p.GroupVersionKind())
	}
}

// TestCacheTrim checks the trim a provider builds: its objects are trimmed and packed, an
// object packed already is kept as it is, and other objects are left to the caller.
func TestCacheTrim(t *testing.T) {
	routes := func(gvk schema.GroupVersionKind) bool { return gvk.Kind == "HTTPRoute" }
	trim := CacheTrim(routes, func(u *unstructured.Unstructured) bool {
		if !routes(u.GroupVersionKind()) {
			return false
		}
		u.SetAnnotations(nil)
		return true
	})

	u := load(t)
	u.SetAnnotations(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"})
	out, ok := trim(u)
	p, packed := out.(*Packed)
	if !ok || !packed {
		t.Fatalf("a route came out as %T (%t), want packed", out, ok)
	}
	if p.GetAnnotations() != nil {
		t.Errorf("the route was packed untrimmed: annotations %v", p.GetAnnotations())
	}
	if again, ok := trim(p); !ok || again != p {
		t.Errorf("a packed route trimmed again gave %T (%t), want it as it was", again, ok)
	}

	other := &unstructured.Unstructured{}
	other.SetAPIVersion("v1")
	other.SetKind("ConfigMap")
	if out, ok := trim(other); ok || out != other {
		t.Errorf("a ConfigMap came out as %T (%t), want it left to the caller", out, ok)
	}
	typed := &metav1.PartialObjectMetadata{}
	if out, ok := trim(typed); ok || out != typed {
		t.Errorf("a typed object came out as %T (%t), want it left to the caller", out, ok)
	}
	foreign := &Packed{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}}
	if _, ok := trim(foreign); ok {
		t.Error("another provider's packed object was taken")
	}
}
