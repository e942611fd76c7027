package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/revision"
)

// getRollout reads one Rollout.
func getRollout(ctx context.Context, c client.Client, ns, name string) (*kultav1alpha1.Rollout, error) {
	ro := &kultav1alpha1.Rollout{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ro); err != nil {
		return nil, fmt.Errorf("getting Rollout %s/%s: %w", ns, name, err)
	}
	return ro, nil
}

// rollout resolves the client and reads the named Rollout in the selected namespace.
func (a *app) rollout(cmd *cobra.Command, name string) (client.Client, *kultav1alpha1.Rollout, error) {
	c, ns, err := a.client()
	if err != nil {
		return nil, nil, err
	}
	ro, err := getRollout(cmd.Context(), c, ns, name)
	if err != nil {
		return nil, nil, err
	}
	return c, ro, nil
}

// annotate sets one of KULTA's action annotations; the controller removes it once acted on.
func (a *app) annotate(cmd *cobra.Command, name, key, value string) error {
	c, ro, err := a.rollout(cmd, name)
	if err != nil {
		return err
	}
	ns := ro.Namespace
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if err != nil {
		return fmt.Errorf("building patch: %w", err)
	}
	if err := c.Patch(cmd.Context(), ro, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("annotating Rollout %s/%s: %w", ns, name, err)
	}
	return printf(cmd.OutOrStdout(), "rollout.kulta.io/%s annotated %s=%s\n", name, key, value)
}

func (a *app) annotateCommand(use, short, key string) *cobra.Command {
	return &cobra.Command{
		Use:   use + " ROLLOUT",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.annotate(cmd, args[0], key, "true")
		},
	}
}

func (a *app) promoteCommand() *cobra.Command {
	var full bool
	cmd := &cobra.Command{
		Use:   "promote ROLLOUT",
		Short: "End the current pause, promote a preview or A/B winner; --full skips all remaining steps",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			value := "true"
			if full {
				value = "full"
			}
			return a.annotate(cmd, args[0], kultav1alpha1.PromoteAnnotation, value)
		},
	}
	cmd.Flags().BoolVar(&full, "full", false, "Skip every remaining canary step and promote now")
	return cmd
}

// pauseCommand builds `pause` (paused=true) and `resume` (paused=false).
func (a *app) pauseCommand(paused bool) *cobra.Command {
	use, short := "pause", "Hold a rollout in flight where it is (spec.paused=true)"
	if !paused {
		use, short = "resume", "Let a paused rollout go on (spec.paused=false)"
	}
	return &cobra.Command{
		Use:   use + " ROLLOUT",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ro, err := a.rollout(cmd, args[0])
			if err != nil {
				return err
			}
			ns := ro.Namespace
			patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"paused":`+strconv.FormatBool(paused)+`}}`))
			if err := c.Patch(cmd.Context(), ro, patch); err != nil {
				return fmt.Errorf("patching Rollout %s/%s: %w", ns, args[0], err)
			}
			return printf(cmd.OutOrStdout(), "rollout.kulta.io/%s %sd\n", args[0], use)
		},
	}
}

// revisions lists the Rollout's ReplicaSets, newest revision first.
func revisions(ctx context.Context, c client.Client, ro *kultav1alpha1.Rollout) ([]appsv1.ReplicaSet, error) {
	var list appsv1.ReplicaSetList
	// With workloadRef and no spec.selector, the selector is the Deployment's: the ReplicaSets
	// are found by KULTA's hash label and their owner.
	var match client.ListOption = client.HasLabels{kultav1alpha1.PodTemplateHashLabel}
	if ro.Spec.Selector != nil {
		match = client.MatchingLabels(ro.Spec.Selector.MatchLabels)
	}
	if err := c.List(ctx, &list, client.InNamespace(ro.Namespace), match); err != nil {
		return nil, fmt.Errorf("listing ReplicaSets: %w", err)
	}
	var owned []appsv1.ReplicaSet
	for _, rs := range list.Items {
		for _, ref := range rs.OwnerReferences {
			if ref.UID == ro.UID {
				owned = append(owned, rs)
			}
		}
	}
	sort.Slice(owned, func(i, j int) bool { return revisionNumber(&owned[i]) > revisionNumber(&owned[j]) })
	return owned, nil
}

func revisionNumber(rs *appsv1.ReplicaSet) int64 {
	n, err := strconv.ParseInt(rs.Annotations[revision.RevisionAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func (a *app) undoCommand() *cobra.Command {
	var toRevision int64
	cmd := &cobra.Command{
		Use:   "undo ROLLOUT",
		Short: "Roll the Pod template back to an earlier revision (the previous one by default)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The controller writes the Rollout's status all the time, and every write moves its
			// resourceVersion: on a conflict, read the Rollout again and decide again.
			var ro *kultav1alpha1.Rollout
			var target *appsv1.ReplicaSet
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				c, got, err := a.rollout(cmd, args[0])
				if err != nil {
					return err
				}
				ro = got
				if target, err = undoTarget(cmd.Context(), c, ro, toRevision); err != nil {
					return err
				}
				return applyTemplate(cmd.Context(), c, ro, target)
			})
			if err != nil {
				return fmt.Errorf("undo %s: %w", args[0], err)
			}
			return printf(cmd.OutOrStdout(), "rollout.kulta.io/%s rolled back to revision %d\n", ro.Name, revisionNumber(target))
		},
	}
	cmd.Flags().Int64Var(&toRevision, "to-revision", 0, "Revision number to go back to (see `get rollout`); 0 means the one before the current")
	return cmd
}

// undoTarget finds the ReplicaSet of the revision to go back to.
func undoTarget(ctx context.Context, c client.Client, ro *kultav1alpha1.Rollout, toRevision int64) (*appsv1.ReplicaSet, error) {
	revs, err := revisions(ctx, c, ro)
	if err != nil {
		return nil, err
	}
	current := ro.Status.CurrentPodTemplateHash
	for i := range revs {
		rs := &revs[i]
		hash := rs.Labels[kultav1alpha1.PodTemplateHashLabel]
		if toRevision == 0 && hash != current {
			return rs, nil
		}
		if toRevision != 0 && revisionNumber(rs) == toRevision {
			if hash == current {
				return nil, fmt.Errorf("revision %d is already the current one", toRevision)
			}
			return rs, nil
		}
	}
	if toRevision != 0 {
		return nil, fmt.Errorf("rollout %s/%s has no revision %d", ro.Namespace, ro.Name, toRevision)
	}
	return nil, fmt.Errorf("rollout %s/%s has no earlier revision", ro.Namespace, ro.Name)
}

// applyTemplate writes the Rollout template the ReplicaSet was built from back into the Rollout:
// the exact original when the ReplicaSet kept it, else its Pod template without KULTA's labels.
// The write fails with a conflict when the Rollout changed since ro was read.
func applyTemplate(ctx context.Context, c client.Client, ro *kultav1alpha1.Rollout, rs *appsv1.ReplicaSet) error {
	before := ro.DeepCopy()
	var template kultav1alpha1.PodTemplate
	if original := rs.Annotations[revision.TemplateAnnotation]; original != "" {
		if err := json.Unmarshal([]byte(original), &template); err != nil {
			return fmt.Errorf("decoding the template of ReplicaSet %s: %w", rs.Name, err)
		}
	} else {
		labels := map[string]string{}
		for k, v := range rs.Spec.Template.Labels {
			if k != kultav1alpha1.PodTemplateHashLabel && k != kultav1alpha1.RolloutTypeLabel {
				labels[k] = v
			}
		}
		template = kultav1alpha1.PodTemplate{
			Metadata: kultav1alpha1.PodTemplateMetadata{Labels: labels, Annotations: rs.Spec.Template.Annotations},
			Spec:     rs.Spec.Template.Spec,
		}
	}
	if ref := ro.Spec.WorkloadRef; ref != nil {
		// The Rollout follows the Deployment's template: the Deployment is rolled back.
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: ref.Name}, d); err != nil {
			return fmt.Errorf("getting Deployment %s/%s (spec.workloadRef): %w", ro.Namespace, ref.Name, err)
		}
		beforeDeployment := d.DeepCopy()
		d.Spec.Template = template.AsPodTemplateSpec()
		if err := c.Patch(ctx, d, client.MergeFromWithOptions(beforeDeployment, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("rolling Deployment %s/%s (spec.workloadRef of Rollout %s) back to revision %d: %w", ro.Namespace, ref.Name, ro.Name, revisionNumber(rs), err)
		}
		return nil
	}
	ro.Spec.Template = template
	if err := c.Patch(ctx, ro, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("rolling Rollout %s/%s back to revision %d: %w", ro.Namespace, ro.Name, revisionNumber(rs), err)
	}
	return nil
}
