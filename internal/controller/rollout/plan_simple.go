package rollout

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

// surgeAndUnavailable resolves spec.maxSurge (rounded up) and spec.maxUnavailable (rounded down)
// against total. A string without a percent sign ("1", as KULTA's first controller wrote them)
// is a number.
func surgeAndUnavailable(spec *kultav1alpha1.RolloutSpec, total int32) (surge, unavailable int32, err error) {
	surge, err = scaledValue(spec.MaxSurge, intstr.FromString("25%"), total, true)
	if err != nil {
		return 0, 0, fmt.Errorf("spec.maxSurge: %w", err)
	}
	unavailable, err = scaledValue(spec.MaxUnavailable, intstr.FromInt32(0), total, false)
	if err != nil {
		return 0, 0, fmt.Errorf("spec.maxUnavailable: %w", err)
	}
	return surge, unavailable, nil
}

func scaledValue(v *intstr.IntOrString, def intstr.IntOrString, total int32, roundUp bool) (int32, error) {
	value := ptr.Deref(v, def)
	if value.Type == intstr.String {
		if s := value.StrVal; s != "" && s[len(s)-1] != '%' {
			value = intstr.Parse(s)
		}
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&value, int(total), roundUp)
	if err != nil {
		return 0, fmt.Errorf("%w", err)
	}
	if n < 0 {
		return 0, fmt.Errorf("must not be negative, got %d", n)
	}
	return int32(n), nil
}

// simple is a rolling update: the new revision grows while the total stays within
// replicas+maxSurge, and old revisions shrink while at least replicas-maxUnavailable Pods stay
// ready.
func (p *planner) simple() {
	st := &p.out.Status
	total := p.total()
	surge, unavailable, err := surgeAndUnavailable(&p.ro.Spec, total)
	if err != nil || (surge == 0 && unavailable == 0) {
		// Observe reports these as a Problem before planning; keep everything as it is.
		return
	}
	current := p.rev(p.obs.Hash)
	if !p.preRollout(providers.Weights{Stable: 100}) {
		if st.Phase != kultav1alpha1.PhaseFailed {
			for hash, r := range p.obs.Revisions {
				p.out.Replicas[hash] = r.Replicas
			}
		}
		return
	}
	var olds []*Revision
	var oldReplicas, oldReady int32
	for hash, r := range p.obs.Revisions {
		if hash == p.obs.Hash || r.Replicas == 0 {
			continue
		}
		olds = append(olds, r)
		oldReplicas += r.Replicas
		oldReady += min(r.Available, r.Replicas)
	}
	sort.Slice(olds, func(i, j int) bool { return olds[i].Number < olds[j].Number })

	newReplicas := current.Replicas
	if allowed := total + surge; newReplicas < total && newReplicas+oldReplicas < allowed {
		newReplicas = min(total, allowed-oldReplicas)
	}
	p.out.Replicas[p.obs.Hash] = newReplicas

	minAvailable := total - unavailable
	removable := (oldReplicas - oldReady) + max(0, min(current.Available, newReplicas)+oldReady-minAvailable)
	remaining := int32(0)
	for _, r := range olds {
		take := min(r.Replicas, removable)
		removable -= take
		p.out.Replicas[r.Hash] = r.Replicas - take
		remaining += r.Replicas - take
	}
	if stable := p.obs.Revisions[p.stable]; stable == nil || stable.Replicas == 0 {
		p.out.Replicas[p.stable] = 0
	}
	weight := min(100, 100*min(current.Available, total)/max(total, 1))
	if weight > ptr.Deref(st.CurrentWeight, 0) {
		p.progressed()
	}
	st.CurrentWeight = ptr.To(weight)
	if current.Available >= total && remaining == 0 {
		if analysisSpec(p.ro) != nil && st.PauseStartTime == nil {
			// Rolled out: the analysis window (and its warm-up) starts now.
			st.PauseStartTime = ptr.To(p.now)
			st.StepStartTime = ptr.To(p.now)
			p.progressed()
		}
		if !p.analysisPassed() || !p.confirmPromotion(providers.Weights{Canary: 100}) {
			return
		}
		p.promote("RollingUpdateDone", fmt.Sprintf("All %d Pods of revision %s ready; old revisions scaled down", total, p.obs.Hash))
		return
	}
	p.waitForPods(fmt.Sprintf("Rolling update: %d of %d new Pods available, %d old Pods left", current.Available, total, remaining))
}
