package rollout_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/internal/webhook"
	"github.com/false-systems/kulta/providers"
)

// gateTimeout covers a held gate's recheck (10 s) and the steps around it.
const gateTimeout = 60 * time.Second

// receiver is a real HTTP endpoint on loopback for a test's webhooks: each path answers with
// the status set for it (200 when none), or never answers while hung; every call is kept.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	status map[string]int
	hung   map[string]bool
	calls  []receivedCall
}

type receivedCall struct {
	path    string
	auth    string
	payload webhook.Payload
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{status: map[string]int{}, hung: map[string]bool{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.calls = append(r.calls, receivedCall{path: req.URL.Path, auth: req.Header.Get("Authorization"), payload: p})
		status, hung := r.status[req.URL.Path], r.hung[req.URL.Path]
		r.mu.Unlock()
		if hung {
			<-req.Context().Done()
			return
		}
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		if _, err := io.WriteString(w, http.StatusText(status)); err != nil {
			t.Logf("receiver: %v", err)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) answer(path string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status[path] = status
	r.hung[path] = false
}

func (r *receiver) hang(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hung[path] = true
}

// received is every call to path so far.
func (r *receiver) received(path string) []webhook.Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []webhook.Payload
	for _, c := range r.calls {
		if c.path == path {
			out = append(out, c.payload)
		}
	}
	return out
}

func (r *receiver) hook(name string, kind kultav1alpha1.WebhookType) kultav1alpha1.Webhook {
	return kultav1alpha1.Webhook{Name: name, Type: kind, URL: r.URL + "/" + name, Metadata: map[string]string{"team": "shop"}}
}

// webhookCanary creates the Services, the route and a canary Rollout with hooks, and waits for
// its first revision.
func webhookCanary(t *testing.T, e *testenv.Env, ns string, hooks ...kultav1alpha1.Webhook) *kultav1alpha1.Rollout {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "shop", "shop-stable", "shop-canary"))).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithHTTPRoute("shop"),
		testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseFor("1s"), testutil.Weight(100)), testutil.WithWebhooks(hooks...))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	return ro
}

// webhookRecord is the Rollout's status.webhooks entry of the webhook called name.
func webhookRecord(g Gomega, ro *kultav1alpha1.Rollout, name string) kultav1alpha1.WebhookStatus {
	for _, w := range getRollout(g, ro).Status.Webhooks {
		if w.Name == name {
			return w
		}
	}
	return kultav1alpha1.WebhookStatus{}
}

// rolloutEvents are the reasons and messages of the Events KULTA recorded on the Rollout.
func rolloutEvents(g Gomega, ns, name string) map[string]string {
	var list eventsv1.EventList
	g.Expect(env.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	out := map[string]string{}
	for _, ev := range list.Items {
		if ev.Regarding.Kind == "Rollout" && ev.Regarding.Name == name {
			out[ev.Reason] = ev.Note
		}
	}
	return out
}

func newRevisionReplicas(g Gomega, ns, image string) int32 {
	var n int32
	for _, rs := range replicaSets(g, ns) {
		if rs.Spec.Template.Spec.Containers[0].Image == image {
			n += ptr.Deref(rs.Spec.Replicas, 0)
		}
	}
	return n
}

// TestWebhookGatesHoldAndRelease drives a canary through every gate with a real receiver:
// confirm-rollout holds the new revision with no Pod and no traffic until it says yes;
// confirm-traffic-increase holds the weight; confirm-promotion holds a healthy canary at its
// last step; post-rollout is told of the completion. Each answer is in status.webhooks, each
// hold and release a decision and an Event, and every payload names the Rollout, revision,
// step and weights.
func TestWebhookGatesHoldAndRelease(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ns := e.CreateNamespace(t, "gates")
	rc := newReceiver(t)
	ro := webhookCanary(t, e, ns,
		rc.hook("ask", kultav1alpha1.WebhookConfirmRollout),
		rc.hook("more", kultav1alpha1.WebhookConfirmTrafficIncrease),
		rc.hook("promote", kultav1alpha1.WebhookConfirmPromotion),
		rc.hook("tell", kultav1alpha1.WebhookPostRollout))
	g.Expect(rc.received("/ask")).To(BeEmpty(), "the first revision is not gated")

	rc.answer("/ask", http.StatusServiceUnavailable)
	rc.answer("/more", http.StatusConflict)
	rc.answer("/promote", http.StatusForbidden)
	setImage(t, ro, "nginx:1.28")
	g.Eventually(func(g Gomega) {
		w := webhookRecord(g, ro, "ask")
		g.Expect(w.Result).To(Equal(kultav1alpha1.WebhookHeld))
		g.Expect(w.Message).To(ContainSubstring("HTTP 503"))
	}).WithTimeout(timeout).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(newRevisionReplicas(g, ns, "nginx:1.28")).To(BeZero(), "no Pod before confirm-rollout says yes")
		g.Expect(routeWeights(ns, "shop")()).To(Equal(providers.Weights{Stable: 100, Canary: 0}))
	}).WithTimeout(3 * time.Second).Should(Succeed())
	g.Expect(rolloutEvents(g, ns, "shop")).To(HaveKeyWithValue("ConfirmRolloutHeld", ContainSubstring("ask: HTTP 503")))

	rc.answer("/ask", http.StatusOK)
	g.Eventually(func(g Gomega) {
		w := webhookRecord(g, ro, "more")
		g.Expect(w.Result).To(Equal(kultav1alpha1.WebhookHeld))
		g.Expect(w.StepIndex).To(Equal(ptr.To[int32](0)))
		g.Expect(newRevisionReplicas(g, ns, "nginx:1.28")).To(Equal(int32(1)), "the Pods for 50%% are up, the weight waits")
	}).WithTimeout(gateTimeout).Should(Succeed())
	g.Expect(routeWeights(ns, "shop")()).To(Equal(providers.Weights{Stable: 100, Canary: 0}))

	rc.answer("/more", http.StatusNoContent)
	g.Eventually(func(g Gomega) {
		w := webhookRecord(g, ro, "promote")
		g.Expect(w.Result).To(Equal(kultav1alpha1.WebhookHeld))
		g.Expect(w.Message).To(ContainSubstring("HTTP 403"))
	}).WithTimeout(gateTimeout).Should(Succeed())
	g.Expect(routeWeights(ns, "shop")()).To(Equal(providers.Weights{Stable: 0, Canary: 100}), "a healthy canary at its last step")
	g.Expect(getRollout(g, ro).Status.Phase).To(Equal(kultav1alpha1.PhaseProgressing))
	g.Expect(rc.received("/tell")).To(BeEmpty())

	rc.answer("/promote", http.StatusOK)
	waitPhaseWithin(t, ro, kultav1alpha1.PhaseCompleted, gateTimeout)
	g.Eventually(func() []webhook.Payload { return rc.received("/tell") }).WithTimeout(timeout).Should(HaveLen(1))
	told := rc.received("/tell")[0]
	got := getRollout(g, ro)
	g.Expect(told.Outcome).To(Equal("Completed"))
	g.Expect(told.Revision).To(Equal(got.Status.StablePodTemplateHash))
	g.Expect(webhookRecord(g, ro, "tell")).To(And(
		HaveField("Result", kultav1alpha1.WebhookPassed), HaveField("Outcome", "Completed")))

	var reasons []string
	for _, d := range got.Status.Decisions {
		reasons = append(reasons, d.Reason)
	}
	g.Expect(reasons).To(ContainElements("ConfirmRolloutHeld", "ConfirmRolloutPassed", "ConfirmTrafficIncreaseHeld",
		"ConfirmTrafficIncreasePassed", "ConfirmPromotionHeld", "ConfirmPromotionPassed"))
	g.Expect(rolloutEvents(g, ns, "shop")).To(And(HaveKey("ConfirmPromotionPassed"), HaveKey("ConfirmTrafficIncreaseHeld")))

	// The payloads: the step a gate stands before, the split in place and the one it allows.
	increases := rc.received("/more")
	g.Expect(increases).NotTo(BeEmpty())
	first := increases[0]
	g.Expect(first).To(And(
		HaveField("Webhook", "more"), HaveField("Type", kultav1alpha1.WebhookConfirmTrafficIncrease),
		HaveField("Name", "shop"), HaveField("Namespace", ns), HaveField("Strategy", "canary"),
		HaveField("Revision", got.Status.StablePodTemplateHash), HaveField("Step", ptr.To[int32](0)), HaveField("Steps", 3),
		HaveField("Weights", webhook.Weights{Stable: 100, Canary: 0}), HaveField("NextWeights", &webhook.Weights{Stable: 50, Canary: 50}),
		HaveField("Metadata", map[string]string{"team": "shop"})))
	g.Expect(first.StableRevision).NotTo(BeEmpty())
	g.Expect(first.StableRevision).NotTo(Equal(first.Revision))
}

// waitPhaseWithin is waitPhase with a longer bound, for gates that recheck.
func waitPhaseWithin(t *testing.T, ro *kultav1alpha1.Rollout, phase kultav1alpha1.Phase, within time.Duration) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		got := getRollout(g, ro)
		g.Expect(got.Status.Phase).To(Equal(phase), "message: %s", got.Status.Message)
	}).WithTimeout(within).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// TestPreRolloutFailureRollsBack: a pre-rollout webhook that answers 500 once the canary's Pods
// are up rolls the revision back before any traffic reaches it; post-rollout is told Failed.
func TestPreRolloutFailureRollsBack(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ns := e.CreateNamespace(t, "prerollout")
	rc := newReceiver(t)
	ro := webhookCanary(t, e, ns, rc.hook("smoke", kultav1alpha1.WebhookPreRollout), rc.hook("tell", kultav1alpha1.WebhookPostRollout))
	rc.answer("/smoke", http.StatusInternalServerError)
	weights := rollouttest.WatchWeights(t, e, ns, "shop", "shop-stable", "shop-canary")
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhaseFailed, nil)
	got := getRollout(g, ro)
	g.Expect(meta(got, kultav1alpha1.ConditionStalled).Reason).To(Equal("PreRolloutFailed"))
	g.Expect(got.Status.Message).To(ContainSubstring("smoke: HTTP 500"))
	g.Expect(webhookRecord(g, ro, "smoke").Result).To(Equal(kultav1alpha1.WebhookFailed))
	g.Consistently(weights).WithTimeout(2*time.Second).Should(HaveEach(providers.Weights{Stable: 100, Canary: 0}), "no request reached the failed revision")
	g.Eventually(func() []webhook.Payload { return rc.received("/tell") }).WithTimeout(timeout).Should(ConsistOf(HaveField("Outcome", "Failed")))
	g.Expect(rc.received("/smoke")).To(HaveLen(1), "pre-rollout is called once")
}

// TestRollbackWebhookAbortsMidway: a rollback webhook answering 404 leaves the canary alone; the
// first 2xx rolls it back mid-way. Polling stops once it has failed.
func TestRollbackWebhookAbortsMidway(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ns := e.CreateNamespace(t, "rollbackhook")
	rc := newReceiver(t)
	g.Expect(e.Client.Create(context.Background(), service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(context.Background(), service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(context.Background(), rollouttest.Route(ns, "shop", "shop-stable", "shop-canary"))).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithHTTPRoute("shop"),
		testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted(), testutil.Weight(100)),
		testutil.WithWebhooks(rc.hook("stop", kultav1alpha1.WebhookRollback)))
	g.Expect(e.Client.Create(context.Background(), ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	rc.answer("/stop", http.StatusNotFound)
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	g.Eventually(func() int { return len(rc.received("/stop")) }).WithTimeout(gateTimeout).Should(BeNumerically(">=", 2), "polled while paused")
	g.Expect(getRollout(g, ro).Status.Phase).To(Equal(kultav1alpha1.PhasePaused))

	rc.answer("/stop", http.StatusOK)
	waitPhaseWithin(t, ro, kultav1alpha1.PhaseFailed, gateTimeout)
	got := getRollout(g, ro)
	g.Expect(meta(got, kultav1alpha1.ConditionStalled).Reason).To(Equal("RollbackWebhook"))
	g.Eventually(routeWeights(ns, "shop")).WithTimeout(timeout).Should(Equal(providers.Weights{Stable: 100, Canary: 0}))
	polls := len(rc.received("/stop"))
	g.Consistently(func() int { return len(rc.received("/stop")) }).WithTimeout(12*time.Second).Should(Equal(polls), "no poll once rolled back")
}

// TestRolloutWebhookFailuresCount: a rollout webhook (a load test) is called at every check of
// its interval; failures count as a failing metric, failureThreshold of them in a row fail the
// analysis and failurePolicy Rollback rolls back. A receiver that never answers fails by its
// timeout.
func TestRolloutWebhookFailuresCount(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ns := e.CreateNamespace(t, "loadtest")
	rc := newReceiver(t)
	load := rc.hook("load", kultav1alpha1.WebhookRollout)
	load.Interval = ptr.To[kultav1alpha1.Duration]("1s")
	load.Timeout = ptr.To[kultav1alpha1.Duration]("300ms")
	load.FailureThreshold = ptr.To[int32](3)
	ro := webhookCanary(t, e, ns, load)
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"strategy":{"canary":{"analysis":{"failurePolicy":"Rollback"},"steps":[{"setWeight":50},{"pause":{}},{"setWeight":100}]}}}}`))
	g.Expect(e.Client.Patch(context.Background(), ro.DeepCopy(), patch)).To(Succeed())

	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	g.Expect(len(rc.received("/load"))).To(BeNumerically(">=", 1), "the step's check called the load test")
	g.Expect(rc.received("/load")[0].Metadata).To(Equal(map[string]string{"team": "shop"}))

	rc.hang("/load")
	var seenInconclusive bool
	g.Eventually(func(g Gomega) {
		got := getRollout(g, ro)
		if a := got.Status.Analysis; a != nil && a.Verdict == kultav1alpha1.VerdictInconclusive {
			seenInconclusive = true
		}
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseFailed), "message: %s", got.Status.Message)
	}).WithTimeout(timeout).WithPolling(50 * time.Millisecond).Should(Succeed())
	got := getRollout(g, ro)
	g.Expect(seenInconclusive).To(BeTrue(), "fewer failures than failureThreshold leave the analysis inconclusive")
	g.Expect(got.Status.Message).To(ContainSubstring("rollout webhook load failed (3 of 3 in a row): no answer within 300ms"))
	var metric kultav1alpha1.MetricStatus
	for _, m := range got.Status.Analysis.Metrics {
		if m.Name == "webhook/load" {
			metric = m
		}
	}
	g.Expect(metric).To(And(HaveField("Verdict", kultav1alpha1.VerdictFail), HaveField("ConsecutiveFailures", int32(3))))
	g.Expect(webhookRecord(g, ro, "load").Result).To(Equal(kultav1alpha1.WebhookFailed))
}

// TestWebhookSecretsStaySecret: a webhook whose URL and token come from a Secret is called with
// them, and neither appears in the Rollout's status, its Events or the controller's metrics
// labels; a Secret that is missing holds the gate with a message naming the Secret and key.
func TestWebhookSecretsStaySecret(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "secrets")
	rc := newReceiver(t)
	const token = "s3cr3t-t0ken-do-not-leak"
	secretURL := rc.URL + "/promote?key=url-secret-part"
	g.Expect(e.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hooks"},
		StringData: map[string]string{"url": secretURL, "token": token}})).To(Succeed())
	gate := kultav1alpha1.Webhook{Name: "promote", Type: kultav1alpha1.WebhookConfirmPromotion,
		URLFrom: &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "url"}, TokenFrom: &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "token"}}
	missing := kultav1alpha1.Webhook{Name: "ask", Type: kultav1alpha1.WebhookConfirmRollout,
		URLFrom: &kultav1alpha1.SecretKeyRef{Name: "absent", Key: "url"}}
	ro := webhookCanary(t, e, ns, gate, missing)
	rc.answer("/promote", http.StatusUnauthorized)

	setImage(t, ro, "nginx:1.28")
	g.Eventually(func(g Gomega) {
		g.Expect(webhookRecord(g, ro, "ask").Message).To(ContainSubstring("urlFrom: reading Secret " + ns + "/absent"))
	}).WithTimeout(timeout).Should(Succeed())
	// The missing Secret arrives (with an address that is the receiver's): the gate opens.
	g.Expect(e.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "absent"},
		StringData: map[string]string{"url": rc.URL + "/ask"}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(webhookRecord(g, ro, "promote").Result).To(Equal(kultav1alpha1.WebhookHeld))
	}).WithTimeout(gateTimeout).Should(Succeed())

	var auth []string
	rc.mu.Lock()
	for _, c := range rc.calls {
		if c.path == "/promote" {
			auth = append(auth, c.auth)
		}
	}
	rc.mu.Unlock()
	g.Expect(auth).To(HaveEach("Bearer " + token))

	got := getRollout(g, ro)
	status, err := json.Marshal(got.Status)
	g.Expect(err).NotTo(HaveOccurred())
	var list eventsv1.EventList
	g.Expect(e.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	notes, err := json.Marshal(list.Items)
	g.Expect(err).NotTo(HaveOccurred())
	for _, secret := range []string{token, "url-secret-part"} {
		g.Expect(string(status)).NotTo(ContainSubstring(secret), "status")
		g.Expect(string(notes)).NotTo(ContainSubstring(secret), "Events")
	}
	g.Expect(strings.Contains(string(status), "HTTP 401")).To(BeTrue(), "the answer is recorded: %s", status)
	g.Expect(replicaSets(g, ns)).To(ContainElement(WithTransform(func(rs appsv1.ReplicaSet) string {
		return rs.Spec.Template.Spec.Containers[0].Image
	}, Equal("nginx:1.28"))))
}

// TestGateThatNeverAnswersHolds: a confirm-rollout webhook whose receiver never answers holds
// the new revision at its timeout, with no Pod; kulta.io/abort ends the hold at once.
func TestGateThatNeverAnswersHolds(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ns := e.CreateNamespace(t, "silentgate")
	rc := newReceiver(t)
	ask := rc.hook("ask", kultav1alpha1.WebhookConfirmRollout)
	ask.Timeout = ptr.To[kultav1alpha1.Duration]("200ms")
	ro := webhookCanary(t, e, ns, ask)
	rc.hang("/ask")
	setImage(t, ro, "nginx:1.28")
	g.Eventually(func(g Gomega) {
		w := webhookRecord(g, ro, "ask")
		g.Expect(w.Result).To(Equal(kultav1alpha1.WebhookHeld))
		g.Expect(w.Message).To(Equal("no answer within 200ms"))
	}).WithTimeout(timeout).Should(Succeed())
	g.Expect(newRevisionReplicas(g, ns, "nginx:1.28")).To(BeZero())
	g.Expect(getRollout(g, ro).Status.Message).To(ContainSubstring("Held: confirm-rollout webhooks did not say yes"))

	annotate(t, ro, kultav1alpha1.AbortAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhaseFailed, nil)
	g.Expect(meta(getRollout(g, ro), kultav1alpha1.ConditionStalled).Reason).To(Equal("Aborted"))
}
