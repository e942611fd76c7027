package harness

import (
	"fmt"
	"sort"
	"strings"
)

// writeReasons says why KULTA makes each kind of write in a canary wave (steps 20 → 50 → 100,
// no pauses, no analysis), for the targets table.
var writeReasons = map[string]string{
	"PATCH httproutes": "one for each step but the last, and one when the promotion hands the routes back to 100/0 once the stable Service serves the new " +
		"revision: a last step of weight 100 is that promotion (runs before 5 Dec 2026 also wrote 0/100 first, 4 in all); each a merge patch of the " +
		"cached route with its resourceVersion as precondition, no read first",
	"POST ingresses":   "the canary Ingress, created at the first step with its weight beside the stable Ingress (NGINX)",
	"PATCH ingresses":  "the canary Ingress's weight at the middle step: a merge patch of the cached copy with its resourceVersion as precondition, no read first (NGINX)",
	"DELETE ingresses": "the canary Ingress, once the promotion has the stable Service serve the new revision: the last step of weight 100 (NGINX)",
	"PATCH rollouts/status": "one when the revision starts, one for the middle step, one at completion (which the last step, 100, is since 5 Dec 2026; " +
		"its reset of the routes to 100/0 moves no request, so TrafficRouted stays True), and one when an old revision's Pods leave the counts (which also drops its status.scaleDowns mark); " +
		"the write of a reconcile that only wrote a step's weights is folded into the next, and so (in runs after 5 Dec 2026 17:00 UTC) is that of a reconcile " +
		"that only finds those weights not yet accepted within 30 s of their write, which a quick controller meets as the watch event of its own write " +
		"(more writes when a condition changes between them); a change of the Pod counts alone waits up to 5 s for the next (runs after 5 Dec 2026 17:55 UTC; " +
		"before, a quick controller, as each of 4 shards is, wrote each Pod count change apart), and past those 5 s, up to 60 s, while the client's " +
		"writes to Rollouts queue (runs after 5 Dec 2026 19:30 UTC); the promotion's reset of the routes is folded as a step's is (runs before " +
		"5 Dec 2026 19:55 UTC wrote TrafficRouted twice more when a reconcile came before the Gateway accepted the reset, False then True, " +
		"which a quick controller, as each of 4 shards is, often met: 1.85 status writes per step there)",
	"POST replicasets": "the new revision",
	"PATCH replicasets": "the old revision scaled to 0 once scaleDownDelaySeconds (30 s) have passed, in the wave's tail after the last Completed " +
		"(in small waves before 7 Dec 2026 01:40 UTC the bench's tail often ended before it, and it fell in the next wave) " +
		"(runs before 5 Dec 2026 16:40 UTC also marked it for scale-down with a patch of its own, 2 in all; the time now rides in status.scaleDowns)",
	"PATCH services": "canary Service pinned to the new revision at the start, stable Service at the end",
	"POST events": "the transitions users read: started, the first step done, completed (which tells the later steps done in its reconcile; " +
		"runs before 5 Dec 2026 wrote each step's Event apart, 5 in all)",
}

// wavePerRollout lists the controller's writes in w per Rollout, with why each is made.
func wavePerRollout(r *Result, w WaveResult) string {
	var parts []string
	for _, row := range w.Controller {
		if !IsWrite(row.Verb) || row.Count < float64(r.N)/20 {
			continue
		}
		key := row.Verb + " " + row.Resource
		part := fmt.Sprintf("%s %.2f", key, row.Count/float64(r.N))
		if why := writeReasons[key]; why != "" {
			part += " (" + why + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

// RateBound is the least time a client-side rate limit allows for some requests.
type RateBound struct {
	// Resource is the resource (subresources folded in) whose client is the busiest.
	Resource string
	// Requests is how many requests that client sent.
	Requests float64
	// Seconds is the least time those requests take at qps after a burst: (requests − burst) / qps.
	Seconds float64
}

// unthrottledResources are requests that do not hold up a wave: Events are sent in the
// background by their own recorder, leases by leader election, the rest are start-up reads.
var unthrottledResources = map[string]bool{"events": true, leaseResource: true, NonResource: true, "endpoints": true, "endpointslices": true}

// BusiestClient finds the resource with the most writes among rows and the least time its
// client needs for them. controller-runtime builds one REST client, with its own token bucket
// of qps and burst, for each resource kind, so requests of different kinds do not queue
// behind each other; a resource's subresources share its client. The manager's client makes
// the writes (its reads come from the cache); reads past the cache go through the manager's
// API reader, another client with buckets of its own, so they are left out here.
func BusiestClient(rows []RequestRow, qps float64, burst int) RateBound {
	byResource := map[string]float64{}
	for _, row := range rows {
		res, _, _ := strings.Cut(row.Resource, "/")
		if unthrottledResources[res] || !IsWrite(row.Verb) {
			continue
		}
		byResource[res] += row.Count
	}
	names := make([]string, 0, len(byResource))
	for n := range byResource {
		names = append(names, n)
	}
	sort.Strings(names)
	var b RateBound
	for _, n := range names {
		if c := byResource[n]; c > b.Requests {
			b = RateBound{Resource: n, Requests: c}
		}
	}
	if qps > 0 {
		b.Seconds = max(0, (b.Requests-float64(burst))/qps)
	}
	return b
}
