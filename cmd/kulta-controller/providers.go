package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/gatewayapi"
	"github.com/false-systems/kulta/providers/istio"
	"github.com/false-systems/kulta/providers/nginx"
)

// builtProviders are the traffic providers this build has, by their trafficRouting names.
var builtProviders = []string{gatewayapi.ProviderName, istio.ProviderName, nginx.ProviderName}

// parseProviders reads --traffic-providers: a comma-separated list of provider names.
func parseProviders(list string) ([]string, error) {
	var names []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" || slices.Contains(names, name) {
			continue
		}
		if !slices.Contains(builtProviders, name) {
			return nil, fmt.Errorf("--traffic-providers: unknown provider %q (known: %s)", name, strings.Join(builtProviders, ", "))
		}
		names = append(names, name)
	}
	return names, nil
}

// cacheTrims are the registrations of every provider this build has, without routers: only
// their cache trims are used, and those do not depend on what is installed.
func cacheTrims() []providers.Provider {
	return []providers.Provider{gatewayapi.NewProvider(nil, gatewayapi.Capabilities{}), istio.NewProvider(nil), nginx.NewProvider(nil)}
}

// trafficProviders registers the enabled providers whose APIs the API server serves. A
// provider enabled but not served is left out and logged: Rollouts that name it are Stalled
// with ProviderNotEnabled until it is installed and the controller restarts.
func trafficProviders(ctx context.Context, o *options, mgr ctrl.Manager) ([]providers.Provider, error) {
	log := ctrl.Log.WithName("setup")
	// A shard's replica reads through the wrappers that mark what its scoped cache misses.
	c, reader := o.readers(mgr)
	var out []providers.Provider
	for _, name := range o.providers {
		switch name {
		case gatewayapi.ProviderName:
			caps, err := gatewayapi.Detect(ctrl.LoggerInto(ctx, log), mgr.GetRESTMapper(), mgr.GetAPIReader())
			if err != nil {
				return nil, fmt.Errorf("detecting the Gateway API CRDs: %w", err)
			}
			log.Info("Detected the Gateway API CRDs", "httpRoute", caps.HTTPRoute, "grpcRoute", caps.GRPCRoute, "ruleNames", caps.RuleNames)
			if len(caps.Kinds()) == 0 {
				log.Info("Gateway API CRDs not installed; Rollouts with trafficRouting.gatewayAPI will be Stalled until they are and the controller restarts")
				continue
			}
			// Routes are read from the cache the provider's route watches fill.
			router := &gatewayapi.Router{Client: c, Reader: reader, APIReader: mgr.GetAPIReader(), Capabilities: &caps}
			out = append(out, gatewayapi.NewProvider(router, caps))
		case istio.ProviderName:
			served, err := istio.Served(mgr.GetRESTMapper())
			if err != nil {
				return nil, fmt.Errorf("detecting the Istio CRDs: %w", err)
			}
			if !served {
				log.Info("Istio's VirtualService and DestinationRule (networking.istio.io/v1) not served; Rollouts with trafficRouting.istio will be Stalled until they are and the controller restarts")
				continue
			}
			router := &istio.Router{Client: c, Reader: reader, APIReader: mgr.GetAPIReader()}
			out = append(out, istio.NewProvider(router))
		case nginx.ProviderName:
			// networking.k8s.io/v1 Ingress is served by every supported API server.
			router := &nginx.Router{Client: c, Reader: reader, APIReader: mgr.GetAPIReader()}
			out = append(out, nginx.NewProvider(router))
		}
		log.Info("Traffic provider enabled", "provider", name)
	}
	return out, nil
}
