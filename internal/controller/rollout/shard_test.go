package rollout

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	kultascheme "github.com/false-systems/kulta/internal/scheme"
	"github.com/false-systems/kulta/internal/testutil"
)

// TestOwnerServedDropsOtherShardsReplicaSets: a shard's replica, whose cache holds only its own
// Rollouts (here the fake client, holding Rollout a), takes the events of a's ReplicaSets and
// drops those of another shard's Rollout b; without a selector it takes every event.
func TestOwnerServedDropsOtherShardsReplicaSets(t *testing.T) {
	scheme, err := kultascheme.New()
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(testutil.Rollout("shop", "a")).Build()
	replicaSetOf := func(owner string) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: owner + "-1", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: kultav1alpha1.GroupVersion.String(), Kind: "Rollout", Name: owner, UID: types.UID("uid-" + owner), Controller: ptr.To(true),
		}}}}
	}
	sharded := &Reconciler{Client: c, RolloutSelector: labels.SelectorFromSet(labels.Set{kultav1alpha1.ShardLabel: "s0"})}
	unsharded := &Reconciler{Client: c}
	for _, tc := range []struct {
		name string
		r    *Reconciler
		rs   *appsv1.ReplicaSet
		want bool
	}{
		{"own shard", sharded, replicaSetOf("a"), true},
		{"another shard", sharded, replicaSetOf("b"), false},
		{"no controller", sharded, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orphan"}}, false},
		{"unsharded, Rollout not cached", unsharded, replicaSetOf("b"), true},
	} {
		if got := tc.r.ownerServed().Update(event.UpdateEvent{ObjectOld: tc.rs, ObjectNew: tc.rs}); got != tc.want {
			t.Errorf("%s: passed %t, want %t", tc.name, got, tc.want)
		}
	}
}
