package analysis

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gonum.org/v1/gonum/stat/distuv"
)

// simWorld is a synthetic Prometheus for the simulations: each service has counters that grow
// look by look (requests, 5xx responses and latency buckets), and every query the built-in
// metrics send is answered from them with exact counts: the count over W at t, estimated or
// observed (MetricQuery.ObservedQuery), is the counter at t minus the counter at t-W, where a
// counter's value at an instant is that of its latest sample. A real Prometheus extrapolates
// the estimate to the range's edges, and KULTA takes the smaller observed count as the trials.
// Requests are drawn from a seeded source, so a simulation is deterministic.
type simWorld struct {
	rng      *rand.Rand
	services map[string]*simService
}

// simService is one service's counter samples, in time order.
type simService struct {
	samples []simSample
}

// simSample is the cumulative counters of a service at one instant.
type simSample struct {
	at       time.Time
	requests float64
	errors   float64
	buckets  []float64 // cumulative count per bound of simBounds
}

// simBounds are Prometheus' default histogram buckets, in seconds.
var simBounds = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, math.Inf(1)}

// simLoad is the traffic of one service during one look.
type simLoad struct {
	// Requests is how many requests arrive.
	Requests int
	// ErrorRate is each request's chance of a 5xx answer.
	ErrorRate float64
	// Latency draws each request's latency in seconds; nil sends none to the histogram.
	Latency *distuv.LogNormal
}

func newSimWorld(seed uint64) *simWorld {
	return &simWorld{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), services: map[string]*simService{}}
}

// add records one look's traffic of service, ending at the instant at.
func (w *simWorld) add(service string, at time.Time, load simLoad) {
	s := w.services[service]
	if s == nil {
		s = &simService{samples: []simSample{{buckets: make([]float64, len(simBounds))}}}
		w.services[service] = s
	}
	last := s.samples[len(s.samples)-1]
	next := simSample{at: at, requests: last.requests + float64(load.Requests), errors: last.errors, buckets: append([]float64(nil), last.buckets...)}
	if load.Requests > 0 {
		next.errors += distuv.Binomial{N: float64(load.Requests), P: load.ErrorRate, Src: w.rng}.Rand()
	}
	if load.Latency != nil && load.Requests > 0 {
		counts := w.multinomial(load.Requests, bucketProbabilities(load.Latency))
		running := 0.0
		for i := range simBounds {
			running += counts[i]
			next.buckets[i] += running
		}
	}
	s.samples = append(s.samples, next)
}

// multinomial draws n observations into len(p) cells with sequential binomials.
func (w *simWorld) multinomial(n int, p []float64) []float64 {
	out := make([]float64, len(p))
	left, mass := float64(n), 1.0
	for i, pi := range p {
		if left <= 0 || mass <= 0 {
			break
		}
		if i == len(p)-1 {
			out[i] = left
			break
		}
		share := math.Min(1, math.Max(0, pi/mass))
		out[i] = distuv.Binomial{N: left, P: share, Src: w.rng}.Rand()
		left -= out[i]
		mass -= pi
	}
	return out
}

// bucketProbabilities is the chance of a latency falling into each of simBounds.
func bucketProbabilities(d *distuv.LogNormal) []float64 {
	p := make([]float64, len(simBounds))
	below := 0.0
	for i, b := range simBounds {
		c := 1.0
		if !math.IsInf(b, 1) {
			c = d.CDF(b)
		}
		p[i] = c - below
		below = c
	}
	return p
}

// at is the service's counters at the instant t: its latest sample not after t.
func (s *simService) at(t time.Time) simSample {
	i := sort.Search(len(s.samples), func(i int) bool { return s.samples[i].at.After(t) })
	if i == 0 {
		return simSample{buckets: make([]float64, len(simBounds))}
	}
	return s.samples[i-1]
}

var (
	simServicePattern = regexp.MustCompile(`service="([^"]*)"`)
	simRangePattern   = regexp.MustCompile(`\[([0-9a-z]+)\]`)
	simQuantile       = regexp.MustCompile(`^histogram_quantile\(([0-9.]+),`)
)

// Query answers the queries of the built-in metrics.
func (w *simWorld) Query(_ context.Context, query string, at time.Time) (model.Vector, error) {
	service := simServicePattern.FindStringSubmatch(query)
	window := simRangePattern.FindStringSubmatch(query)
	if service == nil || window == nil {
		return nil, fmt.Errorf("simulation: cannot read query %q", query)
	}
	d, err := model.ParseDuration(window[1])
	if err != nil {
		return nil, fmt.Errorf("simulation: range of %q: %w", query, err)
	}
	s := w.services[service[1]]
	if s == nil {
		return model.Vector{}, nil
	}
	now, then := s.at(at), s.at(at.Add(-time.Duration(d)))
	switch {
	case strings.HasPrefix(query, "sum by (le)"):
		out := model.Vector{}
		for i, b := range simBounds {
			out = append(out, &model.Sample{
				Metric: model.Metric{model.BucketLabel: model.LabelValue(strconv.FormatFloat(b, 'g', -1, 64))},
				Value:  model.SampleValue(now.buckets[i] - then.buckets[i]),
			})
		}
		return out, nil
	case simQuantile.MatchString(query):
		q, _ := strconv.ParseFloat(simQuantile.FindStringSubmatch(query)[1], 64)
		h := Histogram{Bounds: simBounds, Cumulative: make([]float64, len(simBounds))}
		for i := range simBounds {
			h.Cumulative[i] = now.buckets[i] - then.buckets[i]
		}
		v, err := h.Quantile(q)
		if err != nil {
			return model.Vector{}, nil
		}
		return model.Vector{{Value: model.SampleValue(v)}}, nil
	case strings.Contains(query, "_count{"):
		return model.Vector{{Value: model.SampleValue(now.buckets[len(simBounds)-1] - then.buckets[len(simBounds)-1])}}, nil
	case strings.Contains(query, `code=~"5.."`):
		return model.Vector{{Value: model.SampleValue(now.errors - then.errors)}}, nil
	default:
		return model.Vector{{Value: model.SampleValue(now.requests - then.requests)}}, nil
	}
}

// latencyAround is a log-normal latency whose median is median seconds, with the spread of a
// typical web service (a p95 about 2.3 times the median).
func latencyAround(median float64) *distuv.LogNormal {
	return &distuv.LogNormal{Mu: math.Log(median), Sigma: 0.5}
}
