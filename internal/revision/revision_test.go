package revision_test

import (
	"strings"
	"testing"

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
	rs, err := revision.Build(ro, "abc123", "digest", revision.RoleCanary, 2, 7)
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
