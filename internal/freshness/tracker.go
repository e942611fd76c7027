package freshness

import (
	"sync"

	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// Tracker holds, per key, the resourceVersion of the last write the controller made. It is
// safe for concurrent use. The zero value is ready to use.
type Tracker struct {
	written sync.Map // key -> string
}

// Wrote records that the controller's last write to key produced resourceVersion rv.
func (t *Tracker) Wrote(key any, rv string) {
	if rv == "" {
		return
	}
	t.written.Store(key, rv)
}

// Forget drops what is known about key (the object is gone).
func (t *Tracker) Forget(key any) { t.written.Delete(key) }

// Fresh reports whether a cached copy of key at resourceVersion cached includes the last write
// recorded for it: true when there is none, or when cached is at or after it. Resource versions
// are compared as the API server defines them (k8s.io/apimachinery's CompareResourceVersion);
// when either is not comparable, only equality counts as fresh. A fresh answer forgets the
// write, so later reads cost nothing.
func (t *Tracker) Fresh(key any, cached string) bool {
	v, ok := t.written.Load(key)
	if !ok {
		return true
	}
	last, _ := v.(string)
	if !atOrAfter(cached, last) {
		return false
	}
	// Forget the entry only if no newer write replaced it meanwhile.
	t.written.CompareAndDelete(key, last)
	return true
}

// atOrAfter reports whether resourceVersion a is the same as b or later.
func atOrAfter(a, b string) bool {
	if a == b {
		return true
	}
	c, err := resourceversion.CompareResourceVersion(a, b)
	return err == nil && c > 0
}
