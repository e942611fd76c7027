package revision

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

const (
	// DigestAnnotation holds the SHA-256 of the Rollout template a ReplicaSet was built from. Two
	// templates whose short hashes collide still differ here, which is how a collision is found.
	DigestAnnotation = "rollouts.kulta.io/template-digest"

	// ScaleDownAtAnnotation, on a ReplicaSet, is the RFC 3339 time after which KULTA scales it to
	// zero. Earlier versions wrote it; KULTA now keeps that time in the Rollout's
	// status.scaleDowns and only reads the annotation, so that a delay an earlier version started
	// still holds after an upgrade.
	ScaleDownAtAnnotation = "rollouts.kulta.io/scale-down-at"

	// RevisionAnnotation numbers a Rollout's ReplicaSets in the order they were created.
	RevisionAnnotation = "rollouts.kulta.io/revision"

	// TemplateAnnotation keeps the Rollout template a ReplicaSet was built from, as JSON, before
	// the API server's defaulting: `kubectl kulta undo` restores it exactly, so the revision keeps
	// its hash and returns by the fast path.
	TemplateAnnotation = "rollouts.kulta.io/template"
)

// PodMetadataAnnotation records on a ReplicaSet the role metadata (spec.canaryMetadata or
// spec.stableMetadata) its Pod template and Pods carry, as Metadata's JSON: KULTA reads it from
// the cache, which keeps no Pod template, to know what to move when the revision changes role.
const PodMetadataAnnotation = "rollouts.kulta.io/pod-metadata"

// Role is what a revision's Pods are created as, shown in the RolloutTypeLabel.
type Role string

// Roles.
const (
	RoleStable Role = "stable"
	RoleCanary Role = "canary"
)

// Hash returns the short hash naming the revision of template, as a Deployment's
// pod-template-hash does. The template is hashed as its JSON encoding, which omits empty
// fields, so a template read back from the API server hashes the same as the one written.
// collisionCount changes the hash when two templates collide.
func Hash(template *kultav1alpha1.PodTemplate, collisionCount int32) (string, error) {
	data, err := json.Marshal(template)
	if err != nil {
		return "", fmt.Errorf("encoding pod template: %w", err)
	}
	h := fnv.New32a()
	h.Write(data)
	if collisionCount > 0 {
		h.Write([]byte(strconv.FormatInt(int64(collisionCount), 10)))
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10)), nil
}

// Digest returns the SHA-256 of template's JSON encoding, in hex.
func Digest(template *kultav1alpha1.PodTemplate) (string, error) {
	data, err := json.Marshal(template)
	if err != nil {
		return "", fmt.Errorf("encoding pod template: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// Name is the name of the ReplicaSet of revision hash.
func Name(rolloutName, hash string) string {
	return rolloutName + "-" + hash
}

// Build returns the ReplicaSet for revision hash of ro: ro's template plus the hash label (on
// the ReplicaSet, its selector and its Pods) and the role label on its Pods, owned by ro. With
// spec.antiAffinity and a stable revision other than hash, its Pods avoid the nodes of stable's.
func Build(ro *kultav1alpha1.Rollout, hash, digest string, role Role, replicas int32, revisionNumber int64, stable string) (*appsv1.ReplicaSet, error) {
	original, err := json.Marshal(&ro.Spec.Template)
	if err != nil {
		return nil, fmt.Errorf("encoding pod template: %w", err)
	}
	template := ro.Spec.Template.AsPodTemplateSpec()
	template = *template.DeepCopy()
	podLabels := map[string]string{}
	for k, v := range template.Labels {
		podLabels[k] = v
	}
	md, withMetadata := MetadataFor(ro, role)
	if withMetadata {
		for k, v := range md.Labels {
			podLabels[k] = v
		}
		if len(md.Annotations) > 0 && template.Annotations == nil {
			template.Annotations = map[string]string{}
		}
		for k, v := range md.Annotations {
			template.Annotations[k] = v
		}
	}
	podLabels[kultav1alpha1.PodTemplateHashLabel] = hash
	podLabels[kultav1alpha1.RolloutTypeLabel] = string(role)
	template.Labels = podLabels
	if ro.Spec.AntiAffinity != "" && stable != "" && stable != hash {
		avoidRevision(&template.Spec, ro, stable)
	}

	selector := ro.Spec.Selector.AsMeta().DeepCopy()
	if selector.MatchLabels == nil {
		selector.MatchLabels = map[string]string{}
	}
	selector.MatchLabels[kultav1alpha1.PodTemplateHashLabel] = hash

	rsLabels := map[string]string{}
	for k, v := range ro.Spec.Selector.MatchLabels {
		rsLabels[k] = v
	}
	rsLabels[kultav1alpha1.PodTemplateHashLabel] = hash

	annotations := map[string]string{
		DigestAnnotation:   digest,
		RevisionAnnotation: strconv.FormatInt(revisionNumber, 10),
		TemplateAnnotation: string(original),
	}
	if withMetadata {
		if annotations[PodMetadataAnnotation], err = md.Encode(); err != nil {
			return nil, err
		}
	}
	return &appsv1.ReplicaSet{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            Name(ro.Name, hash),
			Namespace:       ro.Namespace,
			Labels:          rsLabels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ro, kultav1alpha1.GroupVersion.WithKind("Rollout"))},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        ptr.To(replicas),
			MinReadySeconds: ro.Spec.MinReadySeconds,
			Selector:        selector,
			Template:        template,
		},
	}, nil
}

// avoidRevision adds to spec the rule ro.Spec.AntiAffinity asks for: stay off the nodes
// (kubernetes.io/hostname) that run Pods of ro's revision hash. The user's own affinity rules
// are kept.
func avoidRevision(spec *corev1.PodSpec, ro *kultav1alpha1.Rollout, hash string) {
	match := map[string]string{}
	for k, v := range ro.Spec.Selector.MatchLabels {
		match[k] = v
	}
	match[kultav1alpha1.PodTemplateHashLabel] = hash
	term := corev1.PodAffinityTerm{
		LabelSelector: &metav1.LabelSelector{MatchLabels: match},
		TopologyKey:   corev1.LabelHostname,
	}
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.PodAntiAffinity == nil {
		spec.Affinity.PodAntiAffinity = &corev1.PodAntiAffinity{}
	}
	anti := spec.Affinity.PodAntiAffinity
	if ro.Spec.AntiAffinity == kultav1alpha1.AntiAffinityRequired {
		anti.RequiredDuringSchedulingIgnoredDuringExecution = append(anti.RequiredDuringSchedulingIgnoredDuringExecution, term)
		return
	}
	anti.PreferredDuringSchedulingIgnoredDuringExecution = append(anti.PreferredDuringSchedulingIgnoredDuringExecution,
		corev1.WeightedPodAffinityTerm{Weight: 100, PodAffinityTerm: term})
}

// Metadata is the role metadata a revision's Pods carry.
type Metadata struct {
	Role        Role              `json:"role"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// MetadataFor is the metadata ro asks for the Pods of a revision in role; false when ro sets
// neither spec.canaryMetadata nor spec.stableMetadata, and its Pods carry none.
func MetadataFor(ro *kultav1alpha1.Rollout, role Role) (Metadata, bool) {
	if ro.Spec.CanaryMetadata == nil && ro.Spec.StableMetadata == nil {
		return Metadata{}, false
	}
	md := Metadata{Role: role}
	from := ro.Spec.StableMetadata
	if role == RoleCanary {
		from = ro.Spec.CanaryMetadata
	}
	if from != nil {
		md.Labels, md.Annotations = from.Labels, from.Annotations
	}
	return md, true
}

// Encode is md as PodMetadataAnnotation keeps it; equal metadata encode the same (JSON sorts
// map keys).
func (md Metadata) Encode() (string, error) {
	data, err := json.Marshal(md)
	if err != nil {
		return "", fmt.Errorf("encoding %s Pod metadata: %w", md.Role, err)
	}
	return string(data), nil
}

// AppliedMetadata is the metadata rs's PodMetadataAnnotation records; empty when it has none
// (a ReplicaSet from before the Rollout set any) or cannot be read.
func AppliedMetadata(annotations map[string]string) Metadata {
	var md Metadata
	if err := json.Unmarshal([]byte(annotations[PodMetadataAnnotation]), &md); err != nil {
		return Metadata{}
	}
	return md
}

// MetadataChange is what a merge patch of Pod metadata must say to take a revision's Pods
// from the metadata from to the metadata to: the new values, and for each key only from set,
// the template's own value where the template sets one, else null (removed).
func MetadataChange(template kultav1alpha1.PodTemplateMetadata, from, to Metadata) (labels, annotations map[string]any) {
	return change(template.Labels, from.Labels, to.Labels), change(template.Annotations, from.Annotations, to.Annotations)
}

func change(template, from, to map[string]string) map[string]any {
	out := map[string]any{}
	for k := range from {
		if v, ok := template[k]; ok {
			out[k] = v
		} else {
			out[k] = nil
		}
	}
	for k, v := range to {
		out[k] = v
	}
	return out
}
