// Package notify tells people and systems of rollout transitions: Slack and Microsoft Teams
// incoming webhooks and generic JSON webhooks, configured once for the controller and
// subscribed to per Rollout (kulta.io/notify). Delivery is asynchronous, one queue per service,
// retried with backoff and bounded in memory; a reconcile never waits for it. Each Rollout's
// status.notifiedThrough records the decisions whose notifications are done, so that a
// controller that restarts sends again what it had not delivered: at least once.
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/events"
	"github.com/false-systems/kulta/internal/webhook"
)

// Options tune a Notifier; zero values take the defaults.
type Options struct {
	// HTTP sends the notifications; a client with Timeout per request when nil.
	HTTP *http.Client
	// Timeout bounds one delivery attempt (10 s).
	Timeout time.Duration
	// QueueSize bounds each service's queue (1,000); what does not fit waits in the Rollout's
	// status for the next reconcile.
	QueueSize int
	// MaxAttempts bounds the attempts of one notification (8), BackoffBase and BackoffMax the
	// wait between them (1 s doubling, at most 1 min).
	MaxAttempts             int
	BackoffBase, BackoffMax time.Duration
	// Logger logs give-ups, never a URL or token.
	Logger logr.Logger
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: o.Timeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > 3 {
				return errors.New("more than 3 redirects")
			}
			return nil
		}}
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1000
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = time.Minute
	}
}

// job is one notification of one decision to one service.
type job struct {
	rollout  types.NamespacedName
	decision string
	message  Message
}

// tracked is what a Notifier knows of one Rollout's decisions in this process.
type tracked struct {
	// queued holds, per decision, its notifications not yet done (delivered or given up).
	queued map[string]*pending
}

// pending is the state of one decision's notifications.
type pending struct {
	// left counts those queued and not done.
	left int
	// incomplete: one did not fit its queue, so the decision is queued again in full later
	// (the others may then be sent twice, which at-least-once allows).
	incomplete bool
}

// Notifier delivers notifications. Create it with New; run it with Start (mgr.Add).
type Notifier struct {
	opts     Options
	services map[string]*Service
	queues   map[string]chan job
	updates  chan event.GenericEvent

	mu       sync.Mutex
	rollouts map[types.NamespacedName]*tracked
	warned   map[string]bool
}

// New returns a Notifier for the services of cfg.
func New(cfg *Config, opts Options) *Notifier {
	opts.defaults()
	n := &Notifier{
		opts: opts, services: map[string]*Service{}, queues: map[string]chan job{},
		updates: make(chan event.GenericEvent, 1024), rollouts: map[types.NamespacedName]*tracked{}, warned: map[string]bool{},
	}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		n.services[s.Name] = s
		n.queues[s.Name] = make(chan job, opts.QueueSize)
	}
	return n
}

// Updates tells the reconciler of Rollouts whose notifications of a decision are all done, so
// that it records it in status.notifiedThrough.
func (n *Notifier) Updates() <-chan event.GenericEvent { return n.updates }

// NeedLeaderElection runs the delivery on the leader, where the reconciles run.
func (n *Notifier) NeedLeaderElection() bool { return true }

// Start delivers each service's queue in order until ctx ends. What is still queued then is
// left for the next leader, which finds it after status.notifiedThrough.
func (n *Notifier) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for name, q := range n.queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-q:
					n.deliver(ctx, n.services[name], j)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// Emit queues the notifications of t for the services its Rollout subscribes to; it never
// blocks.
func (n *Notifier) Emit(t events.Transition) {
	n.enqueue(t)
}

// decisionKey names a decision within its Rollout.
func decisionKey(d kultav1alpha1.Decision) string {
	from, to := "-", "-"
	if d.FromStep != nil {
		from = fmt.Sprint(*d.FromStep)
	}
	if d.ToStep != nil {
		to = fmt.Sprint(*d.ToStep)
	}
	return fmt.Sprintf("%d/%s/%s/%s/%s", d.Timestamp.Unix(), d.Action, d.Reason, from, to)
}

// targets are the services that are told of t; a subscription to a service that is not
// configured is logged once.
func (n *Notifier) targets(t events.Transition) ([]*Service, []Trigger) {
	names, _ := Subscriptions(t.Rollout)
	for _, name := range names {
		if n.services[name] == nil {
			n.warnUnknown(t.Rollout, name)
		}
	}
	return n.targetsLocked(t)
}

func (n *Notifier) warnUnknown(ro *kultav1alpha1.Rollout, name string) {
	key := ro.Namespace + "/" + ro.Name + "/" + name
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.warned[key] {
		n.warned[key] = true
		n.opts.Logger.Info("Rollout subscribes to a notification service that is not configured", "rollout", ro.Namespace+"/"+ro.Name, "service", name)
		deliveries.WithLabelValues(name, "unknown", "unknown-service").Inc()
	}
}

// enqueue queues t's notifications unless this process already has them; a notification that
// does not fit its queue is left for a later reconcile (the decision stays after the cursor).
func (n *Notifier) enqueue(t events.Transition) {
	services, triggers := n.targets(t)
	if len(services) == 0 {
		return
	}
	key := types.NamespacedName{Namespace: t.Rollout.Namespace, Name: t.Rollout.Name}
	dkey := decisionKey(t.Decision)
	message := messageOf(t, triggers)
	n.mu.Lock()
	defer n.mu.Unlock()
	tr := n.rollouts[key]
	if tr == nil {
		tr = &tracked{queued: map[string]*pending{}}
		n.rollouts[key] = tr
	}
	if _, known := tr.queued[dkey]; known {
		return
	}
	state := &pending{}
	for _, s := range services {
		select {
		case n.queues[s.Name] <- job{rollout: key, decision: dkey, message: message}:
			state.left++
		default:
			state.incomplete = true
			deliveries.WithLabelValues(s.Name, string(s.Type), "deferred").Inc()
		}
	}
	if state.left > 0 {
		tr.queued[dkey] = state
	}
}

// finished reports whether every notification of decision dkey of key is done in this process.
func (n *Notifier) finished(key types.NamespacedName, dkey string) bool {
	tr := n.rollouts[key]
	if tr == nil {
		return false
	}
	state := tr.queued[dkey]
	return state != nil && state.left == 0 && !state.incomplete
}

// done notes that one notification of a decision is done.
func (n *Notifier) done(j job) {
	n.mu.Lock()
	last := false
	if tr := n.rollouts[j.rollout]; tr != nil {
		if state := tr.queued[j.decision]; state != nil && state.left > 0 {
			state.left--
			switch {
			case state.left > 0:
			case state.incomplete:
				// Forgotten, so that the next reconcile queues the decision again in full.
				delete(tr.queued, j.decision)
			default:
				last = true
			}
		}
	}
	n.mu.Unlock()
	if last {
		obj := &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: j.rollout.Namespace, Name: j.rollout.Name}}
		select {
		case n.updates <- event.GenericEvent{Object: obj}:
		default:
			// The reconciler is behind; its next reconcile of the Rollout records it.
		}
	}
}

// Cursor is ro's new status.notifiedThrough: it passes the decisions, in order, whose
// notifications are all done (or that notify nobody), from the cursor stored before. With no
// stored cursor (ro was not subscribed before this reconcile) it starts after the decisions
// before had: earlier ones are not notified. Nil when ro subscribes to nothing.
func (n *Notifier) Cursor(ro *kultav1alpha1.Rollout, stored *kultav1alpha1.NotificationCursor, before []kultav1alpha1.Decision) *kultav1alpha1.NotificationCursor {
	if names, _ := Subscriptions(ro); len(names) == 0 {
		return nil
	}
	var cur kultav1alpha1.NotificationCursor
	switch {
	case stored != nil:
		cur = *stored
	case len(before) > 0:
		cur = endOf(before)
	default:
		cur = kultav1alpha1.NotificationCursor{Time: metav1.NewTime(ro.CreationTimestamp.Add(-time.Second))}
	}
	key := types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, at := range positions(ro.Status.Decisions) {
		if !after(at, cur) {
			continue
		}
		d := ro.Status.Decisions[at.index]
		if n.relevant(ro, d) && !n.finished(key, decisionKey(d)) {
			break
		}
		cur = at.cursor
	}
	n.prune(key, cur.Time)
	return &cur
}

// position is a decision's index and the cursor just past it.
type position struct {
	index  int
	cursor kultav1alpha1.NotificationCursor
}

// positions gives each decision, in order, the cursor that marks it and those before it.
func positions(decisions []kultav1alpha1.Decision) []position {
	out := make([]position, 0, len(decisions))
	var count int32
	for i, d := range decisions {
		if i > 0 && d.Timestamp.Equal(&decisions[i-1].Timestamp) {
			count++
		} else {
			count = 1
		}
		out = append(out, position{index: i, cursor: kultav1alpha1.NotificationCursor{Time: d.Timestamp, Count: count}})
	}
	return out
}

// endOf is the cursor past every decision.
func endOf(decisions []kultav1alpha1.Decision) kultav1alpha1.NotificationCursor {
	p := positions(decisions)
	return p[len(p)-1].cursor
}

// after reports whether the decision at p comes after cursor cur.
func after(p position, cur kultav1alpha1.NotificationCursor) bool {
	return p.cursor.Time.After(cur.Time.Time) || (p.cursor.Time.Equal(&cur.Time) && p.cursor.Count > cur.Count)
}

// relevant reports whether decision d of ro is notified to any service.
func (n *Notifier) relevant(ro *kultav1alpha1.Rollout, d kultav1alpha1.Decision) bool {
	kind, ok := events.KindOf(d)
	if !ok {
		return false
	}
	services, _ := n.targetsLocked(events.Transition{Rollout: ro, Kind: kind, Decision: d})
	return len(services) > 0
}

// targetsLocked is targets without the unknown-service warning, which takes the lock.
func (n *Notifier) targetsLocked(t events.Transition) ([]*Service, []Trigger) {
	triggers := triggersOf(t)
	if len(triggers) == 0 {
		return nil, nil
	}
	names, wanted := Subscriptions(t.Rollout)
	if len(wanted) > 0 && !slices.ContainsFunc(triggers, func(tr Trigger) bool { return slices.Contains(wanted, tr) }) {
		return nil, nil
	}
	var out []*Service
	for _, name := range names {
		if s := n.services[name]; s != nil && s.wants(triggers) {
			out = append(out, s)
		}
	}
	return out, triggers
}

// prune forgets the finished decisions of the seconds before the cursor's: those of its own
// second may still be after it (the cursor counts within the second).
func (n *Notifier) prune(key types.NamespacedName, cur metav1.Time) {
	tr := n.rollouts[key]
	if tr == nil {
		return
	}
	for dkey, state := range tr.queued {
		var unix int64
		if _, err := fmt.Sscanf(dkey, "%d/", &unix); err == nil && state.left == 0 && unix < cur.Unix() {
			delete(tr.queued, dkey)
		}
	}
}

// Replay queues the notifications of ro's decisions after its status.notifiedThrough that this
// process does not have: those a previous leader had not delivered, or that did not fit.
func (n *Notifier) Replay(ro *kultav1alpha1.Rollout) {
	cur := ro.Status.NotifiedThrough
	if cur == nil {
		return
	}
	if names, _ := Subscriptions(ro); len(names) == 0 {
		return
	}
	copied := ro.DeepCopy()
	for _, at := range positions(ro.Status.Decisions) {
		if !after(at, *cur) {
			continue
		}
		d := ro.Status.Decisions[at.index]
		kind, ok := events.KindOf(d)
		if !ok {
			continue
		}
		n.enqueue(events.Transition{Rollout: copied, Kind: kind, Decision: d, Time: d.Timestamp.Time})
	}
}

// Forget drops what the Notifier knows of a deleted Rollout.
func (n *Notifier) Forget(key types.NamespacedName) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.rollouts, key)
}

// deliver sends j to s, retrying what may succeed later, until it is delivered, MaxAttempts
// are spent or ctx ends (then it stays undone, for the next leader).
func (n *Notifier) deliver(ctx context.Context, s *Service, j job) {
	text, err := s.render(j.message)
	if err != nil {
		n.giveUp(s, j, err)
		return
	}
	data, err := body(s.Type, j.message, text)
	if err != nil {
		n.giveUp(s, j, err)
		return
	}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		retry, err := n.send(ctx, s, data)
		deliverySeconds.WithLabelValues(s.Name).Observe(time.Since(start).Seconds())
		if err == nil {
			deliveries.WithLabelValues(s.Name, string(s.Type), "delivered").Inc()
			n.done(j)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !retry || attempt+1 >= n.opts.MaxAttempts {
			n.giveUp(s, j, fmt.Errorf("after %d attempts: %w", attempt+1, err))
			return
		}
		deliveries.WithLabelValues(s.Name, string(s.Type), "retried").Inc()
		wait := n.opts.BackoffMax
		if attempt < 16 {
			wait = min(n.opts.BackoffBase<<attempt, n.opts.BackoffMax)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (n *Notifier) giveUp(s *Service, j job, err error) {
	deliveries.WithLabelValues(s.Name, string(s.Type), "failed").Inc()
	n.opts.Logger.Error(errors.New(redact(err.Error(), s.secrets())), "Notification not delivered", "service", s.Name, "rollout", j.rollout.String(), "trigger", j.message.Trigger)
	n.done(j)
}

// send makes one attempt; retry says whether a later one may succeed.
func (n *Notifier) send(ctx context.Context, s *Service, data []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.target, bytes.NewReader(data))
	if err != nil {
		return false, errors.New("the URL cannot be called")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kulta-controller")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := n.opts.HTTP.Do(req)
	if err != nil {
		return true, errors.New("no answer: " + webhook.Cause(err))
	}
	head, readErr := io.ReadAll(io.LimitReader(resp.Body, 512))
	closeErr := resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	reply := strings.TrimSpace(string(head))
	if readErr != nil || closeErr != nil {
		reply = "(body unreadable)"
	}
	err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, reply)
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests, err
}

// redact replaces every secret string in s.
func redact(s string, secrets []string) string {
	for _, secret := range secrets {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}
