package convert

import (
	"fmt"
	"strings"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// gatewayAPIPlugin is the name of Argo Rollouts' Gateway API traffic-router plugin.
const gatewayAPIPlugin = "argoproj-labs/gatewayAPI"

// trafficRouting converts Argo's Gateway API plugin, istio and nginx blocks; the other traffic
// routers have no KULTA provider, and without routes the steps that need them are dropped too.
func (rc *rolloutConversion) trafficRouting(tr *node) *kultav1alpha1.TrafficRouting {
	out := &kultav1alpha1.TrafficRouting{}
	// KULTA finds the rules it adds by their names; it needs no list of them.
	tr.skip("managedRoutes")
	if n, ok := tr.integer("maxTrafficWeight"); ok && n != 100 {
		rc.warn(tr.field("maxTrafficWeight"), "KULTA's weights are percentages; a total of %d is not converted", n)
	}
	if plugins := tr.child("plugins"); plugins != nil {
		for _, name := range sortedKeys(plugins.m) {
			if name != gatewayAPIPlugin {
				continue
			}
			gw := plugins.child(name)
			g := &kultav1alpha1.GatewayAPIRouting{}
			ns := gw.str("namespace")
			add := func(kind kultav1alpha1.RouteKind, route string) {
				switch {
				case ns != "" && ns != rc.namespace:
					g.Routes = append(g.Routes, kultav1alpha1.RouteReference{Kind: kind, Name: route, Namespace: ns})
				case kind == kultav1alpha1.KindHTTPRoute && g.HTTPRoute == "":
					g.HTTPRoute = route
				case kind == kultav1alpha1.KindGRPCRoute && g.GRPCRoute == "":
					g.GRPCRoute = route
				default:
					g.Routes = append(g.Routes, kultav1alpha1.RouteReference{Kind: kind, Name: route})
				}
			}
			if r := gw.str("httpRoute"); r != "" {
				add(kultav1alpha1.KindHTTPRoute, r)
			}
			for _, r := range gw.items("httpRoutes") {
				// KULTA puts header routes on every route it names.
				r.skip("useHeaderRoutes")
				add(kultav1alpha1.KindHTTPRoute, r.str("name"))
			}
			if r := gw.str("grpcRoute"); r != "" {
				add(kultav1alpha1.KindGRPCRoute, r)
			}
			for _, r := range gw.items("grpcRoutes") {
				add(kultav1alpha1.KindGRPCRoute, r.str("name"))
			}
			out.GatewayAPI = g
		}
	}
	if is := tr.child("istio"); is != nil {
		i := &kultav1alpha1.IstioRouting{}
		if vs := is.child("virtualService"); vs != nil {
			i.VirtualService = rc.virtualService(vs)
		}
		for _, vs := range is.items("virtualServices") {
			i.VirtualServices = append(i.VirtualServices, *rc.virtualService(vs))
		}
		if dr := is.child("destinationRule"); dr != nil {
			i.DestinationRule = &kultav1alpha1.IstioDestinationRule{Name: dr.str("name"), CanarySubsetName: dr.str("canarySubsetName"), StableSubsetName: dr.str("stableSubsetName")}
		}
		out.Istio = i
	}
	if ng := tr.child("nginx"); ng != nil {
		out.NGINX = &kultav1alpha1.NGINXRouting{
			StableIngress:                ng.str("stableIngress"),
			StableIngresses:              ng.strings("stableIngresses"),
			AnnotationPrefix:             ng.str("annotationPrefix"),
			AdditionalIngressAnnotations: ng.stringMap("additionalIngressAnnotations"),
			CanaryIngressAnnotations:     ng.stringMap("canaryIngressAnnotations"),
		}
	}
	if out.GatewayAPI == nil && out.Istio == nil && out.NGINX == nil {
		tr.skipAll()
		rc.warn(tr.path, "none of its traffic routers has a KULTA provider (Gateway API, Istio, NGINX); the Rollout is converted without routes, and its steps that need them are dropped")
		return nil
	}
	return out
}

func (rc *rolloutConversion) virtualService(vs *node) *kultav1alpha1.IstioVirtualService {
	out := &kultav1alpha1.IstioVirtualService{Name: vs.str("name"), Routes: vs.strings("routes")}
	for _, t := range vs.items("tlsRoutes") {
		r := kultav1alpha1.IstioTLSRoute{SNIHosts: t.strings("sniHosts")}
		if p, ok := t.integer("port"); ok {
			r.Port = p
		}
		out.TLSRoutes = append(out.TLSRoutes, r)
	}
	for _, t := range vs.items("tcpRoutes") {
		r := kultav1alpha1.IstioTCPRoute{}
		if p, ok := t.integer("port"); ok {
			r.Port = p
		}
		out.TCPRoutes = append(out.TCPRoutes, r)
	}
	return out
}

// step converts one canary step; ok is false when it is dropped (each drop is a warning).
func (rc *rolloutConversion) step(field string, step *node, routed bool) (kultav1alpha1.CanaryStep, bool) {
	var out kultav1alpha1.CanaryStep
	needsRoutes := func(what string) bool {
		if !routed {
			rc.warn(field+"."+what, "needs trafficRouting, which the converted Rollout has none of; the step is dropped")
		}
		return routed
	}
	switch {
	case step.has("setWeight"):
		n, _ := step.integer("setWeight")
		out.SetWeight = ptr.To(int32(n))
	case step.has("pause"):
		out.Pause = &kultav1alpha1.RolloutPause{}
		if p := step.child("pause"); p != nil && p.has("duration") {
			out.Pause.Duration = ptr.To(duration(p, "duration"))
		}
	case step.has("setCanaryScale"):
		if !needsRoutes("setCanaryScale") {
			step.skip("setCanaryScale")
			return out, false
		}
		sc := step.child("setCanaryScale")
		out.SetCanaryScale = &kultav1alpha1.CanaryScale{}
		if n, ok := sc.integer("replicas"); ok {
			out.SetCanaryScale.Replicas = ptr.To(int32(n))
		} else if n, ok := sc.integer("weight"); ok {
			out.SetCanaryScale.Weight = ptr.To(int32(n))
		} else if m, ok := sc.boolean("matchTrafficWeight"); ok && m {
			out.SetCanaryScale.MatchTrafficWeight = ptr.To(true)
		}
	case step.has("setHeaderRoute"):
		if !needsRoutes("setHeaderRoute") {
			step.skip("setHeaderRoute")
			return out, false
		}
		h := step.child("setHeaderRoute")
		out.SetHeaderRoute = &kultav1alpha1.SetHeaderRoute{Name: h.str("name")}
		for _, m := range h.items("match") {
			out.SetHeaderRoute.Match = append(out.SetHeaderRoute.Match, kultav1alpha1.HeaderRouteMatch{
				HeaderName: m.str("headerName"), HeaderValue: stringMatch(m.child("headerValue")),
			})
		}
	case step.has("setMirrorRoute"):
		if !needsRoutes("setMirrorRoute") {
			step.skip("setMirrorRoute")
			return out, false
		}
		out.SetMirrorRoute = rc.mirrorRoute(step.child("setMirrorRoute"))
	case step.has("analysis"):
		a := rc.analysis(step.child("analysis"))
		if a == nil {
			rc.warn(field+".analysis", "no metric of its templates converts, so the analysis step is dropped")
			return out, false
		}
		out.Analysis = a
	case step.has("experiment"):
		step.skip("experiment")
		rc.warn(field+".experiment", "KULTA has no experiments; the step is dropped (an A/B test is a strategy of its own, spec.strategy.abTesting)")
		return out, false
	default:
		keys := sortedKeys(step.m)
		step.skip(keys...)
		rc.warn(field, "step %s has no KULTA counterpart; dropped", strings.Join(keys, ", "))
		return out, false
	}
	return out, true
}

// duration reads an Argo duration: a number of seconds, or a string such as 1h30m.
func duration(n *node, key string) kultav1alpha1.Duration {
	if secs, ok := n.integer(key); ok {
		return kultav1alpha1.Duration(fmt.Sprintf("%ds", secs))
	}
	return kultav1alpha1.Duration(n.str(key))
}

func stringMatch(v *node) *kultav1alpha1.StringMatch {
	if v == nil {
		return nil
	}
	out := &kultav1alpha1.StringMatch{}
	switch {
	case v.has("exact"):
		out.Exact = ptr.To(v.str("exact"))
	case v.has("prefix"):
		out.Prefix = ptr.To(v.str("prefix"))
	case v.has("regex"):
		out.Regex = ptr.To(v.str("regex"))
	}
	return out
}

// mirrorRoute converts Argo's setMirrorRoute. Its matches are alternatives of method, path and
// headers; KULTA's mirror routes match headers (all of them), so the first alternative's headers
// are kept and anything else is a warning: the mirror then copies more requests than before.
func (rc *rolloutConversion) mirrorRoute(m *node) *kultav1alpha1.SetMirrorRoute {
	out := &kultav1alpha1.SetMirrorRoute{Name: m.str("name")}
	if p, ok := m.integer("percentage"); ok {
		out.Percentage = ptr.To(int32(p))
	}
	matches := m.items("match")
	for i, alt := range matches {
		if i > 0 {
			alt.skip(sortedKeys(alt.m)...)
			rc.warn(alt.path, "KULTA's mirror route matches one set of conditions; this alternative is not converted, so its requests are not mirrored")
			continue
		}
		for _, what := range []string{"method", "path"} {
			if alt.has(what) {
				alt.skip(what)
				rc.warn(alt.field(what), "KULTA's mirror routes match headers only; this condition is dropped, so the mirror copies more requests")
			}
		}
		if headers := alt.child("headers"); headers != nil {
			for _, name := range sortedKeys(headers.m) {
				out.Match = append(out.Match, kultav1alpha1.HeaderRouteMatch{HeaderName: name, HeaderValue: stringMatch(headers.child(name))})
			}
		}
	}
	if len(matches) > 0 && out.Percentage == nil && len(out.Match) == 0 {
		// A match left without conditions still sets the route (it is not a removal).
		out.Percentage = ptr.To[int32](100)
	}
	return out
}
