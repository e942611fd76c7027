package conformance

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

// The suite's own tests run it on a toy provider that routes through a ConfigMap, on a fake
// client: the correct router must pass every spec, and each broken one must fail its spec.

// bug is a way the toy router breaks its contract.
type bug string

const (
	noBug              bug = ""
	verifyLies         bug = "Verify reports all on stable"
	dropsUnrelated     bug = "SetWeights drops unrelated data"
	alwaysWrites       bug = "SetWeights writes when nothing changes"
	keepsHeaderRoute   bug = "RemoveHeaderRoute does nothing"
	ignoresCookie      bug = "SetHeaderRoute ignores cookies"
	ignoresConditions  bug = "SetHeaderRoute ignores a setHeaderRoute's conditions"
	firstConditionOnly bug = "SetHeaderRoute keeps only the first condition"
	overwritesConflict bug = "a conflict is retried with the stale object"
	trustsLastWrite    bug = "SetWeights skips weights it wrote before"
	cleanupKeepsCanary bug = "Cleanup leaves the weights"
	vagueRouteError    bug = "RouteErrors do not name the object"
	ignoresPermission  bug = "objects in another namespace need no permission"
	dropsMirror        bug = "SetHeaderRoute accepts a mirror route and writes nothing"
)

// toyRouter routes through ConfigMap data: backends, stable, canary and header.
type toyRouter struct {
	c   client.Client
	bug bug
	// lastWrite is shared by every toyRouter of one test, for trustsLastWrite.
	lastWrite *sync.Map
}

func (r *toyRouter) read(ctx context.Context, ro *kultav1alpha1.Rollout) (*corev1.ConfigMap, error) {
	ref := ro.Spec.Strategy.Canary.TrafficRouting.GatewayAPI.Routes[0]
	name := ref.Name
	if r.bug == vagueRouteError {
		name = "the object"
	}
	if ref.Namespace != ro.Namespace && r.bug != ignoresPermission {
		if err := r.c.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: "permit"}, &corev1.ConfigMap{}); err != nil {
			return nil, &providers.RouteError{Reason: providers.ReasonRouteNotPermitted, Message: "ConfigMap " + name + " is not permitted"}
		}
	}
	cm := &corev1.ConfigMap{}
	if err := r.c.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, cm); apierrors.IsNotFound(err) {
		return nil, &providers.RouteError{Reason: "ConfigMapNotFound", Message: "ConfigMap " + name + " not found"}
	} else if err != nil {
		return nil, err
	}
	if cm.Data["backends"] != ro.Spec.Strategy.Canary.StableService+","+ro.Spec.Strategy.Canary.CanaryService {
		return nil, &providers.RouteError{Reason: providers.ReasonRouteDoesNotReferenceServices, Message: "ConfigMap " + name + " does not route to the Services"}
	}
	return cm, nil
}

// change applies edit to the ConfigMap, writing only when edit reports a change, and retries
// conflicts from a fresh read.
func (r *toyRouter) change(ctx context.Context, ro *kultav1alpha1.Rollout, edit func(data map[string]string) bool) error {
	var stale *corev1.ConfigMap
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := r.read(ctx, ro)
		if err != nil {
			return err
		}
		if stale != nil && r.bug == overwritesConflict {
			stale.ResourceVersion = cm.ResourceVersion
			cm = stale
		}
		stale = cm.DeepCopy()
		if !edit(cm.Data) && r.bug != alwaysWrites {
			return nil
		}
		if r.bug == dropsUnrelated {
			delete(cm.Data, "owner")
		}
		return r.c.Update(ctx, cm)
	})
}

func (r *toyRouter) SetWeights(ctx context.Context, ro *kultav1alpha1.Rollout, w providers.Weights) error {
	if last, ok := r.lastWrite.Load(ro.Namespace); ok && last == w && r.bug == trustsLastWrite {
		return nil
	}
	r.lastWrite.Store(ro.Namespace, w)
	return r.change(ctx, ro, func(data map[string]string) bool { return setWeights(data, w) })
}

func setWeights(data map[string]string, w providers.Weights) bool {
	stable, canary := strconv.Itoa(int(w.Stable)), strconv.Itoa(int(w.Canary))
	changed := data["stable"] != stable || data["canary"] != canary
	data["stable"], data["canary"] = stable, canary
	return changed
}

func encodeHeaderRoute(hr providers.HeaderRoute) string {
	s := hr.Name
	if hr.Header != nil {
		s += " header " + hr.Header.Name + "=" + hr.Header.Value
	}
	if hr.Cookie != nil {
		s += " cookie " + hr.Cookie.Name + "=" + hr.Cookie.Value
	}
	for _, m := range hr.All {
		s += " and " + m.Name + " " + string(m.Type) + " " + m.Value
	}
	if hr.Mirror != nil {
		s += " mirror " + strconv.Itoa(int(*hr.Mirror))
	}
	return s
}

func (r *toyRouter) SetHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, hr providers.HeaderRoute) error {
	switch {
	case r.bug == ignoresCookie:
		hr.Cookie = nil
	case r.bug == ignoresConditions:
		hr.All = nil
	case r.bug == firstConditionOnly && len(hr.All) > 1:
		hr.All = hr.All[:1]
	case r.bug == dropsMirror && hr.Mirror != nil:
		return nil
	}
	return r.change(ctx, ro, func(data map[string]string) bool {
		changed := data["header"] != encodeHeaderRoute(hr)
		data["header"] = encodeHeaderRoute(hr)
		return changed
	})
}

func (r *toyRouter) RemoveHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, _ string) error {
	return r.change(ctx, ro, func(data map[string]string) bool {
		_, had := data["header"]
		if r.bug != keepsHeaderRoute {
			delete(data, "header")
		}
		return had && r.bug != keepsHeaderRoute
	})
}

func (r *toyRouter) Verify(ctx context.Context, ro *kultav1alpha1.Rollout) (providers.Verification, error) {
	cm, err := r.read(ctx, ro)
	if err != nil {
		return providers.Verification{}, err
	}
	w := weightsOf(cm.Data)
	if r.bug == verifyLies {
		w = allStable
	}
	return providers.Verification{Weights: &w, Accepted: true}, nil
}

func (r *toyRouter) Cleanup(ctx context.Context, ro *kultav1alpha1.Rollout) error {
	return r.change(ctx, ro, func(data map[string]string) bool {
		_, had := data["header"]
		delete(data, "header")
		if r.bug == cleanupKeepsCanary {
			return had
		}
		return setWeights(data, allStable) || had
	})
}

func weightsOf(data map[string]string) providers.Weights {
	stable, _ := strconv.Atoi(data["stable"])
	canary, _ := strconv.Atoi(data["canary"])
	return providers.Weights{Stable: int32(stable), Canary: int32(canary)}
}

// toyFixture is ConfigMap app-route: app-stable 100, app-canary 0, and owner=team-a.
type toyFixture struct {
	c   client.Client
	ro  *kultav1alpha1.Rollout
	key client.ObjectKey
}

var namespaces atomic.Int32

func newToyFixture(t testing.TB, c client.Client, crossNamespace bool) *toyFixture {
	ns := fmt.Sprintf("conformance-%d", namespaces.Add(1))
	objectNS := ns
	if crossNamespace {
		objectNS += "-routes"
	}
	ro := testutil.Rollout(ns, "app")
	ro.Spec.Strategy.Canary.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{
		Routes: []kultav1alpha1.RouteReference{{Kind: kultav1alpha1.KindHTTPRoute, Name: "app-route", Namespace: objectNS}},
	}}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: objectNS, Name: "app-route"},
		Data:       map[string]string{"backends": "app-stable,app-canary", "stable": "100", "canary": "0", "owner": "team-a"},
	}
	if err := c.Create(context.Background(), cm); err != nil {
		t.Fatalf("creating ConfigMap: %v", err)
	}
	return &toyFixture{c: c, ro: ro, key: client.ObjectKeyFromObject(cm)}
}

func (f *toyFixture) get(t testing.TB) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{}
	if err := f.c.Get(context.Background(), f.key, cm); err != nil {
		t.Fatalf("reading ConfigMap: %v", err)
	}
	return cm
}

func (f *toyFixture) Rollout() *kultav1alpha1.Rollout { return f.ro }

func (f *toyFixture) Weights(t testing.TB) providers.Weights { return weightsOf(f.get(t).Data) }

func (f *toyFixture) HasHeaderRoute(t testing.TB, hr providers.HeaderRoute) bool {
	return f.get(t).Data["header"] == encodeHeaderRoute(hr)
}

func (f *toyFixture) Snapshot(t testing.TB) string { return fmt.Sprint(f.get(t).Data) }

func (f *toyFixture) Intact(t testing.TB) {
	if cm := f.get(t); cm.Data["owner"] != "team-a" || cm.Data["backends"] != "app-stable,app-canary" {
		t.Errorf("unrelated data changed: %v", cm.Data)
	}
}

func (f *toyFixture) Drift(t testing.TB) {
	cm := f.get(t)
	setWeights(cm.Data, allStable)
	if err := f.c.Update(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
}

func (f *toyFixture) Unusable() []Unusable {
	other := f.ro.DeepCopy()
	other.Spec.Strategy.Canary.StableService = "x-stable"
	missing := f.ro.DeepCopy()
	missing.Spec.Strategy.Canary.TrafficRouting.GatewayAPI.Routes[0].Name = "nope"
	return []Unusable{
		{Case: "services not referenced", Rollout: other, Object: "app-route"},
		{Case: "ConfigMap missing", Rollout: missing, Object: "nope"},
	}
}

func (f *toyFixture) Permit(t testing.TB) {
	permit := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: f.key.Namespace, Name: "permit"}}
	if err := f.c.Create(context.Background(), permit); err != nil {
		t.Fatal(err)
	}
}

func toyHarness(b bug) Harness {
	c := fake.NewClientBuilder().Build()
	lastWrite := &sync.Map{}
	return Harness{
		Name:   "toy",
		Client: c,
		NewRouter: func(c client.Client) providers.TrafficRouter {
			return &toyRouter{c: c, bug: b, lastWrite: lastWrite}
		},
		NewFixture:                func(t testing.TB, crossNamespace bool) Fixture { return newToyFixture(t, c, crossNamespace) },
		AcceptedWithoutController: true,
	}
}

func TestCorrectRouterConforms(t *testing.T) {
	Run(t, toyHarness(noBug))
}

// recorder is a testing.TB that records failures instead of failing the test.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	failures []string
}

func (r *recorder) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, msg)
}

func (r *recorder) Error(args ...any)                 { r.fail(fmt.Sprint(args...)) }
func (r *recorder) Errorf(format string, args ...any) { r.fail(fmt.Sprintf(format, args...)) }
func (r *recorder) Fail()                             { r.fail("Fail") }
func (r *recorder) FailNow()                          { r.fail("FailNow"); runtime.Goexit() }
func (r *recorder) Fatal(args ...any)                 { r.fail(fmt.Sprint(args...)); runtime.Goexit() }
func (r *recorder) Fatalf(format string, args ...any) {
	r.fail(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failures) > 0
}

// runRecorded runs one spec on its own goroutine, so that Fatal can end it, and returns its
// failures.
func runRecorded(t *testing.T, name string, h Harness) []string {
	for _, s := range specs {
		if s.name == name {
			r := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.run(r, h)
			}()
			<-done
			return r.failures
		}
	}
	t.Fatalf("no spec %s", name)
	return nil
}

// TestEverySpecCanFail breaks the toy router in one way per spec and checks that the spec fails.
func TestEverySpecCanFail(t *testing.T) {
	cases := []struct {
		spec string
		bug  bug
	}{
		{"Weights", verifyLies},
		{"Weights", dropsUnrelated},
		{"Idempotent", alwaysWrites},
		{"HeaderRoute", keepsHeaderRoute},
		{"CookieRoute", ignoresCookie},
		{"StepHeaderRoute", ignoresConditions},
		{"AllConditionsRoute", firstConditionOnly},
		{"MirrorRoute", dropsMirror},
		{"ConflictRetry", overwritesConflict},
		{"Drift", trustsLastWrite},
		{"Cleanup", cleanupKeepsCanary},
		{"NotUsable", vagueRouteError},
		{"CrossNamespace", ignoresPermission},
	}
	broken := map[string]bool{}
	for _, tc := range cases {
		broken[tc.spec] = true
		t.Run(tc.spec+"/"+string(tc.bug), func(t *testing.T) {
			failures := runRecorded(t, tc.spec, toyHarness(tc.bug))
			if len(failures) == 0 {
				t.Errorf("%s passes a router where %s", tc.spec, tc.bug)
			}
			t.Logf("%s fails: %v", tc.spec, failures)
		})
	}
	for _, s := range specs {
		if !broken[s.name] {
			t.Errorf("spec %s has no broken router that fails it", s.name)
		}
	}
}
