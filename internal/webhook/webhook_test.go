package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/metrics"
	kultascheme "github.com/false-systems/kulta/internal/scheme"
	"github.com/false-systems/kulta/internal/webhook"
)

const ns = "shop"

// newCaller returns a Caller whose Secret reader is a fake client holding objs.
func newCaller(t *testing.T, objs ...client.Object) *webhook.Caller {
	t.Helper()
	s, err := kultascheme.New()
	if err != nil {
		t.Fatal(err)
	}
	return &webhook.Caller{Secrets: fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()}
}

// secret is a Secret named name in the test namespace.
func secret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// serve starts a loopback receiver that the test closes when it ends.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// hook is a confirm-promotion webhook calling url.
func hook(url string) kultav1alpha1.Webhook {
	return kultav1alpha1.Webhook{Name: "promote", Type: kultav1alpha1.WebhookConfirmPromotion, URL: url}
}

// call calls h and fails the test if the call does not return within 5s.
func call(t *testing.T, c *webhook.Caller, h kultav1alpha1.Webhook) webhook.Answer {
	t.Helper()
	done := make(chan webhook.Answer, 1)
	go func() { done <- c.Call(context.Background(), ns, h, webhook.Payload{Name: "web", Namespace: ns}) }()
	select {
	case a := <-done:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not return within 5s")
		return webhook.Answer{}
	}
}

// TestCallSendsThePayload: a 2xx answer passes, and the receiver gets a JSON POST carrying
// every field of the payload under its documented name.
func TestCallSendsThePayload(t *testing.T) {
	type received struct {
		method, contentType, userAgent string
		body                           []byte
	}
	got := make(chan received, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{r.Method, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), body}
		_, _ = io.WriteString(w, "ok, promoted")
	})
	step := int32(2)
	sent := webhook.Payload{
		Webhook: "promote", Type: kultav1alpha1.WebhookConfirmPromotion,
		Name: "web", Namespace: ns, Strategy: "canary", Phase: "Progressing",
		Revision: "abc123", StableRevision: "def456", Step: &step, Steps: 4,
		Weights: webhook.Weights{Stable: 80, Canary: 20}, NextWeights: &webhook.Weights{Stable: 50, Canary: 50},
		Outcome: "Completed", Metadata: map[string]string{"team": "payments"},
		Timestamp: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}

	a := newCaller(t).Call(context.Background(), ns, hook(srv.URL), sent)
	if a.Result != webhook.Passed || !a.OK() || a.Code != http.StatusOK || a.Message != "HTTP 200: ok, promoted" {
		t.Errorf("answer = %+v, want passed, 200, %q", a, "HTTP 200: ok, promoted")
	}
	r := <-got
	if r.method != http.MethodPost || r.contentType != "application/json" || r.userAgent != "kulta-controller" {
		t.Errorf("request: method %q, Content-Type %q, User-Agent %q", r.method, r.contentType, r.userAgent)
	}
	var decoded webhook.Payload
	if err := json.Unmarshal(r.body, &decoded); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if !reflect.DeepEqual(decoded, sent) {
		t.Errorf("payload received = %+v, want %+v", decoded, sent)
	}
	// The field names are the receivers' contract: check them on the wire too.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &fields); err != nil {
		t.Fatal(err)
	}
	want := []string{"webhook", "type", "name", "namespace", "strategy", "phase", "revision", "stableRevision",
		"step", "steps", "weights", "nextWeights", "outcome", "metadata", "timestamp"}
	for _, k := range want {
		if _, ok := fields[k]; !ok {
			t.Errorf("body %s has no field %q", r.body, k)
		}
	}
}

// TestCallClassifiesTheStatus: 2xx passes, any other status is a rejection quoting the body.
func TestCallClassifiesTheStatus(t *testing.T) {
	for _, tc := range []struct {
		code    int
		body    string
		result  webhook.Result
		message string
	}{
		{http.StatusOK, "fine", webhook.Passed, "HTTP 200: fine"},
		{http.StatusNoContent, "", webhook.Passed, "HTTP 204"},
		{http.StatusServiceUnavailable, "not yet", webhook.Rejected, "HTTP 503: not yet"},
		{http.StatusForbidden, "  no\n", webhook.Rejected, "HTTP 403: no"},
	} {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.code)
				_, _ = io.WriteString(w, tc.body)
			})
			a := call(t, newCaller(t), hook(srv.URL))
			if a.Result != tc.result || a.Code != tc.code || a.Message != tc.message {
				t.Errorf("answer = %+v, want %s, %d, %q", a, tc.result, tc.code, tc.message)
			}
		})
	}
}

// TestCallWithoutAnAnswer: a receiver that never answers is unanswered at the hook's timeout,
// and one that is not there is unanswered with no URL or address in the message.
func TestCallWithoutAnAnswer(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := serve(t, func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		t.Cleanup(func() { close(release) }) // runs before srv.Close
		h := hook(srv.URL)
		h.Timeout = new(kultav1alpha1.Duration("200ms"))
		a := call(t, newCaller(t), h)
		if a.Result != webhook.Unanswered || a.Code != 0 || a.Message != "no answer within 200ms" {
			t.Errorf("answer = %+v, want unanswered, %q", a, "no answer within 200ms")
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		gone := httptest.NewServer(http.NotFoundHandler())
		gone.Close()
		url := gone.URL + "/hook"
		a := call(t, newCaller(t), hook(url))
		hostPort := strings.TrimPrefix(gone.URL, "http://")
		if a.Result != webhook.Unanswered || a.Code != 0 || !strings.HasPrefix(a.Message, "no answer: ") ||
			strings.Contains(a.Message, hostPort) || strings.Contains(a.Message, "/hook") {
			t.Errorf("answer = %+v, want unanswered naming neither %s nor its path", a, hostPort)
		}
	})
}

// TestCallFollowsFewRedirects: at most MaxRedirects redirects are followed, only to http or
// https.
func TestCallFollowsFewRedirects(t *testing.T) {
	var loops atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		loops.Add(1)
		http.Redirect(w, r, "/loop", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/ftp", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ftp://files.example.com/hook", http.StatusFound)
	})
	mux.HandleFunc("/once", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := serve(t, mux.ServeHTTP)
	c := newCaller(t)

	for _, tc := range []struct {
		path    string
		result  webhook.Result
		message string
	}{
		{"/loop", webhook.Unanswered, "redirects"},
		{"/ftp", webhook.Unanswered, "only http and https"},
		{"/once", webhook.Passed, "HTTP 200: ok"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			a := call(t, c, hook(srv.URL+tc.path))
			if a.Result != tc.result || !strings.Contains(a.Message, tc.message) {
				t.Errorf("answer = %+v, want %s with %q", a, tc.result, tc.message)
			}
		})
	}
	// The first request and MaxRedirects redirects, no more.
	if n := loops.Load(); n != webhook.MaxRedirects+1 {
		t.Errorf("the loop was requested %d times, want %d", n, webhook.MaxRedirects+1)
	}
}

// TestCallQuotesABoundedBody: however long or odd the body, the message quotes at most about
// 200 bytes of it, printable, valid UTF-8 and on one line.
func TestCallQuotesABoundedBody(t *testing.T) {
	const prefix = "HTTP 200: "
	t.Run("10 MiB", func(t *testing.T) {
		srv := serve(t, func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ready\n\x00\x07")
			chunk := strings.Repeat("é", 512) // two bytes each, so a cut may fall inside one
			for range 10 << 10 {              // 10 MiB
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
		})
		a := call(t, newCaller(t), hook(srv.URL))
		m := a.Message
		if a.Result != webhook.Passed || !strings.HasPrefix(m, prefix+"ready é") || !strings.HasSuffix(m, "…") {
			t.Errorf("answer = %s %d, message %q", a.Result, a.Code, m)
		}
		if limit := len(prefix) + 200 + len("…"); len(m) > limit {
			t.Errorf("message of %d bytes, want at most %d", len(m), limit)
		}
		if !utf8.ValidString(m) || strings.IndexFunc(m, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			t.Errorf("message %q is not valid, printable text", m)
		}
	})
	t.Run("control characters", func(t *testing.T) {
		srv := serve(t, func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "line one\nline\ttwo\r\n\x00\x07\x1b[0m end\n")
		})
		if a := call(t, newCaller(t), hook(srv.URL)); a.Message != prefix+"line one line two  [0m end" {
			t.Errorf("message = %q", a.Message)
		}
	})
}

// TestURLFromASecret: the URL is read from a Secret of the Rollout's namespace, trimmed.
func TestURLFromASecret(t *testing.T) {
	paths := make(chan string, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		w.WriteHeader(http.StatusAccepted)
	})
	h := hook("")
	h.URLFrom = &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "url"}
	a := call(t, newCaller(t, secret("hooks", map[string]string{"url": srv.URL + "/from-secret\n"})), h)
	if a.Result != webhook.Passed || a.Code != http.StatusAccepted {
		t.Fatalf("answer = %+v, want passed", a)
	}
	if p := <-paths; p != "/from-secret" {
		t.Errorf("receiver called at %q, want /from-secret", p)
	}
}

// TestMisconfiguredSecrets: a Secret or key that is not there, or a URL that is not http or
// https, is misconfigured; the message names the field, Secret and key, never a value, and no
// request is sent.
func TestMisconfiguredSecrets(t *testing.T) {
	var hits atomic.Int32
	srv := serve(t, func(http.ResponseWriter, *http.Request) { hits.Add(1) })
	urlRef := &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "url"}
	tokenRef := &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "token"}
	elsewhere := secret("hooks", map[string]string{"url": srv.URL})
	elsewhere.Namespace = "other"

	for _, tc := range []struct {
		name          string
		objs          []client.Object
		urlFrom       *kultav1alpha1.SecretKeyRef
		tokenFrom     *kultav1alpha1.SecretKeyRef
		want, secrets []string // in the message, never in it
	}{
		{"no Secret", nil, urlRef, nil,
			[]string{"urlFrom", "Secret " + ns + "/hooks"}, nil},
		{"Secret in another namespace", []client.Object{elsewhere}, urlRef, nil,
			[]string{"urlFrom", "Secret " + ns + "/hooks"}, []string{srv.URL}},
		{"no URL key", []client.Object{secret("hooks", map[string]string{"other": srv.URL})}, urlRef, nil,
			[]string{"urlFrom", "Secret " + ns + "/hooks", "no key url"}, []string{srv.URL}},
		{"no token key", []client.Object{secret("hooks", map[string]string{"url": srv.URL + "/?k=SECRET"})}, urlRef, tokenRef,
			[]string{"tokenFrom", "Secret " + ns + "/hooks", "no key token"}, []string{"SECRET", srv.URL}},
		{"ftp URL", []client.Object{secret("hooks", map[string]string{"url": "ftp://x/y?token=SECRET"})}, urlRef, nil,
			[]string{"urlFrom", "Secret hooks", "key url"}, []string{"SECRET", "ftp"}},
		{"URL without a host", []client.Object{secret("hooks", map[string]string{"url": "http:///SECRET"})}, urlRef, nil,
			[]string{"urlFrom", "Secret hooks", "key url"}, []string{"SECRET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hook("")
			h.URLFrom, h.TokenFrom = tc.urlFrom, tc.tokenFrom
			a := call(t, newCaller(t, tc.objs...), h)
			if a.Result != webhook.Misconfigured || a.Code != 0 {
				t.Errorf("answer = %+v, want misconfigured", a)
			}
			for _, w := range tc.want {
				if !strings.Contains(a.Message, w) {
					t.Errorf("message %q does not name %q", a.Message, w)
				}
			}
			for _, s := range tc.secrets {
				if strings.Contains(a.Message, s) {
					t.Errorf("message %q shows %q", a.Message, s)
				}
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the receiver was called %d times, want 0", n)
	}
}

// TestTokenFromASecret: the token is sent as a bearer token, and neither it nor the secret URL
// shows in the message when the receiver echoes them.
func TestTokenFromASecret(t *testing.T) {
	const token = "tok-0123456789abcdef0123456789abcdef"
	const querySecret = "QUERYSECRET42"
	auths := make(chan string, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		auths <- r.Header.Get("Authorization")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "refused "+r.Header.Get("Authorization")+" at http://"+r.Host+r.URL.RequestURI())
	})
	secretURL := srv.URL + "/hook?token=" + querySecret
	h := hook("")
	h.URLFrom = &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "url"}
	h.TokenFrom = &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "token"}
	c := newCaller(t, secret("hooks", map[string]string{"url": secretURL, "token": token + "\n"}))

	a := call(t, c, h)
	if got := <-auths; got != "Bearer "+token {
		t.Errorf("Authorization = %q, want the bearer token", got)
	}
	want := "HTTP 500: refused Bearer [redacted] at [redacted]"
	if a.Result != webhook.Rejected || a.Code != http.StatusInternalServerError || a.Message != want {
		t.Errorf("answer = %+v, want rejected, 500, %q", a, want)
	}
	for _, s := range []string{token, secretURL, querySecret} {
		if strings.Contains(a.Message, s) {
			t.Errorf("message %q shows %q", a.Message, s)
		}
	}
}

// TestPartsOfSecretsAreRedacted: a receiver that echoes only a part of a secret (the path and
// query of the URL, or a token the quote cuts) must not get it into the message either.
func TestPartsOfSecretsAreRedacted(t *testing.T) {
	const token = "tok-0123456789abcdef0123456789abcdef"
	const querySecret = "QUERYSECRET42"
	for _, tc := range []struct {
		name string
		echo func(r *http.Request) string
	}{
		{"path and query", func(r *http.Request) string { return "no hook at " + r.URL.RequestURI() }},
		{"token cut by the quote", func(r *http.Request) string {
			return strings.Repeat("x", 185) + r.Header.Get("Authorization")[len("Bearer "):]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, tc.echo(r))
			})
			h := hook("")
			h.URLFrom = &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "url"}
			h.TokenFrom = &kultav1alpha1.SecretKeyRef{Name: "hooks", Key: "token"}
			c := newCaller(t, secret("hooks", map[string]string{"url": srv.URL + "/hook?token=" + querySecret, "token": token}))
			a := call(t, c, h)
			if a.Result != webhook.Rejected || strings.Contains(a.Message, querySecret) || strings.Contains(a.Message, token[:8]) {
				t.Errorf("answer = %+v shows a part of a secret", a)
			}
		})
	}
}

// TestTimeout: unset or invalid timeouts are the default, and none exceeds MaxTimeout.
func TestTimeout(t *testing.T) {
	for _, tc := range []struct {
		timeout string // "" for none
		want    time.Duration
	}{
		{"", webhook.DefaultTimeout},
		{"30s", 30 * time.Second},
		{"1500ms", 1500 * time.Millisecond},
		{"5m", webhook.MaxTimeout},
		{"1h", webhook.MaxTimeout},
		{"0s", webhook.DefaultTimeout},
		{"soon", webhook.DefaultTimeout},
	} {
		h := hook("http://example.com")
		if tc.timeout != "" {
			h.Timeout = new(kultav1alpha1.Duration(tc.timeout))
		}
		if got := webhook.Timeout(h); got != tc.want {
			t.Errorf("Timeout(%q) = %s, want %s", tc.timeout, got, tc.want)
		}
	}
	if webhook.DefaultTimeout != 10*time.Second {
		t.Errorf("DefaultTimeout = %s, want 10s", webhook.DefaultTimeout)
	}
}

// TestCallsAreCounted: each call adds one to kulta_webhook_calls_total for its type and result.
func TestCallsAreCounted(t *testing.T) {
	ok := serve(t, func(http.ResponseWriter, *http.Request) {})
	no := serve(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusConflict) })
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	for _, tc := range []struct {
		url    string
		typ    kultav1alpha1.WebhookType
		result webhook.Result
	}{
		{ok.URL, kultav1alpha1.WebhookPreRollout, webhook.Passed},
		{no.URL, kultav1alpha1.WebhookConfirmRollout, webhook.Rejected},
		{gone.URL, kultav1alpha1.WebhookRollout, webhook.Unanswered},
		{"ftp://example.com", kultav1alpha1.WebhookRollback, webhook.Misconfigured},
	} {
		t.Run(string(tc.result), func(t *testing.T) {
			results := []webhook.Result{webhook.Passed, webhook.Rejected, webhook.Unanswered, webhook.Misconfigured}
			count := func() map[webhook.Result]float64 {
				n := map[webhook.Result]float64{}
				for _, r := range results {
					n[r] = testutil.ToFloat64(metrics.WebhookCalls.WithLabelValues(string(tc.typ), string(r)))
				}
				return n
			}
			before := count()
			h := hook(tc.url)
			h.Type = tc.typ
			if a := call(t, newCaller(t), h); a.Result != tc.result {
				t.Fatalf("answer = %+v, want %s", a, tc.result)
			}
			after := count()
			for _, r := range results {
				want := 0.0
				if r == tc.result {
					want = 1
				}
				if got := after[r] - before[r]; got != want {
					t.Errorf("kulta_webhook_calls_total{type=%q,result=%q} rose by %v, want %v", tc.typ, r, got, want)
				}
			}
		})
	}
}
