package rollout

import (
	"context"

	"github.com/false-systems/kulta/providers"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Index is the Rollout index and its lookups as the watches make them, for the integration
// tests of package rollout_test.
type Index struct{ r *Reconciler }

// WatchIndex feeds a Rollout index from the Rollout informer of c, as SetupWithManager does.
func WatchIndex(ctx context.Context, c cache.Informers, ps ...providers.Provider) (*Index, error) {
	r := &Reconciler{Providers: ps}
	r.index = newRolloutIndex(r.indexKeysOf)
	if err := r.index.watch(ctx, c); err != nil {
		return nil, err
	}
	return &Index{r: r}, nil
}

// ByService gives namespace/name of the Rollouts the watch of Services wakes for svc.
func (x *Index) ByService(ctx context.Context, svc client.Object) []string {
	return requestNames(x.r.rolloutsNaming(byService)(ctx, svc))
}

// ByWatched gives namespace/name of the Rollouts the provider watch w wakes for obj.
func (x *Index) ByWatched(ctx context.Context, w providers.Watch, obj client.Object) []string {
	return requestNames(x.r.rolloutsReading(w)(ctx, obj))
}

func requestNames(reqs []reconcile.Request) []string {
	var names []string
	for _, req := range reqs {
		names = append(names, req.String())
	}
	return names
}
