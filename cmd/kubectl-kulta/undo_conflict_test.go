package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

// editBeforeFirstPatch changes the Rollout on the API server just before the plugin's first
// PATCH of it goes out, as the controller's status writes do all the time, so that the real
// API server answers that PATCH with a conflict.
type editBeforeFirstPatch struct {
	next http.RoundTripper
	edit func() error

	mu     sync.Mutex
	edited bool
	err    error
}

func (e *editBeforeFirstPatch) RoundTrip(req *http.Request) (*http.Response, error) {
	e.mu.Lock()
	if req.Method == http.MethodPatch && strings.Contains(req.URL.Path, "/rollouts/") && !e.edited {
		e.edited = true
		e.err = e.edit()
	}
	e.mu.Unlock()
	resp, err := e.next.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("round trip: %w", err)
	}
	return resp, nil
}

// TestUndoRetriesOnConflict: undo writes the template with the resourceVersion it read; when
// the Rollout changed in between, it reads it again and retries instead of failing, and keeps
// the other change.
func TestUndoRetriesOnConflict(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ns, ro := setup(t, "cart", testutil.WithCanarySteps(testutil.Weight(100)))
	first := rollout(g, ro).Status.StablePodTemplateHash
	setImage(t, ro, "nginx:1.28")
	g.Eventually(func(g Gomega) {
		got := rollout(g, ro)
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(got.Status.StablePodTemplateHash).NotTo(Equal(first))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	editor := &editBeforeFirstPatch{edit: func() error {
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"team":"checkout"}}}`))
		return e.Client.Patch(context.Background(), ro.DeepCopy(), patch)
	}}
	cfg := rest.CopyConfig(e.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		editor.next = rt
		return editor
	})
	var out bytes.Buffer
	a := &app{flags: genericclioptions.NewConfigFlags(true), out: &out, config: cfg}
	a.flags.Namespace = &ns
	cmd := a.undoCommand()
	cmd.SetArgs([]string{"cart"})
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	g.Expect(cmd.ExecuteContext(context.Background())).To(Succeed(), out.String())
	g.Expect(editor.edited).To(BeTrue(), "the plugin never patched the Rollout")
	g.Expect(editor.err).NotTo(HaveOccurred())
	g.Expect(out.String()).To(ContainSubstring("rolled back to revision 1"))

	got := rollout(g, ro)
	g.Expect(got.Spec.Template.Spec.Containers[0].Image).To(Equal("nginx:1.27"))
	g.Expect(got.Annotations).To(HaveKeyWithValue("team", "checkout"), "the concurrent change is kept")
}
