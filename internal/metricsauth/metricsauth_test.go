package metricsauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/false-systems/kulta/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// TestFilterAsksTheAPIServer runs the filter against a real API server (RBAC, service account
// tokens): a token it does not accept gets 401, a service account without the /metrics rule 403,
// one with it 200, and the rule's path is what the review is asked about.
func TestFilterAsksTheAPIServer(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.CreateNamespace(t, "metricsauth")
	scraper := e.ServiceAccountToken(t, ns, "scraper", "/metrics")
	stranger := e.ServiceAccountToken(t, ns, "stranger")

	h := guarded(t, e.Config)
	for _, tc := range []struct {
		name, header, path string
		want               int
	}{
		{"no token", "", "/metrics", http.StatusUnauthorized},
		{"another scheme", "Basic " + scraper, "/metrics", http.StatusUnauthorized},
		{"a token the API server did not issue", "Bearer not-a-token", "/metrics", http.StatusUnauthorized},
		{"a service account without the rule", "Bearer " + stranger, "/metrics", http.StatusForbidden},
		{"a service account with the rule", "Bearer " + scraper, "/metrics", http.StatusOK},
		{"the scheme in lower case", "bearer " + scraper, "/metrics", http.StatusOK},
		{"a path the rule does not name", "Bearer " + scraper, "/debug/pprof/", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d (%q), want %d", rec.Code, rec.Body.String(), tc.want)
			}
			if tc.want == http.StatusOK && rec.Body.String() != "metrics" {
				t.Fatalf("body %q, want the handler's", rec.Body.String())
			}
		})
	}
}

// TestFailedReviewsAreNotKept runs the filter as a controller whose service account may not
// create the reviews, against a real API server: the scrape gets 500 (the API server refused
// the TokenReview, then the SubjectAccessReview), and once each right is granted the next
// scrape with the same token goes further, so no failure was kept.
func TestFailedReviewsAreNotKept(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.CreateNamespace(t, "metricsauth-rbac")
	scraper := e.ServiceAccountToken(t, ns, "scraper", "/metrics")
	controller := e.ServiceAccountToken(t, ns, "controller")

	// The filter's client speaks as the controller's service account.
	cfg := rest.AnonymousClientConfig(e.Config)
	cfg.BearerToken = controller
	h := guarded(t, cfg)
	scrape := func() (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+scraper)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	// RBAC reaches the API server's authorizer through its informers: poll for the change.
	await := func(what string, want int, body string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, got := scrape()
			if code == want && strings.HasPrefix(got, body) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %d (%q), want %d (%q...)", what, code, got, want, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if code, body := scrape(); code != http.StatusInternalServerError || body != "Authentication failed" {
		t.Fatalf("without the right to review tokens: status %d (%q), want 500 (\"Authentication failed\")", code, body)
	}
	e.Grant(t, ns, "controller", "tokenreviews", rbacv1.PolicyRule{
		APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}})
	await("with tokenreviews only", http.StatusInternalServerError, "Authorization for user system:serviceaccount:"+ns+":scraper failed")
	e.Grant(t, ns, "controller", "subjectaccessreviews", rbacv1.PolicyRule{
		APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}})
	await("with both rights", http.StatusOK, "metrics")
}

// guarded is a handler answering "metrics" behind the filter FilterProvider builds for the
// controller's client cfg.
func guarded(t *testing.T, cfg *rest.Config) http.Handler {
	t.Helper()
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	filter, err := FilterProvider(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	h, err := filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("metrics"))
	}))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type fakeTokens struct {
	calls  int
	err    error
	status authnv1.TokenReviewStatus
}

func (f *fakeTokens) Create(_ context.Context, r *authnv1.TokenReview, _ metav1.CreateOptions) (*authnv1.TokenReview, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	out := r.DeepCopy()
	out.Status = f.status
	return out, nil
}

type fakeAccess struct {
	calls   int
	err     error
	allowed bool
	last    authzv1.SubjectAccessReviewSpec
}

func (f *fakeAccess) Create(_ context.Context, r *authzv1.SubjectAccessReview, _ metav1.CreateOptions) (*authzv1.SubjectAccessReview, error) {
	f.calls++
	f.last = r.Spec
	if f.err != nil {
		return nil, f.err
	}
	out := r.DeepCopy()
	out.Status.Allowed = f.allowed
	return out, nil
}

func serve(t *testing.T, g *guard, token string) int {
	t.Helper()
	h, err := g.filter(logr.Discard(), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// TestAnswersAreKept: a token's review and an access decision are asked once while kept; a
// review that failed is not kept, so the next scrape asks again; the review carries the
// user's groups and extra fields and the request's verb and path.
func TestAnswersAreKept(t *testing.T) {
	user := authnv1.UserInfo{
		Username: "system:serviceaccount:monitoring:prometheus",
		UID:      "u1",
		Groups:   []string{"system:serviceaccounts"},
		Extra:    map[string]authnv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"prometheus-0"}},
	}
	tokens := &fakeTokens{status: authnv1.TokenReviewStatus{Authenticated: true, User: user}}
	access := &fakeAccess{allowed: true}
	g := newGuard(tokens, access)

	for range 3 {
		if got := serve(t, g, "t1"); got != http.StatusOK {
			t.Fatalf("status %d, want 200", got)
		}
	}
	if tokens.calls != 1 || access.calls != 1 {
		t.Fatalf("reviews asked %d and %d times over three scrapes, want once each", tokens.calls, access.calls)
	}
	want := authzv1.SubjectAccessReviewSpec{
		User: user.Username, UID: "u1", Groups: user.Groups,
		Extra:                 map[string]authzv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"prometheus-0"}},
		NonResourceAttributes: &authzv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
	}
	if !reflect.DeepEqual(access.last, want) {
		t.Fatalf("review asked %+v, want %+v", access.last, want)
	}

	// Another token of the same user is reviewed, but the user's decision is kept.
	if got := serve(t, g, "t2"); got != http.StatusOK {
		t.Fatalf("status %d, want 200", got)
	}
	if tokens.calls != 2 || access.calls != 1 {
		t.Fatalf("after a second token: %d token and %d access reviews, want 2 and 1", tokens.calls, access.calls)
	}

	// A failing review answers 500 and is asked again next time.
	tokens.err = errors.New("API server unavailable")
	for range 2 {
		if got := serve(t, g, "t3"); got != http.StatusInternalServerError {
			t.Fatalf("status %d with the review failing, want 500", got)
		}
	}
	if tokens.calls != 4 {
		t.Fatalf("a failed review was kept: %d token reviews, want 4", tokens.calls)
	}
	tokens.err = nil
	access.err = errors.New("API server unavailable")
	if got := serve(t, g, "t4"); got != http.StatusOK {
		// The decision for this user is still kept from the first scrape.
		t.Fatalf("status %d, want 200 from the kept decision", got)
	}
}

// TestDenialsAndRejectedTokens: a token the API server does not accept is 401 and its review
// kept; a denied request is 403; a decision marked Denied is a denial even if Allowed is set.
func TestDenialsAndRejectedTokens(t *testing.T) {
	tokens := &fakeTokens{status: authnv1.TokenReviewStatus{Authenticated: false, Error: "invalid bearer token"}}
	access := &fakeAccess{}
	g := newGuard(tokens, access)
	for range 2 {
		if got := serve(t, g, "bad"); got != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", got)
		}
	}
	if tokens.calls != 1 || access.calls != 0 {
		t.Fatalf("%d token and %d access reviews, want 1 and 0", tokens.calls, access.calls)
	}

	tokens.status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "alice"}}
	if got := serve(t, g, "alice"); got != http.StatusForbidden {
		t.Fatalf("status %d, want 403", got)
	}
	if got := serve(t, g, "alice"); got != http.StatusForbidden || access.calls != 1 {
		t.Fatalf("status %d after %d access reviews, want 403 from the kept denial", got, access.calls)
	}

	g2 := newGuard(tokens, &deniedAndAllowed{})
	if got := serve(t, g2, "alice"); got != http.StatusForbidden {
		t.Fatalf("status %d for a review both allowed and denied, want 403", got)
	}
}

type deniedAndAllowed struct{}

func (deniedAndAllowed) Create(_ context.Context, r *authzv1.SubjectAccessReview, _ metav1.CreateOptions) (*authzv1.SubjectAccessReview, error) {
	out := r.DeepCopy()
	out.Status.Allowed, out.Status.Denied = true, true
	return out, nil
}

// TestDecisionKeySeparatesSubjects: users whose parts concatenate alike, group order, and
// extra fields give the keys they should.
func TestDecisionKeySeparatesSubjects(t *testing.T) {
	attrs := &authzv1.NonResourceAttributes{Path: "/metrics", Verb: "get"}
	key := func(user string, groups []string, extra map[string]authzv1.ExtraValue) string {
		return decisionKey(authzv1.SubjectAccessReviewSpec{User: user, Groups: groups, Extra: extra, NonResourceAttributes: attrs})
	}
	if key("a b", nil, nil) == key("a", []string{"b"}, nil) {
		t.Error("a user name with a space and a group share a key")
	}
	if key("u", []string{"x", "y"}, nil) != key("u", []string{"y", "x"}, nil) {
		t.Error("the order of groups changes the key")
	}
	if key("u", nil, nil) == key("u", nil, map[string]authzv1.ExtraValue{"k": {"v"}}) {
		t.Error("extra fields do not change the key")
	}
}

// TestBearerToken reads the header's forms.
func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc":   "abc",
		"bearer abc":   "abc",
		" Bearer  abc": "abc",
		"Bearer ":      "",
		"Bearer":       "",
		"Basic abc":    "",
		"":             "",
	} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Authorization", header)
		got, ok := bearerToken(req)
		if got != want || ok != (want != "") {
			t.Errorf("%q: got %q, %v; want %q", header, got, ok, want)
		}
	}
}
