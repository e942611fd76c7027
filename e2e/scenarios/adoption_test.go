//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// deploymentAdopted starts where a team is before KULTA: a Deployment of three Pods serving
// the route's traffic through its Services. A Rollout adopts it with workloadRef and scaleDown
// progressively; the Deployment's next template goes out as a canary that testers reach by a
// header route and judged by an analysis step on mirrored copies of the users' requests first,
// whose Pods carry their role labels; deleting the Rollout gives the
// service back to the Deployment. Throughout, from the moment the Deployment serves, the
// Gateway stand-in (which also sends the testers' header requests) counts no request that
// found no ready Pod to answer it.
func deploymentAdopted(ctx context.Context, t *testing.T, w *world) {
	ns := w.newNamespace(ctx, t, "adopt")
	a := canaryApp(w, ns, "shop", "5s")
	// A copy of every user's request reaches the canary first, so that an analysis step judges
	// it on them before it answers anyone (with no other request reaching it yet, it would have
	// nothing to judge without the copies, and hold until the deadline); then testers reach it
	// by header before any user does.
	p := a.strategy.Canary.Steps[1].Pause
	a.strategy.Canary.Steps = append([]kultav1alpha1.CanaryStep{
		{SetMirrorRoute: &kultav1alpha1.SetMirrorRoute{Name: "users", Percentage: ptr.To[int32](100)}},
		{Analysis: errorRateAnalysis()},
		{SetHeaderRoute: &kultav1alpha1.SetHeaderRoute{Name: "testers", Match: []kultav1alpha1.HeaderRouteMatch{{
			HeaderName: "X-Canary", HeaderValue: &kultav1alpha1.StringMatch{Exact: ptr.To("yes")},
		}}}},
		{Pause: p},
	}, a.strategy.Canary.Steps...)
	a.canaryMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "canary"}}
	a.stableMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "stable"}}
	for _, name := range a.services {
		create(ctx, t, w.client, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       corev1.ServiceSpec{Selector: a.userSelector(name), Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		})
	}
	a.createRouting(ctx, t)
	labels := map[string]string{"app": a.name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: a.name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(labels)},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: goodImage, Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				}}},
			},
		},
	}
	create(ctx, t, w.client, d)
	a.waitDeployment(ctx, t, 3)
	unserved := w.unserved(ctx, t, ns)
	t.Logf("%.0f requests found no ready Pod before the Deployment served", unserved)

	ro := a.rollout(goodImage)
	ro.Spec.Template = kultav1alpha1.PodTemplate{}
	ro.Spec.Selector = nil
	ro.Spec.WorkloadRef = &kultav1alpha1.WorkloadRef{Name: a.name, ScaleDown: kultav1alpha1.ScaleDownProgressively}
	create(ctx, t, w.client, ro)
	ro = a.waitCompleted(ctx, t, "", 90*time.Second)
	stableHash := ro.Status.StablePodTemplateHash
	a.expectPinned(ctx, t, a.services[0])
	waitFor(ctx, t, 30*time.Second, func() error {
		got, err := a.deployment(ctx)
		if err != nil {
			return err
		}
		if ptr.Deref(got.Spec.Replicas, 1) != 0 || got.Annotations[kultav1alpha1.AdoptedReplicasAnnotation] != "3" {
			return fmt.Errorf("Deployment at %d replicas with %s=%q, want 0 and \"3\"", ptr.Deref(got.Spec.Replicas, 1), kultav1alpha1.AdoptedReplicasAnnotation, got.Annotations[kultav1alpha1.AdoptedReplicasAnnotation])
		}
		return nil
	})
	a.expectTrack(ctx, t, map[string]string{stableHash: "stable"})
	adopted := w.unserved(ctx, t, ns)
	if n := adopted - unserved; n != 0 {
		t.Errorf("%.0f requests found no ready Pod during the adoption, want 0", n)
	}

	// The team's next release is an edit of the Deployment, as before adoption.
	watch := a.watchWeights(ctx, t)
	got, err := a.deployment(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := got.DeepCopy()
	got.Spec.Template.Spec.Containers[0].Image = betterImage
	if err := w.client.Patch(ctx, got, client.MergeFrom(before)); err != nil {
		t.Fatalf("updating Deployment %s/%s: %v", ns, a.name, err)
	}
	// The users' mirror rule and the testers' rule are on the route while the canary has no
	// weight yet, and the analysis step passed on the mirrored copies.
	waitFor(ctx, t, time.Minute, func() error {
		ro, err := a.get(ctx)
		if err != nil {
			return err
		}
		route, err := a.route(ctx)
		if err != nil {
			return err
		}
		var names []string
		for _, rule := range route.Spec.Rules {
			names = append(names, string(ptr.Deref(rule.Name, "")))
		}
		want := []string{"kulta-" + a.name + ".testers-0", "kulta-" + a.name + ".users-0", ""}
		if ptr.Deref(ro.Status.CurrentStepIndex, 0) != 3 || !slices.Equal(names, want) {
			return fmt.Errorf("at step %d with route rules %q, want %q at the pause of step 3", ptr.Deref(ro.Status.CurrentStepIndex, -1), names, want)
		}
		for _, d := range ro.Status.Decisions {
			if d.Reason == "AnalysisPassed" && ptr.Deref(d.FromStep, -1) == 1 {
				return nil
			}
		}
		return fmt.Errorf("no AnalysisPassed decision for step 1, the analysis of the mirrored requests")
	})
	waitFor(ctx, t, time.Minute, func() error {
		ro, err := a.get(ctx)
		if err != nil {
			return err
		}
		if ro.Status.CurrentPodTemplateHash == stableHash || ptr.Deref(ro.Status.CurrentWeight, 0) == 0 {
			return fmt.Errorf("no canary of the Deployment's new template serving yet (phase %s: %s)", ro.Status.Phase, ro.Status.Message)
		}
		_, err = a.tracks(ctx, map[string]string{ro.Status.CurrentPodTemplateHash: "canary", stableHash: "stable"})
		return err
	})
	ro = a.waitCompleted(ctx, t, stableHash, 2*time.Minute)
	// +B: the testers' header rule is on the route; +M: the users' mirror rule. They go after
	// the promotion's reset, when both Services select the promoted revision.
	a.expectRouteHistory(ctx, t, watch, "100/0", "100/0 +M", "100/0 +B +M", "80/20 +B +M", "50/50 +B +M", "100/0 +B +M", "100/0 +M", "100/0")
	if route, err := a.route(ctx); err != nil {
		t.Error(err)
	} else if len(route.Spec.Rules) != 1 {
		t.Errorf("the route has %d rules after the promotion, want the user's one: the testers' and users' rules removed", len(route.Spec.Rules))
	}
	if got, err := a.deployment(ctx); err != nil {
		t.Error(err)
	} else if n := ptr.Deref(got.Spec.Replicas, 1); n != 0 {
		t.Errorf("Deployment at %d replicas after the canary, want 0", n)
	}

	updated := w.unserved(ctx, t, ns)
	if n := updated - adopted; n != 0 {
		t.Errorf("%.0f requests found no ready Pod during the canary, want 0", n)
	}

	// Deleting the Rollout: the Deployment is scaled back up and serves again.
	if err := w.client.Delete(ctx, ro); err != nil {
		t.Fatalf("deleting Rollout %s/%s: %v", ns, a.name, err)
	}
	waitFor(ctx, t, 90*time.Second, func() error {
		err := w.client.Get(ctx, client.ObjectKeyFromObject(ro), &kultav1alpha1.Rollout{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return fmt.Errorf("reading the deleted Rollout: %w", err)
		}
		return fmt.Errorf("rollout %s/%s still there: the Deployment is not back yet", ns, a.name)
	})
	a.waitDeployment(ctx, t, 3)
	for _, name := range a.services {
		if sel := a.service(ctx, t, name).Spec.Selector; !maps.Equal(sel, a.userSelector(name)) {
			t.Errorf("Service %s selects %v after the hand-back, want %v", name, sel, a.userSelector(name))
		}
	}
	handedBack := w.unserved(ctx, t, ns)
	if n := handedBack - updated; n != 0 {
		t.Errorf("%.0f requests found no ready Pod during the hand-back, want 0", n)
	}
}

// deployment reads the app's Deployment.
func (a *app) deployment(ctx context.Context) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	if err := a.w.client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: a.name}, d); err != nil {
		return nil, fmt.Errorf("reading Deployment %s/%s: %w", a.namespace, a.name, err)
	}
	return d, nil
}

// waitDeployment waits until the app's Deployment wants and has want available Pods, as its
// controller reports them.
func (a *app) waitDeployment(ctx context.Context, t *testing.T, want int32) {
	t.Helper()
	waitFor(ctx, t, time.Minute, func() error {
		d, err := a.deployment(ctx)
		if err != nil {
			return err
		}
		if ptr.Deref(d.Spec.Replicas, 1) != want || d.Status.ObservedGeneration < d.Generation || d.Status.AvailableReplicas < want {
			return fmt.Errorf("Deployment wants %d Pods and has %d available (generation %d observed %d), want %d", ptr.Deref(d.Spec.Replicas, 1), d.Status.AvailableReplicas, d.Generation, d.Status.ObservedGeneration, want)
		}
		return nil
	})
}
