package occurrence

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/events"
	"github.com/false-systems/kulta/internal/revision"
)

// Decision reasons the error block has specific advice for.
const (
	reasonAnalysisFailed           = "AnalysisFailed"
	reasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	reasonAborted                  = "Aborted"
	reasonVariantBLost             = "VariantBLost"
	reasonRevertedToStable         = "RevertedToStable"
)

// explanation is the reason-specific part of an error block.
type explanation struct {
	whatFailed, whyItMatters, suggestedFix string
	possibleCauses                         []string
}

// explain writes the error block of a failed transition, or of a pause after a failed analysis.
func explain(t events.Transition, strategy string) *Error {
	ro := t.Rollout
	names := namesOf(ro)
	var e explanation
	switch t.Decision.Reason {
	case reasonAnalysisFailed:
		e = analysisFailed(t, names)
	case reasonProgressDeadlineExceeded:
		e = progressDeadlineExceeded(ro, names)
	case reasonAborted:
		e = aborted(names)
	case reasonVariantBLost:
		e = variantBLost(names)
	case reasonRevertedToStable:
		e = revertedToStable(names)
	default:
		e = otherFailure(t, names)
	}
	if msg := t.Decision.Message; msg != "" {
		e.whatFailed += ". " + msg
	}
	return &Error{
		Code:           t.Decision.Reason,
		WhatFailed:     fmt.Sprintf("%s rollout of %s: %s", strategy, names.rollout, e.whatFailed),
		WhyItMatters:   e.whyItMatters,
		PossibleCauses: e.possibleCauses,
		SuggestedFix:   e.suggestedFix,
	}
}

// names are the objects the advice refers to.
type names struct {
	rollout, namespace, currentRS, stableRS, image string
}

func namesOf(ro *kultav1alpha1.Rollout) names {
	n := names{rollout: ro.Namespace + "/" + ro.Name, namespace: ro.Namespace, image: image(ro),
		currentRS: "the new ReplicaSet", stableRS: "the stable ReplicaSet"}
	if h := ro.Status.CurrentPodTemplateHash; h != "" {
		n.currentRS = "ReplicaSet " + revision.Name(ro.Name, h)
	}
	if h := ro.Status.StablePodTemplateHash; h != "" {
		n.stableRS = "ReplicaSet " + revision.Name(ro.Name, h)
	}
	return n
}

func analysisFailed(t events.Transition, n names) explanation {
	e := explanation{
		whatFailed: fmt.Sprintf("the analysis of image %s (%s) failed", n.image, n.currentRS),
		whyItMatters: fmt.Sprintf("Users sent to the new revision saw worse results than the thresholds allow; "+
			"KULTA sent all traffic back to %s", n.stableRS),
		possibleCauses: []string{
			"A regression in the new image raised the error rate or the latency",
			"A dependency of the service (database, downstream API) degraded while the analysis ran",
			"The threshold is stricter than the service's normal behaviour, or the query measures more than this revision",
			"Too little traffic reached the new revision, so a few slow or failed requests dominated the result",
		},
		suggestedFix: fmt.Sprintf("Compare the metric values in reasoning.evidence with their thresholds, read the logs and "+
			"traces of the Pods of %s, then push a fixed image or set kulta.io/retry=true once the cause is gone", n.currentRS),
	}
	if failed := failedMetrics(t.Decision); failed != "" {
		e.possibleCauses = append([]string{"Metrics over their threshold: " + failed}, e.possibleCauses...)
	}
	if t.Kind == events.Paused {
		e.whyItMatters = fmt.Sprintf("The new revision keeps its current share of traffic while the rollout waits: failurePolicy "+
			"is Pause, so users routed to %s may still see the degraded behaviour", n.currentRS)
		e.suggestedFix = fmt.Sprintf("Compare the metric values in reasoning.evidence with their thresholds and read the logs of "+
			"%s; set kulta.io/abort=true to roll back, or kulta.io/promote=true to go on despite the analysis", n.currentRS)
	}
	return e
}

func failedMetrics(d kultav1alpha1.Decision) string {
	var failed []string
	for name, m := range d.Metrics {
		if m.Passed {
			continue
		}
		s := fmt.Sprintf("%s=%s", name, m.Value)
		if m.Threshold != nil {
			s += fmt.Sprintf(" (threshold %s)", *m.Threshold)
		}
		failed = append(failed, s)
	}
	sort.Strings(failed)
	return strings.Join(failed, ", ")
}

func progressDeadlineExceeded(ro *kultav1alpha1.Rollout, n names) explanation {
	seconds := ptr.Deref(ro.Spec.ProgressDeadlineSeconds, 600)
	why := fmt.Sprintf("The new revision made no progress for %ds; KULTA rolled back to %s and scaled the new revision down", seconds, n.stableRS)
	if ro.Status.StablePodTemplateHash == "" || ro.Status.StablePodTemplateHash == ro.Status.CurrentPodTemplateHash {
		why = fmt.Sprintf("There is no earlier revision to fall back to: the service in %s is not fully available until this is fixed", n.namespace)
	}
	return explanation{
		whatFailed:   fmt.Sprintf("the Pods of image %s (%s) did not become ready within progressDeadlineSeconds (%ds)", n.image, n.currentRS, seconds),
		whyItMatters: why,
		possibleCauses: []string{
			"The image cannot be pulled: a wrong tag, a missing registry credential or a registry outage",
			"The containers crash on start or their readiness probe never passes",
			"The cluster lacks CPU, memory or quota to schedule the new Pods",
			"The Gateway did not accept the route weights, so the step could not complete",
		},
		suggestedFix: fmt.Sprintf("Look at the events and logs of the Pods of %s (kubectl describe pods, kubectl logs); fix the image, "+
			"probes or resources and push a new template, or raise spec.progressDeadlineSeconds if the start-up is slow but healthy", n.currentRS),
	}
}

func aborted(n names) explanation {
	return explanation{
		whatFailed:   "the rollout was aborted with the kulta.io/abort annotation",
		whyItMatters: fmt.Sprintf("All traffic went back to %s and the new revision was scaled down; image %s is not serving", n.stableRS, n.image),
		possibleCauses: []string{
			"Someone, or an automation, set kulta.io/abort=true on the Rollout after spotting a problem",
		},
		suggestedFix: "Fix what prompted the abort, then set kulta.io/retry=true to start this revision again, or change spec.template to roll out another one",
	}
}

func variantBLost(n names) explanation {
	return explanation{
		whatFailed: fmt.Sprintf("the A/B experiment concluded that variant A is better than variant B (image %s, %s)", n.image, n.currentRS),
		whyItMatters: fmt.Sprintf("Variant B is not promoted: every user stays on variant A (%s) and variant B is scaled down. "+
			"This is the experiment working, not an outage", n.stableRS),
		possibleCauses: []string{
			"Variant B performed significantly worse on at least one metric; see reasoning.experiment",
			"Variant B's users differ from variant A's (the header or cookie match selects a different population)",
		},
		suggestedFix: "Review status.abExperiment.results to see which metrics B lost on, rework the change, and start a new experiment with a new template",
	}
}

func revertedToStable(n names) explanation {
	return explanation{
		whatFailed:   fmt.Sprintf("spec.template was changed back to the stable revision (%s) while a rollout was in flight", n.stableRS),
		whyItMatters: "The revision in flight was abandoned and all traffic went back to the stable revision; nothing is degraded if the revert was intended",
		possibleCauses: []string{
			"A person or a GitOps tool reverted the Rollout's template",
		},
		suggestedFix: "Nothing, if the revert was intended; otherwise apply the wanted template again",
	}
}

func otherFailure(t events.Transition, n names) explanation {
	return explanation{
		whatFailed:     fmt.Sprintf("the rollout of image %s (%s) failed with reason %s", n.image, n.currentRS, t.Decision.Reason),
		whyItMatters:   fmt.Sprintf("The new revision does not serve; traffic stays with %s where there is one", n.stableRS),
		possibleCauses: []string{"See the decision message and status.conditions of the Rollout for details"},
		suggestedFix:   fmt.Sprintf("Run kubectl describe rollout %s -n %s and follow its conditions and events", t.Rollout.Name, n.namespace),
	}
}
