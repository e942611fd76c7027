package withevents_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/events"
	"github.com/false-systems/kulta/internal/events/cdevents"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}

// receiver is a CloudEvents HTTP endpoint recording the CDEvent types per source (Rollout).
type receiver struct {
	mu    sync.Mutex
	types map[string][]string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	typ, source := req.Header.Get("Ce-Type"), req.Header.Get("Ce-Source")
	if typ == "" || source == "" {
		http.Error(w, "not a binary-mode CloudEvent", http.StatusBadRequest)
		return
	}
	// dev.cdevents.service.deployed.0.3.0 -> service.deployed
	short := strings.TrimPrefix(typ, "dev.cdevents.")
	if i := strings.LastIndex(short, ".0."); i > 0 {
		short = short[:i]
	}
	r.mu.Lock()
	r.types[source] = append(r.types[source], short)
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (r *receiver) of(ns, name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.types[events.RolloutURI(ns, name)]...)
}

// TestCDEventsFollowTheRollout drives one canary to completion and another to a rollback with
// the reconciler sending CDEvents to a real HTTP receiver, and checks the ordered event types.
func TestCDEventsFollowTheRollout(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &receiver{types: map[string][]string{}}
	server := httptest.NewServer(rec)
	defer server.Close()
	sender, err := cdevents.New(cdevents.Options{URL: server.URL})
	g.Expect(err).NotTo(HaveOccurred())
	go func() {
		if err := sender.Start(ctx); err != nil {
			t.Errorf("CDEvents sender: %v", err)
		}
	}()
	mgr, err := rollouttest.Start(ctx, e, rollouttest.WithEvents(sender))
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { g.Expect(mgr.Stop()).To(Succeed()) }()

	ns := e.CreateNamespace(t, "cdevents")
	for _, name := range []string{"done", "back"} {
		for _, svc := range []string{name + "-stable", name + "-canary"} {
			g.Expect(e.Client.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80}}}})).To(Succeed())
		}
		ro := testutil.Rollout(ns, name, testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted()))
		g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	}
	rollouttest.DriveToCompletionAndRollback(g, e.Client, ns, "done", "back", 30*time.Second)

	g.Eventually(func() []string { return rec.of(ns, "done") }).WithTimeout(30 * time.Second).Should(Equal([]string{
		"service.deployed", "service.published", // the first revision
		"service.deployed", "service.upgraded", "service.upgraded", "service.published",
	}))
	g.Eventually(func() []string { return rec.of(ns, "back") }).WithTimeout(30 * time.Second).Should(Equal([]string{
		"service.deployed", "service.published",
		"service.deployed", "service.upgraded", "service.rolledback",
	}))
	g.Expect(sender.Stats().Dropped).To(BeZero())
}
