package convert

import (
	"encoding/json"
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// argoRollout converts an Argo Rollout (argoproj.io/v1alpha1) into a KULTA Rollout. The field
// names are mostly Argo's own; what differs is noted where it is converted.
func (c *converter) argoRollout(d document) (string, error) {
	obj := newNode("", d.obj)
	obj.skip("apiVersion", "kind", "status")
	ns, name := d.name()
	ro := &kultav1alpha1.Rollout{}
	ro.APIVersion, ro.Kind = kultav1alpha1.GroupVersion.String(), "Rollout"
	c.objectMeta(d.describe(), obj.child("metadata"), &ro.ObjectMeta)
	rc := &rolloutConversion{c: c, object: d.describe(), namespace: ns, name: name, ro: ro}
	if spec := obj.child("spec"); spec != nil {
		rc.spec(spec)
	}
	for _, field := range obj.unread() {
		c.warn(d.describe(), field, "KULTA has no counterpart; not converted")
	}
	return marshalRollout(ro)
}

// rolloutConversion is the conversion of one Rollout.
type rolloutConversion struct {
	c               *converter
	object          string
	namespace, name string
	ro              *kultav1alpha1.Rollout
}

func (rc *rolloutConversion) warn(field, format string, args ...any) {
	rc.c.warn(rc.object, field, format, args...)
}

// objectMeta keeps the name, namespace, labels and annotations; what the API server fills in
// is left out.
func (c *converter) objectMeta(object string, md *node, out *metav1.ObjectMeta) {
	if md == nil {
		return
	}
	out.Name = md.str("name")
	out.Namespace = md.str("namespace")
	out.Labels = md.stringMap("labels")
	out.Annotations = md.stringMap("annotations")
	md.skip("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink", "finalizers")
	if md.has("annotations") {
		delete(out.Annotations, "kubectl.kubernetes.io/last-applied-configuration")
		if len(out.Annotations) == 0 {
			out.Annotations = nil
		}
	}
}

func (rc *rolloutConversion) spec(spec *node) {
	s := &rc.ro.Spec
	if n, ok := spec.integer("replicas"); ok {
		s.Replicas = ptr.To(int32(n))
	}
	if sel := spec.child("selector"); sel != nil {
		s.Selector = &kultav1alpha1.LabelSelector{MatchLabels: sel.stringMap("matchLabels")}
		if v, ok := sel.raw("matchExpressions"); ok {
			rc.decode(sel.field("matchExpressions"), v, &s.Selector.MatchExpressions)
		}
	}
	if tpl := spec.child("template"); tpl != nil {
		rc.template(tpl)
	}
	if wr := spec.child("workloadRef"); wr != nil {
		s.WorkloadRef = &kultav1alpha1.WorkloadRef{APIVersion: wr.str("apiVersion"), Kind: wr.str("kind"), Name: wr.str("name")}
		if down := wr.str("scaleDown"); down != "" {
			s.WorkloadRef.ScaleDown = kultav1alpha1.WorkloadScaleDown(down)
		}
	}
	if n, ok := spec.integer("minReadySeconds"); ok {
		s.MinReadySeconds = int32(n)
	}
	if n, ok := spec.integer("revisionHistoryLimit"); ok {
		s.RevisionHistoryLimit = ptr.To(int32(n))
	}
	if n, ok := spec.integer("progressDeadlineSeconds"); ok {
		s.ProgressDeadlineSeconds = ptr.To(int32(n))
	}
	if paused, ok := spec.boolean("paused"); ok {
		s.Paused = paused
	}
	strategy := spec.child("strategy")
	switch {
	case strategy.has("canary"):
		rc.canary(strategy.child("canary"))
	case strategy.has("blueGreen"):
		rc.blueGreen(strategy.child("blueGreen"))
	default:
		rc.warn("spec.strategy", "no canary or blueGreen strategy; converted as KULTA's simple strategy (a rolling update)")
		s.Strategy.Simple = &kultav1alpha1.SimpleStrategy{}
	}
}

// template keeps the Pod template's labels, annotations and spec.
func (rc *rolloutConversion) template(tpl *node) {
	t := &rc.ro.Spec.Template
	if md := tpl.child("metadata"); md != nil {
		t.Metadata.Labels = md.stringMap("labels")
		t.Metadata.Annotations = md.stringMap("annotations")
		md.skip("creationTimestamp")
	}
	if v, ok := tpl.raw("spec"); ok {
		rc.decode(tpl.field("spec"), v, &t.Spec)
	}
}

// decode copies a JSON-shaped value into out, a typed field of the same shape; a value of
// another shape is a warning naming field, and out keeps what could be read.
func (rc *rolloutConversion) decode(field string, v any, out any) {
	data, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(data, out)
	}
	if err != nil {
		rc.warn(field, "cannot be read as Kubernetes defines it (%v); what could not be read is not converted", err)
	}
}

func (rc *rolloutConversion) canary(cn *node) {
	s := &rc.ro.Spec
	c := &kultav1alpha1.CanaryStrategy{CanaryService: cn.str("canaryService"), StableService: cn.str("stableService")}
	s.Strategy.Canary = c
	if c.CanaryService == "" || c.StableService == "" {
		rc.warn("spec.strategy.canary", "KULTA's canary needs canaryService and stableService; add both Services (a canary without them moves Pods, not traffic, in Argo)")
	}
	if tr := cn.child("trafficRouting"); tr != nil {
		c.TrafficRouting = rc.trafficRouting(tr)
	}
	if c.TrafficRouting != nil {
		c.Port = rc.port(c.StableService, c.CanaryService)
	}
	for i, step := range cn.items("steps") {
		if out, ok := rc.step(fmt.Sprintf("spec.strategy.canary.steps[%d]", i), step, c.TrafficRouting != nil); ok {
			c.Steps = append(c.Steps, out)
		}
	}
	if len(c.Steps) == 0 {
		// Argo rolls straight to 100 % without steps; KULTA needs one.
		c.Steps = []kultav1alpha1.CanaryStep{{SetWeight: ptr.To[int32](100)}}
	}
	if an := cn.child("analysis"); an != nil {
		c.Analysis = rc.analysis(an)
		if an.has("startingStep") {
			an.skip("startingStep")
			rc.warn(an.field("startingStep"), "KULTA's background analysis judges every step with weight from the first; starting later is not converted")
		}
	}
	if v, ok := cn.raw("maxSurge"); ok {
		s.MaxSurge = intOrString(v)
	}
	if v, ok := cn.raw("maxUnavailable"); ok {
		s.MaxUnavailable = intOrString(v)
	}
	if n, ok := cn.integer("scaleDownDelaySeconds"); ok {
		c.ScaleDownDelaySeconds = ptr.To(int32(n))
	}
	s.CanaryMetadata = podMetadata(cn.child("canaryMetadata"))
	s.StableMetadata = podMetadata(cn.child("stableMetadata"))
	rc.antiAffinity(cn.child("antiAffinity"))
}

// port is the Services' port, as the input's routes or Services give it; 80, KULTA's default,
// with a warning, when the input does not say.
func (rc *rolloutConversion) port(stable, canary string) *int32 {
	if p, ok := rc.c.catalog.port(rc.namespace, stable, canary); ok {
		return ptr.To(int32(p))
	}
	rc.warn("spec.strategy", "no route or Service in the input gives the port of Services %s and %s; KULTA's default, 80, is written: set port to the port your routes send to", stable, canary)
	return nil
}

func intOrString(v any) *intstr.IntOrString {
	switch v := v.(type) {
	case float64:
		return ptr.To(intstr.FromInt32(int32(v)))
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return ptr.To(intstr.FromInt32(int32(n)))
		}
		return ptr.To(intstr.FromString(v))
	}
	return nil
}

func podMetadata(md *node) *kultav1alpha1.PodMetadata {
	if md == nil {
		return nil
	}
	return &kultav1alpha1.PodMetadata{Labels: md.stringMap("labels"), Annotations: md.stringMap("annotations")}
}

// antiAffinity: Argo's preferred (with a weight) or required anti-affinity to the stable
// revision's Nodes becomes KULTA's Preferred or Required.
func (rc *rolloutConversion) antiAffinity(aa *node) {
	if aa == nil {
		return
	}
	switch {
	case aa.has("requiredDuringSchedulingIgnoredDuringExecution"):
		aa.skip("requiredDuringSchedulingIgnoredDuringExecution")
		rc.ro.Spec.AntiAffinity = kultav1alpha1.AntiAffinityRequired
	case aa.has("preferredDuringSchedulingIgnoredDuringExecution"):
		pref := aa.child("preferredDuringSchedulingIgnoredDuringExecution")
		if w, ok := pref.integer("weight"); ok && w != 100 {
			rc.warn(pref.field("weight"), "KULTA's preferred anti-affinity has weight 100; %d is not kept", w)
		}
		rc.ro.Spec.AntiAffinity = kultav1alpha1.AntiAffinityPreferred
	}
}

func (rc *rolloutConversion) blueGreen(bg *node) {
	s := &rc.ro.Spec
	b := &kultav1alpha1.BlueGreenStrategy{ActiveService: bg.str("activeService"), PreviewService: bg.str("previewService")}
	s.Strategy.BlueGreen = b
	// Argo promotes on its own unless autoPromotionEnabled is false; KULTA waits for
	// kulta.io/promote unless it is true.
	auto, set := bg.boolean("autoPromotionEnabled")
	if !set || auto {
		b.AutoPromotionEnabled = ptr.To(true)
	}
	if n, ok := bg.integer("autoPromotionSeconds"); ok {
		b.AutoPromotionSeconds = ptr.To(int32(n))
		b.AutoPromotionEnabled = ptr.To(true)
	}
	if n, ok := bg.integer("scaleDownDelaySeconds"); ok {
		b.ScaleDownDelaySeconds = ptr.To(int32(n))
	}
	if an := bg.child("prePromotionAnalysis"); an != nil {
		b.Analysis = rc.analysis(an)
	}
	if bg.has("postPromotionAnalysis") {
		bg.skip("postPromotionAnalysis")
		rc.warn(bg.field("postPromotionAnalysis"), "KULTA judges the preview before the switch only (prePromotionAnalysis); the analysis after it is not converted")
	}
	if tr := bg.child("trafficRouting"); tr != nil {
		b.TrafficRouting = rc.trafficRouting(tr)
		if b.TrafficRouting != nil {
			b.Port = rc.port(b.ActiveService, b.PreviewService)
		}
	}
	s.StableMetadata = podMetadata(bg.child("activeMetadata"))
	s.CanaryMetadata = podMetadata(bg.child("previewMetadata"))
	if v, ok := bg.raw("maxUnavailable"); ok {
		s.MaxUnavailable = intOrString(v)
	}
	rc.antiAffinity(bg.child("antiAffinity"))
}
