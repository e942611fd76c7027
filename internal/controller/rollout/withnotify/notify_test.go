package withnotify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/events/notify"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}

const timeout = 30 * time.Second

// receiver is a loopback endpoint that keeps every body it accepts; it answers status (200
// when zero) and keeps nothing while it does not answer 2xx.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	bodies [][]byte
	auth   []string
	calls  int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		r.mu.Lock()
		r.calls++
		status := r.status
		if status == 0 {
			status = http.StatusOK
		}
		if err == nil && status < 300 {
			r.bodies = append(r.bodies, body)
			r.auth = append(r.auth, req.Header.Get("Authorization"))
		}
		r.mu.Unlock()
		// An answer that echoes what it got, as a careless receiver would.
		w.WriteHeader(status)
		if _, err := io.WriteString(w, req.URL.String()+" "+req.Header.Get("Authorization")); err != nil {
			t.Logf("receiver: %v", err)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) answer(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

// texts are the Slack messages received.
func (r *receiver) texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.bodies {
		var m struct {
			Text string `json:"text"`
		}
		if json.Unmarshal(b, &m) == nil {
			out = append(out, m.Text)
		}
	}
	return out
}

// cards are the Adaptive Cards of the Teams messages received: their text and facts.
func (r *receiver) cards() []teamsCard {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []teamsCard
	for _, b := range r.bodies {
		var m struct {
			Type        string `json:"type"`
			Attachments []struct {
				ContentType string `json:"contentType"`
				Content     struct {
					Type string `json:"type"`
					Body []struct {
						Type  string `json:"type"`
						Text  string `json:"text"`
						Facts []struct {
							Title string `json:"title"`
							Value string `json:"value"`
						} `json:"facts"`
					} `json:"body"`
				} `json:"content"`
			} `json:"attachments"`
		}
		if json.Unmarshal(b, &m) != nil || m.Type != "message" || len(m.Attachments) != 1 ||
			m.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" || m.Attachments[0].Content.Type != "AdaptiveCard" {
			out = append(out, teamsCard{Text: "not a Teams message: " + string(b)})
			continue
		}
		card := teamsCard{Facts: map[string]string{}}
		for _, el := range m.Attachments[0].Content.Body {
			switch el.Type {
			case "TextBlock":
				card.Text = el.Text
			case "FactSet":
				for _, f := range el.Facts {
					card.Facts[f.Title] = f.Value
				}
			}
		}
		out = append(out, card)
	}
	return out
}

type teamsCard struct {
	Text  string
	Facts map[string]string
}

// messages are the generic messages received, by trigger.
func (r *receiver) messages() []notify.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []notify.Message
	for _, b := range r.bodies {
		var m notify.Message
		if json.Unmarshal(b, &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func triggers(ms []notify.Message) []notify.Trigger {
	var out []notify.Trigger
	for _, m := range ms {
		out = append(out, m.Trigger)
	}
	return out
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// start runs a controller with a notifier of cfgText until the returned stop is called.
func start(t *testing.T, e *testenv.Env, cfgText string, opts notify.Options) (stop func()) {
	t.Helper()
	path := writeFile(t, t.TempDir(), "notifications.yaml", cfgText)
	cfg, err := notify.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	n := notify.New(cfg, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Start(ctx) }()
	m, err := rollouttest.Start(ctx, e, rollouttest.WithNotifications(n))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		if err := m.Stop(); err != nil {
			t.Error(err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func setup(t *testing.T, e *testenv.Env, ns string, annotations map[string]string) *kultav1alpha1.Rollout {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	for _, svc := range []string{"shop-stable", "shop-canary"} {
		g.Expect(e.Client.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "shop"}, Ports: []corev1.ServicePort{{Port: 80}}}})).To(Succeed())
	}
	ro := testutil.Rollout(ns, "shop", testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted(), testutil.Weight(100)))
	ro.Annotations = annotations
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	return ro
}

func getRollout(g Gomega, ro *kultav1alpha1.Rollout) *kultav1alpha1.Rollout {
	out := &kultav1alpha1.Rollout{}
	g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(ro), out)).To(Succeed())
	return out
}

func patch(t *testing.T, ro *kultav1alpha1.Rollout, kind types.PatchType, body string) {
	t.Helper()
	if err := env.Client.Patch(context.Background(), ro.DeepCopy(), client.RawPatch(kind, []byte(body))); err != nil {
		t.Fatal(err)
	}
}

func waitPhase(t *testing.T, ro *kultav1alpha1.Rollout, phase kultav1alpha1.Phase) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) kultav1alpha1.Phase { return getRollout(g, ro).Status.Phase }).WithTimeout(timeout).Should(Equal(phase))
}

// endOfDecisions is the cursor past all of the Rollout's decisions: the last one's time and
// how many share it.
func endOfDecisions(g Gomega, ro *kultav1alpha1.Rollout) kultav1alpha1.NotificationCursor {
	d := getRollout(g, ro).Status.Decisions
	g.Expect(d).NotTo(BeEmpty())
	last := d[len(d)-1].Timestamp
	var n int32
	for _, x := range d {
		if x.Timestamp.Equal(&last) {
			n++
		}
	}
	return kultav1alpha1.NotificationCursor{Time: last, Count: n}
}

// notifiedToTheEnd checks that status.notifiedThrough is past every decision.
func notifiedToTheEnd(g Gomega, ro *kultav1alpha1.Rollout) {
	through := getRollout(g, ro).Status.NotifiedThrough
	g.Expect(through).NotTo(BeNil())
	want := endOfDecisions(g, ro)
	g.Expect(through.Time.Time).To(BeTemporally("==", want.Time.Time))
	g.Expect(through.Count).To(Equal(want.Count))
}

// TestNotificationsFollowTheRollout: a Rollout subscribed to a Slack service and a generic
// webhook service (which wants only rollbacks and completions, and the Rollout's notify-on
// allows all) is notified as its canary starts, steps, pauses and completes; an unsubscribed
// Rollout is not; status.notifiedThrough follows the delivered decisions.
func TestNotificationsFollowTheRollout(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	slack, generic, teams := newReceiver(t), newReceiver(t), newReceiver(t)
	start(t, e, `services:
- name: team-slack
  type: slack
  url: `+slack.URL+`/services/T000/B000/XXXX
- name: ops-teams
  type: teams
  url: `+teams.URL+`/workflows/abc
  triggers: [paused]
- name: audit
  type: webhook
  url: `+generic.URL+`/audit
  triggers: [rolled-back, completed]
  template: "{{.Namespace}}/{{.Name}} {{.Trigger}} at {{.Weights.Canary}}%"
`, notify.Options{})
	ns := e.CreateNamespace(t, "notify")
	ro := setup(t, e, ns, map[string]string{kultav1alpha1.NotifyAnnotation: "team-slack, audit,ops-teams"})
	quiet := testutil.Rollout(ns, "quiet", testutil.WithCanarySteps(testutil.Weight(50)))
	g.Expect(e.Client.Create(context.Background(), quiet)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted)

	patch(t, ro, types.JSONPatchType, `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`)
	NewWithT(t).Eventually(func(g Gomega) { g.Expect(getRollout(g, ro).Status.Phase).To(Equal(kultav1alpha1.PhasePaused)) }).WithTimeout(timeout).Should(Succeed())
	patch(t, ro, types.MergePatchType, `{"metadata":{"annotations":{"kulta.io/promote":"true"}}}`)
	g.Eventually(func(g Gomega) {
		got := getRollout(g, ro)
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(got.Status.CurrentPodTemplateHash))
	}).WithTimeout(timeout).Should(Succeed())

	g.Eventually(slack.texts).WithTimeout(timeout).Should(ContainElements(
		HavePrefix("["+ns+"/shop] revision"),
		ContainSubstring("started rolling out"), ContainSubstring("at 50% of the traffic"), ContainSubstring("paused"), ContainSubstring("is stable")))
	g.Eventually(teams.cards).WithTimeout(timeout).Should(ConsistOf(And(
		HaveField("Text", And(HavePrefix("["+ns+"/shop] revision"), ContainSubstring("paused"))),
		HaveField("Facts", And(HaveKeyWithValue("Rollout", ns+"/shop"), HaveKeyWithValue("Phase", "Paused"),
			HaveKeyWithValue("Traffic", "50% new, 50% stable"), HaveKeyWithValue("Step", "1 of 3"))))),
		"the Teams service wants pauses only: one Adaptive Card")
	g.Eventually(func() []notify.Trigger { return triggers(generic.messages()) }).WithTimeout(timeout).Should(Equal([]notify.Trigger{notify.Completed, notify.Completed}),
		"the first revision's completion and the second's; nothing else")
	last := generic.messages()[1]
	g.Expect(last).To(And(HaveField("Name", "shop"), HaveField("Namespace", ns), HaveField("Strategy", "canary"), HaveField("Phase", "Completed"),
		HaveField("Text", ns+"/shop completed at 100%")))
	g.Eventually(func(g Gomega) { notifiedToTheEnd(g, ro) }).WithTimeout(timeout).Should(Succeed())
	g.Expect(getRollout(g, quiet).Status.NotifiedThrough).To(BeNil(), "a Rollout that subscribes to nothing keeps no cursor")
	for _, text := range slack.texts() {
		g.Expect(text).NotTo(ContainSubstring("quiet"))
	}
}

// TestNotificationsSurviveARestart: while the receiver fails, the controller stops; a new
// controller (a new process's notifier) sends what was not delivered: every transition reaches
// the receiver at least once, and the cursor then passes them.
func TestNotificationsSurviveARestart(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	hook := newReceiver(t)
	cfg := `services:
- name: audit
  type: webhook
  url: ` + hook.URL + `/audit
`
	fast := notify.Options{BackoffBase: 200 * time.Millisecond, BackoffMax: time.Second, MaxAttempts: 100}
	stop := start(t, e, cfg, fast)
	ns := e.CreateNamespace(t, "restart")
	ro := setup(t, e, ns, map[string]string{kultav1alpha1.NotifyAnnotation: "audit", kultav1alpha1.NotifyOnAnnotation: "started,step-advanced,paused,completed"})
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted)
	g.Eventually(func() []notify.Trigger { return triggers(hook.messages()) }).WithTimeout(timeout).Should(Equal([]notify.Trigger{notify.Started, notify.Completed}))
	g.Eventually(func(g Gomega) { notifiedToTheEnd(g, ro) }).WithTimeout(timeout).Should(Succeed())

	hook.answer(http.StatusServiceUnavailable)
	patch(t, ro, types.JSONPatchType, `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`)
	waitPhase(t, ro, kultav1alpha1.PhasePaused)
	g.Eventually(func() int {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return hook.calls
	}).WithTimeout(timeout).Should(BeNumerically(">=", 4), "delivery is being retried")
	cursor := getRollout(g, ro).Status.NotifiedThrough
	stop()
	g.Expect(getRollout(g, ro).Status.NotifiedThrough).To(Equal(cursor), "nothing undelivered was marked done")
	g.Expect(*cursor).NotTo(Equal(endOfDecisions(g, ro)), "the undelivered decisions are after the cursor")

	hook.answer(http.StatusOK)
	start(t, e, cfg, fast)
	patch(t, ro, types.MergePatchType, `{"metadata":{"annotations":{"kulta.io/promote":"true"}}}`)
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted)
	g.Eventually(func() []notify.Trigger { return triggers(hook.messages()) }).WithTimeout(timeout).Should(Equal([]notify.Trigger{
		notify.Started, notify.Completed, notify.Started, notify.StepAdvanced, notify.Paused, notify.StepAdvanced, notify.StepAdvanced, notify.Completed,
	}), "each transition once, in order, those of before the restart included")
	g.Eventually(func(g Gomega) { notifiedToTheEnd(g, ro) }).WithTimeout(timeout).Should(Succeed())
}

// TestNotificationSecretsStaySecret: a service whose URL (with its secret path) and token come
// from files (a mounted Secret) is called with them; when it fails, neither shows in the
// controller's log, the Rollout's status, its Events or the metrics' labels.
func TestNotificationSecretsStaySecret(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	hook := newReceiver(t)
	const token = "tok-8f2c-never-print-me"
	const secretPath = "/hooks/T0SECRETPATH"
	dir := t.TempDir()
	urlFile := writeFile(t, dir, "url", hook.URL+secretPath+"?sig=QUERYSECRET\n")
	tokenFile := writeFile(t, dir, "token", token+"\n")
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := funcr.New(func(prefix, args string) {
		logMu.Lock()
		defer logMu.Unlock()
		logs.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: 10})
	start(t, e, `services:
- name: ops
  type: webhook
  urlFile: `+urlFile+`
  tokenFile: `+tokenFile+`
`, notify.Options{Logger: logger, BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond, MaxAttempts: 2})
	ns := e.CreateNamespace(t, "secrets")
	ro := setup(t, e, ns, map[string]string{kultav1alpha1.NotifyAnnotation: "ops"})
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted)
	g.Eventually(func() []string {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return hook.auth
	}).WithTimeout(timeout).Should(ContainElement("Bearer " + token))

	hook.answer(http.StatusInternalServerError)
	patch(t, ro, types.JSONPatchType, `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`)
	waitPhase(t, ro, kultav1alpha1.PhasePaused)
	g.Eventually(func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.String()
	}).WithTimeout(timeout).Should(ContainSubstring("Notification not delivered"))

	got := getRollout(g, ro)
	status, err := json.Marshal(got.Status)
	g.Expect(err).NotTo(HaveOccurred())
	var list eventsv1.EventList
	g.Expect(e.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	events, err := json.Marshal(list.Items)
	g.Expect(err).NotTo(HaveOccurred())
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var labels strings.Builder
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels.WriteString(l.GetValue() + "\n")
			}
		}
	}
	logMu.Lock()
	logged := logs.String()
	logMu.Unlock()
	for name, out := range map[string]string{"log": logged, "status": string(status), "Events": string(events), "metric labels": labels.String()} {
		for _, secret := range []string{token, "T0SECRETPATH", "QUERYSECRET"} {
			g.Expect(out).NotTo(ContainSubstring(secret), "%s shows a secret", name)
		}
	}
	g.Expect(logged).To(ContainSubstring("HTTP 500"), "the failure itself is logged")
	g.Expect(ptr.Deref(got.Status.CurrentStepIndex, -1)).To(Equal(int32(1)), "a failing service never holds the rollout")
}
