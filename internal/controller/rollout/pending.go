package rollout

import (
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// toldTimes remembers, per Rollout, when KULTA was last told of a change that concerns it (a
// watch event on the Rollout, one of its ReplicaSets, Services or routes) and has not yet
// reconciled it. It holds an entry only while the Rollout waits in the queue, so its size is
// bounded by the queue's, not by the number of Rollouts.
//
// The step latency metric counts from it: the last change before a reconcile is the one that
// made the step's condition true (the canary's Pods ready, the route accepted), or a later
// one, so the metric errs towards the short side only when unrelated changes follow.
type toldTimes struct {
	clock clock.PassiveClock

	mu sync.Mutex
	at map[reconcile.Request]time.Time
}

func newToldTimes(c clock.PassiveClock) *toldTimes {
	return &toldTimes{clock: c, at: map[reconcile.Request]time.Time{}}
}

// mark records that KULTA was told of a change to req now.
func (t *toldTimes) mark(req reconcile.Request) {
	now := t.clock.Now()
	t.mu.Lock()
	t.at[req] = now
	t.mu.Unlock()
}

// take returns and forgets the time of the last change to req, if one is recorded.
func (t *toldTimes) take(req reconcile.Request) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.at[req]
	delete(t.at, req)
	return at, ok
}

// restore puts back a time take returned, after a reconcile that failed and will be retried,
// unless a newer change has been recorded since.
func (t *toldTimes) restore(req reconcile.Request, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.at[req]; !ok {
		t.at[req] = at
	}
}

// markingQueue is controller-runtime's priority queue, noting in told when a watch event
// adds a Rollout. Requeues the controller schedules itself (after a delay, or rate limited
// after an error) are not changes and are not noted.
type markingQueue struct {
	priorityqueue.PriorityQueue[reconcile.Request]
	told *toldTimes
}

// Add is how event handlers enqueue without priorities.
func (q *markingQueue) Add(req reconcile.Request) {
	q.told.mark(req)
	q.PriorityQueue.Add(req)
}

// AddWithOpts is how event handlers enqueue with priorities, and how the controller requeues.
func (q *markingQueue) AddWithOpts(o priorityqueue.AddOpts, reqs ...reconcile.Request) {
	if o.After <= 0 && !o.RateLimited {
		for _, req := range reqs {
			q.told.mark(req)
		}
	}
	q.PriorityQueue.AddWithOpts(o, reqs...)
}

// newMarkingQueue builds the controller's queue: the priority queue controller-runtime uses by
// default, wrapped to note changes in told.
func newMarkingQueue(told *toldTimes, log logr.Logger) func(string, workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	return func(name string, limiter workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
		q := priorityqueue.New(name, func(o *priorityqueue.Opts[reconcile.Request]) {
			o.Log = log.WithValues("controller", name)
			o.RateLimiter = limiter
		})
		return &markingQueue{PriorityQueue: q, told: told}
	}
}
