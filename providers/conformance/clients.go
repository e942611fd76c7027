package conformance

import (
	"context"
	"fmt"
	"sync/atomic"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// countingClient counts the writes that reach the client it wraps.
type countingClient struct {
	client.Client
	count atomic.Int32
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.count.Add(1)
	return wrap("create", c.Client.Create(ctx, obj, opts...))
}

func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.count.Add(1)
	return wrap("update", c.Client.Update(ctx, obj, opts...))
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.count.Add(1)
	return wrap("patch", c.Client.Patch(ctx, obj, patch, opts...))
}

func (c *countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.count.Add(1)
	return wrap("delete", c.Client.Delete(ctx, obj, opts...))
}

func (c *countingClient) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	c.count.Add(1)
	return wrap("delete all of", c.Client.DeleteAllOf(ctx, obj, opts...))
}

// wrap wraps a write's error, keeping it nil when there is none.
func wrap(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// writes returns how many writes were made since the last call.
func (c *countingClient) writes() int32 { return c.count.Swap(0) }

// conflictingClient changes the object behind the provider's back just before the provider's
// first update, patch or delete of it, so that a write that checks the object's version fails
// with a conflict.
type conflictingClient struct {
	client.Client
	// edited is the object changed behind the provider's back, as changed.
	edited client.Object
}

func (c *conflictingClient) editFirst(ctx context.Context, obj client.Object) error {
	if c.edited != nil {
		return nil
	}
	other := obj.DeepCopyObject().(client.Object)
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), other); err != nil {
		return fmt.Errorf("conflicting read: %w", err)
	}
	labels := other.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels["edited-by"] = "someone-else"
	other.SetLabels(labels)
	if err := c.Client.Update(ctx, other); err != nil {
		return fmt.Errorf("conflicting write: %w", err)
	}
	c.edited = other
	return nil
}

func (c *conflictingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := c.editFirst(ctx, obj); err != nil {
		return err
	}
	if err := c.Client.Update(ctx, obj, opts...); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

func (c *conflictingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if err := c.editFirst(ctx, obj); err != nil {
		return err
	}
	if err := c.Client.Patch(ctx, obj, patch, opts...); err != nil {
		return fmt.Errorf("patch: %w", err)
	}
	return nil
}

func (c *conflictingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if err := c.editFirst(ctx, obj); err != nil {
		return err
	}
	if err := c.Client.Delete(ctx, obj, opts...); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}
