package simulator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// Defaults for Options.
const (
	// ControllerName is the Gateway controller name the simulator reports in route status.
	ControllerName = "kulta.io/e2e-gateway"
	// DefaultGatewayNamespace is the namespace of the Gateway whose routes are simulated.
	DefaultGatewayNamespace = "default"
	// DefaultGatewayName is the name of the Gateway whose routes are simulated.
	DefaultGatewayName = "kulta-gateway"
	// DefaultRate is the request rate, per second, that each route receives.
	DefaultRate = 100
	// DefaultTick is how often the simulator reads the cluster and records requests.
	DefaultTick = 100 * time.Millisecond
)

// Options configure Start. The zero value is a working configuration.
type Options struct {
	// GatewayNamespace and GatewayName name the Gateway whose HTTPRoutes are simulated.
	// Default: DefaultGatewayNamespace and DefaultGatewayName.
	GatewayNamespace string
	GatewayName      string
	// Rate is the requests per second each attached route receives, divided evenly among its
	// rules that match without headers. Default: DefaultRate.
	Rate float64
	// HeaderRate is the requests per second sent with matching headers to each rule that only
	// matches headers (KULTA's kulta-* header rules). Default: 0, no such requests.
	HeaderRate float64
	// Tick is how often the simulator reads the routes, Services and Pods, accepts routes and
	// records the requests of the time that passed. Default: DefaultTick.
	Tick time.Duration
	// Behaviour says how Pods answer, by container image; images it does not name behave as
	// DefaultBehaviour.
	Behaviour map[string]Behaviour
	// IngressClass is the class of the Ingresses the simulated ingress-nginx serves, and
	// AnnotationPrefix the prefix of the canary annotations it reads. Default:
	// DefaultIngressClass and DefaultAnnotationPrefix.
	IngressClass     string
	AnnotationPrefix string
	// OnError receives the errors of a tick (reading the cluster, writing route status); the
	// simulator carries on at the next tick. Default: they are kept for Errors.
	OnError func(error)
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.GatewayNamespace == "" {
		o.GatewayNamespace = DefaultGatewayNamespace
	}
	if o.GatewayName == "" {
		o.GatewayName = DefaultGatewayName
	}
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.Tick <= 0 {
		o.Tick = DefaultTick
	}
	if o.IngressClass == "" {
		o.IngressClass = DefaultIngressClass
	}
	if o.AnnotationPrefix == "" {
		o.AnnotationPrefix = DefaultAnnotationPrefix
	}
	return o
}

// Simulator is a running Gateway stand-in. Stop ends it.
type Simulator struct {
	opts      Options
	client    client.Client
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	listener  net.Listener
	server    *http.Server
	served    chan error
	cancel    context.CancelFunc
	done      chan struct{}

	// backends are touched by the tick loop only; copyBackends hold the mirrors' copies apart,
	// so that their counts do not disturb the requests' own.
	backends, copyBackends map[Target]*backend
	// istioServed is false once listing VirtualServices found the API not served (or not in the
	// client's scheme), so that later ticks do not ask again.
	istioServed bool

	mu      sync.Mutex
	lastErr error
	errs    int
	// unserved counts, by Service, the requests the routes sent to it while it did not exist
	// or had no ready Pod: a Gateway answers them with a 5xx of its own (see Unserved).
	unserved map[ServiceKey]float64
	// started and ended count the ticks begun and finished; ticked is closed, and replaced, as
	// each tick ends (see Settle).
	started, ended int
	ticked         chan struct{}

	stopOnce sync.Once
	stopErr  error
}

// backend is the traffic a Service has received so far. Requests are counted exactly over time:
// due accumulates rate × tick, and whole requests are recorded as it passes them.
type backend struct {
	due    float64 // requests owed since the Service became reachable
	sent   float64 // requests recorded of them
	errAcc float64 // fraction of an error owed
}

// Start serves /metrics on a random loopback port and starts the tick loop, which reads the
// cluster through cl: HTTPRoutes, Ingresses, Services and Pods (list), ReferenceGrants
// (list, when a route refers to another namespace), route status (patch), and Istio's
// VirtualServices and DestinationRules (list) when the cluster serves them and cl's scheme
// knows them.
// The loop runs until Stop or until ctx ends.
func Start(ctx context.Context, cl client.Client, opts Options) (*Simulator, error) {
	opts = opts.withDefaults()
	s := &Simulator{
		opts:   opts,
		client: cl,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "Requests served through the simulated Gateway, by namespace, service and status code.",
		}, []string{"namespace", "service", "code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Request latency through the simulated Gateway, by namespace and service.",
			Buckets: prometheus.DefBuckets,
		}, []string{"namespace", "service"}),
		backends:     map[Target]*backend{},
		copyBackends: map[Target]*backend{},
		unserved:     map[ServiceKey]float64{},
		ticked:       make(chan struct{}),
		istioServed:  true,
		served:       make(chan error, 1),
		done:         make(chan struct{}),
	}
	registry := prometheus.NewRegistry()
	if err := registry.Register(s.requests); err != nil {
		return nil, fmt.Errorf("registering the request counter: %w", err)
	}
	if err := registry.Register(s.durations); err != nil {
		return nil, fmt.Errorf("registering the latency histogram: %w", err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the simulator's /metrics: %w", err)
	}
	s.listener = listener
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	s.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		err := s.server.Serve(listener)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.served <- err
	}()
	loopCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	go s.run(loopCtx)
	return s, nil
}

// Target is the host:port of the /metrics endpoint, for a Prometheus scrape configuration.
func (s *Simulator) Target() string { return s.listener.Addr().String() }

// Errors returns how many errors the ticks met and the last of them, when Options.OnError is
// nil.
func (s *Simulator) Errors() (count int, last error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs, s.lastErr
}

// Stop ends the tick loop and the /metrics server and waits for both. Calling it again is
// harmless.
func (s *Simulator) Stop() error {
	s.stopOnce.Do(func() {
		s.cancel()
		<-s.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var errs []error
		if err := s.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping the simulator's /metrics server: %w", err))
		}
		if err := <-s.served; err != nil {
			errs = append(errs, fmt.Errorf("serving the simulator's /metrics: %w", err))
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// run ticks until ctx ends.
func (s *Simulator) run(ctx context.Context) {
	defer close(s.done)
	ticker := time.NewTicker(s.opts.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			s.mark(func() { s.started++ })
			if err := s.tick(ctx); err != nil && ctx.Err() == nil {
				s.report(err)
			}
			s.mark(func() {
				s.ended++
				close(s.ticked)
				s.ticked = make(chan struct{})
			})
		}
	}
}

// mark runs f under the simulator's lock.
func (s *Simulator) mark(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// Settle waits until a tick that began after the call has ended, so that what Unserved says
// next covers every request of a cluster state read before the call: a tick that read the
// Pods before they turned ready, and is slow to finish under load, has recorded its misses by
// then. It returns ctx's error, or an error once the simulator stops.
func (s *Simulator) Settle(ctx context.Context) error {
	s.mu.Lock()
	want := s.started + 1
	s.mu.Unlock()
	for {
		s.mu.Lock()
		ended, ticked := s.ended, s.ticked
		s.mu.Unlock()
		if ended >= want {
			return nil
		}
		select {
		case <-ticked:
		case <-s.done:
			return errors.New("the simulator stopped before a tick ended")
		case <-ctx.Done():
			return fmt.Errorf("waiting for a simulator tick: %w", ctx.Err())
		}
	}
}

// report hands a tick's error to OnError or keeps it.
func (s *Simulator) report(err error) {
	if s.opts.OnError != nil {
		s.opts.OnError(err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	s.errs++
}

// tick reads the cluster once, accepts the attached routes and records one tick of requests
// through the Gateway, the VirtualServices and the Ingresses.
func (s *Simulator) tick(ctx context.Context) error {
	var errs []error
	rates, copies := map[Target]float64{}, map[Target]float64{}
	gateway, gatewayCopies, err := s.gatewayRates(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	mesh, meshCopies, err := s.istioRates(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	ingress, err := s.ingressRates(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, part := range []map[Target]float64{gateway, mesh, ingress} {
		for target, rate := range part {
			rates[target] += rate
		}
	}
	for _, part := range []map[Target]float64{gatewayCopies, meshCopies} {
		for target, rate := range part {
			copies[target] += rate
		}
	}
	if len(rates) == 0 && len(copies) == 0 {
		return errors.Join(errs...)
	}
	pods, services, err := s.endpoints(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for target, rate := range rates {
		if err := s.serve(target, rate, services, pods, false); err != nil {
			errs = append(errs, err)
		}
	}
	for target, rate := range copies {
		if err := s.serve(target, rate, services, pods, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// endpoints reads the Pods and the Services as they both stood at one moment: the Services are
// listed at the exact resourceVersion of the Pods' list. A Service read later than the Pods
// could select Pods that turned ready after they were read (or, read earlier, Pods deleted
// since), and count as unserved requests no Gateway would have failed: a Service is pinned to
// a revision only once its Pods are ready.
func (s *Simulator) endpoints(ctx context.Context) ([]corev1.Pod, map[ServiceKey]*corev1.Service, error) {
	var pods corev1.PodList
	if err := s.client.List(ctx, &pods); err != nil {
		return nil, nil, fmt.Errorf("listing Pods: %w", err)
	}
	var opts []client.ListOption
	if rv := pods.ResourceVersion; rv != "" {
		opts = append(opts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, ResourceVersionMatch: metav1.ResourceVersionMatchExact}})
	}
	var list corev1.ServiceList
	if err := s.client.List(ctx, &list, opts...); err != nil {
		return nil, nil, fmt.Errorf("listing Services at the Pods' resourceVersion %q: %w", pods.ResourceVersion, err)
	}
	services := make(map[ServiceKey]*corev1.Service, len(list.Items))
	for i := range list.Items {
		svc := &list.Items[i]
		services[ServiceKey{Namespace: svc.Namespace, Name: svc.Name}] = svc
	}
	return pods.Items, services, nil
}

// gatewayRates accepts the HTTPRoutes attached to the Gateway and returns the request rate
// each of their permitted backends receives.
func (s *Simulator) gatewayRates(ctx context.Context) (rates, copies map[Target]float64, err error) {
	var routes gatewayv1.HTTPRouteList
	if err := s.client.List(ctx, &routes); err != nil {
		return nil, nil, fmt.Errorf("listing HTTPRoutes: %w", err)
	}
	grants, err := s.grants(ctx, routes.Items)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	rates, copies = map[Target]float64{}, map[Target]float64{}
	for i := range routes.Items {
		route := &routes.Items[i]
		if !s.attached(route) {
			continue
		}
		notPermitted := NotPermitted(route, grants)
		if err := s.accept(ctx, route, notPermitted); err != nil {
			errs = append(errs, err)
		}
		for key, rate := range RouteRates(route, s.opts.Rate, s.opts.HeaderRate) {
			if !slices.Contains(notPermitted, key) {
				rates[Target{ServiceKey: key}] += rate
			}
		}
		for key, rate := range RouteMirrorRates(route, s.opts.Rate, s.opts.HeaderRate) {
			if !slices.Contains(notPermitted, key) {
				copies[Target{ServiceKey: key}] += rate
			}
		}
	}
	return rates, copies, errors.Join(errs...)
}

// istioRates returns the request rate each backend of every VirtualService receives (see
// VirtualServiceRates) and the rate of copies its mirrors send (VirtualServiceMirrorRates), or
// nothing when the cluster does not serve Istio's API.
func (s *Simulator) istioRates(ctx context.Context) (rates, copies map[Target]float64, err error) {
	if !s.istioServed {
		return nil, nil, nil
	}
	var services istionetworkingv1.VirtualServiceList
	if err := s.client.List(ctx, &services); err != nil {
		if meta.IsNoMatchError(err) || runtime.IsNotRegisteredError(err) {
			s.istioServed = false
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("listing VirtualServices: %w", err)
	}
	if len(services.Items) == 0 {
		return nil, nil, nil
	}
	var rules istionetworkingv1.DestinationRuleList
	if err := s.client.List(ctx, &rules); err != nil {
		return nil, nil, fmt.Errorf("listing DestinationRules: %w", err)
	}
	rates, copies = map[Target]float64{}, map[Target]float64{}
	for _, vs := range services.Items {
		for target, rate := range VirtualServiceRates(vs, rules.Items, s.opts.Rate, s.opts.HeaderRate) {
			rates[target] += rate
		}
		for target, rate := range VirtualServiceMirrorRates(vs, rules.Items, s.opts.Rate, s.opts.HeaderRate) {
			copies[target] += rate
		}
	}
	return rates, copies, nil
}

// ingressRates returns the request rate each backend Service receives through the Ingresses of
// the simulated ingress-nginx (see IngressRates).
func (s *Simulator) ingressRates(ctx context.Context) (map[Target]float64, error) {
	var list networkingv1.IngressList
	if err := s.client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing Ingresses: %w", err)
	}
	return IngressRates(list.Items, s.opts.IngressClass, s.opts.AnnotationPrefix, s.opts.Rate, s.opts.HeaderRate), nil
}

// grants lists the ReferenceGrants when an attached route refers to a Service in another
// namespace, which only a ReferenceGrant there permits; otherwise none are needed and none are
// read.
func (s *Simulator) grants(ctx context.Context, routes []gatewayv1.HTTPRoute) ([]gatewayv1beta1.ReferenceGrant, error) {
	needed := false
	for i := range routes {
		needed = needed || (s.attached(&routes[i]) && crossNamespace(&routes[i]))
	}
	if !needed {
		return nil, nil
	}
	var list gatewayv1beta1.ReferenceGrantList
	if err := s.client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing ReferenceGrants: %w", err)
	}
	return list.Items, nil
}

// attached reports whether any parentRef of route names the simulated Gateway.
func (s *Simulator) attached(route *gatewayv1.HTTPRoute) bool {
	for _, ref := range route.Spec.ParentRefs {
		if Attached(ref, route.Namespace, s.opts.GatewayNamespace, s.opts.GatewayName) {
			return true
		}
	}
	return false
}

// Unserved is how many requests the routes have sent, since the simulator started, to Services
// of namespace that did not exist or had no ready Pod (in the subset the route names). A
// Gateway answers those itself, with a 500 or 503, before any application sees them. They are
// counted here rather than in http_requests_total, which holds what the applications
// answered and what the scenarios' analyses judge; a scenario that promises users no failed
// request compares this count before and after.
func (s *Simulator) Unserved(namespace string) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n float64
	for key, v := range s.unserved {
		if key.Namespace == namespace {
			n += v
		}
	}
	return n
}

// miss records that a tick's requests at rate to key found no Pod to answer them.
func (s *Simulator) miss(key ServiceKey, rate float64) {
	if rate <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unserved[key] += rate * s.opts.Tick.Seconds()
}

// serve records one tick of requests at rate for target, answered as its ready Pods' images
// say, under the name of target's Service. A Service that does not exist or has no ready Pod
// (in the subset) records nothing in http_requests_total, and owes nothing for that time; the
// requests count as Unserved, unless they are copies (a mirror's), whose answers nobody waits
// for: those are dropped.
func (s *Simulator) serve(target Target, rate float64, services map[ServiceKey]*corev1.Service, pods []corev1.Pod, copies bool) error {
	key := target.ServiceKey
	backends := s.backends
	if copies {
		backends = s.copyBackends
	}
	b, known := backends[target]
	if !known {
		b = &backend{}
		backends[target] = b
		// Every series exists from the start, so that queries see zero rather than nothing.
		s.requests.WithLabelValues(key.Namespace, key.Name, "200")
		s.requests.WithLabelValues(key.Namespace, key.Name, "500")
		s.durations.WithLabelValues(key.Namespace, key.Name)
	}
	svc, exists := services[key]
	if !exists {
		b.due = b.sent
		if !copies {
			s.miss(key, rate)
		}
		return nil
	}
	ready := ReadyPodsBehind(svc, pods)
	if target.Subset != "" {
		subset, err := labels.Parse(target.Subset)
		if err != nil {
			return fmt.Errorf("subset %q of Service %s/%s: %w", target.Subset, key.Namespace, key.Name, err)
		}
		ready = slices.DeleteFunc(ready, func(p corev1.Pod) bool { return !subset.Matches(labels.Set(p.Labels)) })
	}
	behaviour, reachable := BehaviourOf(ready, s.opts.Behaviour)
	if !reachable {
		b.due = b.sent
		if !copies {
			s.miss(key, rate)
		}
		return nil
	}
	b.due += rate * s.opts.Tick.Seconds()
	n := math.Floor(b.due - b.sent + 1e-9)
	if n <= 0 {
		return nil
	}
	b.sent += n
	ok := s.requests.WithLabelValues(key.Namespace, key.Name, "200")
	failed := s.requests.WithLabelValues(key.Namespace, key.Name, "500")
	latency := s.durations.WithLabelValues(key.Namespace, key.Name)
	for range int(n) {
		b.errAcc += behaviour.ErrorRatio
		if b.errAcc >= 1-1e-9 {
			b.errAcc--
			failed.Inc()
		} else {
			ok.Inc()
		}
		latency.Observe(behaviour.Latency.Seconds())
	}
	return nil
}
