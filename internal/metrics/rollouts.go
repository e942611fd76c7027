package metrics

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// The per-Rollout series: every Rollout has an info series, its step and weight, three replica
// counts and a counter per kind and reason of transition it went through.
var (
	rolloutInfoDesc = prometheus.NewDesc("kulta_rollout_info",
		"One series per Rollout, 1, labelled with its strategy and current phase.",
		[]string{"namespace", "rollout", "strategy", "phase"}, nil)
	rolloutStepDesc = prometheus.NewDesc("kulta_rollout_step",
		"Current canary step index of the Rollout (-1 when it has no steps).",
		[]string{"namespace", "rollout"}, nil)
	rolloutWeightDesc = prometheus.NewDesc("kulta_rollout_canary_weight",
		"Percentage of traffic the Rollout's current revision receives.",
		[]string{"namespace", "rollout"}, nil)
	rolloutReplicasDesc = prometheus.NewDesc("kulta_rollout_replicas",
		"Replicas of the Rollout by kind: desired, ready or updated.",
		[]string{"namespace", "rollout", "kind"}, nil)
	transitionsDesc = prometheus.NewDesc("kulta_rollout_transitions_total",
		"Rollout transitions by kind (step, promotion, rollback, abort, pause) and reason.",
		[]string{"namespace", "rollout", "kind", "reason"}, nil)
	routesDesc = prometheus.NewDesc("kulta_rollout_routes",
		"Canary header and mirror routes (setHeaderRoute, setMirrorRoute) the Rollout has in place, by type.",
		[]string{"namespace", "rollout", "type"}, nil)
	workloadReplicasDesc = prometheus.NewDesc("kulta_rollout_workload_replicas",
		"Replicas of the Deployment a Rollout adopts (spec.workloadRef) by kind: desired (its spec.replicas), available, and adopted (its count before KULTA scaled it).",
		[]string{"namespace", "rollout", "workload", "kind"}, nil)
)

// rolloutKey names a Rollout.
type rolloutKey struct{ namespace, name string }

// transition is one counter of kulta_rollout_transitions_total, with the pairs of its kind and
// reason.
type transition struct {
	kind, reason *dto.LabelPair
	count        float64
}

// rolloutRecord is what the collector keeps of one Rollout: a few numbers and strings, where
// a labelled series of client_golang's vectors costs several hundred bytes each, and the label
// pairs of its namespace and name, made once for all its series and scrapes.
type rolloutRecord struct {
	namespace, rollout, strategy, phase   *dto.LabelPair
	step, weight, desired, ready, updated float64
	headerRoutes, mirrorRoutes            float64
	transitions                           []transition
	// workload is the adopted Deployment, nil without spec.workloadRef.
	workload *workloadRecord
}

// workloadRecord is what the collector keeps of an adopted Deployment.
type workloadRecord struct {
	name                *dto.LabelPair
	replicas, available float64
	// adopted is negative while KULTA has not scaled the Deployment.
	adopted float64
}

// rolloutCollector holds the per-Rollout series as compact records and turns them into samples
// only when /metrics is read. At thousands of Rollouts this keeps the controller's memory for
// metrics at a few hundred bytes per Rollout; the samples of a scrape are garbage right after it.
type rolloutCollector struct {
	mu       sync.RWMutex
	rollouts map[rolloutKey]*rolloutRecord
	// bounded holds the pairs of labels whose values come from a set KULTA bounds (strategies,
	// phases, transition kinds and reasons), shared by every Rollout. Records take theirs when
	// they change, under mu, so a scrape looks nothing up.
	bounded map[pairKey]*dto.LabelPair
}

func newRolloutCollector() *rolloutCollector {
	return &rolloutCollector{rollouts: map[rolloutKey]*rolloutRecord{}, bounded: map[pairKey]*dto.LabelPair{}}
}

// Describe sends the descriptors of every per-Rollout series.
func (c *rolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rolloutInfoDesc, rolloutStepDesc, rolloutWeightDesc, rolloutReplicasDesc, transitionsDesc, routesDesc, workloadReplicasDesc} {
		ch <- d
	}
}

// Collect copies the records under the lock, then sends their samples, so reconciles never wait
// for a scrape's consumer.
func (c *rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	records := make([]rolloutRecord, 0, len(c.rollouts))
	for _, r := range c.rollouts {
		rec := *r
		rec.transitions = slices.Clone(r.transitions)
		if r.workload != nil {
			w := *r.workload
			rec.workload = &w
		}
		records = append(records, rec)
	}
	c.mu.RUnlock()
	for i := range records {
		r := &records[i]
		ns, name := r.namespace, r.rollout
		// Each series' pairs sorted by label name, as client_golang expects them.
		both := []*dto.LabelPair{ns, name}
		ch <- gauge(rolloutInfoDesc, 1, ns, r.phase, name, r.strategy)
		ch <- &sample{desc: rolloutStepDesc, value: r.step, labels: both}
		ch <- &sample{desc: rolloutWeightDesc, value: r.weight, labels: both}
		ch <- gauge(rolloutReplicasDesc, r.desired, kindDesired, ns, name)
		ch <- gauge(rolloutReplicasDesc, r.ready, kindReady, ns, name)
		ch <- gauge(rolloutReplicasDesc, r.updated, kindUpdated, ns, name)
		for _, t := range r.transitions {
			ch <- &sample{desc: transitionsDesc, counter: true, value: t.count,
				labels: []*dto.LabelPair{t.kind, ns, t.reason, name}}
		}
		ch <- gauge(routesDesc, r.headerRoutes, ns, name, typeHeader)
		ch <- gauge(routesDesc, r.mirrorRoutes, ns, name, typeMirror)
		if w := r.workload; w != nil {
			ch <- gauge(workloadReplicasDesc, w.replicas, kindDesired, ns, name, w.name)
			ch <- gauge(workloadReplicasDesc, w.available, kindAvailable, ns, name, w.name)
			if w.adopted >= 0 {
				ch <- gauge(workloadReplicasDesc, w.adopted, kindAdopted, ns, name, w.name)
			}
		}
	}
}

// sample is one per-Rollout series in a scrape. prometheus.MustNewConstMetric would make new
// label pairs for every series of every scrape, which at 10,000 Rollouts was most of the
// controller's heap while a scrape ran (134 of 542 MB live in one profile); a sample carries
// pairs made once, which client_golang treats as immutable and only reads.
type sample struct {
	desc    *prometheus.Desc
	counter bool
	value   float64
	// labels are sorted by label name.
	labels []*dto.LabelPair
}

// gauge is a gauge sample with labels, given sorted by label name.
func gauge(desc *prometheus.Desc, value float64, labels ...*dto.LabelPair) *sample {
	return &sample{desc: desc, value: value, labels: labels}
}

func (s *sample) Desc() *prometheus.Desc { return s.desc }

func (s *sample) Write(out *dto.Metric) error {
	out.Label = s.labels
	v := s.value
	if s.counter {
		out.Counter = &dto.Counter{Value: &v}
	} else {
		out.Gauge = &dto.Gauge{Value: &v}
	}
	return nil
}

// labelPair is a new label pair name=value.
func labelPair(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)}
}

// The pairs of fixed label values.
var (
	kindDesired   = labelPair("kind", "desired")
	kindReady     = labelPair("kind", "ready")
	kindUpdated   = labelPair("kind", "updated")
	kindAvailable = labelPair("kind", "available")
	kindAdopted   = labelPair("kind", "adopted")
	typeHeader    = labelPair("type", "header")
	typeMirror    = labelPair("type", "mirror")
)

type pairKey struct{ name, value string }

// boundedPair is the shared pair name=value; value must come from a bounded set. c.mu must be
// held for writing.
func (c *rolloutCollector) boundedPair(name, value string) *dto.LabelPair {
	k := pairKey{name: name, value: value}
	p, ok := c.bounded[k]
	if !ok {
		p = labelPair(name, value)
		c.bounded[k] = p
	}
	return p
}

// record returns the Rollout's record, creating it; c.mu must be held for writing.
func (c *rolloutCollector) record(namespace, name string) *rolloutRecord {
	k := rolloutKey{namespace: namespace, name: name}
	r, ok := c.rollouts[k]
	if !ok {
		r = &rolloutRecord{namespace: labelPair("namespace", namespace), rollout: labelPair("rollout", name),
			strategy: c.boundedPair("strategy", ""), phase: c.boundedPair("phase", ""), step: -1}
		c.rollouts[k] = r
	}
	return r
}

func (c *rolloutCollector) observe(ro *kultav1alpha1.Rollout) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.record(ro.Namespace, ro.Name)
	r.strategy, r.phase = c.boundedPair("strategy", string(ro.Status.Strategy)), c.boundedPair("phase", string(ro.Status.Phase))
	r.step = -1
	if ro.Status.CurrentStepIndex != nil {
		r.step = float64(*ro.Status.CurrentStepIndex)
	}
	r.weight = 0
	if ro.Status.CurrentWeight != nil {
		r.weight = float64(*ro.Status.CurrentWeight)
	}
	r.desired = 1
	if ro.Spec.Replicas != nil {
		r.desired = float64(*ro.Spec.Replicas)
	}
	r.ready, r.updated = float64(ro.Status.ReadyReplicas), float64(ro.Status.UpdatedReplicas)
	r.headerRoutes, r.mirrorRoutes = 0, 0
	for _, name := range ro.Status.HeaderRoutes {
		if mirrorRoute(ro, name) {
			r.mirrorRoutes++
		} else {
			r.headerRoutes++
		}
	}
}

// mirrorRoute reports whether the canary route named name is a mirror route: the last step
// that names it is a setMirrorRoute (header and mirror routes share their names).
func mirrorRoute(ro *kultav1alpha1.Rollout, name string) bool {
	c := ro.Spec.Strategy.Canary
	if c == nil {
		return false
	}
	for i := len(c.Steps) - 1; i >= 0; i-- {
		switch s := c.Steps[i]; {
		case s.SetMirrorRoute != nil && s.SetMirrorRoute.Name == name:
			return true
		case s.SetHeaderRoute != nil && s.SetHeaderRoute.Name == name:
			return false
		}
	}
	return false
}

// observeWorkload records the Deployment a Rollout adopts, or that it adopts none.
func (c *rolloutCollector) observeWorkload(namespace, rollout string, w *Workload) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.record(namespace, rollout)
	if w == nil {
		r.workload = nil
		return
	}
	pair := labelPair("workload", w.Name)
	if r.workload != nil && r.workload.name.GetValue() == w.Name {
		pair = r.workload.name
	}
	rec := &workloadRecord{name: pair, replicas: float64(w.Replicas), available: float64(w.Available), adopted: -1}
	if w.Adopted != nil {
		rec.adopted = float64(*w.Adopted)
	}
	r.workload = rec
}

func (c *rolloutCollector) transition(namespace, name, kind, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.record(namespace, name)
	for i := range r.transitions {
		if t := &r.transitions[i]; t.kind.GetValue() == kind && t.reason.GetValue() == reason {
			t.count++
			return
		}
	}
	r.transitions = append(r.transitions, transition{kind: c.boundedPair("kind", kind), reason: c.boundedPair("reason", reason), count: 1})
}

func (c *rolloutCollector) forget(namespace, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.rollouts, rolloutKey{namespace: namespace, name: name})
}
