package occurrence

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/events"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(seconds int) metav1.Time {
	return metav1.NewTime(t0.Add(time.Duration(seconds) * time.Second))
}

// fixedIDs returns ULID-shaped ids numbered from 1.
func fixedIDs() func(time.Time) (string, error) {
	n := 0
	return func(time.Time) (string, error) {
		n++
		return fmt.Sprintf("01JNZ6V8W0%016d", n), nil
	}
}

func decimal(s string) *kultav1alpha1.Decimal {
	d := kultav1alpha1.Decimal(s)
	return &d
}

// canary is a canary Rollout of checkout in shop, at step 1 (20%) of revision 8b5d4c, with the
// decisions that got it there.
func canary() *kultav1alpha1.Rollout {
	return &kultav1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout", ResourceVersion: "4711"},
		Spec: kultav1alpha1.RolloutSpec{
			Replicas: ptr.To[int32](5),
			Template: kultav1alpha1.PodTemplate{Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "app", Image: "registry.example.com/shop/checkout:2.4.0"},
			}}},
			Strategy: kultav1alpha1.RolloutStrategy{Canary: &kultav1alpha1.CanaryStrategy{
				StableService: "checkout-stable", CanaryService: "checkout-canary",
				Steps: []kultav1alpha1.CanaryStep{{SetWeight: ptr.To[int32](20)}, {SetWeight: ptr.To[int32](50)}, {SetWeight: ptr.To[int32](100)}},
			}},
		},
		Status: kultav1alpha1.RolloutStatus{
			Strategy:               kultav1alpha1.StrategyCanary,
			Phase:                  kultav1alpha1.PhaseProgressing,
			Message:                "Step 1: canary at 20%",
			CurrentStepIndex:       ptr.To[int32](1),
			CurrentWeight:          ptr.To[int32](20),
			StablePodTemplateHash:  "6f7c9d",
			CurrentPodTemplateHash: "8b5d4c",
			Replicas:               6,
			ReadyReplicas:          6,
			Decisions: []kultav1alpha1.Decision{
				{Timestamp: at(0), Action: kultav1alpha1.ActionInitialize, Reason: "NewRevision", Message: "New revision 8b5d4c; stable is 6f7c9d", ToStep: ptr.To[int32](0)},
			},
		},
	}
}

// advance records decision on ro and returns the transition it makes.
func advance(ro *kultav1alpha1.Rollout, d kultav1alpha1.Decision) events.Transition {
	ro.Status.Decisions = append(ro.Status.Decisions, d)
	kind, _ := events.KindOf(d)
	return events.Transition{Rollout: ro, Kind: kind, Decision: d, Time: d.Timestamp.Time}
}

func progressing() events.Transition {
	ro := canary()
	ro.Status.Analysis = &kultav1alpha1.AnalysisStatus{
		Revision: "8b5d4c", StepIndex: ptr.To[int32](0), Verdict: kultav1alpha1.VerdictPass, CheckedAt: at(55),
		Message: "error-rate 0.4 <= 5 (1200 requests); latency-p95 180 <= 500 (1200 requests)",
	}
	return advance(ro, kultav1alpha1.Decision{
		Timestamp: at(60), Action: kultav1alpha1.ActionStepAdvance, Reason: "WeightReached",
		Message: "Step 0 done: canary at 20%", FromStep: ptr.To[int32](0), ToStep: ptr.To[int32](1),
		Metrics: map[string]kultav1alpha1.MetricSnapshot{
			"error-rate":  {Value: "0.4", Threshold: decimal("5"), Passed: true},
			"latency-p95": {Value: "180", Threshold: decimal("500"), Passed: true},
		},
	})
}

func completed() events.Transition {
	ro := canary()
	ro.Status.Phase = kultav1alpha1.PhaseCompleted
	ro.Status.Message = "Revision 8b5d4c is stable"
	ro.Status.CurrentStepIndex = ptr.To[int32](3)
	ro.Status.CurrentWeight = ptr.To[int32](100)
	ro.Status.StablePodTemplateHash = "8b5d4c"
	ro.Status.Replicas, ro.Status.ReadyReplicas = 5, 5
	ro.Status.Decisions = append(ro.Status.Decisions,
		kultav1alpha1.Decision{Timestamp: at(60), Action: kultav1alpha1.ActionStepAdvance, Reason: "WeightReached", Message: "Step 0 done: canary at 20%", FromStep: ptr.To[int32](0), ToStep: ptr.To[int32](1)},
		kultav1alpha1.Decision{Timestamp: at(120), Action: kultav1alpha1.ActionStepAdvance, Reason: "WeightReached", Message: "Step 1 done: canary at 50%", FromStep: ptr.To[int32](1), ToStep: ptr.To[int32](2)},
		kultav1alpha1.Decision{Timestamp: at(180), Action: kultav1alpha1.ActionStepAdvance, Reason: "WeightReached", Message: "Step 2 done: canary at 100%", FromStep: ptr.To[int32](2), ToStep: ptr.To[int32](3)},
	)
	return advance(ro, kultav1alpha1.Decision{
		Timestamp: at(200), Action: kultav1alpha1.ActionComplete, Reason: "AllStepsCompleted",
		Message: "All 3 steps completed", FromStep: ptr.To[int32](3), ToStep: ptr.To[int32](3),
	})
}

func failed() events.Transition {
	ro := canary()
	ro.Status.Phase = kultav1alpha1.PhaseFailed
	ro.Status.Message = "Analysis failed: error-rate 12.5 > 5 (840 requests)"
	ro.Status.CurrentWeight = ptr.To[int32](0)
	ro.Status.Analysis = &kultav1alpha1.AnalysisStatus{
		Revision: "8b5d4c", StepIndex: ptr.To[int32](1), Verdict: kultav1alpha1.VerdictFail, Reason: "ThresholdExceeded", CheckedAt: at(150),
		Message: "error-rate 12.5 > 5 (840 requests); latency-p95 210 <= 500 (840 requests)",
	}
	ro.Status.Decisions = append(ro.Status.Decisions,
		kultav1alpha1.Decision{Timestamp: at(60), Action: kultav1alpha1.ActionStepAdvance, Reason: "WeightReached", Message: "Step 0 done: canary at 20%", FromStep: ptr.To[int32](0), ToStep: ptr.To[int32](1)},
	)
	return advance(ro, kultav1alpha1.Decision{
		Timestamp: at(150), Action: kultav1alpha1.ActionRollback, Reason: "AnalysisFailed",
		Message: "Analysis failed: error-rate 12.5 > 5 (840 requests)", FromStep: ptr.To[int32](1),
		Metrics: map[string]kultav1alpha1.MetricSnapshot{
			"error-rate":  {Value: "12.5", Threshold: decimal("5"), Passed: false},
			"latency-p95": {Value: "210", Threshold: decimal("500"), Passed: true},
		},
	})
}
