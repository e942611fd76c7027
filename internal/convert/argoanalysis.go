package convert

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// analysis inlines the AnalysisTemplates (and ClusterAnalysisTemplates) an Argo analysis block
// names, with its args, as one KULTA analysis whose failure rolls back, as a failed
// AnalysisRun aborts an Argo rollout. It returns nil when no metric converts.
func (rc *rolloutConversion) analysis(an *node) *kultav1alpha1.Analysis {
	args := map[string]string{}
	unknown := map[string]string{}
	for _, arg := range an.items("args") {
		name := arg.str("name")
		switch {
		case arg.has("value"):
			args[name] = arg.str("value")
		case arg.has("valueFrom"):
			from := arg.child("valueFrom")
			if from.str("podTemplateHashValue") == "Latest" {
				args[name] = "{{.Revision}}"
			} else {
				unknown[name] = from.path
			}
			from.skip("podTemplateHashValue", "fieldRef")
		}
	}
	an.skip("analysisRunMetadata")
	for _, key := range []string{"dryRun", "measurementRetention"} {
		if an.has(key) {
			an.skip(key)
			rc.warn(an.field(key), "KULTA has no counterpart; not converted")
		}
	}
	out := &kultav1alpha1.Analysis{FailurePolicy: kultav1alpha1.FailurePolicyRollback}
	for _, ref := range an.items("templates") {
		name := ref.str("templateName")
		key := rc.namespace + "/" + name
		if cluster, _ := ref.boolean("clusterScope"); cluster {
			key = "/" + name
		}
		d, ok := rc.c.catalog.template(key)
		if !ok {
			rc.warn(ref.path, "template %s is not in the input, so its metrics are not converted: convert it together with the Rollout", name)
			continue
		}
		rc.inlineTemplate(d, args, unknown, out)
	}
	if len(out.Metrics) == 0 {
		return nil
	}
	return out
}

// inlineTemplate adds the metrics of an Argo AnalysisTemplate to out.
func (rc *rolloutConversion) inlineTemplate(d document, args, unknown map[string]string, out *kultav1alpha1.Analysis) {
	obj := newNode("", d.obj)
	obj.skip("apiVersion", "kind", "metadata", "status")
	spec := obj.child("spec")
	values := map[string]string{}
	for _, arg := range spec.items("args") {
		if arg.has("value") {
			values[arg.str("name")] = arg.str("value")
		}
		arg.skip("name", "valueFrom")
	}
	for k, v := range args {
		values[k] = v
	}
	for i, m := range spec.items("metrics") {
		if metric, ok := rc.metric(d, fmt.Sprintf("spec.metrics[%d]", i), m, values, unknown, out); ok {
			out.Metrics = append(out.Metrics, metric)
		}
	}
	for _, field := range obj.unread() {
		rc.c.warn(d.describe(), field, "KULTA has no counterpart; not converted")
	}
}

// argsRef finds {{args.NAME}} (Argo's argument substitution) in a query.
var argsRef = regexp.MustCompile(`\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}`)

// condition is the form of successCondition and failureCondition KULTA converts:
// result[0] (or result) compared with a number, with an optional len(result) > 0 && before it.
var condition = regexp.MustCompile(`^\s*(?:len\(result\)\s*>\s*0\s*&&\s*)?(?:result\[0\]|result)\s*(<=|<|>=|>)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$`)

// metric converts one Argo metric with a Prometheus provider into a KULTA metric with its query:
// the success (or failure) condition's number becomes the threshold, and its comparison the
// direction.
func (rc *rolloutConversion) metric(d document, field string, m *node, values, unknown map[string]string, out *kultav1alpha1.Analysis) (kultav1alpha1.Metric, bool) {
	object := d.describe()
	name := metricName(m.str("name"))
	provider := m.child("provider")
	prom := provider.child("prometheus")
	if prom == nil {
		rc.c.warn(object, field+".provider", "only the prometheus provider converts; metric %s is dropped", name)
		m.skipAll()
		return kultav1alpha1.Metric{}, false
	}
	query := prom.str("query")
	var missing []string
	query = argsRef.ReplaceAllStringFunc(query, func(ref string) string {
		arg := argsRef.FindStringSubmatch(ref)[1]
		if v, ok := values[arg]; ok {
			return v
		}
		missing = append(missing, arg)
		return ref
	})
	if len(missing) > 0 {
		why := "no value is given"
		if _, ok := unknown[missing[0]]; ok {
			why = "its value comes from a field KULTA's queries cannot read (only the revision's own pod-template-hash, {{.Revision}})"
		}
		rc.c.warn(object, field+".provider.prometheus.query", "argument %s: %s; metric %s is dropped", strings.Join(missing, ", "), why, name)
		m.skipAll()
		return kultav1alpha1.Metric{}, false
	}
	if address := prom.str("address"); address != "" {
		if out.Prometheus == nil {
			out.Prometheus = &kultav1alpha1.PrometheusConfig{Address: address}
		} else if out.Prometheus.Address != address {
			rc.c.warn(object, field+".provider.prometheus.address", "KULTA queries one Prometheus per analysis (%s); this metric's %s is not kept", out.Prometheus.Address, address)
		}
	}
	for _, key := range []string{"timeout", "insecure", "headers", "authentication"} {
		if prom.has(key) {
			prom.skip(key)
			rc.c.warn(object, prom.field(key), "KULTA queries Prometheus with the controller's own settings; not converted")
		}
	}
	metric := kultav1alpha1.Metric{Name: name, Query: query}
	threshold, direction, ok := rc.threshold(object, field, m)
	if !ok {
		m.skipAll()
		return kultav1alpha1.Metric{}, false
	}
	metric.Threshold, metric.Direction = threshold, direction
	if m.has("interval") {
		metric.Interval = ptr.To(duration(m, "interval"))
	}
	if m.has("initialDelay") {
		// KULTA waits once for the whole analysis; the longest delay is kept.
		delay := duration(m, "initialDelay")
		if out.WarmupDuration == nil || longer(delay, *out.WarmupDuration) {
			out.WarmupDuration = ptr.To(delay)
		}
	}
	if n, ok := m.integer("failureLimit"); ok {
		// Argo fails the metric once more than failureLimit measurements failed; KULTA after
		// failureThreshold failing checks in a row.
		metric.FailureThreshold = ptr.To(int32(min(n+1, 100)))
	}
	for _, key := range []string{"count", "inconclusiveLimit", "consecutiveErrorLimit", "consecutiveSuccessLimit"} {
		if m.has(key) {
			m.skip(key)
			rc.c.warn(object, m.field(key), "KULTA checks a metric until its step is done and holds an undecided one until progressDeadlineSeconds; not converted")
		}
	}
	for _, field := range m.unread() {
		rc.c.warn(object, field, "KULTA has no counterpart; not converted")
	}
	return metric, true
}

// threshold reads the metric's successCondition (or, without one, failureCondition) of the form
// result[0] OP NUMBER.
func (rc *rolloutConversion) threshold(object, field string, m *node) (kultav1alpha1.Decimal, kultav1alpha1.MetricDirection, bool) {
	success, failure := m.str("successCondition"), m.str("failureCondition")
	expr, key := success, "successCondition"
	if expr == "" {
		expr, key = failure, "failureCondition"
	}
	match := condition.FindStringSubmatch(expr)
	if match == nil {
		rc.c.warn(object, field+"."+key, "%q is not of the form result[0] < NUMBER (or >, <=, >=), which KULTA turns into a threshold; metric %s is dropped", expr, m.str("name"))
		return "", "", false
	}
	op, number := match[1], match[2]
	lower := op == "<" || op == "<="
	if key == "failureCondition" {
		lower = !lower
	}
	if success != "" && failure != "" {
		rc.c.warn(object, field+".failureCondition", "KULTA judges a metric by one threshold; successCondition's is kept")
	}
	direction := kultav1alpha1.DirectionHigher
	if lower {
		direction = kultav1alpha1.DirectionLower
	}
	return kultav1alpha1.Decimal(number), direction, true
}

// metricName is an Argo metric's name as a KULTA metric name: lower case, DNS-label characters.
func metricName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	if out == "" {
		return "metric"
	}
	return out
}

// longer reports whether duration a is longer than b, both KULTA durations.
func longer(a, b kultav1alpha1.Duration) bool {
	da, errA := a.Parse()
	db, errB := b.Parse()
	return errA == nil && (errB != nil || da > db)
}

// marshalRollout writes a converted Rollout without the fields the API server fills in.
func marshalRollout(ro *kultav1alpha1.Rollout) (string, error) {
	obj := map[string]any{}
	data, err := json.Marshal(ro)
	if err != nil {
		return "", fmt.Errorf("writing Rollout %s: %w", ro.Name, err)
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return "", fmt.Errorf("writing Rollout %s: %w", ro.Name, err)
	}
	delete(obj, "status")
	if md, ok := obj["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return marshal(obj)
}
