package cdevents

import (
	"fmt"

	cdevents "github.com/cdevents/sdk-go/pkg/api"
	cdeventsv05 "github.com/cdevents/sdk-go/pkg/api/v05"
	cloudevents "github.com/cloudevents/sdk-go/v2"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/events"
)

// customDataContentType is the content type of the custom data KULTA adds to each event.
const customDataContentType = "application/json"

// CustomData is the KULTA-specific part of each CDEvent, in its customData field.
type CustomData struct {
	// Strategy is status.strategy: canary, blueGreen, abTesting or simple.
	Strategy string `json:"strategy,omitempty"`
	// Transition is the kind of transition, such as StepAdvanced.
	Transition string `json:"transition"`
	// Phase is status.phase after the transition.
	Phase string `json:"phase,omitempty"`
	// Step is status.currentStepIndex after the transition.
	Step *int32 `json:"step,omitempty"`
	// Weight is status.currentWeight after the transition.
	Weight *int32 `json:"weight,omitempty"`
	// Reason is the decision's reason, such as AnalysisFailed.
	Reason string `json:"reason,omitempty"`
	// Message is the decision's message.
	Message string `json:"message,omitempty"`
	// Revision is the pod-template hash of the current revision.
	Revision string `json:"revision,omitempty"`
	// StableRevision is the pod-template hash of the stable revision.
	StableRevision string `json:"stableRevision,omitempty"`
}

// constructor makes an empty CDEvent of one type.
type constructor func() (cdevents.CDEventV04, error)

func construct[E cdevents.CDEventV04](newEvent func() (E, error)) constructor {
	return func() (cdevents.CDEventV04, error) {
		e, err := newEvent()
		if err != nil {
			return nil, fmt.Errorf("creating CDEvent: %w", err)
		}
		return e, nil
	}
}

var constructors = map[string]constructor{
	cdeventsv05.ServiceDeployedEventType.String():   construct(cdeventsv05.NewServiceDeployedEvent),
	cdeventsv05.ServiceUpgradedEventType.String():   construct(cdeventsv05.NewServiceUpgradedEvent),
	cdeventsv05.ServiceRolledbackEventType.String(): construct(cdeventsv05.NewServiceRolledbackEvent),
	cdeventsv05.ServicePublishedEventType.String():  construct(cdeventsv05.NewServicePublishedEvent),
}

// eventType is the CDEvent type a transition becomes, and false when it becomes none: Paused,
// and Failed when no stable revision took over (the first revision failing has nothing to roll
// back to).
func eventType(t events.Transition) (string, bool) {
	switch t.Kind {
	case events.Started:
		return cdeventsv05.ServiceDeployedEventType.String(), true
	case events.StepAdvanced, events.Promoted:
		return cdeventsv05.ServiceUpgradedEventType.String(), true
	case events.RolledBack:
		return cdeventsv05.ServiceRolledbackEventType.String(), true
	case events.Failed:
		if t.Rollout != nil && restoredStable(&t.Rollout.Status) {
			return cdeventsv05.ServiceRolledbackEventType.String(), true
		}
		return "", false
	case events.Completed, events.Concluded:
		return cdeventsv05.ServicePublishedEventType.String(), true
	default:
		return "", false
	}
}

func restoredStable(st *kultav1alpha1.RolloutStatus) bool {
	return st.StablePodTemplateHash != "" && st.StablePodTemplateHash != st.CurrentPodTemplateHash
}

// buildEvent renders t as a CDEvent of type typ, validates it against the CDEvents schema and
// returns it as a CloudEvent.
func buildEvent(t events.Transition, typ string) (*cloudevents.Event, error) {
	newEvent, ok := constructors[typ]
	if !ok {
		return nil, fmt.Errorf("no CDEvent type %s", typ)
	}
	if t.Rollout == nil {
		return nil, fmt.Errorf("transition %s has no Rollout", t.Kind)
	}
	ev, err := newEvent()
	if err != nil {
		return nil, err
	}
	ro := t.Rollout
	uri := events.RolloutURI(ro.Namespace, ro.Name)
	ev.SetSource(uri)
	ev.SetSubjectId(uri)
	ev.SetSubjectSource(uri)
	if !t.Time.IsZero() {
		ev.SetTimestamp(t.Time.UTC())
	}
	if err := ev.SetCustomData(customDataContentType, customData(t)); err != nil {
		return nil, fmt.Errorf("setting custom data: %w", err)
	}
	if target, ok := ev.(interface{ SetSubjectEnvironment(*cdevents.Reference) }); ok {
		target.SetSubjectEnvironment(&cdevents.Reference{Id: ro.Namespace})
	}
	if target, ok := ev.(interface{ SetSubjectArtifactId(string) }); ok {
		artifact, err := imagePURL(artifactImage(t, typ))
		if err != nil {
			return nil, fmt.Errorf("artifact id of %s/%s: %w", ro.Namespace, ro.Name, err)
		}
		target.SetSubjectArtifactId(artifact)
	}
	ce, err := cdevents.AsCloudEvent(ev)
	if err != nil {
		return nil, fmt.Errorf("invalid %s for %s/%s: %w", typ, ro.Namespace, ro.Name, err)
	}
	return ce, nil
}

// artifactImage is the image an event names: the stable revision's for a rollback when the
// caller knows it, else the first container of spec.template.
func artifactImage(t events.Transition, typ string) string {
	if typ == cdeventsv05.ServiceRolledbackEventType.String() && t.StableImage != "" {
		return t.StableImage
	}
	if containers := t.Rollout.Spec.Template.Spec.Containers; len(containers) > 0 {
		return containers[0].Image
	}
	return ""
}

func customData(t events.Transition) CustomData {
	st := &t.Rollout.Status
	return CustomData{
		Strategy:       string(st.Strategy),
		Transition:     string(t.Kind),
		Phase:          string(st.Phase),
		Step:           st.CurrentStepIndex,
		Weight:         st.CurrentWeight,
		Reason:         t.Decision.Reason,
		Message:        t.Decision.Message,
		Revision:       st.CurrentPodTemplateHash,
		StableRevision: st.StablePodTemplateHash,
	}
}
