package istio

import (
	"encoding/json"
	"fmt"
	"strings"

	istiometav1alpha1 "istio.io/api/meta/v1alpha1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The status conditions KULTA reads: Reconciled is the one istiod writes when its status
// reporting (distribution tracking) is on; Ready is read too, for controllers that report one.
const (
	conditionReconciled = "Reconciled"
	conditionReady      = "Ready"
)

// Accepted reports whether Istio has not refused obj's current generation, and if it has, why,
// naming the object.
//
// Istio reports no acceptance by default: istiod writes status.conditions only when its status
// reporting is enabled, and validation happens at admission, so an object stored is an object
// Istio takes. KULTA therefore counts an object as accepted unless its status has a Reconciled
// or Ready condition that is False for the object's current generation (the condition's
// observedGeneration, or status.observedGeneration when the condition has none). A condition
// of an older generation, Unknown or True, and the analyzers' validationMessages, do not hold a
// step back. A status that cannot be read is reported as not accepted, with the reason.
func Accepted(obj *unstructured.Unstructured) (bool, string) {
	raw, found := obj.Object["status"]
	if !found {
		return true, ""
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return false, fmt.Sprintf("%s: cannot read its status: %v", describe(obj), err)
	}
	var status istiometav1alpha1.IstioStatus
	if err := json.Unmarshal(data, &status); err != nil {
		return false, fmt.Sprintf("%s: cannot read its status: %v", describe(obj), err)
	}
	var refused []string
	for _, cond := range status.GetConditions() {
		if cond.GetType() != conditionReconciled && cond.GetType() != conditionReady {
			continue
		}
		generation := cond.GetObservedGeneration()
		if generation == 0 {
			generation = status.GetObservedGeneration()
		}
		if generation != obj.GetGeneration() || cond.GetStatus() != "False" {
			continue
		}
		refused = append(refused, describeCondition(cond))
	}
	if len(refused) > 0 {
		return false, fmt.Sprintf("%s generation %d is not in effect: Istio reports %s", describe(obj), obj.GetGeneration(), strings.Join(refused, "; "))
	}
	return true, ""
}

// describeCondition is "TYPE=STATUS (REASON: MESSAGE)", leaving out what is empty.
func describeCondition(cond *istiometav1alpha1.IstioCondition) string {
	out := cond.GetType() + "=" + cond.GetStatus()
	reason, message := cond.GetReason(), cond.GetMessage()
	switch {
	case reason != "" && message != "":
		out += fmt.Sprintf(" (%s: %s)", reason, message)
	case reason != "" || message != "":
		out += fmt.Sprintf(" (%s%s)", reason, message)
	}
	return out
}
