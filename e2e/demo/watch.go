package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// pollInterval is how often the observer looks at the Rollout and its traffic split.
const pollInterval = 250 * time.Millisecond

// observer shows a Rollout as `kubectl kulta get rollout --watch` would, one line per change:
// phase, step, weights, stable and canary revisions, analysis and message. The weights come
// from the objects of the provider that moves the traffic (an HTTPRoute, a VirtualService's
// route, a canary Ingress).
type observer struct {
	client  client.Client
	out     *console
	rollout client.ObjectKey
	// traffic reads the stable/canary split from the provider's objects.
	traffic splitReader

	lastLine string
	// weights are the stable/canary weights seen since the last resetWeights, each change once.
	weights []string
}

// snapshot is one look at the Rollout and its traffic split.
type snapshot struct {
	rollout *kultav1alpha1.Rollout
	weights string
}

// look reads the Rollout and its traffic split, prints a line when something changed and
// records the weights.
func (o *observer) look(ctx context.Context) (*snapshot, error) {
	ro := &kultav1alpha1.Rollout{}
	if err := o.client.Get(ctx, o.rollout, ro); err != nil {
		return nil, fmt.Errorf("reading Rollout %s: %w", o.rollout, err)
	}
	weights, err := o.traffic.read(ctx, o.client)
	if err != nil {
		return nil, err
	}
	s := &snapshot{rollout: ro, weights: weights}
	if n := len(o.weights); n == 0 || o.weights[n-1] != s.weights {
		o.weights = append(o.weights, s.weights)
	}
	if line := describe(s); line != o.lastLine {
		o.out.logf("  %s", line)
		o.lastLine = line
	}
	return s, nil
}

// resetWeights starts a new record of the weights from from, the weights the provider's objects
// carried before the change being recorded. Seeding the record matters: the controller may move
// the traffic before the next look, and a record that began there would miss where it started.
func (o *observer) resetWeights(from *snapshot) { o.weights = []string{from.weights} }

// waitFor looks every pollInterval until done says the Rollout is there, and returns that
// snapshot. It fails after timeout, saying what it waited for and where the Rollout was.
func (o *observer) waitFor(ctx context.Context, timeout time.Duration, what string,
	done func(context.Context, *snapshot) (bool, error)) (*snapshot, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := o.look(ctx)
		if err != nil {
			return nil, err
		}
		ok, err := done(ctx, s)
		if err != nil {
			return nil, err
		}
		if ok {
			return s, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the Rollout did not %s within %s; it is at: %s", what, timeout, describe(s))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting until the Rollout would %s: %w", what, context.Cause(ctx))
		case <-time.After(pollInterval):
		}
	}
}

// replicas is the number of Pods the Rollout's ReplicaSet of revision hash wants.
func (o *observer) replicas(ctx context.Context, hash string) (int32, error) {
	var list appsv1.ReplicaSetList
	if err := o.client.List(ctx, &list, client.InNamespace(o.rollout.Namespace),
		client.MatchingLabels{kultav1alpha1.PodTemplateHashLabel: hash}); err != nil {
		return 0, fmt.Errorf("listing the ReplicaSets of revision %s: %w", hash, err)
	}
	if len(list.Items) != 1 {
		return 0, fmt.Errorf("%d ReplicaSets of revision %s, want 1", len(list.Items), hash)
	}
	return ptr.Deref(list.Items[0].Spec.Replicas, 1), nil
}

// describe is the one-line view of a snapshot.
func describe(s *snapshot) string {
	ro := s.rollout
	st := ro.Status
	phase := string(st.Phase)
	if phase == "" {
		phase = "(new)"
	}
	fields := []string{fmt.Sprintf("%-11s", phase)}
	if c := ro.Spec.Strategy.Canary; c != nil && st.CurrentStepIndex != nil {
		fields = append(fields, fmt.Sprintf("step %d/%d", *st.CurrentStepIndex, len(c.Steps)))
	}
	fields = append(fields,
		fmt.Sprintf("weight %d%%", ptr.Deref(st.CurrentWeight, 0)),
		"route stable/canary "+s.weights,
		"stable "+orDash(st.StablePodTemplateHash))
	if st.CurrentPodTemplateHash != "" && st.CurrentPodTemplateHash != st.StablePodTemplateHash {
		fields = append(fields, "canary "+st.CurrentPodTemplateHash)
	}
	if a := st.Analysis; a != nil && a.Revision == st.CurrentPodTemplateHash && a.Revision != st.StablePodTemplateHash {
		fields = append(fields, "analysis "+analysisText(a))
	}
	line := strings.Join(fields, "  ")
	if st.Message != "" {
		line += "  | " + st.Message
	}
	return line
}

// analysisText is a verdict with each metric's value, such as "Pass (error-rate 0 <= 5, 120
// requests)".
func analysisText(a *kultav1alpha1.AnalysisStatus) string {
	var metrics []string
	for _, m := range a.Metrics {
		text := m.Name
		if m.Value != nil {
			text += " " + string(*m.Value)
		}
		if m.Threshold != nil {
			text += " (threshold " + string(*m.Threshold) + ")"
		}
		if m.SampleSize != nil {
			text += fmt.Sprintf(", %d requests", *m.SampleSize)
		}
		metrics = append(metrics, text)
	}
	verdict := string(a.Verdict)
	if a.Reason != "" {
		verdict += " " + a.Reason
	}
	if len(metrics) == 0 {
		return verdict
	}
	return verdict + " [" + strings.Join(metrics, "; ") + "]"
}

// orDash is s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
