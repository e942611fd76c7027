package rollout

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
)

// adoptingRollout is a canary Rollout that adopts Deployment web (4 Pods serving) with
// scaleDown mode. The world's Rollout carries the template as observe resolves it from the
// Deployment; setImage stands for a change to the Deployment's template.
func adoptingRollout(t *testing.T, mode kultav1alpha1.WorkloadScaleDown) *world {
	ro := canaryRollout(testutil.WithCanarySteps(testutil.Weight(25), testutil.PauseFor("1m"), testutil.Weight(100)))
	ro.Spec.WorkloadRef = &kultav1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", ScaleDown: mode}
	w := newWorld(t, ro)
	w.workload = &Workload{Name: "web", Replicas: 4, Available: 4}
	return w
}

// updateThroughCanary changes the Deployment's template and walks the canary to completion.
func updateThroughCanary(w *world) {
	w.setImage("nginx:1.28")
	w.tick("Deployment updated", time.Second)
	w.tick("route at 25%", time.Second)
	w.tick("paused", time.Minute)
	w.tick("pause over", time.Second)
	w.tick("route at 100%", time.Second)
	w.tick("promoted", time.Second)
	w.tick("steady", time.Second)
}

func TestWorkloadRefSequences(t *testing.T) {
	cases := map[string]func(t *testing.T) *world{
		// Unhappy paths first.
		// The first revision's Pods turn ready, two of them crash, and the rest never come:
		// the Deployment is scaled back up by as many as stopped being available, the Services
		// never leave its Pods, and the progress deadline fails the adoption with the
		// Deployment whole.
		"workloadref-progressively-never-ready": func(t *testing.T) *world {
			w := adoptingRollout(t, kultav1alpha1.ScaleDownProgressively)
			w.podsPerTick = 1
			w.tick("adopt", time.Second)
			w.tick("1 Pod ready", time.Second)
			w.tick("2 Pods ready", time.Second)
			w.kubelet = false
			for _, r := range w.revs {
				r.Ready, r.Available = 0, 0
			}
			w.tick("2 Pods crashed", 5*time.Minute)
			w.tick("still none", 5*time.Minute)
			w.tick("deadline passed", time.Second)
			w.tick("failed", time.Second)
			return w
		},
		// The Deployment is missing (a typo, or not applied yet): Stalled, nothing created,
		// no traffic moved; once it exists the adoption starts.
		"workloadref-deployment-missing": func(t *testing.T) *world {
			w := adoptingRollout(t, kultav1alpha1.ScaleDownOnSuccess)
			w.problem = &Problem{Reason: "WorkloadNotFound", Message: `Deployment "web" (spec.workloadRef.name) not found in namespace default`}
			saved := w.workload
			w.workload = nil
			w.tick("no Deployment", time.Minute)
			w.tick("still none", time.Minute)
			w.problem, w.workload = nil, saved
			w.tick("Deployment applied", time.Second)
			w.settle("adopting", 5)
			return w
		},
		// Abort a canary of an adopted Deployment and push a fix: the Deployment stays at
		// zero throughout, the adoption is not undone by a failed update.
		"workloadref-abort-then-fix": func(t *testing.T) *world {
			w := adoptingRollout(t, kultav1alpha1.ScaleDownOnSuccess)
			w.settle("adopting", 5)
			w.setImage("nginx:1.28")
			w.tick("Deployment updated", time.Second)
			w.tick("route at 25%", time.Second)
			w.annotate(kultav1alpha1.AbortAnnotation)
			w.tick("abort", time.Second)
			w.tick("rolled back", 31*time.Second)
			w.setImage("nginx:1.29")
			w.tick("fixed Deployment", time.Second)
			w.tick("route at 25%", time.Second)
			w.tick("paused", time.Minute)
			w.tick("pause over", time.Second)
			w.tick("route at 100%", time.Second)
			w.tick("promoted", time.Second)
			w.tick("steady", time.Second)
			return w
		},
		// progressively: one Deployment Pod goes for each of the first revision's Pods that
		// turns available; the Services move to the first revision when it has all 4.
		"workloadref-progressively": func(t *testing.T) *world {
			w := adoptingRollout(t, kultav1alpha1.ScaleDownProgressively)
			w.podsPerTick = 1
			w.settle("adopting", 8)
			w.podsPerTick = 0
			updateThroughCanary(w)
			return w
		},
		// onsuccess: the Deployment keeps its 4 Pods until the first revision has all of its
		// own and the Services are pinned to them, in the same reconcile.
		"workloadref-onsuccess": func(t *testing.T) *world {
			w := adoptingRollout(t, kultav1alpha1.ScaleDownOnSuccess)
			w.podsPerTick = 2
			w.settle("adopting", 5)
			w.podsPerTick = 0
			updateThroughCanary(w)
			return w
		},
		// never: the Deployment is left as it is; only the Services and routes move.
		"workloadref-never": func(t *testing.T) *world {
			w := adoptingRollout(t, kultav1alpha1.ScaleDownNever)
			w.settle("adopting", 5)
			updateThroughCanary(w)
			return w
		},
		// A Deployment whose replicas someone sets back by hand during a progressive
		// adoption is scaled to what the adoption needs again, counted from the replicas it
		// had when adopted.
		"workloadref-progressively-drift": func(t *testing.T) *world {
			w := adoptingRollout(t, kultav1alpha1.ScaleDownProgressively)
			w.podsPerTick = 1
			w.tick("adopt", time.Second)
			w.tick("1 Pod ready", time.Second)
			w.workload.Replicas = 4
			w.tick("replicas reset to 4", time.Second)
			w.settle("adopting", 6)
			return w
		},
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			w := script(t)
			if w.ro.Spec.WorkloadRef.ScaleDown != kultav1alpha1.ScaleDownNever && w.workload != nil && w.ro.Status.Phase == kultav1alpha1.PhaseCompleted && w.workload.Replicas != 0 {
				t.Errorf("Deployment has %d replicas once the Rollout completed, want 0", w.workload.Replicas)
			}
			if w.workload != nil && ptr.Deref(w.workload.Adopted, 4) != 4 {
				t.Errorf("Deployment adopted at %d replicas, want 4", *w.workload.Adopted)
			}
			w.golden(name)
		})
	}
}

// TestStalledKeepsTheLastCounts: the adopted Deployment deleted (or any problem found before
// the ReplicaSets are read) stalls the Rollout, and the status keeps the Pods and the selector
// last seen, as an autoscaler on the scale subresource reads them.
// TestFewerReplicasThanTheWorkloadWarns: a Rollout of 2 Pods adopting a Deployment of 4 says so
// once, as the adoption scales the Deployment first, in a Warning that names both counts; a
// Rollout of as many Pods says nothing.
func TestFewerReplicasThanTheWorkloadWarns(t *testing.T) {
	warnings := func(w *world) int {
		w.podsPerTick = 1
		for i := range 6 {
			w.tick(fmt.Sprintf("tick %d", i), time.Second)
		}
		n := 0
		for _, e := range w.events {
			if e.Reason != "FewerReplicasThanWorkload" {
				continue
			}
			n++
			if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Message, "runs 2 Pods") || !strings.Contains(e.Message, "Deployment web ran 4") {
				t.Errorf("event %s %q is not a Warning naming both counts", e.Type, e.Message)
			}
		}
		return n
	}
	w := adoptingRollout(t, kultav1alpha1.ScaleDownProgressively)
	w.ro.Spec.Replicas = ptr.To[int32](2)
	if n := warnings(w); n != 1 {
		t.Errorf("%d FewerReplicasThanWorkload warnings over the adoption, want 1", n)
	}
	if n := warnings(adoptingRollout(t, kultav1alpha1.ScaleDownProgressively)); n != 0 {
		t.Errorf("%d FewerReplicasThanWorkload warnings with as many replicas as the Deployment, want 0", n)
	}
}

func TestStalledKeepsTheLastCounts(t *testing.T) {
	ro := canaryRollout()
	ro.Spec.Selector = nil
	ro.Spec.WorkloadRef = &kultav1alpha1.WorkloadRef{Name: "web", ScaleDown: kultav1alpha1.ScaleDownOnSuccess}
	ro.Status = kultav1alpha1.RolloutStatus{Replicas: 4, ReadyReplicas: 4, AvailableReplicas: 4, UpdatedReplicas: 4, Selector: "app=web", StablePodTemplateHash: "abc"}
	plan := Compute(Observation{Rollout: ro, Now: time.Now(), Revisions: map[string]*Revision{},
		Problem: &Problem{Reason: "WorkloadNotFound", Message: `Deployment "web" (spec.workloadRef.name) not found in namespace default`}})
	st := plan.Status
	if st.Replicas != 4 || st.AvailableReplicas != 4 || st.Selector != "app=web" || st.StablePodTemplateHash != "abc" {
		t.Errorf("stalled status: replicas %d, available %d, selector %q, stable %q; want the last seen 4, 4, app=web, abc", st.Replicas, st.AvailableReplicas, st.Selector, st.StablePodTemplateHash)
	}
	if len(plan.Replicas) != 0 || plan.Workload != nil || plan.Weights != nil {
		t.Errorf("a stalled plan moves nothing: %+v", plan)
	}
}
