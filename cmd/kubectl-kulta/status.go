package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// outcome classifies a Rollout for `status`: done, failed, or still going.
func outcome(ro *kultav1alpha1.Rollout) (code int, summary string) {
	st := ro.Status
	if c := meta.FindStatusCondition(st.Conditions, kultav1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		return exitFailed, "stalled: " + c.Message
	}
	if st.Phase == kultav1alpha1.PhaseFailed {
		return exitFailed, "failed: " + st.Message
	}
	settled := st.ObservedGeneration == ro.Generation && st.CurrentPodTemplateHash != "" && st.CurrentPodTemplateHash == st.StablePodTemplateHash
	if st.Phase == kultav1alpha1.PhaseCompleted && settled {
		return exitOK, "completed: " + st.Message
	}
	return exitTimedOut, fmt.Sprintf("%s: %s", st.Phase, st.Message)
}

func (a *app) statusCommand() *cobra.Command {
	var watch bool
	var timeout, interval time.Duration
	cmd := &cobra.Command{
		Use:   "status ROLLOUT",
		Short: "Report whether a rollout completed; exit 0 completed, 1 failed or stalled, 2 still in progress (or timed out), 3 error",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := a.client()
			if err != nil {
				return err
			}
			deadline := time.Now().Add(timeout)
			for {
				ro, err := getRollout(cmd.Context(), c, ns, args[0])
				if err != nil {
					return &codeError{code: exitError, err: err}
				}
				code, summary := outcome(ro)
				if code != exitTimedOut || !watch || (timeout > 0 && time.Now().After(deadline)) {
					if err := printf(cmd.OutOrStdout(), "rollout.kulta.io/%s %s\n", args[0], summary); err != nil {
						return err
					}
					if code == exitOK {
						return nil
					}
					if code == exitTimedOut && watch {
						summary = "timed out after " + timeout.String() + ": " + summary
					}
					return &codeError{code: code, err: fmt.Errorf("rollout.kulta.io/%s %s", args[0], summary)}
				}
				select {
				case <-cmd.Context().Done():
					return &codeError{code: exitTimedOut, err: fmt.Errorf("interrupted")}
				case <-time.After(interval):
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "Wait until the rollout completes or fails")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "With --watch, give up after this long (0: no limit)")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "With --watch, how often to check")
	return cmd
}
