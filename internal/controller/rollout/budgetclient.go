package rollout

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// The methods below pass the client's errors on as they are: the wrapper is transparent, and
// each caller wraps them with what it was writing (.golangci.yml exempts this file from
// wrapcheck for that reason).

// budgetedClient is the reconciler's client with every write to a Rollout (its object or its
// status) spent from the mirror of the client's bucket, so that no write site, present or
// added later, can leave the mirror out. Writes to other kinds go through other buckets and
// are not counted.
type budgetedClient struct {
	client.Client
	// spend counts one write to a Rollout.
	spend func()
}

// count spends from the budget when obj is a Rollout.
func (c budgetedClient) count(obj client.Object) {
	if _, ok := obj.(*kultav1alpha1.Rollout); ok {
		c.spend()
	}
}

func (c budgetedClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.count(obj)
	return c.Client.Create(ctx, obj, opts...)
}

func (c budgetedClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.count(obj)
	return c.Client.Update(ctx, obj, opts...)
}

func (c budgetedClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.count(obj)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c budgetedClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.count(obj)
	return c.Client.Delete(ctx, obj, opts...)
}

func (c budgetedClient) Status() client.SubResourceWriter {
	return budgetedStatus{SubResourceWriter: c.Client.Status(), count: c.count}
}

// budgetedStatus is budgetedClient's status writer.
type budgetedStatus struct {
	client.SubResourceWriter
	count func(client.Object)
}

func (w budgetedStatus) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	w.count(obj)
	return w.SubResourceWriter.Create(ctx, obj, sub, opts...)
}

func (w budgetedStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	w.count(obj)
	return w.SubResourceWriter.Update(ctx, obj, opts...)
}

func (w budgetedStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	w.count(obj)
	return w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}
