// Package kubeevents records Kubernetes Events (events.k8s.io/v1) for KULTA's reconciler.
//
// It implements client-go's events.EventRecorder, so the reconciler does not know the
// difference, but keeps nothing once an Event is written. client-go's broadcaster keeps
// every Event it sends in a cache for six to twelve minutes to fold repeats into series; a
// Rollout's Events never repeat (each names the Rollout's resourceVersion at the time), so at
// thousands of Rollouts that cache held tens of MiB and folded nothing. Here Events wait in a
// bounded queue for a few writers; each carries the time it was recorded (eventTime), which is
// how readers order them. When the queue is full, new Events are dropped and counted rather
// than blocking a reconcile.
package kubeevents

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// noteLimit is the longest note the API server accepts, in bytes.
const noteLimit = 1024

// attempts is how many times a write is tried before the Event is dropped.
const attempts = 3

var dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "kulta_kubernetes_events_dropped_total",
	Help: "Kubernetes Events KULTA did not write, by cause (queue_full, write_failed, invalid).",
}, []string{"cause"})

func init() { ctrlmetrics.Registry.MustRegister(dropped) }

// Options configure a Recorder.
type Options struct {
	// Client writes the Events.
	Client client.Client
	// Scheme names the kinds of the objects Events are about.
	Scheme *runtime.Scheme
	// Controller is the reportingController, such as kulta.io/kulta-controller.
	Controller string
	// QueueSize bounds the Events waiting to be written (10000 when zero, about 10 MiB when
	// full: a wave over 5,000 Rollouts overflowed 1000, as Events share a 50 requests/s limit).
	QueueSize int
	// Writers is how many Events are written at once (4 when zero).
	Writers int
	// Clock stamps the Events; the real clock when nil.
	Clock clock.PassiveClock
	// Logger reports Events that could not be written.
	Logger logr.Logger
	// RetryDelay is the pause between attempts at a write (one second when zero).
	RetryDelay time.Duration
}

// Recorder records Events in the background; add it to the manager to run its writer.
type Recorder struct {
	opts     Options
	instance string
	queue    chan *eventsv1.Event
}

var _ events.EventRecorder = (*Recorder)(nil)

// New returns a Recorder; Start writes what it records.
func New(opts Options) *Recorder {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 10000
	}
	if opts.Writers <= 0 {
		opts.Writers = 4
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	instance := opts.Controller + "-" + host
	if len(instance) > 128 {
		instance = instance[:128]
	}
	return &Recorder{opts: opts, instance: instance, queue: make(chan *eventsv1.Event, opts.QueueSize)}
}

// Eventf records an Event about regarding (and related, when not nil). It never blocks.
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	ev, err := r.build(regarding, related, eventtype, reason, action, fmt.Sprintf(note, args...))
	if err != nil {
		dropped.WithLabelValues("invalid").Inc()
		r.opts.Logger.Error(err, "Not recording Event", "reason", reason)
		return
	}
	select {
	case r.queue <- ev:
	default:
		dropped.WithLabelValues("queue_full").Inc()
		r.opts.Logger.Info("Event queue full; dropping Event", "regarding", ev.Regarding.Name, "reason", reason)
	}
}

func (r *Recorder) build(regarding, related runtime.Object, eventtype, reason, action, note string) (*eventsv1.Event, error) {
	ref, err := reference.GetReference(r.opts.Scheme, regarding)
	if err != nil {
		return nil, fmt.Errorf("referring to the object of an Event: %w", err)
	}
	now := r.opts.Clock.Now()
	namespace := ref.Namespace
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	if len(note) > noteLimit {
		note = note[:noteLimit-3] + "..."
	}
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("%s.%x", ref.Name, now.UnixNano())},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: r.opts.Controller,
		ReportingInstance:   r.instance,
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Note:                note,
		Type:                eventtype,
	}
	if related != nil {
		rel, err := reference.GetReference(r.opts.Scheme, related)
		if err != nil {
			return nil, fmt.Errorf("referring to the related object of an Event: %w", err)
		}
		ev.Related = rel
	}
	return ev, nil
}

// Start writes recorded Events until ctx ends, then writes those still queued, each tried
// once, within five seconds.
func (r *Recorder) Start(ctx context.Context) error {
	var writers sync.WaitGroup
	for range r.opts.Writers {
		writers.Go(func() {
			for {
				select {
				case ev := <-r.queue:
					r.write(ctx, ev)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	writers.Wait()
	r.drain()
	return nil
}

// NeedLeaderElection is false: only the leader reconciles, so only it records, and a replica
// that loses the lease still writes what it had recorded.
func (r *Recorder) NeedLeaderElection() bool { return false }

func (r *Recorder) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		select {
		case ev := <-r.queue:
			if err := r.opts.Client.Create(ctx, ev); err != nil && !apierrors.IsAlreadyExists(err) {
				dropped.WithLabelValues("write_failed").Inc()
			}
		default:
			return
		}
	}
}

// write creates ev, trying again after transient failures.
func (r *Recorder) write(ctx context.Context, ev *eventsv1.Event) {
	var err error
	for attempt := 1; ; attempt++ {
		err = r.opts.Client.Create(ctx, ev)
		if err == nil || apierrors.IsAlreadyExists(err) {
			return
		}
		if attempt == attempts || apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
			// Out of attempts, or the namespace is gone or terminating, or the Event is
			// malformed: trying again cannot help.
			break
		}
		select {
		case <-ctx.Done():
			select {
			case r.queue <- ev: // drain gives it one more try
			default:
				dropped.WithLabelValues("queue_full").Inc()
			}
			return
		case <-time.After(r.opts.RetryDelay):
		}
	}
	dropped.WithLabelValues("write_failed").Inc()
	r.opts.Logger.Error(err, "Could not write Event", "namespace", ev.Namespace, "regarding", ev.Regarding.Name, "reason", ev.Reason)
}
