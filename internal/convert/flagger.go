package convert

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// flaggerCanary converts a Flagger Canary (flagger.app/v1beta1) into a KULTA Rollout that adopts
// the Canary's target Deployment, with the Services and the route Flagger would have generated:
// NAME (which Flagger points at the primary; KULTA's stable Service), NAME-canary, and an
// HTTPRoute or VirtualService for the Gateway API and Istio providers. Flagger's analysis
// becomes steps (stepWeight or stepWeights, a header route for A/B matches, a mirror) and KULTA
// metrics (request-success-rate and request-duration, and MetricTemplates on Prometheus); its
// webhooks become the strategy's webhooks.
func (c *converter) flaggerCanary(d document) (string, error) {
	obj := newNode("", d.obj)
	obj.skip("apiVersion", "kind", "status")
	ns, name := d.name()
	fc := &flaggerConversion{rolloutConversion: rolloutConversion{c: c, object: d.describe(), namespace: ns, name: name, ro: &kultav1alpha1.Rollout{}}}
	ro := fc.ro
	ro.APIVersion, ro.Kind = kultav1alpha1.GroupVersion.String(), "Rollout"
	c.objectMeta(d.describe(), obj.child("metadata"), &ro.ObjectMeta)
	spec := obj.child("spec")
	if spec == nil {
		c.warn(d.describe(), "spec", "a Canary without spec cannot be converted; passed through")
		return string(d.raw), nil
	}
	extra := fc.spec(spec)
	for _, field := range obj.unread() {
		c.warn(d.describe(), field, "KULTA has no counterpart; not converted")
	}
	text, err := marshalRollout(ro)
	if err != nil {
		return "", err
	}
	if len(extra) == 0 {
		return text, nil
	}
	rest, err := marshal(extra...)
	if err != nil {
		return "", err
	}
	return text + "---\n" + rest, nil
}

// flaggerConversion is the conversion of one Canary.
type flaggerConversion struct {
	rolloutConversion
	// stable and canary are the Services KULTA moves traffic between; port their port.
	stable, canary string
	port           int64
	// interval is the analysis interval, Flagger's default one minute.
	interval time.Duration
}

// Flagger's providers KULTA routes through; the rest have no KULTA provider.
const (
	flaggerGatewayAPI = "gatewayapi"
	flaggerIstio      = "istio"
	flaggerNGINX      = "nginx"
	flaggerKubernetes = "kubernetes"
)

// spec converts the Canary's spec and returns the objects to write beside the Rollout.
func (fc *flaggerConversion) spec(spec *node) []any {
	s := &fc.ro.Spec
	target := spec.child("targetRef")
	targetName := target.str("name")
	if kind := target.str("kind"); kind != "" && kind != "Deployment" {
		fc.warn(target.field("kind"), "KULTA adopts Deployments; a %s target is not converted", kind)
	}
	target.skip("apiVersion")
	s.WorkloadRef = &kultav1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: targetName, ScaleDown: kultav1alpha1.ScaleDownOnSuccess}
	if n, ok := fc.c.catalog.replicas[fc.namespace+"/"+targetName]; ok {
		// Flagger's primary runs as many Pods as the target had.
		s.Replicas = ptr.To(int32(n))
	}
	if n, ok := spec.integer("progressDeadlineSeconds"); ok {
		s.ProgressDeadlineSeconds = ptr.To(int32(n))
	}
	if spec.has("autoscalerRef") {
		spec.skip("autoscalerRef")
		fc.warn("spec.autoscalerRef", "point the autoscaler at the Rollout (it has the scale subresource) instead of the Deployment; not converted")
	}
	provider, _, _ := strings.Cut(spec.str("provider"), ":")
	if provider == "" {
		provider = flaggerKubernetes
		fc.warn("spec.provider", "no provider: Flagger's default depends on its installation; converted as kubernetes (blue-green by Services, no routes)")
	}
	svc := spec.child("service")
	serviceName := svc.str("name")
	if serviceName == "" {
		serviceName = targetName
	}
	fc.stable, fc.canary = serviceName, serviceName+"-canary"
	fc.port, _ = svc.integer("port")
	if fc.port == 0 {
		fc.port = 80
		fc.warn("spec.service.port", "not set; 80 is written")
	}
	an := spec.child("analysis")
	fc.interval = time.Minute
	if an.has("interval") {
		if d, err := time.ParseDuration(an.str("interval")); err == nil {
			fc.interval = d
		} else {
			fc.warn(an.field("interval"), "%q is not a duration; Flagger's default, 1m, is used", an.str("interval"))
		}
	}
	if spec.has("skipAnalysis") {
		spec.skip("skipAnalysis")
		fc.warn("spec.skipAnalysis", "KULTA has no switch to skip analysis; promote with kubectl kulta promote --full instead; not converted")
	}
	var routing *kultav1alpha1.TrafficRouting
	var extra []any
	switch provider {
	case flaggerGatewayAPI:
		routing = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{HTTPRoute: serviceName}}
		extra = append(extra, fc.httpRoute(svc, serviceName))
	case flaggerIstio:
		routing = &kultav1alpha1.TrafficRouting{Istio: &kultav1alpha1.IstioRouting{VirtualService: &kultav1alpha1.IstioVirtualService{Name: serviceName, Routes: []string{"primary"}}}}
		extra = append(extra, fc.virtualService(svc, serviceName))
	case flaggerNGINX:
		ingress := spec.child("ingressRef")
		ingress.skip("apiVersion", "kind")
		routing = &kultav1alpha1.TrafficRouting{NGINX: &kultav1alpha1.NGINXRouting{StableIngress: ingress.str("name")}}
		if ingress == nil {
			fc.warn("spec.ingressRef", "the nginx provider needs the Ingress that sends traffic to Service %s; set trafficRouting.nginx.stableIngress", serviceName)
		}
	case flaggerKubernetes:
	default:
		fc.warn("spec.provider", "%s has no KULTA provider (Gateway API, Istio, NGINX); converted without routes, so traffic follows the share of Pods", provider)
	}
	fc.serviceLeftovers(svc)
	extra = append([]any{fc.service(serviceName, svc), fc.service(fc.canary, svc)}, extra...)

	metrics := fc.metrics(an)
	iterations, _ := an.integer("iterations")
	switch {
	case provider == flaggerKubernetes || (iterations > 0 && !an.has("match") && routing == nil):
		fc.blueGreen(an, iterations, metrics, routing)
	default:
		fc.canarySteps(an, iterations, metrics, routing)
	}
	fc.webhooks(an, metrics)
	fc.analysisLeftovers(an)
	return extra
}

// blueGreen is Flagger's blue/green: iterations of analysis on the canary, then the switch.
func (fc *flaggerConversion) blueGreen(an *node, iterations int64, metrics []kultav1alpha1.Metric, routing *kultav1alpha1.TrafficRouting) {
	b := &kultav1alpha1.BlueGreenStrategy{ActiveService: fc.stable, PreviewService: fc.canary, Port: ptr.To(int32(fc.port)), AutoPromotionEnabled: ptr.To(true), TrafficRouting: routing}
	if iterations > 0 {
		b.AutoPromotionSeconds = ptr.To(int32(time.Duration(iterations) * fc.interval / time.Second))
	}
	if len(metrics) > 0 {
		b.Analysis = &kultav1alpha1.Analysis{FailurePolicy: kultav1alpha1.FailurePolicyRollback, Metrics: metrics}
	}
	for _, key := range []string{"stepWeight", "stepWeights", "maxWeight", "match", "mirror", "mirrorWeight"} {
		if an.has(key) {
			an.skip(key)
			fc.warn(an.field(key), "a blue-green switch (provider kubernetes) moves no weight by steps; not converted")
		}
	}
	fc.ro.Spec.Strategy.BlueGreen = b
}

// canarySteps is Flagger's progressive canary (stepWeight up to maxWeight, or stepWeights), its
// A/B test (iterations with a header or cookie match) or its mirroring, as KULTA steps. Each
// weight is followed by a pause of the analysis interval while the metrics are judged in the
// background. A phase at no weight (testers by header, copies by mirror, iterations before the
// switch) is held for its iterations, then an analysis step judges the metrics on what the
// canary served in it: KULTA's background analysis judges only steps with weight.
func (fc *flaggerConversion) canarySteps(an *node, iterations int64, metrics []kultav1alpha1.Metric, routing *kultav1alpha1.TrafficRouting) {
	c := &kultav1alpha1.CanaryStrategy{StableService: fc.stable, CanaryService: fc.canary, Port: ptr.To(int32(fc.port)), TrafficRouting: routing}
	pause := kultav1alpha1.CanaryStep{Pause: &kultav1alpha1.RolloutPause{Duration: ptr.To(kultav1alpha1.Duration(formatDuration(fc.interval)))}}
	judged := func(n int64) []kultav1alpha1.CanaryStep {
		steps := []kultav1alpha1.CanaryStep{{Pause: &kultav1alpha1.RolloutPause{Duration: ptr.To(kultav1alpha1.Duration(formatDuration(time.Duration(max(n, 1)) * fc.interval)))}}}
		if len(metrics) > 0 {
			steps = append(steps, kultav1alpha1.CanaryStep{Analysis: &kultav1alpha1.Analysis{FailurePolicy: kultav1alpha1.FailurePolicyRollback, Metrics: metrics}})
		}
		return steps
	}
	mirror, _ := an.boolean("mirror")
	if mirror {
		m := &kultav1alpha1.SetMirrorRoute{Name: "mirror", Percentage: ptr.To[int32](100)}
		if w, ok := an.integer("mirrorWeight"); ok {
			m.Percentage = ptr.To(int32(w))
		}
		if routing == nil || routing.NGINX != nil {
			fc.warn(an.field("mirror"), "mirroring needs Gateway API or Istio routes; not converted")
		} else {
			c.Steps = append(c.Steps, kultav1alpha1.CanaryStep{SetMirrorRoute: m})
			c.Steps = append(c.Steps, judged(iterations)...)
			c.Steps = append(c.Steps, kultav1alpha1.CanaryStep{SetMirrorRoute: &kultav1alpha1.SetMirrorRoute{Name: "mirror"}})
		}
	}
	matches := an.items("match")
	if len(matches) > 0 {
		step, ok := fc.headerRoute(matches)
		switch {
		case routing == nil:
			fc.warn(an.field("match"), "header and cookie matches need routes, which the converted Rollout has none of; not converted")
		case ok:
			c.Steps = append(c.Steps, step)
			c.Steps = append(c.Steps, judged(iterations)...)
		}
	}
	weighted := false
	if weights, ok := an.raw("stepWeights"); ok && len(matches) == 0 {
		list, _ := weights.([]any)
		for _, item := range list {
			if w, isNum := item.(float64); isNum {
				c.Steps = append(c.Steps, kultav1alpha1.CanaryStep{SetWeight: ptr.To(int32(w))}, pause)
				weighted = true
			}
		}
	} else if step, ok := an.integer("stepWeight"); ok && step > 0 && len(matches) == 0 {
		maxWeight, found := an.integer("maxWeight")
		if !found {
			maxWeight = 50
		}
		for w := step; w <= maxWeight && w < 100; w += step {
			c.Steps = append(c.Steps, kultav1alpha1.CanaryStep{SetWeight: ptr.To(int32(w))}, pause)
			weighted = true
		}
	}
	an.skip("maxWeight", "mirrorWeight", "stepWeightPromotion")
	if iterations > 0 && len(matches) == 0 && !mirror {
		// Iterations without a match on a router: Flagger's blue/green over the route.
		c.Steps = append(c.Steps, judged(iterations)...)
	}
	if len(c.Steps) == 0 {
		c.Steps = []kultav1alpha1.CanaryStep{pause}
	}
	if weighted && len(metrics) > 0 {
		c.Analysis = &kultav1alpha1.Analysis{FailurePolicy: kultav1alpha1.FailurePolicyRollback, Metrics: metrics}
	}
	fc.ro.Spec.Strategy.Canary = c
}

// headerRoute turns Flagger's A/B matches into a setHeaderRoute step. Flagger's matches are
// alternatives; KULTA's header route holds one set of conditions, so the first is kept.
func (fc *flaggerConversion) headerRoute(matches []*node) (kultav1alpha1.CanaryStep, bool) {
	h := &kultav1alpha1.SetHeaderRoute{Name: "ab-test"}
	for i, m := range matches {
		if i > 0 {
			m.skipAll()
			fc.warn(m.path, "KULTA's header route matches one set of conditions; this alternative is not converted")
			continue
		}
		headers := m.child("headers")
		for _, name := range sortedKeys(headers.m) {
			value := headers.child(name)
			if strings.EqualFold(name, "cookie") {
				if cookie, ok := cookieOf(value); ok {
					h.Match = append(h.Match, kultav1alpha1.HeaderRouteMatch{Cookie: &cookie})
					continue
				}
				fc.warn(value.path, "only a cookie regex of the form ^(.*?;)?(NAME=VALUE)(;.*)?$ converts; not converted")
				continue
			}
			h.Match = append(h.Match, kultav1alpha1.HeaderRouteMatch{HeaderName: name, HeaderValue: stringMatch(value)})
		}
		for _, key := range sortedKeys(m.m) {
			if key != "headers" {
				m.skip(key)
				fc.warn(m.field(key), "KULTA's header routes match headers and cookies; not converted")
			}
		}
	}
	return kultav1alpha1.CanaryStep{SetHeaderRoute: h}, len(h.Match) > 0
}

// flaggerCookie is the cookie regex Flagger documents: ^(.*?;)?(NAME=VALUE)(;.*)?$.
var flaggerCookie = regexp.MustCompile(`^\^\(\.\*\?;\)\?\(([A-Za-z0-9_.-]+)=([A-Za-z0-9_.-]+)\)\(;\.\*\)\?\$$`)

func cookieOf(value *node) (kultav1alpha1.CookieMatch, bool) {
	m := flaggerCookie.FindStringSubmatch(value.str("regex"))
	if m == nil {
		return kultav1alpha1.CookieMatch{}, false
	}
	return kultav1alpha1.CookieMatch{Name: m[1], Value: m[2]}, true
}

// metrics converts Flagger's built-in metrics and its MetricTemplates on Prometheus.
func (fc *flaggerConversion) metrics(an *node) []kultav1alpha1.Metric {
	threshold, _ := an.integer("threshold")
	var out []kultav1alpha1.Metric
	for i, m := range an.items("metrics") {
		field := fmt.Sprintf("spec.analysis.metrics[%d]", i)
		name := m.str("name")
		r := m.child("thresholdRange")
		lo, hasMin := floatOf(r, "min")
		hi, hasMax := floatOf(r, "max")
		metric := kultav1alpha1.Metric{}
		switch {
		case name == "request-success-rate" && !m.has("templateRef"):
			// Flagger's success rate is a percentage of non-5xx responses; KULTA's error-rate
			// the percentage of 5xx.
			if !hasMin {
				fc.warn(field+".thresholdRange", "request-success-rate needs thresholdRange.min; metric dropped")
				m.skipAll()
				continue
			}
			metric = kultav1alpha1.Metric{Name: "error-rate", Threshold: kultav1alpha1.Decimal(strconv.FormatFloat(100-lo, 'f', -1, 64))}
		case name == "request-duration" && !m.has("templateRef"):
			if !hasMax {
				fc.warn(field+".thresholdRange", "request-duration needs thresholdRange.max; metric dropped")
				m.skipAll()
				continue
			}
			// Flagger's request duration is the 99th percentile, in milliseconds.
			metric = kultav1alpha1.Metric{Name: "latency-p99", Threshold: kultav1alpha1.Decimal(strconv.FormatFloat(hi, 'f', -1, 64))}
		case m.has("templateRef"):
			q, ok := fc.metricTemplate(field, m)
			if !ok {
				m.skipAll()
				continue
			}
			metric = kultav1alpha1.Metric{Name: metricName(name), Query: q}
			switch {
			case hasMax:
				metric.Threshold, metric.Direction = kultav1alpha1.Decimal(strconv.FormatFloat(hi, 'f', -1, 64)), kultav1alpha1.DirectionLower
				if hasMin {
					fc.warn(field+".thresholdRange.min", "KULTA judges a metric by one threshold; max is kept")
				}
			case hasMin:
				metric.Threshold, metric.Direction = kultav1alpha1.Decimal(strconv.FormatFloat(lo, 'f', -1, 64)), kultav1alpha1.DirectionHigher
			default:
				fc.warn(field, "no thresholdRange; metric %s dropped", name)
				m.skipAll()
				continue
			}
		default:
			m.skipAll()
			fc.warn(field, "metric %s is neither a Flagger built-in nor a templateRef; dropped", name)
			continue
		}
		if m.has("interval") {
			metric.Interval = ptr.To(kultav1alpha1.Duration(m.str("interval")))
		}
		if threshold > 0 {
			metric.FailureThreshold = ptr.To(int32(min(threshold, 100)))
		}
		for _, f := range m.unread() {
			fc.warn(f, "KULTA has no counterpart; not converted")
		}
		out = append(out, metric)
	}
	return out
}

func floatOf(n *node, key string) (float64, bool) {
	v, ok := n.raw(key)
	f, isNum := v.(float64)
	return f, ok && isNum
}

// flaggerVar finds Flagger's query variables: {{ namespace }}, {{ target }}, {{ interval }},
// {{ service }}, {{ variables.NAME }}.
var flaggerVar = regexp.MustCompile(`\{\{\s*([A-Za-z_.]+)\s*\}\}`)

// metricTemplate reads the MetricTemplate a metric names and returns its query with Flagger's
// variables in KULTA's form.
func (fc *flaggerConversion) metricTemplate(field string, m *node) (string, bool) {
	ref := m.child("templateRef")
	ns := ref.str("namespace")
	if ns == "" {
		ns = fc.namespace
	}
	d, ok := fc.c.catalog.template("metric/" + ns + "/" + ref.str("name"))
	if !ok {
		fc.warn(field+".templateRef", "MetricTemplate %s/%s is not in the input, so metric %s is dropped: convert it together with the Canary", ns, ref.str("name"), m.str("name"))
		return "", false
	}
	vars := m.stringMap("templateVariables")
	obj := newNode("", d.obj)
	obj.skip("apiVersion", "kind", "metadata", "status")
	spec := obj.child("spec")
	provider := spec.child("provider")
	if t := provider.str("type"); t != "prometheus" {
		obj.skipAll()
		fc.c.warn(d.describe(), "spec.provider.type", "only the prometheus provider converts; metric %s is dropped", m.str("name"))
		return "", false
	}
	if address := provider.str("address"); address != "" {
		fc.c.warn(d.describe(), "spec.provider.address", "KULTA's analysis queries the Prometheus of the Rollout's analysis (spec.strategy.*.analysis.prometheus) or the controller's; %s is not kept", address)
	}
	provider.skip("secretRef", "insecureSkipVerify")
	var lossy []string
	query := flaggerVar.ReplaceAllStringFunc(spec.str("query"), func(ref string) string {
		v := flaggerVar.FindStringSubmatch(ref)[1]
		switch {
		case v == "namespace":
			return "{{.Namespace}}"
		case v == "interval":
			return "{{.Window}}"
		case v == "service":
			return "{{.Service}}"
		case v == "target":
			lossy = append(lossy, v)
			return "{{.Rollout}}"
		case strings.HasPrefix(v, "variables."):
			if value, ok := vars[strings.TrimPrefix(v, "variables.")]; ok {
				return value
			}
		}
		lossy = append(lossy, v)
		return ref
	})
	for _, v := range lossy {
		if v == "target" {
			fc.c.warn(d.describe(), "spec.query", "{{ target }} names the canary Deployment's Pods in Flagger; KULTA's revisions share the Rollout's name ({{.Rollout}}) and are told apart by {{.Revision}}: check the query")
			continue
		}
		fc.c.warn(d.describe(), "spec.query", "variable %s has no value; metric %s is dropped", v, m.str("name"))
		return "", false
	}
	for _, f := range obj.unread() {
		fc.c.warn(d.describe(), f, "KULTA has no counterpart; not converted")
	}
	return query, true
}

// service is one of the Services Flagger would have generated, selecting the target's Pods.
func (fc *flaggerConversion) service(name string, svc *node) map[string]any {
	selector := fc.c.catalog.selectors[fc.namespace+"/"+fc.ro.Spec.WorkloadRef.Name]
	if selector == nil {
		selector = map[string]string{"app": fc.ro.Spec.WorkloadRef.Name}
		if name == fc.stable {
			fc.warn("spec.targetRef", "Deployment %s is not in the input; Services %s and %s select app: %s, as Flagger's default does", fc.ro.Spec.WorkloadRef.Name, fc.stable, fc.canary, fc.ro.Spec.WorkloadRef.Name)
		}
	}
	port := map[string]any{"name": "http", "port": fc.port, "protocol": "TCP"}
	if p := svc.str("portName"); p != "" {
		port["name"] = p
	}
	if tp, ok := svc.raw("targetPort"); ok {
		port["targetPort"] = tp
	}
	md := map[string]any{"name": name}
	if fc.namespace != "" {
		md["namespace"] = fc.namespace
	}
	return map[string]any{"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": map[string]any{"selector": selector, "ports": []any{port}}}
}

// httpRoute is the HTTPRoute Flagger's gatewayapi provider would manage: the Canary's
// gatewayRefs as parents, its hosts, one rule over the two Services.
func (fc *flaggerConversion) httpRoute(svc *node, name string) map[string]any {
	var parents []any
	for _, g := range svc.items("gatewayRefs") {
		ref := map[string]any{"name": g.str("name")}
		if ns := g.str("namespace"); ns != "" {
			ref["namespace"] = ns
		}
		g.skip("group", "kind", "sectionName", "port")
		parents = append(parents, ref)
	}
	spec := map[string]any{
		"parentRefs": parents,
		"rules": []any{map[string]any{"backendRefs": []any{
			map[string]any{"name": fc.stable, "port": fc.port, "weight": 100},
			map[string]any{"name": fc.canary, "port": fc.port, "weight": 0},
		}}},
	}
	if hosts := svc.strings("hosts"); len(hosts) > 0 {
		spec["hostnames"] = hosts
	}
	return map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": fc.meta(name), "spec": spec}
}

// virtualService is the VirtualService Flagger's istio provider would manage: the Canary's
// hosts and gateways, one HTTP route named primary over the two Services.
func (fc *flaggerConversion) virtualService(svc *node, name string) map[string]any {
	hosts := svc.strings("hosts")
	if len(hosts) == 0 {
		hosts = []string{name}
	}
	spec := map[string]any{
		"hosts": hosts,
		"http": []any{map[string]any{"name": "primary", "route": []any{
			map[string]any{"destination": map[string]any{"host": fc.stable, "port": map[string]any{"number": fc.port}}, "weight": 100},
			map[string]any{"destination": map[string]any{"host": fc.canary, "port": map[string]any{"number": fc.port}}, "weight": 0},
		}}},
	}
	if gateways := svc.strings("gateways"); len(gateways) > 0 {
		spec["gateways"] = gateways
	}
	return map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": fc.meta(name), "spec": spec}
}

func (fc *flaggerConversion) meta(name string) map[string]any {
	md := map[string]any{"name": name}
	if fc.namespace != "" {
		md["namespace"] = fc.namespace
	}
	return md
}

// serviceLeftovers warns of the Service and route settings Flagger copies into what it
// generates and the converter does not.
func (fc *flaggerConversion) serviceLeftovers(svc *node) {
	svc.skip("name", "port", "portName", "targetPort", "hosts", "gateways", "gatewayRefs", "portDiscovery")
	for _, key := range sortedKeys(svc.m) {
		if !svc.used[key] {
			svc.skip(key)
			fc.warn(svc.field(key), "Flagger copies it into the objects it generates; add it to the converted route or Services yourself; not converted")
		}
	}
}

// analysisLeftovers warns of the analysis settings KULTA has no counterpart for.
func (fc *flaggerConversion) analysisLeftovers(an *node) {
	an.skip("interval", "threshold", "iterations")
	if an.has("alerts") {
		an.skip("alerts")
		fc.warn(an.field("alerts"), "alert providers are KULTA notification services (slack, teams, webhook) configured once for the controller (--notifications-config, the chart's notifications.services), which the Rollout subscribes to with the kulta.io/notify annotation; not converted")
	}
}

// formatDuration writes d as KULTA writes durations: 90s is 1m30s, 5m, 1h30m.
func formatDuration(d time.Duration) string {
	if d%time.Second != 0 {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	secs := int64(d / time.Second)
	h, m, sec := secs/3600, secs%3600/60, secs%60
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if sec > 0 || b.Len() == 0 {
		fmt.Fprintf(&b, "%ds", sec)
	}
	return b.String()
}
