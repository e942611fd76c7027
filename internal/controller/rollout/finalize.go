package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/metrics"
	"github.com/false-systems/kulta/providers"
)

// addFinalizer puts CleanupFinalizer on a Rollout that does not carry it yet, so that deleting
// the Rollout hands its traffic back first.
func (r *Reconciler) addFinalizer(ctx context.Context, ro *kultav1alpha1.Rollout) error {
	if controllerutil.ContainsFinalizer(ro, kultav1alpha1.CleanupFinalizer) {
		return nil
	}
	before := ro.DeepCopy()
	controllerutil.AddFinalizer(ro, kultav1alpha1.CleanupFinalizer)
	if err := r.Patch(ctx, ro, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding finalizer %s to Rollout %s/%s: %w", kultav1alpha1.CleanupFinalizer, ro.Namespace, ro.Name, err)
	}
	r.written.Wrote(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}, ro.ResourceVersion)
	return nil
}

// finalize hands a deleted Rollout's traffic back before its ReplicaSets go: an adopted
// Deployment is scaled back up and waited for, the routes lose KULTA's rules and send the
// managed weights all to the stable Service, then each Service gets back the selector the user
// wrote. A route that is gone or may no longer be used does not hold the deletion; any other
// failure is retried.
func (r *Reconciler) finalize(ctx context.Context, ro *kultav1alpha1.Rollout) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ro, kultav1alpha1.CleanupFinalizer) {
		return ctrl.Result{}, nil
	}
	log := ctrl.LoggerFrom(ctx)
	wait, err := r.handBackWorkload(ctx, ro)
	if err != nil || wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, err
	}
	if trafficRouting(ro) != nil {
		// The clean-up removes every header route too (providers.HeaderRouteNames), route by
		// route, skipping those that cannot be used any more.
		err := r.router().Cleanup(ctx, ro)
		switch {
		case errors.Is(err, providers.ErrRouteNotUsable):
			log.Info("Routes not cleaned up: they cannot be used any more", "reason", err.Error())
			r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, "RouteCleanupSkipped", "Delete", "%s", err.Error())
		case err != nil:
			return ctrl.Result{}, fmt.Errorf("handing the routes of Rollout %s/%s back to stable: %w", ro.Namespace, ro.Name, err)
		}
	}
	for _, name := range serviceNamesOf(ro) {
		if err := r.restoreService(ctx, ro.Namespace, name); err != nil {
			return ctrl.Result{}, err
		}
	}
	before := ro.DeepCopy()
	controllerutil.RemoveFinalizer(ro, kultav1alpha1.CleanupFinalizer)
	if err := r.Patch(ctx, ro, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("removing finalizer %s from Rollout %s/%s: %w", kultav1alpha1.CleanupFinalizer, ro.Namespace, ro.Name, err)
	}
	metrics.Forget(ro.Namespace, ro.Name)
	log.Info("Traffic handed back; Rollout released for deletion")
	return ctrl.Result{}, nil
}

// handBackWaitRecheck is how often a deletion waiting for an adopted Deployment's Pods looks
// again; the Deployment's own changes wake it sooner.
const handBackWaitRecheck = 2 * time.Second

// handBackWorkload scales a deleted Rollout's adopted Deployment back to the replica count it
// had before KULTA scaled it down, and returns how long to wait before looking again while its
// Pods are not all available: the Services are given back to the Deployment's Pods, and the
// Rollout's ReplicaSets deleted, only once they can take the traffic. The wait is bounded by
// spec.progressDeadlineSeconds from the deletion; past it, a Warning Event says the Deployment
// did not become available, and the deletion goes on. A Deployment that is gone holds nothing.
func (r *Reconciler) handBackWorkload(ctx context.Context, ro *kultav1alpha1.Rollout) (time.Duration, error) {
	ref := ro.Spec.WorkloadRef
	if ref == nil {
		return 0, nil
	}
	var d appsv1.Deployment
	if err := r.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: ref.Name}, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("getting Deployment %s/%s: %w", ro.Namespace, ref.Name, err)
	}
	if _, recorded := d.Annotations[kultav1alpha1.AdoptedReplicasAnnotation]; recorded {
		adopted, err := adoptedReplicas(&d)
		if err != nil {
			// Unreadable: the Rollout's own replica count is the best there is.
			ctrl.LoggerFrom(ctx).Info("Scaling the adopted Deployment back to spec.replicas", "reason", err.Error())
			adopted = ro.Spec.Replicas
		}
		n := ptr.Deref(adopted, 1)
		patch := map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{kultav1alpha1.AdoptedReplicasAnnotation: nil}},
			"spec":     map[string]any{"replicas": n},
		}
		if err := r.mergePatch(ctx, &d, d.Namespace, d.Name, patch); err != nil {
			return 0, fmt.Errorf("scaling Deployment %s/%s (spec.workloadRef) back to %d: %w", d.Namespace, d.Name, n, err)
		}
		ctrl.LoggerFrom(ctx).Info("Adopted Deployment scaled back up", "deployment", d.Name, "replicas", n)
		r.Recorder.Eventf(ro, nil, corev1.EventTypeNormal, "WorkloadScaled", "Delete", "Deployment %s scaled back to %d Pods before traffic is handed back to it", d.Name, n)
	}
	want := ptr.Deref(d.Spec.Replicas, 1)
	if d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas >= want {
		return 0, nil
	}
	deadline := time.Duration(ptr.Deref(ro.Spec.ProgressDeadlineSeconds, 600)) * time.Second
	if waited := r.Clock.Since(ro.DeletionTimestamp.Time); waited >= deadline {
		msg := fmt.Sprintf("Deployment %s has %d of %d Pods available after %s (progressDeadlineSeconds); handing traffic back to it anyway", d.Name, d.Status.AvailableReplicas, want, waited.Round(time.Second))
		ctrl.LoggerFrom(ctx).Info(msg)
		r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, "WorkloadNotAvailable", "Delete", "%s", msg)
		return 0, nil
	}
	return handBackWaitRecheck, nil
}

// restoreService gives a Service back the selector the user wrote before KULTA pinned it, and
// removes KULTA's record of it. A Service pinned before that record existed loses the
// pod-template-hash key only.
func (r *Reconciler) restoreService(ctx context.Context, namespace, name string) error {
	svc := &corev1.Service{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("getting Service %s/%s: %w", namespace, name, err)
	}
	want, err := originalSelector(svc)
	if err != nil {
		return err
	}
	_, recorded := svc.Annotations[kultav1alpha1.OriginalSelectorAnnotation]
	if !recorded && maps.Equal(want, svc.Spec.Selector) {
		return nil
	}
	before := svc.DeepCopy()
	svc.Spec.Selector = want
	delete(svc.Annotations, kultav1alpha1.OriginalSelectorAnnotation)
	if err := r.Patch(ctx, svc, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("restoring the selector of Service %s/%s: %w", namespace, name, err)
	}
	return nil
}

// originalSelector is the selector the user wrote on svc: the one recorded when KULTA first
// pinned it, or the current one without the pod-template hash.
func originalSelector(svc *corev1.Service) (map[string]string, error) {
	if raw, ok := svc.Annotations[kultav1alpha1.OriginalSelectorAnnotation]; ok {
		var sel map[string]string
		if err := json.Unmarshal([]byte(raw), &sel); err != nil {
			return nil, fmt.Errorf("service %s/%s: annotation %s is not a JSON selector: %w", svc.Namespace, svc.Name, kultav1alpha1.OriginalSelectorAnnotation, err)
		}
		return sel, nil
	}
	sel := maps.Clone(svc.Spec.Selector)
	delete(sel, kultav1alpha1.PodTemplateHashLabel)
	return sel, nil
}
