package analysis

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
)

// HistogramMeasurement is what GatherHistogram found for one target: the histogram of the
// window, or why there is none.
type HistogramMeasurement struct {
	// Outcome is OutcomeOK when Histogram holds the window's buckets.
	Outcome Outcome
	// Err explains any other outcome.
	Err error
	// Histogram is the window's cumulative bucket counts.
	Histogram Histogram
	// Query is the rendered histogram query.
	Query string
}

// GatherHistogram runs the histogram query of m for target over window at the instant now. Each
// series must carry an le label; their values become the cumulative counts, ordered by bound.
// A result without series is OutcomeNoData; a window whose buckets count nothing is
// OutcomeNoTraffic.
func GatherHistogram(ctx context.Context, q Querier, m MetricQuery, target Target, window time.Duration, now time.Time) HistogramMeasurement {
	if m.HistogramQuery == "" {
		return HistogramMeasurement{Outcome: OutcomeQueryError, Err: fmt.Errorf("%w: metric %s has no histogram query", ErrInvalidInput, m.Name)}
	}
	if q == nil {
		return HistogramMeasurement{Outcome: OutcomeQueryError, Err: fmt.Errorf("%w: metric %s: no querier", ErrQuery, m.Name)}
	}
	query, err := RenderQuery(m.HistogramQuery, target, window)
	if err != nil {
		return HistogramMeasurement{Outcome: OutcomeQueryError, Err: fmt.Errorf("%w: histogram query: %w", ErrQuery, err)}
	}
	out := HistogramMeasurement{Query: query}
	vector, err := q.Query(ctx, query, now)
	if err != nil {
		out.Outcome, out.Err = queryErrorOutcome(err), fmt.Errorf("%w: histogram query %q: %w", ErrQuery, query, err)
		return out
	}
	if len(vector) == 0 {
		out.Outcome, out.Err = OutcomeNoData, fmt.Errorf("%w: histogram query %q returned no series", ErrNoData, query)
		return out
	}
	h, err := histogramFromVector(vector)
	if err != nil {
		out.Outcome, out.Err = OutcomeInvalidValue, fmt.Errorf("%w: histogram query %q: %w", ErrInvalidValue, query, err)
		return out
	}
	out.Histogram = h
	if h.Total() == 0 {
		out.Outcome, out.Err = OutcomeNoTraffic, fmt.Errorf("%w: histogram query %q counted no requests in %s", ErrNoTraffic, query, window)
		return out
	}
	if m.ObservedQuery != "" {
		run := queryRun{ctx: ctx, q: q, target: target, window: window, at: now}
		observed, outcome, err := run.observed(m)
		if outcome != OutcomeOK {
			out.Outcome, out.Err = outcome, err
			return out
		}
		out.Histogram = h.scaledTo(float64(observed))
	}
	out.Outcome = OutcomeOK
	return out
}

// scaledTo keeps the histogram's shape over total observations, when that is fewer than it
// counts: the extrapolated buckets of a window hold the evidence of the requests scraped.
func (h Histogram) scaledTo(total float64) Histogram {
	have := float64(h.Total())
	if total >= have {
		return h
	}
	out := Histogram{Bounds: h.Bounds, Cumulative: make([]float64, len(h.Cumulative))}
	for i, c := range h.Cumulative {
		out.Cumulative[i] = c * total / have
	}
	return out
}

// histogramFromVector orders the bucket series by their le label and checks the result.
func histogramFromVector(vector model.Vector) (Histogram, error) {
	type bucket struct{ bound, count float64 }
	buckets := make([]bucket, 0, len(vector))
	for _, s := range vector {
		if s.Histogram != nil {
			return Histogram{}, fmt.Errorf("a native histogram, where classic buckets were expected")
		}
		le, ok := s.Metric[model.BucketLabel]
		if !ok {
			return Histogram{}, fmt.Errorf("series %s has no %s label", s.Metric, model.BucketLabel)
		}
		bound, err := strconv.ParseFloat(string(le), 64)
		if err != nil {
			return Histogram{}, fmt.Errorf("series %s: le %q is not a number: %w", s.Metric, le, err)
		}
		count := float64(s.Value)
		if math.IsNaN(count) || math.IsInf(count, 0) || count < 0 {
			return Histogram{}, fmt.Errorf("series %s: count %v", s.Metric, count)
		}
		buckets = append(buckets, bucket{bound, count})
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].bound < buckets[j].bound })
	h := Histogram{Bounds: make([]float64, len(buckets)), Cumulative: make([]float64, len(buckets))}
	running := 0.0
	for i, b := range buckets {
		// Extrapolated increases of separate counters can dip below the bucket before; a
		// cumulative count cannot.
		running = math.Max(running, b.count)
		h.Bounds[i], h.Cumulative[i] = b.bound, running
	}
	if err := h.Validate(); err != nil {
		return Histogram{}, err
	}
	return h, nil
}
