package testenv

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StaggerAnnotation, set on a Rollout's pod template (and so on its ReplicaSets' templates) to
// a duration, makes the stand-in of AddReplicaSetReadiness bring the Pods up one at a time, each
// that long after the one before, as a kubelet starting Pods one after another would: the
// ready and available counts rise by one per step rather than all at once.
const StaggerAnnotation = "testenv.kulta.io/ready-one-by-one"

// AddReplicaSetReadiness registers a stand-in for the ReplicaSet controller and the kubelet:
// envtest runs no kube-controller-manager and no nodes, so nothing creates Pods. This
// controller reports every ReplicaSet's spec.replicas as its ready and available replicas, as
// if the Pods had been created, scheduled and passed their readiness probes at once. Tests
// that need real Pods use the e2e cluster, which runs the real components and kwok.
//
// Set paused to a function returning true for a ReplicaSet to keep its Pods from turning ready;
// see StaggerAnnotation for Pods that turn ready one by one.
func AddReplicaSetReadiness(mgr ctrl.Manager, paused func(*appsv1.ReplicaSet) bool) error {
	r := &readiness{client: mgr.GetClient(), paused: paused, raised: map[client.ObjectKey]time.Time{}}
	if err := ctrl.NewControllerManagedBy(mgr).For(&appsv1.ReplicaSet{}).Named("test-replicaset-readiness").Complete(r); err != nil {
		return fmt.Errorf("registering the ReplicaSet readiness stand-in: %w", err)
	}
	return nil
}

type readiness struct {
	client client.Client
	paused func(*appsv1.ReplicaSet) bool

	mu sync.Mutex
	// raised is when each staggered ReplicaSet's ready count last rose.
	raised map[client.ObjectKey]time.Time
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
	var next time.Duration
	if raw, ok := rs.Spec.Template.Annotations[StaggerAnnotation]; ok && ready > rs.Status.ReadyReplicas {
		step, err := time.ParseDuration(raw)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("ReplicaSet %s: annotation %s of its template: %w", req.NamespacedName, StaggerAnnotation, err)
		}
		if wait := r.stagger(req.NamespacedName, step); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
		ready = rs.Status.ReadyReplicas + 1
		if ready < want {
			next = step
		}
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
	return ctrl.Result{RequeueAfter: next}, nil
}

// stagger is how long the staggered ReplicaSet key waits before its next Pod may turn ready,
// step after the last; zero when it may now, which is noted as its last rise.
func (r *readiness) stagger(key client.ObjectKey, step time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if last, ok := r.raised[key]; ok && now.Sub(last) < step {
		return step - now.Sub(last)
	}
	r.raised[key] = now
	return 0
}
