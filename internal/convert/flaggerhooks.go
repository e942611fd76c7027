package convert

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// Limits of KULTA's webhooks, as its CRD enforces them.
const (
	maxWebhooks        = 16
	maxWebhookName     = 63
	maxWebhookURL      = 2048
	maxWebhookMetadata = 32
	// maxWebhookTimeout is the longest call KULTA makes; a longer timeout is cut to it.
	maxWebhookTimeout = 5 * time.Minute
)

// flaggerHookTypes are Flagger's webhook types that KULTA has, under the same names. Flagger's
// event type has no counterpart; a webhook without a type is a rollout hook.
var flaggerHookTypes = map[string]kultav1alpha1.WebhookType{
	"":                         kultav1alpha1.WebhookRollout,
	"confirm-rollout":          kultav1alpha1.WebhookConfirmRollout,
	"pre-rollout":              kultav1alpha1.WebhookPreRollout,
	"rollout":                  kultav1alpha1.WebhookRollout,
	"confirm-traffic-increase": kultav1alpha1.WebhookConfirmTrafficIncrease,
	"confirm-promotion":        kultav1alpha1.WebhookConfirmPromotion,
	"post-rollout":             kultav1alpha1.WebhookPostRollout,
	"rollback":                 kultav1alpha1.WebhookRollback,
}

// webhooks converts Flagger's analysis webhooks into the webhooks of the converted strategy,
// which must already be built: what a type means depends on it. Flagger's default timeout is
// KULTA's, 10s, so an unset timeout stays unset; analysis.threshold becomes the failureThreshold
// of each rollout webhook, as it does of each metric. metrics are the converted metrics, whose
// intervals set how often KULTA calls rollout webhooks.
func (fc *flaggerConversion) webhooks(an *node, metrics []kultav1alpha1.Metric) {
	if !an.has("webhooks") {
		return
	}
	threshold, _ := an.integer("threshold")
	at := len(fc.c.warnings)
	taken := map[string]bool{}
	var hooks []kultav1alpha1.Webhook
	for _, w := range an.items("webhooks") {
		hook, ok := fc.webhook(w, threshold)
		if !ok {
			w.skipAll()
			continue
		}
		if len(hooks) == maxWebhooks {
			w.skipAll()
			fc.warn(w.path, "KULTA takes at most %d webhooks per strategy; webhook %q not converted", maxWebhooks, w.str("name"))
			continue
		}
		name := uniqueName(hook.Name, taken)
		if name != hook.Name {
			fc.warn(w.field("name"), "another webhook is named %s; written as %s", hook.Name, name)
			hook.Name = name
		}
		taken[name] = true
		for _, f := range w.unread() {
			fc.warn(f, "KULTA has no counterpart; not converted")
		}
		hooks = append(hooks, hook)
	}
	if len(hooks) == 0 {
		return
	}
	// The warnings of the list go before those of its items: interval, then webhooks.
	var list []Warning
	if every := checkInterval(metrics); every < fc.interval && slices.ContainsFunc(hooks, func(h kultav1alpha1.Webhook) bool { return h.Type == kultav1alpha1.WebhookRollout }) {
		list = append(list, Warning{Object: fc.object, Field: an.field("interval"), Message: fmt.Sprintf(
			"KULTA calls rollout webhooks at each analysis check, every %s here (the shortest interval of the metrics and the rollout webhooks), where Flagger called them every %s: check load tests sized to the interval",
			formatDuration(every), formatDuration(fc.interval))})
	}
	list = append(list, Warning{Object: fc.object, Field: an.field("webhooks"),
		Message: "KULTA's payload keeps Flagger's name, namespace and metadata (what Flagger's load tester reads) but has no checksum, and its phase and other fields are KULTA's: check receivers that read them"})
	fc.c.warnings = slices.Insert(fc.c.warnings, at, list...)
	fc.ro.Spec.Strategy.SetStrategyWebhooks(hooks)
}

// webhook converts one of Flagger's webhooks; ok is false, with a warning, for one that does not
// convert.
func (fc *flaggerConversion) webhook(w *node, threshold int64) (kultav1alpha1.Webhook, bool) {
	flaggerName := w.str("name")
	kind, known := flaggerHookTypes[w.str("type")]
	switch {
	case w.str("type") == "event":
		fc.warn(w.field("type"), "KULTA has no event webhooks (Flagger posts every Kubernetes Event to them): a notification service of type webhook, configured for the controller and subscribed to with kulta.io/notify, receives the transitions; webhook %q not converted", flaggerName)
		return kultav1alpha1.Webhook{}, false
	case !known:
		fc.warn(w.field("type"), "%q is not a Flagger webhook type; webhook %q not converted", w.str("type"), flaggerName)
		return kultav1alpha1.Webhook{}, false
	}
	if why := fc.refusal(kind); why != "" {
		fc.warn(w.field("type"), "%s; webhook %q not converted", why, flaggerName)
		return kultav1alpha1.Webhook{}, false
	}
	address := w.str("url")
	switch {
	case address == "":
		fc.warn(w.field("url"), "not set; webhook %q not converted", flaggerName)
		return kultav1alpha1.Webhook{}, false
	case !httpURL(address):
		fc.warn(w.field("url"), "KULTA calls only absolute http or https URLs of at most %d characters; webhook %q not converted", maxWebhookURL, flaggerName)
		return kultav1alpha1.Webhook{}, false
	}
	hook := kultav1alpha1.Webhook{Name: webhookName(flaggerName), Type: kind, URL: address}
	if hook.Name != flaggerName {
		fc.warn(w.field("name"), "%q is not a KULTA name (lowercase letters, digits and '-', at most %d); written as %s", flaggerName, maxWebhookName, hook.Name)
	}
	hook.Timeout = fc.webhookTimeout(w)
	if kind == kultav1alpha1.WebhookRollout && threshold > 0 {
		hook.FailureThreshold = ptr.To(int32(min(threshold, 100)))
	}
	if kind == kultav1alpha1.WebhookRollout {
		// Flagger calls rollout webhooks every analysis interval; so does KULTA with this.
		hook.Interval = ptr.To(kultav1alpha1.Duration(formatDuration(fc.interval)))
	}
	if kind == kultav1alpha1.WebhookPreRollout && threshold > 1 {
		fc.warn(w.field("type"), "Flagger calls a failing pre-rollout webhook again at each interval and rolls back after analysis.threshold (%d) failures; KULTA rolls back at its first failure", threshold)
	}
	hook.Metadata = w.stringMap("metadata")
	if keys := sortedKeys(hook.Metadata); len(keys) > maxWebhookMetadata {
		for _, k := range keys[maxWebhookMetadata:] {
			delete(hook.Metadata, k)
		}
		fc.warn(w.field("metadata"), "KULTA sends at most %d metadata keys; %s not converted", maxWebhookMetadata, strings.Join(keys[maxWebhookMetadata:], ", "))
	}
	if mute, _ := w.boolean("muteAlert"); mute {
		fc.warn(w.field("muteAlert"), "KULTA's notifications are subscribed to per Rollout (kulta.io/notify, kulta.io/notify-on), not muted per webhook; not converted")
	}
	if retries, ok := w.integer("retries"); ok && retries != 0 {
		fc.warn(w.field("retries"), "KULTA calls a webhook once per check, and asks a gate that holds again every 10s; not converted")
	}
	if disable, _ := w.boolean("disableTLS"); disable {
		fc.warn(w.field("disableTLS"), "KULTA always verifies the receiver's certificate; not converted")
	}
	return hook, true
}

// refusal says why the converted strategy cannot take a webhook of kind, or "" when it can.
// confirm-traffic-increase gates steps that raise the canary's weight: Flagger asks it only
// before such steps too, never in a blue/green, A/B or mirror analysis.
func (fc *flaggerConversion) refusal(kind kultav1alpha1.WebhookType) string {
	s := fc.ro.Spec.Strategy
	switch {
	case kind == kultav1alpha1.WebhookConfirmTrafficIncrease && s.BlueGreen != nil:
		return "the converted blue-green Rollout switches at once, with no weight steps to confirm, and KULTA refuses this type there (Flagger's blue/green does not call it either)"
	case kind == kultav1alpha1.WebhookConfirmTrafficIncrease && s.Simple != nil:
		return "the converted Rollout's simple strategy has no weight steps to confirm, and KULTA refuses this type there"
	case kind == kultav1alpha1.WebhookConfirmTrafficIncrease && s.Canary != nil && !hasWeightStep(s.Canary.Steps):
		return "the converted canary has no setWeight steps (an A/B test, a mirror or iterations), so it would never be asked; Flagger does not call it for these either"
	case (kind == kultav1alpha1.WebhookConfirmTrafficIncrease || kind == kultav1alpha1.WebhookRollout) && s.ABTesting != nil:
		return fmt.Sprintf("KULTA's A/B testing strategy has no canary steps or threshold analysis and refuses %s webhooks", kind)
	}
	return ""
}

// checkInterval is how often KULTA checks an analysis of metrics whose rollout webhooks are
// called every analysis interval: the shortest metric interval when shorter, else that one.
func checkInterval(metrics []kultav1alpha1.Metric) time.Duration {
	every := time.Duration(0)
	for _, m := range metrics {
		if m.Interval == nil {
			continue
		}
		if d, err := m.Interval.Parse(); err == nil && d > 0 && (every == 0 || d < every) {
			every = d
		}
	}
	if every == 0 {
		return time.Duration(1<<63 - 1)
	}
	return every
}

func hasWeightStep(steps []kultav1alpha1.CanaryStep) bool {
	for _, s := range steps {
		if s.SetWeight != nil {
			return true
		}
	}
	return false
}

// webhookTimeout converts Flagger's timeout, a Go duration, to KULTA's form; nil when unset,
// as both default to 10s.
func (fc *flaggerConversion) webhookTimeout(w *node) *kultav1alpha1.Duration {
	text := w.str("timeout")
	if text == "" {
		return nil
	}
	d, err := time.ParseDuration(text)
	switch {
	case err != nil:
		fc.warn(w.field("timeout"), "%q is not a duration; KULTA's default, 10s, is used", text)
		return nil
	case d <= 0:
		fc.warn(w.field("timeout"), "%s: Flagger then waits without a limit; KULTA's longest timeout, %s, is written", text, formatDuration(maxWebhookTimeout))
		d = maxWebhookTimeout
	case d > maxWebhookTimeout:
		fc.warn(w.field("timeout"), "KULTA waits at most %s for a webhook; %s is written", formatDuration(maxWebhookTimeout), formatDuration(maxWebhookTimeout))
		d = maxWebhookTimeout
	case d%time.Millisecond != 0:
		d = d.Truncate(time.Millisecond) + time.Millisecond
		fc.warn(w.field("timeout"), "KULTA's durations count whole milliseconds; %s is written", formatDuration(d))
	}
	return ptr.To(kultav1alpha1.Duration(formatDuration(d)))
}

// httpURL reports whether s is a URL KULTA's CRD accepts for a webhook: absolute, http or https,
// with a host.
func httpURL(s string) bool {
	u, err := url.ParseRequestURI(s)
	return err == nil && len(s) <= maxWebhookURL && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != ""
}

// kultaName is the form of KULTA's webhook names.
var kultaName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// webhookName is name in the form KULTA accepts: lowercase letters and digits, each run of other
// characters one '-', at most 63 characters. A name already in that form is kept as it is.
func webhookName(name string) string {
	if len(name) <= maxWebhookName && kultaName.MatchString(name) {
		return name
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > maxWebhookName {
		out = strings.TrimRight(out[:maxWebhookName], "-")
	}
	if out == "" {
		out = "webhook"
	}
	return out
}

// uniqueName is name, or name with the first of -2, -3, … that no webhook has taken yet,
// shortened to stay within 63 characters.
func uniqueName(name string, taken map[string]bool) string {
	candidate := name
	for i := 2; taken[candidate]; i++ {
		suffix := fmt.Sprintf("-%d", i)
		base := name
		if len(base)+len(suffix) > maxWebhookName {
			base = strings.TrimRight(base[:maxWebhookName-len(suffix)], "-")
		}
		candidate = base + suffix
	}
	return candidate
}
