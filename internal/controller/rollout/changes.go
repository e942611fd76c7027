package rollout

import (
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// statusChanges names what differs between two statuses, for the log of a status write: the
// JSON names of the fields that changed, and for conditions the types whose status or reason
// changed, with the new ones ("conditions.Ready=True/Completed"), those that went
// ("conditions.Stalled") and those whose message alone changed ("conditions.Ready.message").
// It tells which writes move a Rollout and which only keep it current.
func statusChanges(before, after *kultav1alpha1.RolloutStatus) []string {
	var changed []string
	b, a := reflect.ValueOf(before).Elem(), reflect.ValueOf(after).Elem()
	for i := range b.NumField() {
		f := b.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "conditions" {
			changed = append(changed, conditionChanges(before, after)...)
			continue
		}
		if !equality.Semantic.DeepEqual(b.Field(i).Interface(), a.Field(i).Interface()) {
			changed = append(changed, name)
		}
	}
	return changed
}

// conditionChanges names the conditions that came, went or changed between two statuses.
func conditionChanges(before, after *kultav1alpha1.RolloutStatus) []string {
	var changed []string
	for _, c := range after.Conditions {
		old := meta.FindStatusCondition(before.Conditions, c.Type)
		switch {
		case old == nil || old.Status != c.Status || old.Reason != c.Reason || old.ObservedGeneration != c.ObservedGeneration:
			changed = append(changed, "conditions."+c.Type+"="+string(c.Status)+"/"+c.Reason)
		case old.Message != c.Message:
			changed = append(changed, "conditions."+c.Type+".message")
		}
	}
	for _, c := range before.Conditions {
		if meta.FindStatusCondition(after.Conditions, c.Type) == nil {
			changed = append(changed, "conditions."+c.Type)
		}
	}
	return changed
}
