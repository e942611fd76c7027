package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/events"
)

// Weights is the traffic split at a transition.
type Weights struct {
	Stable int32 `json:"stable"`
	Canary int32 `json:"canary"`
}

// Message is what a notification says: the fields of a webhook call's payload, the trigger
// and the decision behind it. Templates use these fields ({{.Name}}, {{.Trigger}}, ...).
type Message struct {
	Trigger  Trigger   `json:"trigger"`
	Triggers []Trigger `json:"triggers"`
	// Name and Namespace name the Rollout.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Strategy  string `json:"strategy"`
	Phase     string `json:"phase"`
	// Revision is the revision rolling out, StableRevision the one serving before it.
	Revision       string  `json:"revision"`
	StableRevision string  `json:"stableRevision,omitempty"`
	Step           *int32  `json:"step,omitempty"`
	Steps          int     `json:"steps,omitempty"`
	Weights        Weights `json:"weights"`
	Image          string  `json:"image,omitempty"`
	// Reason and Detail are the decision's reason and message; Summary a sentence for people.
	Reason  string    `json:"reason"`
	Detail  string    `json:"detail"`
	Summary string    `json:"summary"`
	Time    time.Time `json:"time"`
	// Text is the service's template rendered (the generic webhook's copy of what people read).
	Text string `json:"text,omitempty"`
}

const defaultTemplate = `[{{.Namespace}}/{{.Name}}] {{.Summary}}`

var sampleMessage = Message{Trigger: Started, Triggers: []Trigger{Started}, Name: "shop", Namespace: "default", Strategy: "canary",
	Phase: "Progressing", Revision: "abc", Step: ptr.To[int32](0), Steps: 3, Reason: "NewRevision", Detail: "New revision", Summary: "started"}

// triggersOf are the triggers of a transition, the most specific first; none for the kinds
// nobody subscribes to (an experiment's conclusion).
func triggersOf(t events.Transition) []Trigger {
	var out []Trigger
	if strings.HasPrefix(t.Decision.Reason, "AnalysisFailed") || t.Decision.Reason == "AnalysisUndecided" {
		out = append(out, AnalysisFailed)
	}
	switch t.Kind {
	case events.Started:
		out = append(out, Started)
	case events.StepAdvanced:
		out = append(out, StepAdvanced)
	case events.Paused:
		out = append(out, Paused)
	case events.Promoted:
		out = append(out, Promoted)
	case events.Completed:
		out = append(out, Completed)
	case events.RolledBack, events.Failed:
		out = append(out, RolledBack)
	}
	return out
}

// messageOf is the Message of a transition.
func messageOf(t events.Transition, triggers []Trigger) Message {
	ro := t.Rollout
	st := ro.Status
	weight := ptr.Deref(st.CurrentWeight, 0)
	m := Message{
		Trigger: triggers[0], Triggers: triggers, Name: ro.Name, Namespace: ro.Namespace, Strategy: string(st.Strategy), Phase: string(st.Phase),
		Revision: st.CurrentPodTemplateHash, StableRevision: st.StablePodTemplateHash, Step: t.Decision.ToStep,
		Weights: Weights{Stable: 100 - weight, Canary: weight}, Image: t.StableImage,
		Reason: t.Decision.Reason, Detail: t.Decision.Message, Time: t.Time.UTC(),
	}
	if m.StableRevision == m.Revision && t.Kind != events.Completed {
		m.StableRevision = ""
	}
	if c := ro.Spec.Strategy.Canary; c != nil {
		m.Steps = len(c.Steps)
	}
	if m.Image == "" && len(ro.Spec.Template.Spec.Containers) > 0 {
		m.Image = ro.Spec.Template.Spec.Containers[0].Image
	}
	m.Summary = summary(m)
	return m
}

func summary(m Message) string {
	var head string
	switch m.Trigger {
	case Started:
		head = fmt.Sprintf("revision %s started rolling out (%s)", m.Revision, m.Strategy)
	case StepAdvanced:
		head = fmt.Sprintf("revision %s at %d%% of the traffic", m.Revision, m.Weights.Canary)
	case Paused:
		head = fmt.Sprintf("revision %s paused", m.Revision)
	case AnalysisFailed:
		head = fmt.Sprintf("analysis of revision %s failed", m.Revision)
	case RolledBack:
		head = fmt.Sprintf("revision %s rolled back", m.Revision)
	case Promoted:
		head = fmt.Sprintf("revision %s promoted", m.Revision)
	case Completed:
		head = fmt.Sprintf("revision %s is stable", m.Revision)
	}
	if m.Detail != "" {
		head += ": " + m.Detail
	}
	return head
}

// body is the request body a service of type typ receives for m, text being the rendered
// template.
func body(typ ServiceType, m Message, text string) ([]byte, error) {
	var v any
	switch typ {
	case Slack:
		// Slack's incoming webhooks take a text (mrkdwn) message.
		v = map[string]any{"text": text}
	case Teams:
		// Teams workflows take a message with an Adaptive Card attachment.
		v = map[string]any{
			"type": "message",
			"attachments": []any{map[string]any{
				"contentType": "application/vnd.microsoft.card.adaptive",
				"content": map[string]any{
					"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
					"type":    "AdaptiveCard",
					"version": "1.4",
					"body": []any{
						map[string]any{"type": "TextBlock", "text": text, "wrap": true},
						map[string]any{"type": "FactSet", "facts": facts(m)},
					},
				},
			}},
		}
	default:
		m.Text = text
		v = m
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding the %s message: %w", typ, err)
	}
	return data, nil
}

func facts(m Message) []any {
	out := []any{
		map[string]any{"title": "Rollout", "value": m.Namespace + "/" + m.Name},
		map[string]any{"title": "Phase", "value": m.Phase},
		map[string]any{"title": "Revision", "value": m.Revision},
		map[string]any{"title": "Traffic", "value": fmt.Sprintf("%d%% new, %d%% stable", m.Weights.Canary, m.Weights.Stable)},
	}
	if m.Step != nil {
		out = append(out, map[string]any{"title": "Step", "value": fmt.Sprintf("%d of %d", *m.Step, m.Steps)})
	}
	return out
}

// render runs the service's template over m.
func (s *Service) render(m Message) (string, error) {
	var b bytes.Buffer
	if err := s.template.Execute(&b, m); err != nil {
		return "", fmt.Errorf("template of service %s: %w", s.Name, err)
	}
	return b.String(), nil
}

// Subscriptions are the services ro subscribes to (kulta.io/notify) and the triggers it wants
// (kulta.io/notify-on; nil for all).
func Subscriptions(ro *kultav1alpha1.Rollout) (services []string, triggers []Trigger) {
	for _, name := range strings.Split(ro.Annotations[kultav1alpha1.NotifyAnnotation], ",") {
		if name = strings.TrimSpace(name); name != "" {
			services = append(services, name)
		}
	}
	for _, t := range strings.Split(ro.Annotations[kultav1alpha1.NotifyOnAnnotation], ",") {
		if t = strings.TrimSpace(t); t != "" {
			triggers = append(triggers, Trigger(t))
		}
	}
	return services, triggers
}
