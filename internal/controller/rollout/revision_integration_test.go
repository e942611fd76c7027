package rollout_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/revision"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

// TestHashStableThroughAPIServer checks that a template read back from the API server hashes
// the same as the one written, so a restart or a GitOps re-apply never starts a rollout.
func TestHashStableThroughAPIServer(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ns := e.CreateNamespace(t, "hash")
	ro := testutil.Rollout(ns, "hash", testutil.WithSimple(nil))
	ro.Spec.Template.Metadata.Annotations = map[string]string{}
	want, err := revision.Hash(&ro.Spec.Template, 0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.Client.Create(context.Background(), ro)).To(Succeed())
	got, err := revision.Hash(&getRollout(g, ro).Spec.Template, 0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(want))
	g.Eventually(func(g Gomega) string { return getRollout(g, ro).Status.CurrentPodTemplateHash }).WithTimeout(timeout).Should(Equal(want))
}

// TestOrphanIsAdopted pre-creates the ReplicaSet KULTA would create, without an owner: KULTA
// adopts it instead of creating another.
func TestOrphanIsAdopted(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "adopt")
	ro := testutil.Rollout(ns, "orphan", testutil.WithSimple(nil), testutil.WithReplicas(2))
	hash, err := revision.Hash(&ro.Spec.Template, 0)
	g.Expect(err).NotTo(HaveOccurred())
	digest, err := revision.Digest(&ro.Spec.Template)
	g.Expect(err).NotTo(HaveOccurred())
	orphan, err := revision.Build(ro, hash, digest, revision.RoleStable, 2, 1, "")
	g.Expect(err).NotTo(HaveOccurred())
	orphan.OwnerReferences = nil
	g.Expect(e.Client.Create(ctx, orphan)).To(Succeed())

	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	owner := getRollout(g, ro)
	rsList := replicaSets(g, ns)
	g.Expect(rsList).To(HaveLen(1))
	g.Expect(rsList[0].Name).To(Equal(orphan.Name))
	ref := metav1.GetControllerOf(&rsList[0])
	g.Expect(ref).NotTo(BeNil())
	g.Expect(ref.UID).To(Equal(owner.UID))
}

// TestNeighboursKeepTheirReplicaSets runs two Rollouts in one namespace whose selectors overlap:
// wide selects tier: web, which the ReplicaSets of narrow (app: narrow, tier: web) carry too.
// Each Rollout is found with its own ReplicaSets (the cache's index by controller, not the
// namespace's ReplicaSets filtered by selector): wide never takes narrow's, both through two
// revisions. An orphan that carries wide's labels is adopted by wide; an orphan outside its
// selector stays unowned.
func TestNeighboursKeepTheirReplicaSets(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "neighbours")
	web := func(ro *kultav1alpha1.Rollout) {
		ro.Spec.Template.Metadata.Labels["tier"] = "web"
	}
	wide := testutil.Rollout(ns, "wide", testutil.WithSimple(nil))
	wide.Spec.Selector.MatchLabels = map[string]string{"tier": "web"}
	wide.Spec.Template.Metadata.Labels = map[string]string{"tier": "web", "app": "wide"}
	narrow := testutil.Rollout(ns, "narrow", testutil.WithSimple(nil), web)

	// Orphans: one with wide's labels and template (its next revision), one outside its selector.
	next := wide.DeepCopy()
	next.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
	hash, err := revision.Hash(&next.Spec.Template, 0)
	g.Expect(err).NotTo(HaveOccurred())
	digest, err := revision.Digest(&next.Spec.Template)
	g.Expect(err).NotTo(HaveOccurred())
	adoptable, err := revision.Build(next, hash, digest, revision.RoleStable, 0, 2, "")
	g.Expect(err).NotTo(HaveOccurred())
	adoptable.OwnerReferences = nil
	outside := adoptable.DeepCopy()
	outside.Name = "outside"
	outside.Labels = map[string]string{kultav1alpha1.PodTemplateHashLabel: "outside", "tier": "db"}
	outside.Spec.Selector = &metav1.LabelSelector{MatchLabels: outside.Labels}
	outside.Spec.Template.Labels = outside.Labels
	for _, obj := range []client.Object{adoptable, outside, wide, narrow} {
		g.Expect(e.Client.Create(ctx, obj)).To(Succeed())
	}
	waitPhase(t, wide, kultav1alpha1.PhaseCompleted, nil)
	waitPhase(t, narrow, kultav1alpha1.PhaseCompleted, nil)

	// Both roll to nginx:1.28: wide onto the orphan it adopts, narrow onto a new revision.
	for _, ro := range []*kultav1alpha1.Rollout{wide, narrow} {
		g.Expect(e.Client.Patch(ctx, ro, client.RawPatch(types.JSONPatchType,
			[]byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`)))).To(Succeed())
	}
	for _, ro := range []*kultav1alpha1.Rollout{wide, narrow} {
		g.Eventually(func(g Gomega) {
			got := getRollout(g, ro)
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted), "message: %s", got.Status.Message)
		}).WithTimeout(timeout).Should(Succeed(), "Rollout %s", ro.Name)
	}
	owners := map[string]string{}
	for _, rs := range replicaSets(g, ns) {
		owner := "none"
		if ref := metav1.GetControllerOf(&rs); ref != nil {
			owner = ref.Name
			g.Expect(ref.UID).To(Equal(getRollout(g, map[string]*kultav1alpha1.Rollout{"wide": wide, "narrow": narrow}[ref.Name]).UID))
		}
		owners[rs.Name] = owner
		if owner == "narrow" {
			g.Expect(rs.Labels).To(HaveKeyWithValue("app", "narrow"))
		}
	}
	g.Expect(owners).To(HaveKeyWithValue(adoptable.Name, "wide"), "the orphan with wide's labels and its next template is wide's next revision")
	g.Expect(owners).To(HaveKeyWithValue("outside", "none"), "an orphan outside wide's selector stays unowned")
	counts := map[string]int{}
	for _, owner := range owners {
		counts[owner]++
	}
	g.Expect(counts).To(Equal(map[string]int{"wide": 2, "narrow": 2, "none": 1}), "ReplicaSets by controller: %v", owners)
}

// TestReleasedReplicaSetIsAdoptedAgain drops the owner reference of a running Rollout's
// ReplicaSet, as the garbage collector does when a Rollout is deleted with its dependents
// orphaned: the cache's index moves the ReplicaSet from its controller's key to the orphans',
// and the Rollout takes it back rather than creating another.
func TestReleasedReplicaSetIsAdoptedAgain(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "release")
	ro := testutil.Rollout(ns, "released", testutil.WithSimple(nil))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	owner := getRollout(g, ro)
	rsList := replicaSets(g, ns)
	g.Expect(rsList).To(HaveLen(1))
	released := rsList[0]
	g.Expect(e.Client.Patch(ctx, &released, client.RawPatch(types.JSONPatchType,
		[]byte(`[{"op":"remove","path":"/metadata/ownerReferences"}]`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		rsList := replicaSets(g, ns)
		g.Expect(rsList).To(HaveLen(1), "no second ReplicaSet for the same template")
		ref := metav1.GetControllerOf(&rsList[0])
		g.Expect(ref).NotTo(BeNil(), "adopted again")
		g.Expect(ref.UID).To(Equal(owner.UID))
	}).WithTimeout(timeout).Should(Succeed())
	g.Consistently(func(g Gomega) []appsv1.ReplicaSet { return replicaSets(g, ns) }).WithTimeout(2 * time.Second).Should(HaveLen(1))
	g.Expect(getRollout(g, ro).Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
}

// TestHashCollisionMovesToNewName pre-creates a ReplicaSet with the name KULTA would use but
// another template: KULTA raises collisionCount and uses a new name.
func TestHashCollisionMovesToNewName(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "collide")
	ro := testutil.Rollout(ns, "clash", testutil.WithSimple(nil))
	hash, err := revision.Hash(&ro.Spec.Template, 0)
	g.Expect(err).NotTo(HaveOccurred())
	other := testutil.Rollout(ns, "clash", testutil.WithImage("busybox:1"))
	squatter, err := revision.Build(other, hash, "another-template", revision.RoleStable, 0, 1, "")
	g.Expect(err).NotTo(HaveOccurred())
	squatter.OwnerReferences = nil
	g.Expect(e.Client.Create(ctx, squatter)).To(Succeed())

	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	got := getRollout(g, ro)
	g.Expect(got.Status.CollisionCount).To(Equal(ptr.To[int32](1)))
	g.Expect(got.Status.CurrentPodTemplateHash).NotTo(Equal(hash))
	var running []appsv1.ReplicaSet
	for _, rs := range replicaSets(g, ns) {
		if ptr.Deref(rs.Spec.Replicas, 0) > 0 {
			running = append(running, rs)
		}
	}
	g.Expect(running).To(HaveLen(1))
	g.Expect(running[0].Spec.Template.Spec.Containers[0].Image).To(Equal("nginx:1.27"))
}

// TestTransitionsRecordEvents checks that each transition of a canary is a Kubernetes Event: a
// step done in the same reconcile as the next transition (a pause, the completion) is told in
// that transition's Event, one write instead of two.
func TestTransitionsRecordEvents(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "events")
	g.Expect(e.Client.Create(ctx, service(ns, "ev-stable", map[string]string{"app": "ev"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "ev-canary", map[string]string{"app": "ev"}))).To(Succeed())
	ro := testutil.Rollout(ns, "ev", testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted()))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	g.Eventually(func(g Gomega) []string {
		var list eventsv1.EventList
		g.Expect(e.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		var told []string
		for _, ev := range list.Items {
			if ev.Regarding.Kind == "Rollout" && ev.Regarding.Name == "ev" {
				told = append(told, ev.Reason+": "+ev.Note)
			}
		}
		return told
	}).WithTimeout(timeout).Should(ContainElements(
		HavePrefix("RolloutStarted: "),
		And(HavePrefix("RolloutPaused: Step 0 done: canary at 50%; "), ContainSubstring("1")),
		And(HavePrefix("RolloutCompleted: Step 1 done: pause ended"), ContainSubstring("replaced")),
	))
}

// TestNewRevisionAvoidsStableNodes: with antiAffinity Required the new revision's ReplicaSet,
// as the API server stores it, keeps its Pods off the nodes of the stable revision's Pods; the
// first revision, with nothing to avoid, has no such rule.
func TestNewRevisionAvoidsStableNodes(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "anti")
	g.Expect(e.Client.Create(ctx, service(ns, "web-stable", map[string]string{"app": "web"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "web-canary", map[string]string{"app": "web"}))).To(Succeed())
	ro := testutil.Rollout(ns, "web", testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted()))
	ro.Spec.AntiAffinity = kultav1alpha1.AntiAffinityRequired
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	stable := getRollout(g, ro).Status.StablePodTemplateHash
	first := &appsv1.ReplicaSet{}
	g.Expect(e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: revision.Name("web", stable)}, first)).To(Succeed())
	g.Expect(first.Spec.Template.Spec.Affinity).To(BeNil())

	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	canary := &appsv1.ReplicaSet{}
	g.Expect(e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: revision.Name("web", getRollout(g, ro).Status.CurrentPodTemplateHash)}, canary)).To(Succeed())
	g.Expect(canary.Spec.Template.Spec.Affinity).NotTo(BeNil())
	g.Expect(canary.Spec.Template.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution).To(ConsistOf(
		HaveField("LabelSelector.MatchLabels", Equal(map[string]string{"app": "web", kultav1alpha1.PodTemplateHashLabel: stable})),
	))
	g.Expect(canary.Spec.Template.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey).To(Equal("kubernetes.io/hostname"))
}

// TestPodMetadataMovesOnPromotion: canaryMetadata and stableMetadata reach the ReplicaSets'
// Pod templates, and at the promotion the canary's running Pod (created here as the
// ReplicaSet controller would) is relabelled in place, same UID, with stable's metadata.
func TestPodMetadataMovesOnPromotion(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "podmeta")
	ro := createWithPodMetadata(t, g, ns)
	first := &appsv1.ReplicaSet{}
	g.Expect(e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: revision.Name("web", getRollout(g, ro).Status.StablePodTemplateHash)}, first)).To(Succeed())
	g.Expect(first.Spec.Template.Labels).To(HaveKeyWithValue("track", "stable"))
	g.Expect(first.Generation).To(Equal(int64(1)), "the first revision is created stable and its template never patched (no detour through canaryMetadata)")

	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	canaryHash := getRollout(g, ro).Status.CurrentPodTemplateHash
	canary := &appsv1.ReplicaSet{}
	g.Expect(e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: revision.Name("web", canaryHash)}, canary)).To(Succeed())
	g.Expect(canary.Spec.Template.Labels).To(HaveKeyWithValue("track", "canary"))
	g.Expect(canary.Spec.Template.Annotations).To(HaveKeyWithValue("team.io/role", "canary"))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: canary.Name + "-pod", Labels: canary.Spec.Template.Labels, Annotations: canary.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(canary, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))},
		},
		Spec: canary.Spec.Template.Spec,
	}
	g.Expect(e.Client.Create(ctx, pod)).To(Succeed())

	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Eventually(func(g Gomega) {
		got := &corev1.Pod{}
		g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(pod), got)).To(Succeed())
		g.Expect(got.UID).To(Equal(pod.UID), "relabelled in place, not replaced")
		g.Expect(got.Labels).To(HaveKeyWithValue("track", "stable"))
		g.Expect(got.Labels).To(HaveKeyWithValue("app", "web"))
		g.Expect(got.Labels).To(HaveKeyWithValue(kultav1alpha1.PodTemplateHashLabel, canaryHash))
		g.Expect(got.Annotations).NotTo(HaveKey("team.io/role"))
		rs := &appsv1.ReplicaSet{}
		g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(canary), rs)).To(Succeed())
		g.Expect(rs.Spec.Template.Labels).To(HaveKeyWithValue("track", "stable"))
		g.Expect(rs.Spec.Template.Annotations).NotTo(HaveKey("team.io/role"))
	}).WithTimeout(timeout).Should(Succeed())
}

// TestBadPodMetadataStalls: a label value Kubernetes refuses (a space in it) passes the CRD but
// not the ReplicaSet's validation: the Rollout shows Stalled/WriteRejected naming the
// ReplicaSet, and nothing is created.
func TestBadPodMetadataStalls(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "badmeta")
	g.Expect(e.Client.Create(ctx, service(ns, "web-stable", map[string]string{"app": "web"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "web-canary", map[string]string{"app": "web"}))).To(Succeed())
	ro := testutil.Rollout(ns, "web", testutil.WithCanarySteps(testutil.Weight(50)))
	ro.Spec.StableMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "the stable one"}}
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	g.Eventually(func(g Gomega) {
		stalled := meta(getRollout(g, ro), kultav1alpha1.ConditionStalled)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal("WriteRejected"))
		g.Expect(stalled.Message).To(ContainSubstring("ReplicaSet"))
	}).WithTimeout(timeout).Should(Succeed())
	g.Expect(replicaSets(g, ns)).To(BeEmpty())
}

// createWithPodMetadata creates Services and a canary Rollout web with canaryMetadata and
// stableMetadata in ns, and waits for its first revision to complete.
func createWithPodMetadata(t *testing.T, g Gomega, ns string) *kultav1alpha1.Rollout {
	t.Helper()
	ctx := context.Background()
	g.Expect(env.Client.Create(ctx, service(ns, "web-stable", map[string]string{"app": "web"}))).To(Succeed())
	g.Expect(env.Client.Create(ctx, service(ns, "web-canary", map[string]string{"app": "web"}))).To(Succeed())
	ro := testutil.Rollout(ns, "web", testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted()))
	ro.Spec.CanaryMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "canary"}, Annotations: map[string]string{"team.io/role": "canary"}}
	ro.Spec.StableMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "stable"}}
	g.Expect(env.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	return ro
}

// TestPodMetadataStaysOnAbort: an aborted canary is not promoted, so nothing moves: its
// ReplicaSet keeps canaryMetadata and its record, the stable one keeps stableMetadata.
func TestPodMetadataStaysOnAbort(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "podmetaabort")
	ro := createWithPodMetadata(t, g, ns)
	stableHash := getRollout(g, ro).Status.StablePodTemplateHash
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	canaryHash := getRollout(g, ro).Status.CurrentPodTemplateHash
	annotate(t, ro, kultav1alpha1.AbortAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhaseFailed, nil)
	g.Consistently(func(g Gomega) {
		for hash, track := range map[string]string{stableHash: "stable", canaryHash: "canary"} {
			rs := &appsv1.ReplicaSet{}
			g.Expect(e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: revision.Name("web", hash)}, rs)).To(Succeed())
			g.Expect(rs.Spec.Template.Labels).To(HaveKeyWithValue("track", track))
			g.Expect(string(revision.AppliedMetadata(rs.Annotations).Role)).To(Equal(track))
		}
	}).WithTimeout(2 * time.Second).Should(Succeed())
}
