package conformance

import (
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

// Feature is an optional behaviour a provider may not support.
type Feature string

// Optional features.
const (
	// FeatureCookieMatch: header routes may match a cookie.
	FeatureCookieMatch Feature = "CookieMatch"
	// FeatureAllConditions: a header route may require several conditions at once (a
	// setHeaderRoute step with more than one match entry).
	FeatureAllConditions Feature = "AllConditions"
	// FeatureCrossNamespaceRoute: the Rollout may route through objects in another namespace,
	// once that namespace permits it (the Fixture then implements Permitter).
	FeatureCrossNamespaceRoute Feature = "CrossNamespaceRoute"
	// FeatureMirror: a canary's mirror routes (setMirrorRoute) copy a share of the requests to
	// the canary. A provider without it must refuse them with an UnsupportedMatch RouteError.
	FeatureMirror Feature = "Mirror"
)

// Harness tells the suite how to build and inspect one provider, in one of its modes.
type Harness struct {
	// Name names the provider and mode in messages: "gatewayAPI HTTPRoute", "istio subsets".
	Name string
	// Client is a direct client to the API server.
	Client client.Client
	// NewRouter returns the provider, writing (and reading) through c.
	NewRouter func(c client.Client) providers.TrafficRouter
	// NewFixture creates, in fresh namespaces, the user's objects a Rollout named app routes
	// through between Services app-stable and app-canary on port 80: all traffic on stable, and
	// configuration the provider must leave alone (an annotation owner=team-a, an unmanaged
	// rule, filters or retries on the managed one). It returns them with the Rollout. When
	// crossNamespace is set, the objects live in another namespace than the Rollout's, which
	// does not permit their use until the Fixture's Permit.
	NewFixture func(t testing.TB, crossNamespace bool) Fixture
	// AcceptedWithoutController is what Verify must report as Accepted with no controller
	// running: false where a controller must accept each generation (Gateway API routes), true
	// where objects count as accepted once written (Istio without status, ingress-nginx).
	AcceptedWithoutController bool
	// CookieValue is a cookie value the provider can match; "B" when empty.
	CookieValue string
	// Unsupported lists the features the provider declares it lacks.
	Unsupported []Feature
}

// Fixture is one provider's view of the objects NewFixture created. Every read goes to the
// API server, never through the router.
type Fixture interface {
	// Rollout is the Rollout routed through the objects.
	Rollout() *kultav1alpha1.Rollout
	// Weights reads the split the objects carry.
	Weights(t testing.TB) providers.Weights
	// HasHeaderRoute reports whether the objects carry hr, matching what hr matches.
	HasHeaderRoute(t testing.TB, hr providers.HeaderRoute) bool
	// Snapshot is what the objects route, as text: the parts the provider may write, without
	// metadata such as resourceVersion. Equal snapshots route the same.
	Snapshot(t testing.TB) string
	// Intact fails t unless everything the provider must leave alone is as created.
	Intact(t testing.TB)
	// Drift sends all traffic back to stable behind the provider's back, as a GitOps sync of
	// the user's manifests would.
	Drift(t testing.TB)
	// Unusable are variants of the Rollout the provider must refuse with a RouteError: at
	// least one whose object is missing and one whose object does not route to its Services.
	Unusable() []Unusable
}

// Permitter is a Fixture whose objects may live in another namespace (FeatureCrossNamespaceRoute).
type Permitter interface {
	// Permit lets the Rollout's namespace use the objects, as a ReferenceGrant does.
	Permit(t testing.TB)
}

// Unusable is a Rollout the provider cannot route.
type Unusable struct {
	// Case says what is wrong, for messages: "route missing".
	Case string
	// Rollout is the Rollout.
	Rollout *kultav1alpha1.Rollout
	// Object is the name of the object at fault, which the RouteError's message must name.
	Object string
}

func (h Harness) supports(f Feature) bool {
	for _, u := range h.Unsupported {
		if u == f {
			return false
		}
	}
	return true
}

// spec is one conformance spec.
type spec struct {
	name     string
	requires Feature
	run      func(t testing.TB, h Harness)
}

// specs are the suite, in order.
var specs = []spec{
	{name: "Weights", run: testWeights},
	{name: "Idempotent", run: testIdempotent},
	{name: "HeaderRoute", run: testHeaderRoute},
	{name: "CookieRoute", requires: FeatureCookieMatch, run: testCookieRoute},
	{name: "StepHeaderRoute", run: testStepHeaderRoute},
	{name: "AllConditionsRoute", requires: FeatureAllConditions, run: testAllConditionsRoute},
	{name: "MirrorRoute", run: testMirrorRoute},
	{name: "ConflictRetry", run: testConflictRetry},
	{name: "Drift", run: testDrift},
	{name: "Cleanup", run: testCleanup},
	{name: "NotUsable", run: testNotUsable},
	{name: "CrossNamespace", requires: FeatureCrossNamespaceRoute, run: testCrossNamespace},
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			if s.requires != "" && !h.supports(s.requires) {
				t.Skipf("%s declares %s unsupported", h.Name, s.requires)
			}
			s.run(t, h)
		})
	}
}
