package rollout

import (
	"time"

	"golang.org/x/time/rate"
)

// writeBudget mirrors the token bucket that limits KULTA's writes to Rollouts.
// controller-runtime gives each resource kind a REST client of its own, with a bucket of the
// config's QPS and burst; only the reconciler writes Rollouts (their status, finalizer and
// consumed annotations), through its client (budgetedClient), so counting those writes shows
// when that bucket runs dry and writes queue behind it. A nil budget never runs dry: the
// client is not limited.
type writeBudget struct {
	bucket *rate.Limiter
}

// newWriteBudget builds the mirror of a client limited to qps and burst; nil when qps is not
// positive (no limit).
func newWriteBudget(qps float64, burst int) *writeBudget {
	if qps <= 0 {
		return nil
	}
	return &writeBudget{bucket: rate.NewLimiter(rate.Limit(qps), max(burst, 1))}
}

// spend counts one write to a Rollout, made at now. The bucket may go into debt: the client
// then holds the write until the debt is paid, and so does the mirror.
func (b *writeBudget) spend(now time.Time) {
	if b != nil {
		b.bucket.ReserveN(now, 1)
	}
}

// spare reports whether a write made at now would go out without waiting for the bucket,
// that is, whether no write is queued behind it.
func (b *writeBudget) spare(now time.Time) bool {
	return b == nil || b.bucket.TokensAt(now) >= 1
}
