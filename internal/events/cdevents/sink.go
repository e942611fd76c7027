package cdevents

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/false-systems/kulta/internal/events"
)

// Defaults of Options.
const (
	DefaultQueueSize    = 1000
	DefaultMaxRetries   = 5
	DefaultBackoffBase  = 100 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultTimeout      = 5 * time.Second
	DefaultFlushTimeout = 5 * time.Second
)

// Options configure a Sink. Zero values take the defaults.
type Options struct {
	// URL is the HTTP endpoint that receives the CloudEvents. Required.
	URL string
	// QueueSize bounds the transitions waiting to be sent; Emit drops beyond it. Default 1000.
	QueueSize int
	// MaxRetries is how many times a failed send is retried before the event is given up.
	// Default 5; negative means no retries.
	MaxRetries int
	// BackoffBase is the wait before the first retry; it doubles on each retry. Default 100ms.
	BackoffBase time.Duration
	// BackoffMax caps the wait between retries. Default 30s.
	BackoffMax time.Duration
	// Timeout bounds each HTTP send. Default 5s.
	Timeout time.Duration
	// FlushTimeout bounds how long shutdown keeps sending what is queued. Default 5s.
	FlushTimeout time.Duration
	// HTTPClient sends the requests. Default: a new client.
	HTTPClient *http.Client
	// Clock times backoff and shutdown. Default: the real clock.
	Clock clock.WithDelayedExecution
	// Jitter returns a number in [0, 1) that spreads each backoff over its upper half. Default
	// math/rand/v2's Float64.
	Jitter func() float64
	// Logger logs events given up. Default ctrl.Log.WithName("cdevents").
	Logger logr.Logger
}

func (o *Options) defaults() {
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	setDuration(&o.BackoffBase, DefaultBackoffBase)
	setDuration(&o.BackoffMax, DefaultBackoffMax)
	setDuration(&o.Timeout, DefaultTimeout)
	setDuration(&o.FlushTimeout, DefaultFlushTimeout)
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	if o.Logger.GetSink() == nil {
		o.Logger = ctrl.Log.WithName("cdevents")
	}
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Stats counts what one Sink did with the transitions it was given.
type Stats struct {
	// Sent counts events the receiver acknowledged.
	Sent int64
	// Failed counts events given up after trying (or invalid ones).
	Failed int64
	// Dropped counts transitions dropped without trying: queue full or sender stopped.
	Dropped int64
}

// item is one queued event: the transition and the CDEvent type it becomes.
type item struct {
	transition events.Transition
	eventType  string
}

// Sink sends transitions as CDEvents. Create it with New and run it with Start.
type Sink struct {
	opts   Options
	log    logr.Logger
	client cloudevents.Client
	queue  chan item

	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
	closed  atomic.Bool

	sent, failed, dropped atomic.Int64
}

var _ events.Sink = (*Sink)(nil)

// New returns a Sink that sends to opts.URL once started.
func New(opts Options) (*Sink, error) {
	target, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing CDEvents sink URL: %w", err)
	}
	if target.Scheme != "http" && target.Scheme != "https" || target.Host == "" {
		return nil, fmt.Errorf("CDEvents sink URL %q: want an absolute http or https URL", opts.URL)
	}
	opts.defaults()
	client, err := cloudevents.NewClientHTTP(cehttp.WithTarget(opts.URL), cehttp.WithClient(*opts.HTTPClient))
	if err != nil {
		return nil, fmt.Errorf("creating CloudEvents HTTP client: %w", err)
	}
	return &Sink{
		opts:   opts,
		log:    opts.Logger,
		client: client,
		queue:  make(chan item, opts.QueueSize),
		done:   make(chan struct{}),
	}, nil
}

// Emit queues t for sending and returns at once. Transitions that become no CDEvent (Paused)
// are ignored; when the queue is full or the Sink has stopped, t is dropped and counted.
func (s *Sink) Emit(t events.Transition) {
	typ, ok := eventType(t)
	if !ok {
		return
	}
	if s.closed.Load() {
		s.drop()
		return
	}
	select {
	case s.queue <- item{transition: t, eventType: typ}:
	default:
		s.drop()
	}
}

func (s *Sink) drop() {
	s.dropped.Add(1)
	droppedTotal.Inc()
}

// Stats returns what this Sink has done so far.
func (s *Sink) Stats() Stats {
	return Stats{Sent: s.sent.Load(), Failed: s.failed.Load(), Dropped: s.dropped.Load()}
}

// NeedLeaderElection tells a controller-runtime manager to run the Sink only on the leader,
// where the reconciles that emit run.
func (s *Sink) NeedLeaderElection() bool {
	return true
}

// Start runs the one worker that sends queued events in order, until ctx is done or Stop is
// called; then it keeps sending what is queued for at most FlushTimeout, gives up the rest, and
// returns. It implements controller-runtime's manager.Runnable, so mgr.Add(sink) runs it.
func (s *Sink) Start(ctx context.Context) error {
	runCtx, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer close(s.done)
	// sendCtx outlives ctx by FlushTimeout, so that shutdown can flush the queue.
	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSend()
	stopFlushTimer := context.AfterFunc(runCtx, func() { s.opts.Clock.AfterFunc(s.opts.FlushTimeout, cancelSend) })
	defer stopFlushTimer()
	for {
		select {
		case <-runCtx.Done():
			s.flush(sendCtx)
			return nil
		case it := <-s.queue:
			s.deliver(sendCtx, it)
		}
	}
}

func (s *Sink) begin(ctx context.Context) (context.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return nil, errors.New("CDEvents sink already started")
	}
	s.started = true
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	if s.stopped {
		cancel()
	}
	return runCtx, nil
}

// Stop ends Start as a cancelled context would and waits until it has flushed. Transitions
// emitted afterwards are dropped. Calling Stop more than once, or before Start, is safe.
func (s *Sink) Stop() {
	s.closed.Store(true)
	s.mu.Lock()
	s.stopped = true
	started, cancel := s.started, s.cancel
	s.mu.Unlock()
	if !started {
		// Nothing runs to send what is queued: give it all up.
		gone, cancelGone := context.WithCancel(context.Background())
		cancelGone()
		s.flush(gone)
		return
	}
	cancel()
	<-s.done
}

// flush sends what is queued until sendCtx is done, then gives up the rest.
func (s *Sink) flush(sendCtx context.Context) {
	s.closed.Store(true)
	for {
		select {
		case it := <-s.queue:
			if sendCtx.Err() != nil {
				s.giveUp(it, errors.New("shutting down before it could be sent"))
				continue
			}
			s.deliver(sendCtx, it)
		default:
			return
		}
	}
}
