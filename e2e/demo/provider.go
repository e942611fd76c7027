package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/e2e/simulator"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/providers/gatewayapi"
	"github.com/false-systems/kulta/providers/istio"
	"github.com/false-systems/kulta/providers/nginx"
)

// The traffic providers the demo can route its application through, as --provider and
// KULTA_DEMO_PROVIDER name them.
const (
	providerGatewayAPI = "gatewayapi"
	providerIstio      = "istio"
	providerNGINX      = "nginx"
	// defaultProvider is the one used unless --provider or KULTA_DEMO_PROVIDER says otherwise.
	defaultProvider = providerGatewayAPI
)

// trafficProvider is one way of routing the demo's application: the manifest to apply, the
// controller's name for the provider, and how to read the split it carries.
type trafficProvider struct {
	// name is the provider's name for --provider and KULTA_DEMO_PROVIDER.
	name string
	// controllerName is its name in the controller's --traffic-providers and in a Rollout's
	// trafficRouting.
	controllerName string
	// title names it for people, such as "Gateway API".
	title string
	// manifest is the application the demo applies, relative to the repository.
	manifest string
	// resources are the kubectl resources the provider routes with, for the printed command.
	resources string
	// dataPlane is what the traffic simulator stands in for.
	dataPlane string
	// split checks that the Rollout routes through the provider and returns the reader of the
	// split its objects carry.
	split func(ro *kultav1alpha1.Rollout) (splitReader, error)
}

// trafficProviders are the providers the demo knows, in the order their names are listed.
var trafficProviders = []trafficProvider{{
	name: providerGatewayAPI, controllerName: gatewayapi.ProviderName, title: "Gateway API",
	manifest: "examples/demo/web.yaml", resources: "httproutes",
	dataPlane: "a Gateway API data plane", split: httpRouteSplitOf,
}, {
	name: providerIstio, controllerName: istio.ProviderName, title: "Istio",
	manifest: "examples/demo/web-istio.yaml", resources: "virtualservices",
	dataPlane: "Istio's sidecar proxies", split: virtualServiceSplitOf,
}, {
	name: providerNGINX, controllerName: nginx.ProviderName, title: "ingress-nginx",
	manifest: "examples/demo/web-nginx.yaml", resources: "ingresses",
	dataPlane: "ingress-nginx", split: canaryIngressSplitOf,
}}

// providerNames lists the names lookupProvider accepts, for messages.
func providerNames() string {
	names := make([]string, 0, len(trafficProviders))
	for _, p := range trafficProviders {
		names = append(names, p.name)
	}
	return strings.Join(names, ", ")
}

// lookupProvider is the provider called name, in any case (so the controller's spelling
// "gatewayAPI" works too).
func lookupProvider(name string) (trafficProvider, error) {
	for _, p := range trafficProviders {
		if strings.EqualFold(strings.TrimSpace(name), p.name) {
			return p, nil
		}
	}
	return trafficProvider{}, fmt.Errorf("is not a traffic provider the demo knows; accepted values: %s", providerNames())
}

// splitReader reads the stable/canary split that one provider's objects carry.
type splitReader interface {
	// read is the split as "stable/canary" percentages, such as "80/20", or "-/-" when the
	// objects do not split traffic between the two Services.
	read(ctx context.Context, cl client.Reader) (string, error)
	// String names the objects, such as "HTTPRoute default/web".
	String() string
}

// canaryRouting is the Rollout's canary strategy and its traffic routing, or an error when it
// has none.
func canaryRouting(ro *kultav1alpha1.Rollout) (*kultav1alpha1.CanaryStrategy, *kultav1alpha1.TrafficRouting, error) {
	c := ro.Spec.Strategy.Canary
	if c == nil || c.TrafficRouting == nil {
		return nil, nil, fmt.Errorf("the Rollout %s/%s is not a canary with trafficRouting", ro.Namespace, ro.Name)
	}
	return c, c.TrafficRouting, nil
}

// httpRouteSplit reads the weights of an HTTPRoute's rule that names both Services.
type httpRouteSplit struct {
	route          client.ObjectKey
	stable, canary string
}

// httpRouteSplitOf reads the HTTPRoute of the Rollout's trafficRouting.gatewayAPI.
func httpRouteSplitOf(ro *kultav1alpha1.Rollout) (splitReader, error) {
	c, tr, err := canaryRouting(ro)
	if err != nil {
		return nil, err
	}
	if tr.GatewayAPI == nil || tr.GatewayAPI.HTTPRoute == "" {
		return nil, fmt.Errorf("the Rollout %s/%s is not routed through an HTTPRoute (trafficRouting.gatewayAPI.httpRoute)", ro.Namespace, ro.Name)
	}
	return &httpRouteSplit{route: client.ObjectKey{Namespace: ro.Namespace, Name: tr.GatewayAPI.HTTPRoute},
		stable: c.StableService, canary: c.CanaryService}, nil
}

func (s *httpRouteSplit) read(ctx context.Context, cl client.Reader) (string, error) {
	route := &gatewayv1.HTTPRoute{}
	if err := cl.Get(ctx, s.route, route); err != nil {
		return "", fmt.Errorf("reading %s: %w", s, err)
	}
	// KULTA's own header rules name one Service; the weighted rule names both.
	w, ok := rollouttest.RouteWeights(route, s.stable, s.canary)
	if !ok {
		return noSplit, nil
	}
	return fmt.Sprintf("%d/%d", w.Stable, w.Canary), nil
}

func (s *httpRouteSplit) String() string { return "HTTPRoute " + s.route.String() }

// virtualServiceSplit reads the weights of the destinations of one HTTP route of a
// VirtualService.
type virtualServiceSplit struct {
	vs client.ObjectKey
	// route is the HTTP route's name; empty means the VirtualService's only HTTP route.
	route          string
	stable, canary string
}

// virtualServiceSplitOf reads the route of the Rollout's trafficRouting.istio.virtualService.
func virtualServiceSplitOf(ro *kultav1alpha1.Rollout) (splitReader, error) {
	c, tr, err := canaryRouting(ro)
	if err != nil {
		return nil, err
	}
	if tr.Istio == nil || tr.Istio.VirtualService == nil || tr.Istio.DestinationRule != nil || len(tr.Istio.VirtualService.Routes) > 1 {
		return nil, fmt.Errorf("the Rollout %s/%s is not routed through one HTTP route of one VirtualService split by host "+
			"(trafficRouting.istio.virtualService with at most one route, no destinationRule)", ro.Namespace, ro.Name)
	}
	s := &virtualServiceSplit{vs: client.ObjectKey{Namespace: ro.Namespace, Name: tr.Istio.VirtualService.Name},
		stable: c.StableService, canary: c.CanaryService}
	if routes := tr.Istio.VirtualService.Routes; len(routes) == 1 {
		s.route = routes[0]
	}
	return s, nil
}

func (s *virtualServiceSplit) read(ctx context.Context, cl client.Reader) (string, error) {
	vs := &istionetworkingv1.VirtualService{}
	if err := cl.Get(ctx, s.vs, vs); err != nil {
		return "", fmt.Errorf("reading %s: %w", s, err)
	}
	routes := vs.Spec.GetHttp()
	if s.route == "" && len(routes) != 1 {
		return "", fmt.Errorf("%s has %d HTTP routes, want exactly one when the Rollout names none", s, len(routes))
	}
	for _, route := range routes {
		if s.route != "" && route.GetName() != s.route {
			continue
		}
		var stable, canary int32
		var sawStable, sawCanary bool
		for _, d := range route.GetRoute() {
			host := d.GetDestination().GetHost()
			switch {
			case sameService(host, s.vs.Namespace, s.stable):
				stable, sawStable = stable+d.GetWeight(), true
			case sameService(host, s.vs.Namespace, s.canary):
				canary, sawCanary = canary+d.GetWeight(), true
			}
		}
		if !sawStable || !sawCanary {
			return noSplit, nil
		}
		return fmt.Sprintf("%d/%d", stable, canary), nil
	}
	return "", fmt.Errorf("VirtualService %s has no HTTP route %s", s.vs, s.route)
}

func (s *virtualServiceSplit) String() string {
	if s.route == "" {
		return "VirtualService " + s.vs.String()
	}
	return "VirtualService " + s.vs.String() + ", route " + s.route
}

// sameService reports whether an Istio destination host names the Service svc of namespace:
// by its name, or by NAME.NAMESPACE, NAME.NAMESPACE.svc or NAME.NAMESPACE.svc.cluster.local.
func sameService(host, namespace, svc string) bool {
	host = strings.ToLower(host)
	for _, name := range []string{svc, svc + "." + namespace, svc + "." + namespace + ".svc", svc + "." + namespace + ".svc.cluster.local"} {
		if host == name {
			return true
		}
	}
	return false
}

// canaryIngressSplit reads the canary-weight of the canary Ingress KULTA derives from the
// stable Ingress. KULTA deletes that Ingress while the canary has no weight, so no canary
// Ingress means all traffic on stable.
type canaryIngressSplit struct {
	canaryIngress client.ObjectKey
	stableIngress string
	// prefix is ingress-nginx's annotation prefix.
	prefix string
}

// canaryIngressSplitOf reads the canary Ingress of the Rollout's trafficRouting.nginx.stableIngress.
func canaryIngressSplitOf(ro *kultav1alpha1.Rollout) (splitReader, error) {
	_, tr, err := canaryRouting(ro)
	if err != nil {
		return nil, err
	}
	if tr.NGINX == nil || tr.NGINX.StableIngress == "" || len(tr.NGINX.StableIngresses) > 0 {
		return nil, fmt.Errorf("the Rollout %s/%s is not routed through one Ingress (trafficRouting.nginx.stableIngress)", ro.Namespace, ro.Name)
	}
	prefix := tr.NGINX.AnnotationPrefix
	if prefix == "" {
		prefix = simulator.DefaultAnnotationPrefix
	}
	return &canaryIngressSplit{
		canaryIngress: client.ObjectKey{Namespace: ro.Namespace, Name: nginx.CanaryIngressName(ro.Name, tr.NGINX.StableIngress)},
		stableIngress: tr.NGINX.StableIngress, prefix: prefix,
	}, nil
}

func (s *canaryIngressSplit) read(ctx context.Context, cl client.Reader) (string, error) {
	ing := &networkingv1.Ingress{}
	err := cl.Get(ctx, s.canaryIngress, ing)
	if apierrors.IsNotFound(err) {
		return "100/0", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the canary Ingress %s: %w", s.canaryIngress, err)
	}
	if ing.Annotations[s.prefix+"/canary"] != "true" {
		return "", fmt.Errorf("the Ingress %s is not a canary Ingress: it lacks %s/canary: \"true\"", s.canaryIngress, s.prefix)
	}
	weight, err := annotationInt(ing, s.prefix+"/canary-weight", 0)
	if err != nil {
		return "", err
	}
	total, err := annotationInt(ing, s.prefix+"/canary-weight-total", 100)
	if err != nil {
		return "", err
	}
	if total <= 0 || weight < 0 || weight > total {
		return "", fmt.Errorf("the canary Ingress %s: canary-weight %d of canary-weight-total %d is not a share", s.canaryIngress, weight, total)
	}
	canary := weight * 100 / total
	return fmt.Sprintf("%d/%d", 100-canary, canary), nil
}

func (s *canaryIngressSplit) String() string {
	return fmt.Sprintf("canary Ingress %s of Ingress %s", s.canaryIngress, s.stableIngress)
}

// annotationInt is ing's annotation key as a whole number, or def when it has none.
func annotationInt(ing *networkingv1.Ingress, key string, def int) (int, error) {
	value, ok := ing.Annotations[key]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(value)
	if err != nil {
		return 0, fmt.Errorf("the Ingress %s/%s: annotation %s: %w", ing.Namespace, ing.Name, key, err)
	}
	return n, nil
}

// noSplit is the split shown when the objects do not name both Services.
const noSplit = "-/-"
