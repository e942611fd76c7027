package notify

import (
	"encoding/json"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// stepAdvanced is shop/checkout moving from step 0 to step 1 (20% of the traffic) at at(10).
func stepAdvanced(services string) *kultav1alpha1.Rollout {
	return rollout(subscribe(services),
		decision(0, kultav1alpha1.ActionInitialize, "NewRevision", "New revision 7d9f6c", nil, step(0)),
		decision(10, kultav1alpha1.ActionStepAdvance, "StepComplete", "setWeight 20 reached", step(0), step(1)),
	)
}

// defaultText is the default template rendered for stepAdvanced's last decision.
const defaultText = "[shop/checkout] revision 7d9f6c at 20% of the traffic: setWeight 20 reached"

func TestSlackBodyIsJSONWithText(t *testing.T) {
	g := NewWithT(t)
	recv := newReceiver(t, nil)
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- name: fmt-slack
  type: slack
  url: %s
`, recv.URL("/services/T000/B000/slack")))
	n, _ := start(t, cfg, fastOptions())

	ro := stepAdvanced("fmt-slack")
	emitAll(t, n, ro, 1)

	g.Eventually(recv.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(1))
	req := recv.delivered()[0]
	g.Expect(req.Path).To(Equal("/services/T000/B000/slack"))
	g.Expect(req.Header.Get("Content-Type")).To(Equal("application/json"))
	var body map[string]any
	g.Expect(json.Unmarshal(req.Body, &body)).To(Succeed(), "body: %s", req.Body)
	text, ok := body["text"].(string)
	g.Expect(ok).To(BeTrue(), "text is not a string: %s", req.Body)
	g.Expect(text).NotTo(BeEmpty())
	g.Expect(text).To(Equal(defaultText))
}

// teamsBody is the part of a Teams workflow message the tests read.
type teamsBody struct {
	Type        string `json:"type"`
	Attachments []struct {
		ContentType string `json:"contentType"`
		Content     struct {
			Type string `json:"type"`
			Body []struct {
				Type  string `json:"type"`
				Text  string `json:"text"`
				Facts []struct {
					Title string `json:"title"`
					Value string `json:"value"`
				} `json:"facts"`
			} `json:"body"`
		} `json:"content"`
	} `json:"attachments"`
}

func TestTeamsBodyIsAdaptiveCardMessage(t *testing.T) {
	g := NewWithT(t)
	recv := newReceiver(t, nil)
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- name: fmt-teams
  type: teams
  url: %s
`, recv.URL("/workflows/abc/triggers/manual/paths/invoke")))
	n, _ := start(t, cfg, fastOptions())

	emitAll(t, n, stepAdvanced("fmt-teams"), 1)

	g.Eventually(recv.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(1))
	req := recv.delivered()[0]
	g.Expect(req.Header.Get("Content-Type")).To(Equal("application/json"))
	var body teamsBody
	g.Expect(json.Unmarshal(req.Body, &body)).To(Succeed(), "body: %s", req.Body)
	g.Expect(body.Type).To(Equal("message"))
	g.Expect(body.Attachments).To(HaveLen(1))
	att := body.Attachments[0]
	g.Expect(att.ContentType).To(Equal("application/vnd.microsoft.card.adaptive"))
	g.Expect(att.Content.Type).To(Equal("AdaptiveCard"))

	var textBlocks, factSets int
	facts := map[string]string{}
	for _, el := range att.Content.Body {
		switch el.Type {
		case "TextBlock":
			textBlocks++
			g.Expect(el.Text).To(Equal(defaultText))
		case "FactSet":
			factSets++
			for _, f := range el.Facts {
				facts[f.Title] = f.Value
			}
		}
	}
	g.Expect(textBlocks).To(Equal(1), "body: %s", req.Body)
	g.Expect(factSets).To(Equal(1), "body: %s", req.Body)
	g.Expect(facts).To(HaveKeyWithValue("Rollout", "shop/checkout"))
	g.Expect(facts).To(HaveKeyWithValue("Phase", "Progressing"))
	g.Expect(facts).To(HaveKeyWithValue("Revision", "7d9f6c"))
	g.Expect(facts).To(HaveKeyWithValue("Traffic", "20% new, 80% stable"))
	g.Expect(facts).To(HaveKeyWithValue("Step", "1 of 2"))
}

func TestWebhookBodyIsMessage(t *testing.T) {
	g := NewWithT(t)
	recv := newReceiver(t, nil)
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- name: fmt-webhook
  type: webhook
  url: %s
`, recv.URL("/hooks/rollouts")))
	n, _ := start(t, cfg, fastOptions())

	emitAll(t, n, stepAdvanced("fmt-webhook"), 1)

	g.Eventually(recv.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(1))
	req := recv.delivered()[0]
	g.Expect(req.Header.Get("Content-Type")).To(Equal("application/json"))
	g.Expect(req.Header.Get("User-Agent")).To(Equal("kulta-controller"))
	g.Expect(req.Header.Get("Authorization")).To(BeEmpty(), "no tokenFile, no Authorization header")
	m := req.message(t)
	g.Expect(m.Trigger).To(Equal(StepAdvanced))
	g.Expect(m.Triggers).To(Equal([]Trigger{StepAdvanced}))
	g.Expect(m.Name).To(Equal(testName))
	g.Expect(m.Namespace).To(Equal(testNamespace))
	g.Expect(m.Strategy).To(Equal("canary"))
	g.Expect(m.Phase).To(Equal("Progressing"))
	g.Expect(m.Revision).To(Equal("7d9f6c"))
	g.Expect(m.StableRevision).To(Equal("5c4b8a"))
	g.Expect(m.Step).NotTo(BeNil())
	g.Expect(*m.Step).To(Equal(int32(1)))
	g.Expect(m.Steps).To(Equal(2))
	g.Expect(m.Weights).To(Equal(Weights{Stable: 80, Canary: 20}))
	g.Expect(m.Image).To(Equal("nginx:1.27"))
	g.Expect(m.Reason).To(Equal("StepComplete"))
	g.Expect(m.Detail).To(Equal("setWeight 20 reached"))
	g.Expect(m.Summary).To(Equal("revision 7d9f6c at 20% of the traffic: setWeight 20 reached"))
	g.Expect(m.Time.Equal(at(10).Time)).To(BeTrue(), "time %s", m.Time)
	g.Expect(m.Text).To(Equal(defaultText))
}

func TestCustomTemplateRenders(t *testing.T) {
	g := NewWithT(t)
	slack := newReceiver(t, nil)
	hook := newReceiver(t, nil)
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- name: tmpl-slack
  type: slack
  url: %s
  template: "{{.Name}} {{.Trigger}} {{.Weights.Canary}}"
- name: tmpl-webhook
  type: webhook
  url: %s
  template: "{{.Namespace}}/{{.Name}} is at {{.Weights.Canary}}%% ({{.Trigger}})"
`, slack.URL("/s"), hook.URL("/w")))
	n, _ := start(t, cfg, fastOptions())

	emitAll(t, n, stepAdvanced("tmpl-slack,tmpl-webhook"), 1)

	g.Eventually(slack.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(1))
	var body struct {
		Text string `json:"text"`
	}
	g.Expect(json.Unmarshal(slack.delivered()[0].Body, &body)).To(Succeed())
	g.Expect(body.Text).To(Equal("checkout step-advanced 20"))

	g.Eventually(hook.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(1))
	g.Expect(hook.delivered()[0].message(t).Text).To(Equal("shop/checkout is at 20% (step-advanced)"))
}

func TestTemplateWithMissingFieldIsRejected(t *testing.T) {
	for name, tmpl := range map[string]string{
		"missing field":        "{{.Name}} {{.NoSuchField}}",
		"missing nested field": "{{.Weights.Preview}}",
		"unparsable":           "{{.Name",
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := LoadConfig(writeFile(t, "notifications.yaml", fmt.Sprintf(`
services:
- name: bad-template
  type: slack
  url: https://hooks.example.com/services/T0/B0/x
  template: %q
`, tmpl)))
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring("services[bad-template]"))
			g.Expect(err.Error()).To(ContainSubstring("template"))
		})
	}
}
