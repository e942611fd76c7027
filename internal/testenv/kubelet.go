package testenv

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// AddReplicaSetReadiness registers a stand-in for the ReplicaSet controller and the kubelet:
// envtest runs no kube-controller-manager and no nodes, so nothing creates Pods. This
// controller reports every ReplicaSet's spec.replicas as its ready and available replicas, as
// if the Pods had been created, scheduled and passed their readiness probes at once. Tests
// that need real Pods use the e2e cluster, which runs the real components and kwok.
//
// Set paused to a function returning true for a ReplicaSet to keep its Pods from turning ready.
func AddReplicaSetReadiness(mgr ctrl.Manager, paused func(*appsv1.ReplicaSet) bool) error {
	r := &readiness{client: mgr.GetClient(), paused: paused}
	if err := ctrl.NewControllerManagedBy(mgr).For(&appsv1.ReplicaSet{}).Named("test-replicaset-readiness").Complete(r); err != nil {
		return fmt.Errorf("registering the ReplicaSet readiness stand-in: %w", err)
	}
	return nil
}

type readiness struct {
	client client.Client
	paused func(*appsv1.ReplicaSet) bool
}

func (r *readiness) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rs := &appsv1.ReplicaSet{}
	if err := r.client.Get(ctx, req.NamespacedName, rs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	want := ptr.Deref(rs.Spec.Replicas, 1)
	ready := want
	if r.paused != nil && r.paused(rs) {
		ready = 0
	}
	if rs.Status.Replicas == want && rs.Status.ReadyReplicas == ready && rs.Status.AvailableReplicas == ready && rs.Status.ObservedGeneration == rs.Generation {
		return ctrl.Result{}, nil
	}
	before := rs.DeepCopy()
	rs.Status.Replicas = want
	rs.Status.ReadyReplicas = ready
	rs.Status.AvailableReplicas = ready
	rs.Status.FullyLabeledReplicas = want
	rs.Status.ObservedGeneration = rs.Generation
	if err := r.client.Status().Patch(ctx, rs, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching ReplicaSet status: %w", err)
	}
	return ctrl.Result{}, nil
}
