package rollout

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	kultascheme "github.com/false-systems/kulta/internal/scheme"
	"github.com/false-systems/kulta/internal/testutil"
)

// TestOwnedReplicaSetsReadByController checks how a reconcile finds a Rollout's ReplicaSets:
// every List it makes asks replicaSetControllerIndex for one key (the Rollout's UID, or the
// orphans'), so that it reads its own ReplicaSets rather than its namespace's; and what it
// finds: its own, the orphan its selector matches (adopted), not a neighbour's that carries its
// labels, nor an orphan outside its selector. Against a real cache the index is exercised by
// TestNeighboursKeepTheirReplicaSets.
func TestOwnedReplicaSetsReadByController(t *testing.T) {
	scheme, err := kultascheme.New()
	if err != nil {
		t.Fatal(err)
	}
	ro := testutil.Rollout("shop", "web")
	ro.UID = "uid-web"
	controlledBy := func(name string, uid types.UID) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: kultav1alpha1.GroupVersion.String(), Kind: "Rollout", Name: name, UID: uid, Controller: ptr.To(true)}}
	}
	rs := func(name string, labels map[string]string, owners []metav1.OwnerReference) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: labels, OwnerReferences: owners}}
	}
	webLabels := map[string]string{"app": "web", kultav1alpha1.PodTemplateHashLabel: "h"}
	objects := []client.Object{
		rs("web-1", webLabels, controlledBy("web", ro.UID)),
		rs("other-1", webLabels, controlledBy("other", "uid-other")),
		rs("web-orphan", webLabels, nil),
		rs("db-orphan", map[string]string{"app": "db", kultav1alpha1.PodTemplateHashLabel: "h"}, nil),
		rs("web-unhashed", map[string]string{"app": "web"}, nil),
	}
	var lists []client.ListOptions
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objects...).
		WithIndex(&appsv1.ReplicaSet{}, replicaSetControllerIndex, controllerUID).
		WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			var o client.ListOptions
			o.ApplyOptions(opts)
			lists = append(lists, o)
			return c.List(ctx, list, opts...)
		}}).Build()
	r := &Reconciler{Client: c}

	owned, err := r.ownedReplicaSets(context.Background(), ro)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rs := range owned {
		names = append(names, rs.Name)
		if ref := metav1.GetControllerOf(&rs); ref == nil || ref.UID != ro.UID {
			t.Errorf("%s returned without web as its controller: %v", rs.Name, rs.OwnerReferences)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"web-1", "web-orphan"}) {
		t.Errorf("owned %v, want web-1 and the adopted web-orphan", names)
	}
	for _, key := range []string{string(ro.UID), orphaned} {
		if !slices.ContainsFunc(lists, func(o client.ListOptions) bool {
			return o.Namespace == "shop" && o.FieldSelector != nil &&
				o.FieldSelector.Matches(fields.Set{replicaSetControllerIndex: key}) && len(o.FieldSelector.Requirements()) == 1
		}) {
			t.Errorf("no List by %s=%q among %d", replicaSetControllerIndex, key, len(lists))
		}
	}
	for _, o := range lists {
		if o.FieldSelector == nil {
			t.Errorf("a List without the index: %+v; it would read every ReplicaSet of the namespace", o)
		}
	}
	if got := controllerUID(objects[1]); !slices.Equal(got, []string{"uid-other"}) {
		t.Errorf("indexed a neighbour's ReplicaSet under %v", got)
	}
	if got := controllerUID(objects[2]); !slices.Equal(got, []string{orphaned}) {
		t.Errorf("indexed an orphan under %v", got)
	}
}
