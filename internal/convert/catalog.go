package convert

import (
	"slices"
)

// catalog is what the input streams say besides the objects being converted: the analysis
// templates Rollouts inline, and the Services and routes that tell which port the Rollouts'
// Services are reached on.
type catalog struct {
	// templates are AnalysisTemplates by NAMESPACE/NAME, ClusterAnalysisTemplates by /NAME and
	// Flagger MetricTemplates by metric/NAMESPACE/NAME.
	templates map[string]document
	used      map[string]bool
	// servicePorts are the ports of each Service, by NAMESPACE/NAME.
	servicePorts map[string][]int64
	// routePorts are the ports routes send to each Service at, by NAMESPACE/NAME.
	routePorts map[string][]int64
	// selectors are the Pod selectors (matchLabels) of the input's Deployments, by
	// NAMESPACE/NAME, and replicas their replica counts.
	selectors map[string]map[string]string
	replicas  map[string]int64
}

func newCatalog(docs []document) *catalog {
	c := &catalog{templates: map[string]document{}, used: map[string]bool{}, servicePorts: map[string][]int64{}, routePorts: map[string][]int64{}, selectors: map[string]map[string]string{}, replicas: map[string]int64{}}
	for _, d := range docs {
		apiVersion, kind := d.kind()
		ns, name := d.name()
		switch {
		case apiVersion == argoAPIVersion && kind == "AnalysisTemplate":
			c.templates[ns+"/"+name] = d
		case apiVersion == argoAPIVersion && kind == "ClusterAnalysisTemplate":
			c.templates["/"+name] = d
		case apiVersion == flaggerAPIVersion && kind == "MetricTemplate":
			c.templates["metric/"+ns+"/"+name] = d
		case apiVersion == "apps/v1" && kind == "Deployment":
			spec, _ := d.obj["spec"].(map[string]any)
			if n, ok := spec["replicas"].(float64); ok {
				c.replicas[ns+"/"+name] = int64(n)
			}
			selector, _ := spec["selector"].(map[string]any)
			labels, _ := selector["matchLabels"].(map[string]any)
			if len(labels) > 0 {
				c.selectors[ns+"/"+name] = map[string]string{}
				for k, v := range labels {
					if s, ok := v.(string); ok {
						c.selectors[ns+"/"+name][k] = s
					}
				}
			}
		case apiVersion == "v1" && kind == "Service":
			spec, _ := d.obj["spec"].(map[string]any)
			ports, _ := spec["ports"].([]any)
			for _, p := range ports {
				pm, _ := p.(map[string]any)
				if port, ok := pm["port"].(float64); ok {
					c.servicePorts[ns+"/"+name] = append(c.servicePorts[ns+"/"+name], int64(port))
				}
			}
		case apiVersion == "gateway.networking.k8s.io/v1" && (kind == "HTTPRoute" || kind == "GRPCRoute"):
			spec, _ := d.obj["spec"].(map[string]any)
			rules, _ := spec["rules"].([]any)
			for _, r := range rules {
				rule, _ := r.(map[string]any)
				refs, _ := rule["backendRefs"].([]any)
				for _, item := range refs {
					ref, _ := item.(map[string]any)
					svc, _ := ref["name"].(string)
					refNS, _ := ref["namespace"].(string)
					if refNS == "" {
						refNS = ns
					}
					if port, ok := ref["port"].(float64); ok {
						key := refNS + "/" + svc
						if !slices.Contains(c.routePorts[key], int64(port)) {
							c.routePorts[key] = append(c.routePorts[key], int64(port))
						}
					}
				}
			}
		}
	}
	return c
}

// template finds a template and marks it used.
func (c *catalog) template(key string) (document, bool) {
	d, ok := c.templates[key]
	if ok {
		c.used[key] = true
	}
	return d, ok
}

// port is the port both Services of a strategy are reached on: the one the input's routes send
// to them at, else the one port their Services have; ok is false when the input does not say.
func (c *catalog) port(ns, stable, canary string) (int64, bool) {
	for _, from := range []map[string][]int64{c.routePorts, c.servicePorts} {
		a, b := from[ns+"/"+stable], from[ns+"/"+canary]
		for _, p := range a {
			if slices.Contains(b, p) && (len(a) == 1 || len(b) == 1) {
				return p, true
			}
		}
	}
	return 0, false
}

// reportUnusedTemplates warns of templates no converted object used: they are not in the
// output, as KULTA inlines analysis into its Rollouts.
func (c *converter) reportUnusedTemplates() {
	for _, key := range sortedKeys(c.catalog.templates) {
		if !c.catalog.used[key] {
			d := c.catalog.templates[key]
			c.warn(d.describe(), "", "used by no converted object in the input, so it is not in the output: KULTA carries analysis inline in each Rollout")
		}
	}
}
