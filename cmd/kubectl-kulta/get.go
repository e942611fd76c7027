package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

func (a *app) getCommand() *cobra.Command {
	var watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "get rollout ROLLOUT",
		Short: "Show a rollout: revisions, ReplicaSets, weights, step, analysis and why it is in its phase",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "rollout" && args[0] != "rollouts" && args[0] != "ro" {
				return &codeError{code: exitError, err: fmt.Errorf("unknown kind %q: use `get rollout NAME`", args[0])}
			}
			c, ns, err := a.client()
			if err != nil {
				return err
			}
			for {
				if err := show(cmd.Context(), cmd.OutOrStdout(), c, ns, args[1]); err != nil {
					return err
				}
				if !watch {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(interval):
				}
				if err := printf(cmd.OutOrStdout(), "\n"); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "Show the rollout again every --interval until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "How often --watch refreshes")
	return cmd
}

// show prints one rollout as a readable tree.
func show(ctx context.Context, out io.Writer, c client.Client, ns, name string) error {
	ro, err := getRollout(ctx, c, ns, name)
	if err != nil {
		return err
	}
	revs, err := revisions(ctx, c, ro)
	if err != nil {
		return err
	}
	var workload *appsv1.Deployment
	if ref := ro.Spec.WorkloadRef; ref != nil {
		workload = &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, workload); err != nil {
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("getting Deployment %s/%s (spec.workloadRef): %w", ns, ref.Name, err)
			}
			workload = nil
		}
	}
	_, err = io.WriteString(out, render(ro, revs, workload, time.Now()))
	if err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	return nil
}

// render formats a rollout, with the Deployment it adopts (nil when it adopts none, or the
// Deployment is gone); it is pure so that its output can be tested.
func render(ro *kultav1alpha1.Rollout, revs []appsv1.ReplicaSet, workload *appsv1.Deployment, now time.Time) string {
	var b strings.Builder
	st := ro.Status
	w := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
	tw := &printer{w: w}
	row := func(k, v string) { tw.printf("%s:\t%s\n", k, v) }
	row("Name", ro.Name)
	row("Namespace", ro.Namespace)
	row("Strategy", string(st.Strategy))
	row("Phase", string(st.Phase))
	if st.Message != "" {
		row("Message", st.Message)
	}
	if c := ro.Spec.Strategy.Canary; c != nil && st.CurrentStepIndex != nil {
		step := fmt.Sprintf("%d/%d", *st.CurrentStepIndex, len(c.Steps))
		if i := int(*st.CurrentStepIndex); i < len(c.Steps) {
			step += " (" + stepLine(c.Steps[i]) + ")"
		}
		row("Step", step)
	}
	row("Weight", fmt.Sprintf("%d%% to the current revision", ptr.Deref(st.CurrentWeight, 0)))
	if len(st.HeaderRoutes) > 0 {
		row("Canary routes", canaryRoutesLine(ro))
	}
	if st.PauseStartTime != nil {
		row("Paused", "since "+duration.HumanDuration(now.Sub(st.PauseStartTime.Time))+" ago")
	}
	row("Replicas", fmt.Sprintf("desired %d, ready %d, updated %d", ptr.Deref(ro.Spec.Replicas, 1), st.ReadyReplicas, st.UpdatedReplicas))
	if ref := ro.Spec.WorkloadRef; ref != nil {
		row("Workload", workloadLine(ref, workload))
	}
	if a := st.Analysis; a != nil {
		row("Analysis", fmt.Sprintf("%s (%s) %s ago", a.Verdict, a.Reason, duration.HumanDuration(now.Sub(a.CheckedAt.Time))))
		for _, m := range a.Metrics {
			row("  "+m.Name, metricLine(m))
		}
	}
	if len(st.Webhooks) > 0 {
		row("Webhooks", "")
		for _, w := range st.Webhooks {
			row("  "+w.Name, webhookLine(w, st.CurrentPodTemplateHash, now))
		}
	}
	if e := st.ABExperiment; e != nil {
		row("Experiment", experimentLine(e))
		for _, r := range e.Results {
			row("  "+r.Name, experimentResultLine(r))
		}
	}
	for _, c := range st.Conditions {
		row("Condition "+c.Type, fmt.Sprintf("%s %s %s", c.Status, c.Reason, c.Message))
	}
	if err := w.Flush(); err != nil || tw.err != nil {
		return fmt.Sprintf("rendering failed: %v %v", err, tw.err)
	}
	b.WriteString("\nRevisions:\n")
	for _, rs := range revs {
		b.WriteString(revisionLine(ro, &rs))
	}
	if n := len(st.Decisions); n > 0 {
		b.WriteString("\nRecent decisions:\n")
		for _, d := range st.Decisions[max(0, n-5):] {
			b.WriteString("  " + duration.HumanDuration(now.Sub(d.Timestamp.Time)) + " ago  " + string(d.Action) + "  " + d.Reason + "  " + d.Message + "\n")
		}
	}
	return b.String()
}

// workloadLine says which Deployment a Rollout adopts and where its own Pods stand.
func workloadLine(ref *kultav1alpha1.WorkloadRef, d *appsv1.Deployment) string {
	scaleDown := ref.ScaleDown
	if scaleDown == "" {
		scaleDown = kultav1alpha1.ScaleDownNever
	}
	line := fmt.Sprintf("Deployment %s (scaleDown %s)", ref.Name, scaleDown)
	if d == nil {
		return line + ": not found"
	}
	line += fmt.Sprintf(": %d of %d Pods available", d.Status.AvailableReplicas, ptr.Deref(d.Spec.Replicas, 1))
	if adopted, ok := d.Annotations[kultav1alpha1.AdoptedReplicasAnnotation]; ok {
		line += ", " + adopted + " before adoption"
	}
	return line
}

// stepLine says what a canary step does, in the words of the manifest.
func stepLine(s kultav1alpha1.CanaryStep) string {
	var parts []string
	if s.SetWeight != nil {
		parts = append(parts, fmt.Sprintf("setWeight %d%%", *s.SetWeight))
	}
	switch {
	case s.Pause == nil:
	case s.Pause.Duration != nil:
		parts = append(parts, "pause "+string(*s.Pause.Duration))
	default:
		parts = append(parts, "pause until promoted")
	}
	switch c := s.SetCanaryScale; {
	case c == nil:
	case c.Replicas != nil:
		parts = append(parts, fmt.Sprintf("setCanaryScale %d Pods", *c.Replicas))
	case c.Weight != nil:
		parts = append(parts, fmt.Sprintf("setCanaryScale %d%% of replicas", *c.Weight))
	default:
		parts = append(parts, "setCanaryScale matching the traffic weight")
	}
	if h := s.SetHeaderRoute; h != nil {
		if len(h.Match) == 0 {
			parts = append(parts, "remove header route "+h.Name)
		} else {
			conditions := "all of %d conditions"
			if len(h.Match) == 1 {
				conditions = "%d condition"
			}
			parts = append(parts, fmt.Sprintf("header route %s ("+conditions+")", h.Name, len(h.Match)))
		}
	}
	if m := s.SetMirrorRoute; m != nil {
		switch {
		case !m.Sets():
			parts = append(parts, "remove mirror route "+m.Name)
		case len(m.Match) == 0:
			parts = append(parts, fmt.Sprintf("mirror route %s (%d%% of all requests)", m.Name, m.PercentageOrDefault()))
		case len(m.Match) == 1:
			parts = append(parts, fmt.Sprintf("mirror route %s (%d%% of requests meeting 1 condition)", m.Name, m.PercentageOrDefault()))
		default:
			parts = append(parts, fmt.Sprintf("mirror route %s (%d%% of requests meeting all of %d conditions)", m.Name, m.PercentageOrDefault(), len(m.Match)))
		}
	}
	if a := s.Analysis; a != nil {
		names := make([]string, 0, len(a.Metrics))
		for _, m := range a.Metrics {
			names = append(names, m.Name)
		}
		parts = append(parts, "analysis of "+strings.Join(names, ", "))
	}
	return strings.Join(parts, ", ")
}

// canaryRoutesLine lists the header and mirror routes in place (status.headerRoutes), each with
// what it does as the spec's last step of its name describes it.
func canaryRoutesLine(ro *kultav1alpha1.Rollout) string {
	parts := make([]string, 0, len(ro.Status.HeaderRoutes))
	for _, name := range ro.Status.HeaderRoutes {
		hr, known := providers.KnownHeaderRoute(ro, providers.StepHeaderRouteName(ro, name))
		switch {
		case !known:
			parts = append(parts, name)
		case hr.Mirror != nil:
			parts = append(parts, fmt.Sprintf("%s (%d%% of matching requests copied to the canary)", name, *hr.Mirror))
		default:
			parts = append(parts, name+" (matching requests reach the canary)")
		}
	}
	return strings.Join(parts, ", ")
}

// webhookLine says what a webhook last answered, and for which revision when not the current.
func webhookLine(w kultav1alpha1.WebhookStatus, current string, now time.Time) string {
	line := fmt.Sprintf("%s %s", w.Type, w.Result)
	if w.StepIndex != nil {
		line += fmt.Sprintf(" at step %d", *w.StepIndex)
	}
	if w.Outcome != "" {
		line += " (told " + w.Outcome + ")"
	}
	if w.Revision != current {
		line += " for revision " + w.Revision
	}
	line += " since " + duration.HumanDuration(now.Sub(w.Since.Time)) + " ago"
	if w.Message != "" {
		line += ": " + w.Message
	}
	return line
}

func metricLine(m kultav1alpha1.MetricStatus) string {
	value := "no value"
	if m.Value != nil {
		value = string(*m.Value)
	}
	line := fmt.Sprintf("%s %s = %s", m.Verdict, m.Reason, value)
	if m.Threshold != nil {
		line += " (threshold " + string(*m.Threshold) + ")"
	}
	if m.LowerBound != nil && m.UpperBound != nil {
		line += fmt.Sprintf(", confidence sequence [%s, %s]", *m.LowerBound, *m.UpperBound)
	}
	if m.SampleSize != nil {
		line += fmt.Sprintf(", %d requests", *m.SampleSize)
	}
	if m.StableValue != nil {
		line += ", stable " + string(*m.StableValue)
	}
	if m.PValue != nil {
		line += fmt.Sprintf(", p=%s at look %d", *m.PValue, m.Looks)
	}
	return line
}

func experimentLine(e *kultav1alpha1.ABExperimentStatus) string {
	line := "running"
	if e.ConcludedAt != nil {
		line = "concluded: " + e.ConclusionReason
	}
	if e.Winner != "" {
		line += ", winner " + string(e.Winner)
	}
	if e.SampleSizeA != nil && e.SampleSizeB != nil {
		line += fmt.Sprintf(", samples A %d / B %d", *e.SampleSizeA, *e.SampleSizeB)
	}
	return line
}

// experimentResultLine is one metric of an experiment: both variants' values and the evidence.
func experimentResultLine(r kultav1alpha1.ABMetricResult) string {
	line := fmt.Sprintf("%s: A %s, B %s", r.Reason, r.ValueA, r.ValueB)
	if r.PValue != nil {
		line += fmt.Sprintf(", p=%s at look %d", *r.PValue, r.Looks)
	}
	if r.Winner != "" {
		line += ", " + string(r.Winner) + " better"
	}
	return line
}

func revisionLine(ro *kultav1alpha1.Rollout, rs *appsv1.ReplicaSet) string {
	hash := rs.Labels[kultav1alpha1.PodTemplateHashLabel]
	role := "old"
	switch hash {
	case ro.Status.StablePodTemplateHash:
		role = "stable"
		if hash == ro.Status.CurrentPodTemplateHash {
			role = "stable, current"
		}
	case ro.Status.CurrentPodTemplateHash:
		role = "current"
	}
	var images []string
	for _, c := range rs.Spec.Template.Spec.Containers {
		images = append(images, c.Image)
	}
	return fmt.Sprintf("  revision %d  %s  (%s)  %d/%d ready  %s\n", revisionNumber(rs), rs.Name, role,
		rs.Status.ReadyReplicas, ptr.Deref(rs.Spec.Replicas, 0), strings.Join(images, ","))
}

func (a *app) listCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List Rollouts with their strategy, phase, step and weight",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns, err := a.client()
			if err != nil {
				return err
			}
			var list kultav1alpha1.RolloutList
			var opts []client.ListOption
			if !all {
				opts = append(opts, client.InNamespace(ns))
			}
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return fmt.Errorf("listing Rollouts: %w", err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			tw := &printer{w: w}
			tw.printf("NAMESPACE\tNAME\tSTRATEGY\tPHASE\tSTEP\tWEIGHT\tREADY\n")
			for _, ro := range list.Items {
				step := "-"
				if ro.Status.CurrentStepIndex != nil {
					step = fmt.Sprint(*ro.Status.CurrentStepIndex)
				}
				tw.printf("%s\t%s\t%s\t%s\t%s\t%d\t%d/%d\n", ro.Namespace, ro.Name, ro.Status.Strategy, ro.Status.Phase, step,
					ptr.Deref(ro.Status.CurrentWeight, 0), ro.Status.ReadyReplicas, ptr.Deref(ro.Spec.Replicas, 1))
			}
			if tw.err != nil {
				return tw.err
			}
			if err := w.Flush(); err != nil {
				return fmt.Errorf("writing: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "List Rollouts in every namespace")
	return cmd
}
