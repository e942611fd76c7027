package analysis

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// Compare looks at a running A/B experiment: it measures every metric for both variants over
// every request since the experiment started, evaluates them with EvaluateExperiment, and
// returns the experiment status with the results and, when the evidence is there, the winner.
// Counting from the experiment's start at every look (rather than over a sliding window) is
// what keeps the sequential tests valid; the start is in the status, so a controller restart
// changes nothing.
func (c *Checker) Compare(ctx context.Context, ro *kultav1alpha1.Rollout, spec *kultav1alpha1.ABAnalysis, now time.Time) (*kultav1alpha1.ABExperimentStatus, error) {
	ab := ro.Spec.Strategy.ABTesting
	if ab == nil || ro.Status.ABExperiment == nil {
		return nil, fmt.Errorf("%w: Rollout %s/%s has no running A/B experiment", ErrInvalidInput, ro.Namespace, ro.Name)
	}
	confidence, err := abConfidence(spec)
	if err != nil {
		return nil, fmt.Errorf("experiment of Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	exp := ro.Status.ABExperiment.DeepCopy()
	q, setupErr := c.querierFor(spec.Prometheus)
	looks := map[string]int32{}
	for _, r := range exp.Results {
		looks[r.Name] = r.Looks
	}
	// Variant B's Service may have carried another revision before the experiment started.
	interval := DefaultWindow
	if spec.Interval != nil {
		if d, err := spec.Interval.Parse(); err == nil && d >= time.Second {
			interval = d
		}
	}
	window, ok := CumulativeWindow(exp.StartedAt.Time, now, interval)
	if !ok {
		exp.CheckedAt = ptr.To(metav1.NewTime(now))
		exp.Message = WindowVerdict("experiment", interval, exp.StartedAt.Time, now).Message
		return exp, nil
	}
	a := Target{Namespace: ro.Namespace, Rollout: ro.Name, Service: ab.VariantAService, Revision: ro.Status.StablePodTemplateHash}
	b := Target{Namespace: ro.Namespace, Rollout: ro.Name, Service: ab.VariantBService, Revision: ro.Status.CurrentPodTemplateHash}
	metrics := make([]ExperimentMetric, 0, len(spec.Metrics))
	for _, m := range spec.Metrics {
		metrics = append(metrics, c.measureVariants(ctx, q, setupErr, m, a, b, window, int(looks[m.Name])+1, now))
	}
	result, err := EvaluateExperiment(metrics, confidence, int64(ptr.Deref(spec.MinSampleSize, 30)))
	if err != nil {
		return nil, fmt.Errorf("experiment of Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	exp.CheckedAt = ptr.To(metav1.NewTime(now))
	exp.Message = truncate(result.Message, 4000)
	exp.Results = exp.Results[:0]
	for i, r := range result.Metrics {
		res := kultav1alpha1.ABMetricResult{
			Name:          r.Name,
			ValueA:        kultav1alpha1.NewDecimal(roundTo(r.ValueA, 6)),
			ValueB:        kultav1alpha1.NewDecimal(roundTo(r.ValueB, 6)),
			Confidence:    kultav1alpha1.NewDecimal(roundTo(1-r.P, 9)),
			PValue:        ptr.To(kultav1alpha1.NewDecimal(r.P)),
			IsSignificant: r.Significant,
			Winner:        kultav1alpha1.ABVariant(r.Winner),
			Reason:        string(r.Reason),
			Looks:         looks[r.Name],
		}
		if r.Reason != ReasonNoTraffic && r.Reason != ReasonQueryError && r.Reason != ReasonProviderUnavailable {
			res.Looks = int32(metrics[i].Look)
		}
		exp.Results = append(exp.Results, res)
		if i == 0 {
			exp.SampleSizeA, exp.SampleSizeB = ptr.To(r.SamplesA), ptr.To(r.SamplesB)
		}
	}
	exp.Winner = kultav1alpha1.ABVariant(result.Winner)
	return exp, nil
}

// measureVariants gathers one A/B metric for both variants over the same range.
func (c *Checker) measureVariants(ctx context.Context, q Querier, setupErr error, m kultav1alpha1.ABMetric, a, b Target,
	window time.Duration, look int, now time.Time,
) ExperimentMetric {
	em := ExperimentMetric{Name: m.Name, Direction: Direction(m.Direction), Look: look}
	builtin := c.Builtin
	builtin.Window = window
	query, err := BuiltinMetric(m.Name, builtin)
	em.Latency = query.HistogramQuery != ""
	if m.MinEffectSize != nil {
		if f, err := m.MinEffectSize.Float64(); err == nil {
			em.MinEffect = f
			if em.Latency {
				em.MinEffect = f / 1000 // milliseconds to the histogram's seconds
			}
		}
	}
	if setupErr != nil {
		err = setupErr
	}
	if err != nil {
		em.A = Measurement{Metric: m.Name, Outcome: OutcomeQueryError, Err: err}
		em.B = em.A
		em.HistA = HistogramMeasurement{Outcome: OutcomeQueryError, Err: err}
		em.HistB = em.HistA
		return em
	}
	if em.Latency {
		em.HistA = GatherHistogram(ctx, q, query, a, window, now)
		em.HistB = GatherHistogram(ctx, q, query, b, window, now)
		return em
	}
	cmp := GatherComparison(ctx, q, query, a, b, now)
	em.A, em.B = cmp.A, cmp.B
	return em
}

// abConfidence is the experiment's confidenceLevel, 0.95 when unset. A level the API server
// would have rejected is an error rather than a guess.
func abConfidence(spec *kultav1alpha1.ABAnalysis) (float64, error) {
	if spec.ConfidenceLevel == nil {
		return DefaultConfidence, nil
	}
	f, err := spec.ConfidenceLevel.Float64()
	if err != nil {
		return 0, fmt.Errorf("%w: abTesting.analysis.confidenceLevel: %w", ErrInvalidInput, err)
	}
	if err := checkOpenUnit("abTesting.analysis.confidenceLevel", f); err != nil {
		return 0, err
	}
	return f, nil
}
