package testutil

import (
	"runtime"
	"testing"
)

// ReportRetained runs b's loop, each round keeping n objects newObject makes, and reports the
// heap they keep after a collection, per object, under unit (such as "B/route"): what an
// informer cache pays for each object it holds.
func ReportRetained(b *testing.B, n int, unit string, newObject func() (any, error)) {
	b.Helper()
	ReportRetainedBy(b, n, unit, func() (any, error) {
		held := make([]any, n)
		for i := range held {
			obj, err := newObject()
			if err != nil {
				return nil, err
			}
			held[i] = obj
		}
		return held, nil
	})
}

// ReportRetainedBy runs b's loop, each round building afresh what build makes of n objects
// (a store, an index), and reports the heap it keeps after a collection, per object, under
// unit.
func ReportRetainedBy(b *testing.B, n int, unit string, build func() (any, error)) {
	b.Helper()
	var retained float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		held, err := build()
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		retained += float64(after.HeapAlloc) - float64(before.HeapAlloc)
		runtime.KeepAlive(held)
	}
	b.ReportMetric(retained/float64(b.N*n), unit)
}
