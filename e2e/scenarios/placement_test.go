//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/e2e/cluster"
)

// poolLabel marks the Nodes a scenario adds for its own Pods.
const poolLabel = "e2e.kulta.io/pool"

// canaryScaleApart runs a canary whose size is set apart from its weight, on four Nodes of its
// own with antiAffinity Required: one canary Pod takes 20 % of the traffic, the canary then
// grows with its weight, and no canary Pod is ever scheduled beside a Pod of the stable
// revision (the real scheduler places them; kwok runs them).
func canaryScaleApart(ctx context.Context, t *testing.T, w *world) {
	ns := w.newNamespace(ctx, t, "placement")
	nodes := map[string]bool{}
	for i := range 4 {
		name := fmt.Sprintf("%s-%d", ns, i)
		create(ctx, t, w.client, cluster.FakeNode(name, map[string]string{poolLabel: ns}))
		nodes[name] = true
	}
	a := canaryApp(w, ns, "cart", "5s")
	a.nodeSelector = map[string]string{poolLabel: ns}
	a.antiAffinity = kultav1alpha1.AntiAffinityRequired
	a.canaryMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "canary"}}
	a.stableMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "stable"}}
	a.strategy.Canary.Steps = []kultav1alpha1.CanaryStep{
		{SetCanaryScale: &kultav1alpha1.CanaryScale{Replicas: ptr.To[int32](1)}},
		{SetWeight: ptr.To[int32](20)}, {Pause: &kultav1alpha1.RolloutPause{Duration: ptr.To[kultav1alpha1.Duration]("10s")}},
		{SetCanaryScale: &kultav1alpha1.CanaryScale{MatchTrafficWeight: ptr.To(true)}},
		{SetWeight: ptr.To[int32](50)}, {Pause: &kultav1alpha1.RolloutPause{Duration: ptr.To[kultav1alpha1.Duration]("5s")}},
	}
	stableHash := a.deploy(ctx, t, goodImage)

	watch := a.watchWeights(ctx, t)
	a.setImage(ctx, t, betterImage)
	// At 20 % the canary runs one Pod, whatever share of the 3 replicas the weight would give it,
	// on a Node that runs no Pod of the stable revision.
	waitFor(ctx, t, time.Minute, func() error {
		ro, err := a.get(ctx)
		if err != nil {
			return err
		}
		if ro.Status.CurrentStepIndex == nil || *ro.Status.CurrentStepIndex != 2 {
			return fmt.Errorf("at step %v, want the pause at 20 %% (step 2)", ro.Status.CurrentStepIndex)
		}
		rs, err := a.replicaSet(ctx, ro.Status.CurrentPodTemplateHash)
		if err != nil {
			return err
		}
		if got := ptr.Deref(rs.Spec.Replicas, 0); got != 1 {
			return fmt.Errorf("canary ReplicaSet wants %d Pods at 20 %%, want 1", got)
		}
		return nil
	})
	ro, err := a.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	canaryHash := ro.Status.CurrentPodTemplateHash
	a.expectApart(ctx, t, nodes, stableHash, canaryHash, 1)
	a.expectTrack(ctx, t, map[string]string{stableHash: "stable"})
	canaryPods := a.expectTrack(ctx, t, map[string]string{canaryHash: "canary"})
	ro = a.waitCompleted(ctx, t, stableHash, 2*time.Minute)
	a.expectRouteHistory(ctx, t, watch, "100/0", "80/20", "50/50", "100/0")
	// The old revision keeps its Pods for scaleDownDelaySeconds (30 s) after the promotion.
	a.expectApart(ctx, t, nodes, stableHash, ro.Status.StablePodTemplateHash, 3)
	// The promoted revision's Pods, the one from the 20 % step among them, now carry stable's
	// label; the Pod was relabelled, not replaced.
	waitFor(ctx, t, 30*time.Second, func() error {
		pods, err := a.tracks(ctx, map[string]string{canaryHash: "stable"})
		if err != nil {
			return err
		}
		for name, uid := range canaryPods {
			if pods[name] != uid {
				return fmt.Errorf("canary Pod %s is gone or was replaced", name)
			}
		}
		return nil
	})
}

// expectTrack checks that every running Pod of the revisions in want carries the label track
// with the value want gives its revision, and returns the Pods it saw, with their UIDs.
func (a *app) expectTrack(ctx context.Context, t *testing.T, want map[string]string) map[string]string {
	t.Helper()
	uids, err := a.tracks(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	return uids
}

// tracks returns the UIDs of the app's running Pods of the revisions in want, by name, and an
// error naming a Pod whose track label is not what want says for its revision.
func (a *app) tracks(ctx context.Context, want map[string]string) (map[string]string, error) {
	var pods corev1.PodList
	if err := a.w.client.List(ctx, &pods, client.InNamespace(a.namespace)); err != nil {
		return nil, fmt.Errorf("listing Pods: %w", err)
	}
	uids := map[string]string{}
	for _, p := range pods.Items {
		hash := p.Labels[kultav1alpha1.PodTemplateHashLabel]
		track, ok := want[hash]
		if !p.DeletionTimestamp.IsZero() || !ok {
			continue
		}
		uids[p.Name] = string(p.UID)
		if p.Labels["track"] != track {
			return uids, fmt.Errorf("Pod %s of revision %s has track=%q, want %q", p.Name, hash, p.Labels["track"], track)
		}
	}
	return uids, nil
}

// expectApart checks that the Pods of revisions stable and canary (at least want of them) run
// on the given Nodes, and that no Node runs Pods of both.
func (a *app) expectApart(ctx context.Context, t *testing.T, nodes map[string]bool, stable, canary string, want int) {
	t.Helper()
	var pods corev1.PodList
	if err := a.w.client.List(ctx, &pods, client.InNamespace(a.namespace)); err != nil {
		t.Fatalf("listing Pods: %v", err)
	}
	byRevision := map[string]map[string]bool{stable: {}, canary: {}}
	count := 0
	for _, p := range pods.Items {
		hash := p.Labels[kultav1alpha1.PodTemplateHashLabel]
		if byRevision[hash] == nil || p.Spec.NodeName == "" {
			continue
		}
		if !nodes[p.Spec.NodeName] {
			t.Errorf("Pod %s runs on Node %q, outside the scenario's Nodes", p.Name, p.Spec.NodeName)
		}
		byRevision[hash][p.Spec.NodeName] = true
		if hash == canary {
			count++
		}
	}
	if len(byRevision[stable]) == 0 || count < want {
		t.Fatalf("want Pods of stable %s and %d of canary %s scheduled; by revision and Node: %v", stable, want, canary, byRevision)
	}
	for node := range byRevision[canary] {
		if byRevision[stable][node] {
			t.Errorf("Node %s runs Pods of both revisions; by revision and Node: %v", node, byRevision)
		}
	}
}
