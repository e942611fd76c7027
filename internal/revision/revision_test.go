package revision_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/revision"
	"github.com/false-systems/kulta/internal/testutil"
)

func mustHash(t *testing.T, tpl *kultav1alpha1.PodTemplate, collisions int32) string {
	t.Helper()
	h, err := revision.Hash(tpl, collisions)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHash(t *testing.T) {
	ro := testutil.Rollout("ns", "web")
	base := mustHash(t, &ro.Spec.Template, 0)
	if again := mustHash(t, &ro.Spec.Template, 0); again != base {
		t.Fatalf("hash is not deterministic: %s then %s", base, again)
	}

	empty := ro.DeepCopy()
	empty.Spec.Template.Metadata.Annotations = map[string]string{}
	if h := mustHash(t, &empty.Spec.Template, 0); h != base {
		t.Errorf("an empty annotations map changed the hash: %s vs %s", h, base)
	}

	changed := testutil.Rollout("ns", "web", testutil.WithImage("nginx:1.28"))
	if h := mustHash(t, &changed.Spec.Template, 0); h == base {
		t.Errorf("a new image kept hash %s", h)
	}
	if h := mustHash(t, &ro.Spec.Template, 1); h == base {
		t.Errorf("collisionCount 1 kept hash %s", h)
	}
	if len(base) < 6 || len(base) > 10 {
		t.Errorf("hash %q: want a short name-safe string", base)
	}
}

func TestBuild(t *testing.T) {
	ro := testutil.Rollout("ns", "web", testutil.WithReplicas(3))
	ro.UID = "uid-1"
	rs, err := revision.Build(ro, "abc123", "digest", revision.RoleCanary, 2, 7, "")
	if err != nil {
		t.Fatal(err)
	}
	if rs.Name != "web-abc123" || rs.Namespace != "ns" {
		t.Errorf("name %s/%s", rs.Namespace, rs.Name)
	}
	if *rs.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *rs.Spec.Replicas)
	}
	pod := rs.Spec.Template.Labels
	if pod["app"] != "web" || pod[kultav1alpha1.PodTemplateHashLabel] != "abc123" || pod[kultav1alpha1.RolloutTypeLabel] != "canary" {
		t.Errorf("pod labels %v", pod)
	}
	if rs.Spec.Selector.MatchLabels[kultav1alpha1.PodTemplateHashLabel] != "abc123" || rs.Spec.Selector.MatchLabels["app"] != "web" {
		t.Errorf("selector %v", rs.Spec.Selector.MatchLabels)
	}
	if ro.Spec.Template.Metadata.Labels[kultav1alpha1.PodTemplateHashLabel] != "" || ro.Spec.Selector.MatchLabels[kultav1alpha1.PodTemplateHashLabel] != "" {
		t.Error("Build changed the Rollout's own template or selector")
	}
	if !strings.Contains(rs.Annotations[revision.TemplateAnnotation], `"image":"nginx:1.27"`) {
		t.Errorf("template annotation %q", rs.Annotations[revision.TemplateAnnotation])
	}
	if rs.Annotations[revision.DigestAnnotation] != "digest" || rs.Annotations[revision.RevisionAnnotation] != "7" {
		t.Errorf("annotations %v", rs.Annotations)
	}
	if len(rs.OwnerReferences) != 1 || rs.OwnerReferences[0].UID != "uid-1" || !*rs.OwnerReferences[0].Controller {
		t.Errorf("owner references %v", rs.OwnerReferences)
	}
	if rs.Spec.Template.Spec.Containers[0].Image != "nginx:1.27" {
		t.Errorf("image %s", rs.Spec.Template.Spec.Containers[0].Image)
	}
}

// With spec.antiAffinity a new revision's Pods avoid the nodes of the stable revision's Pods;
// the user's own rules stay, and nothing is added without a stable revision or for stable
// itself.
func TestBuildAvoidsTheStableRevision(t *testing.T) {
	userRule := corev1.WeightedPodAffinityTerm{Weight: 10, PodAffinityTerm: corev1.PodAffinityTerm{
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}}, TopologyKey: "topology.kubernetes.io/zone",
	}}
	avoid := corev1.PodAffinityTerm{
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", kultav1alpha1.PodTemplateHashLabel: "stable1"}},
		TopologyKey:   "kubernetes.io/hostname",
	}
	for _, tc := range []struct {
		name      string
		mode      kultav1alpha1.AntiAffinity
		stable    string
		user      bool
		preferred []corev1.WeightedPodAffinityTerm
		required  []corev1.PodAffinityTerm
	}{
		{name: "off", stable: "stable1"},
		{name: "first revision", mode: kultav1alpha1.AntiAffinityRequired},
		{name: "the stable revision itself", mode: kultav1alpha1.AntiAffinityRequired, stable: "abc123"},
		{name: "preferred", mode: kultav1alpha1.AntiAffinityPreferred, stable: "stable1",
			preferred: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: avoid}}},
		{name: "required", mode: kultav1alpha1.AntiAffinityRequired, stable: "stable1", required: []corev1.PodAffinityTerm{avoid}},
		{name: "preferred beside the user's rule", mode: kultav1alpha1.AntiAffinityPreferred, stable: "stable1", user: true,
			preferred: []corev1.WeightedPodAffinityTerm{userRule, {Weight: 100, PodAffinityTerm: avoid}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ro := testutil.Rollout("ns", "web")
			ro.Spec.AntiAffinity = tc.mode
			if tc.user {
				ro.Spec.Template.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
					PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{userRule},
				}}
			}
			rs, err := revision.Build(ro, "abc123", "digest", revision.RoleCanary, 1, 2, tc.stable)
			if err != nil {
				t.Fatal(err)
			}
			var preferred []corev1.WeightedPodAffinityTerm
			var required []corev1.PodAffinityTerm
			if a := rs.Spec.Template.Spec.Affinity; a != nil && a.PodAntiAffinity != nil {
				preferred = a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
				required = a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
			}
			if !equality.Semantic.DeepEqual(preferred, tc.preferred) || !equality.Semantic.DeepEqual(required, tc.required) {
				t.Errorf("preferred %+v, required %+v; want %+v, %+v", preferred, required, tc.preferred, tc.required)
			}
			if tc.user && len(ro.Spec.Template.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
				t.Error("Build changed the Rollout's own affinity")
			}
		})
	}
}

// Role metadata goes onto the Pod template and is recorded on the ReplicaSet; a change of role
// sets the new values and takes away the old ones, giving back the template's own value where
// the template has one.
func TestPodMetadata(t *testing.T) {
	ro := testutil.Rollout("ns", "web")
	ro.Spec.Template.Metadata.Labels["tier"] = "web"
	ro.Spec.CanaryMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "canary", "tier": "try"}, Annotations: map[string]string{"team.io/role": "canary"}}
	ro.Spec.StableMetadata = &kultav1alpha1.PodMetadata{Labels: map[string]string{"track": "stable"}}

	rs, err := revision.Build(ro, "abc123", "digest", revision.RoleCanary, 1, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	pod := rs.Spec.Template
	if pod.Labels["track"] != "canary" || pod.Labels["tier"] != "try" || pod.Labels["app"] != "web" || pod.Annotations["team.io/role"] != "canary" {
		t.Errorf("canary Pod template metadata: labels %v, annotations %v", pod.Labels, pod.Annotations)
	}
	applied := revision.AppliedMetadata(rs.Annotations)
	if applied.Role != revision.RoleCanary || applied.Labels["track"] != "canary" {
		t.Errorf("recorded %+v from %q", applied, rs.Annotations[revision.PodMetadataAnnotation])
	}
	if ro.Spec.Template.Metadata.Labels["track"] != "" {
		t.Error("Build changed the Rollout's template")
	}

	stable, ok := revision.MetadataFor(ro, revision.RoleStable)
	if !ok {
		t.Fatal("no stable metadata")
	}
	labels, annotations := revision.MetadataChange(ro.Spec.Template.Metadata, applied, stable)
	wantLabels := map[string]any{"track": "stable", "tier": "web"}
	wantAnnotations := map[string]any{"team.io/role": nil}
	if !equality.Semantic.DeepEqual(labels, wantLabels) || !equality.Semantic.DeepEqual(annotations, wantAnnotations) {
		t.Errorf("promotion patch: labels %v, annotations %v; want %v, %v", labels, annotations, wantLabels, wantAnnotations)
	}

	plain := testutil.Rollout("ns", "web")
	if _, ok := revision.MetadataFor(plain, revision.RoleCanary); ok {
		t.Error("metadata for a Rollout that sets none")
	}
	rs, err = revision.Build(plain, "abc123", "digest", revision.RoleCanary, 1, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, recorded := rs.Annotations[revision.PodMetadataAnnotation]; recorded {
		t.Error("metadata recorded for a Rollout that sets none")
	}
	if got := revision.AppliedMetadata(map[string]string{revision.PodMetadataAnnotation: "{not json"}); got.Role != "" {
		t.Errorf("unreadable record read as %+v", got)
	}
}
