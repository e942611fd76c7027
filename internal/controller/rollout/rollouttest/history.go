package rollouttest

import (
	"fmt"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// StepHistory is the step advances of the Rollout's latest revision as "from->to", in order:
// a step taken twice shows as a repeated pair, a step skipped as a gap.
func StepHistory(ro *kultav1alpha1.Rollout) []string {
	var out []string
	for _, d := range ro.Status.Decisions {
		if d.Action == kultav1alpha1.ActionInitialize && d.Reason == "NewRevision" {
			out = nil
		}
		if d.Action == kultav1alpha1.ActionStepAdvance && d.FromStep != nil && d.ToStep != nil {
			out = append(out, fmt.Sprintf("%d->%d", *d.FromStep, *d.ToStep))
		}
	}
	return out
}
