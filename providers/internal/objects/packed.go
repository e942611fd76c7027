package objects

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Packed is an unstructured object as an informer cache can hold it in a fraction of the
// memory: its metadata typed, which is what informers, indexes, selectors and event handlers
// read, and every other field as the JSON it stands for. An unstructured object is a tree of
// maps, a few hundred bytes per map; a route of a few rules took 6 KiB in the cache that way,
// about five times its packed size.
//
// A cache reader hands out a deep copy of what its cache holds (DeepCopyObject), and the copy
// of a Packed is the object unpacked: a reader asking the cache for an
// *unstructured.Unstructured gets the object whole, as it was before it was packed. Nothing
// else in the cache's path copies an object, and event handlers and predicates read only its
// metadata.
type Packed struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	// rest is the JSON of the object's fields other than apiVersion, kind and metadata.
	rest []byte
}

var _ client.Object = (*Packed)(nil)

// Pack packs u; u itself is left as it was.
func Pack(u *unstructured.Unstructured) (*Packed, error) {
	p := &Packed{TypeMeta: metav1.TypeMeta{APIVersion: u.GetAPIVersion(), Kind: u.GetKind()}}
	if md, ok := u.Object["metadata"].(map[string]any); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(md, &p.ObjectMeta); err != nil {
			return nil, fmt.Errorf("packing the metadata of %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	rest := make(map[string]any, len(u.Object))
	for k, v := range u.Object {
		switch k {
		case "apiVersion", "kind", "metadata":
		default:
			rest[k] = v
		}
	}
	raw, err := json.Marshal(rest)
	if err != nil {
		return nil, fmt.Errorf("packing %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	p.rest = raw
	return p, nil
}

// Unpack returns the object p holds, as Pack was given it: numbers are int64 where whole, as
// the API server's answers decode.
func (p *Packed) Unpack() (*unstructured.Unstructured, error) {
	obj := map[string]any{}
	if err := utiljson.Unmarshal(p.rest, &obj); err != nil {
		return nil, fmt.Errorf("unpacking %s %s/%s: %w", p.Kind, p.Namespace, p.Name, err)
	}
	md, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&p.ObjectMeta)
	if err != nil {
		return nil, fmt.Errorf("unpacking the metadata of %s %s/%s: %w", p.Kind, p.Namespace, p.Name, err)
	}
	if md["creationTimestamp"] == nil {
		// The converter writes a zero time as null; the API server's objects always have one.
		delete(md, "creationTimestamp")
	}
	obj["metadata"] = md
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion(p.APIVersion)
	u.SetKind(p.Kind)
	return u, nil
}

// DeepCopyObject returns the object p holds, unpacked (see Packed). Unpacking reads JSON that
// Pack wrote and cannot fail; were it to, the copy is a Packed, which a cache reader refuses
// to hand out as an *unstructured.Unstructured: the read fails, and nothing is decided or
// written from a partial object.
func (p *Packed) DeepCopyObject() runtime.Object {
	u, err := p.Unpack()
	if err != nil {
		out := &Packed{TypeMeta: p.TypeMeta, rest: p.rest}
		meta := &p.ObjectMeta
		meta.DeepCopyInto(&out.ObjectMeta)
		return out
	}
	return u
}

// CacheTrim builds a provider's cache trim (providers.Provider.Trim) for the unstructured
// objects it reads: trim drops from one what the provider never reads and reports whether the
// object was the provider's, and the object is then packed. owns tells the provider's kinds
// apart, for an object packed already, which is kept as it is (a cache's transform may be run
// twice). An object that cannot be packed is cached trimmed, unpacked. Objects that are not the
// provider's are returned as they are, with false.
func CacheTrim(owns func(schema.GroupVersionKind) bool, trim func(*unstructured.Unstructured) bool) func(obj any) (any, bool) {
	return func(obj any) (any, bool) {
		if p, ok := obj.(*Packed); ok {
			return p, owns(p.GroupVersionKind())
		}
		u, ok := obj.(*unstructured.Unstructured)
		if !ok || !trim(u) {
			return obj, false
		}
		packed, err := Pack(u)
		if err != nil {
			return u, true
		}
		return packed, true
	}
}
