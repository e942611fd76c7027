package harness

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// Completions counts the bench's Rollouts that are Completed at their current generation with
// the image it expects on their template, from the events of a Rollout informer (the
// stand-ins'), so that waiting for a wave's end costs the API server nothing.
//
// Until 6 Dec 2026 the bench listed every Rollout once a second (once every N/1,000 s) while
// it waited. A CPU profile of the API server in a wave at N=1,000 put those lists at 9 % of its
// CPU: work on the machine the wave's own requests were waiting for, which the floor (with no
// wait) never paid. The wave also ended up to a polling interval after the last Rollout did.
type Completions struct {
	mu    sync.Mutex
	image string
	want  int
	// done holds the Rollouts seen Completed with image; nil until Expect.
	done map[client.ObjectKey]bool
	// failed holds the Rollouts seen Failed with image, with their messages: a bench Rollout
	// never should fail, and one that did does not go on without a human.
	failed map[client.ObjectKey]string
	// all is closed once done holds want Rollouts, at reachedAt.
	all       chan struct{}
	reachedAt time.Time
}

// NewCompletions returns a counter that counts nothing until Expect.
func NewCompletions() *Completions { return &Completions{} }

// Register adds the counter's handlers to c's Rollout informer.
func (cs *Completions) Register(ctx context.Context, c cache.Cache) error {
	inf, err := c.GetInformer(ctx, &kultav1alpha1.Rollout{})
	if err != nil {
		return fmt.Errorf("informer for Rollouts: %w", err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    cs.observe,
		UpdateFunc: func(_, o any) { cs.observe(o) },
		DeleteFunc: cs.forget,
	}); err != nil {
		return fmt.Errorf("handler for Rollouts: %w", err)
	}
	return nil
}

// Expect starts counting afresh: want Rollouts Completed with image. It counts first the ones
// r holds now (the informer's cache: no request), then every event after.
func (cs *Completions) Expect(ctx context.Context, r client.Reader, image string, want int) error {
	list := &kultav1alpha1.RolloutList{}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if err := r.List(ctx, list, client.MatchingLabels{RunLabel: "true"}); err != nil {
		return fmt.Errorf("listing the cached Rollouts: %w", err)
	}
	cs.image, cs.want = image, want
	cs.done, cs.failed = map[client.ObjectKey]bool{}, map[client.ObjectKey]string{}
	cs.all, cs.reachedAt = make(chan struct{}), time.Time{}
	for i := range list.Items {
		cs.record(&list.Items[i])
	}
	cs.checkReached()
	return nil
}

// Count is how many Rollouts are Completed with the expected image.
func (cs *Completions) Count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.done)
}

// Wait blocks until the expected number of Rollouts are Completed and returns when that was
// first seen. It calls progress, if set, with the count once a second while it waits.
func (cs *Completions) Wait(ctx context.Context, progress func(int)) (time.Time, error) {
	cs.mu.Lock()
	all, want := cs.all, cs.want
	cs.mu.Unlock()
	if all == nil {
		return time.Time{}, fmt.Errorf("waiting for completions before Expect")
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-all:
			cs.mu.Lock()
			at, done := cs.reachedAt, len(cs.done)
			cs.mu.Unlock()
			if progress != nil {
				progress(done)
			}
			return at, nil
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for %d Rollouts to complete (%d done): %w", want, cs.Count(), ctx.Err())
		case <-tick.C:
			if err := cs.failures(); err != nil {
				return time.Time{}, err
			}
			if progress != nil {
				progress(cs.Count())
			}
		}
	}
}

func (cs *Completions) observe(o any) {
	ro, ok := o.(*kultav1alpha1.Rollout)
	if !ok {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.record(ro)
}

func (cs *Completions) forget(o any) {
	if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = tomb.Obj
	}
	ro, ok := o.(*kultav1alpha1.Rollout)
	if !ok {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.done != nil {
		delete(cs.done, client.ObjectKeyFromObject(ro))
	}
}

// record counts ro in or out by its latest state; the caller holds mu. Once the expected
// number was reached it stays reached: the wave's end is the first moment all were seen.
func (cs *Completions) record(ro *kultav1alpha1.Rollout) {
	if cs.done == nil || ro.Labels[RunLabel] != "true" {
		return
	}
	key := client.ObjectKeyFromObject(ro)
	if completedWith(ro, cs.image) {
		cs.done[key] = true
	} else {
		delete(cs.done, key)
	}
	if failedWith(ro, cs.image) {
		cs.failed[key] = ro.Status.Message
	} else {
		delete(cs.failed, key)
	}
	cs.checkReached()
}

// checkReached marks the expected number reached, once; the caller holds mu.
func (cs *Completions) checkReached() {
	if cs.all != nil && cs.reachedAt.IsZero() && len(cs.done) >= cs.want {
		cs.reachedAt = time.Now()
		close(cs.all)
	}
}

// failures is an error naming the first of the Rollouts seen Failed, nil when none is.
func (cs *Completions) failures() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.failed) == 0 {
		return nil
	}
	keys := slices.SortedFunc(maps.Keys(cs.failed), func(a, b client.ObjectKey) int { return strings.Compare(a.String(), b.String()) })
	return fmt.Errorf("%d Rollouts Failed with %s (%d Completed), the first %s: %s", len(keys), cs.image, len(cs.done), keys[0], cs.failed[keys[0]])
}

// failedWith reports whether ro is Failed at its current generation with image as its first
// container's image.
func failedWith(ro *kultav1alpha1.Rollout, image string) bool {
	cs := ro.Spec.Template.Spec.Containers
	return ro.Status.Phase == kultav1alpha1.PhaseFailed && ro.Status.ObservedGeneration == ro.Generation &&
		len(cs) > 0 && cs[0].Image == image
}

// completedWith reports whether ro is Completed at its current generation with image as its
// first container's image.
func completedWith(ro *kultav1alpha1.Rollout, image string) bool {
	cs := ro.Spec.Template.Spec.Containers
	return ro.Status.Phase == kultav1alpha1.PhaseCompleted && ro.Status.ObservedGeneration == ro.Generation &&
		len(cs) > 0 && cs[0].Image == image
}
