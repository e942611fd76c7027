package main

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/shard"
	"github.com/false-systems/kulta/providers/gatewayapi"
	"github.com/false-systems/kulta/providers/istio"
)

// shardScoped are the kinds a shard's replica caches only where marked for its shard (package
// shard): the ReplicaSets KULTA creates, what Rollouts name one by one (their Services, the
// Deployments they adopt, their routes, Istio's VirtualServices and DestinationRules, NGINX's
// stable Ingresses), and what the NGINX router creates (canary Ingresses, which it lists through
// a cache index: those it creates in the shard carry the mark from the start, and those a
// Rollout had before it came to the shard are marked when the replica first sees it). The
// Gateway API's ReferenceGrants stay cached whole: one serves every route of a namespace.
func shardScoped() []client.Object {
	return []client.Object{
		&appsv1.ReplicaSet{}, &corev1.Service{}, &appsv1.Deployment{},
		gatewayapi.RouteObject(string(kultav1alpha1.KindHTTPRoute)), gatewayapi.RouteObject(string(kultav1alpha1.KindGRPCRoute)),
		istio.VirtualServiceObject(), istio.DestinationRuleObject(), &networkingv1.Ingress{},
	}
}

// scopeToShard narrows opts to the objects marked for shard key, for each kind of shardScoped
// that mapper finds served (a ByObject entry of a kind not served would stop the cache from
// starting), and returns those kinds.
func scopeToShard(opts *cache.Options, key string, scheme *runtime.Scheme, mapper meta.RESTMapper) ([]schema.GroupKind, error) {
	var objs []client.Object
	var kinds []schema.GroupKind
	for _, obj := range shardScoped() {
		gvk, err := apiutil.GVKForObject(obj, scheme)
		if err != nil {
			return nil, fmt.Errorf("scoping the cache to shard %q: %w", key, err)
		}
		if _, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			if meta.IsNoMatchError(err) {
				continue
			}
			return nil, fmt.Errorf("scoping the cache to shard %q: looking up %s: %w", key, gvk, err)
		}
		objs = append(objs, obj)
		kinds = append(kinds, gvk.GroupKind())
	}
	if err := shard.Scope(opts, key, scheme, objs...); err != nil {
		return nil, err
	}
	return kinds, nil
}

// readers are the client and the cache reader the reconciler and the traffic routers use: the
// manager's, or, for a shard's replica, the same wrapped so that what the scoped cache misses
// is read from the API server and marked for the shard.
func (o *options) readers(mgr ctrl.Manager) (client.Client, client.Reader) {
	if o.shardKey == "" {
		return mgr.GetClient(), mgr.GetCache()
	}
	return shard.NewClient(mgr.GetClient(), mgr.GetAPIReader(), o.shardKey, o.shardKinds...),
		shard.NewReader(mgr.GetCache(), mgr.GetAPIReader(), mgr.GetClient(), o.shardKey, o.shardKinds...)
}
