package testutil

import (
	"context"
	"fmt"
	"sync/atomic"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CountingReader counts the Gets that reach the reader it wraps, for tests of what a cache
// saves.
type CountingReader struct {
	client.Reader
	// Gets is the number of Gets so far.
	Gets atomic.Int32
}

// Get counts the read and passes it on.
func (c *CountingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.Gets.Add(1)
	if err := c.Reader.Get(ctx, key, obj, opts...); err != nil {
		return fmt.Errorf("counted read of %s: %w", key, err)
	}
	return nil
}
