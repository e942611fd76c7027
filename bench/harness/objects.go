package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers/gatewayapi"
	"github.com/false-systems/kulta/providers/nginx"
)

const (
	// PerNamespace is how many Rollouts share a namespace unless Config.PerNamespace says
	// otherwise.
	PerNamespace = 100
	// RunLabel marks every object the bench creates.
	RunLabel = "bench.kulta.io/run"
	// InitialImage is the image Rollouts start with; wave w sets "nginx:wave-w".
	InitialImage = "nginx:1.27"
)

// Ref names one Rollout and, by the bench's convention, its route (same name) and Services
// (NAME-stable, NAME-canary).
type Ref struct {
	Namespace string
	Name      string
	// Shard is the kulta.io/shard label CreateRollout puts on the Rollout, empty for none: in
	// a sharded run, the key of the one controller process that reconciles it.
	Shard string
}

// Refs are the Rollouts of a run of size n, perNamespace to a namespace (PerNamespace when
// not positive).
func Refs(n, perNamespace int) []Ref {
	if perNamespace <= 0 {
		perNamespace = PerNamespace
	}
	out := make([]Ref, n)
	for i := range out {
		out[i] = Ref{Namespace: fmt.Sprintf("bench-%03d", i/perNamespace), Name: fmt.Sprintf("ro-%05d", i)}
	}
	return out
}

// ShardKey is the --shard-key of shard k (0-based) of a sharded run: "s0", "s1", ...
func ShardKey(k int) string { return fmt.Sprintf("s%d", k) }

// ShardKeys are the shard keys of a run with shards controller processes, in order; none for
// one process (or fewer), which then runs without a shard key and reconciles every Rollout.
func ShardKeys(shards int) []string {
	if shards <= 1 {
		return nil
	}
	keys := make([]string, shards)
	for k := range keys {
		keys[k] = ShardKey(k)
	}
	return keys
}

// AssignShards gives refs[i] shard ShardKey(i mod shards), so the shards hold N/shards
// Rollouts each (one more for the first N mod shards); with one shard or fewer it leaves refs
// unsharded.
func AssignShards(refs []Ref, shards int) {
	if shards <= 1 {
		return
	}
	for i := range refs {
		refs[i].Shard = ShardKey(i % shards)
	}
}

// WaveImage is the image wave w (1-based) sets.
func WaveImage(w int) string { return fmt.Sprintf("nginx:wave-%d", w) }

// ForEach runs fn for every ref on workers goroutines and returns the errors joined (at most
// ten are kept, with the count of the rest).
func ForEach(ctx context.Context, refs []Ref, workers int, fn func(context.Context, Ref) error) error {
	jobs := make(chan Ref)
	var mu sync.Mutex
	var errs []error
	failed := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ref := range jobs {
				if err := fn(ctx, ref); err != nil {
					mu.Lock()
					if failed++; len(errs) < 10 {
						errs = append(errs, fmt.Errorf("%s/%s: %w", ref.Namespace, ref.Name, err))
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, ref := range refs {
		select {
		case jobs <- ref:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if failed > len(errs) {
		errs = append(errs, fmt.Errorf("and %d more failures", failed-len(errs)))
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("interrupted: %w", err))
	}
	return errors.Join(errs...)
}

// CreateNamespaces creates the namespaces refs live in.
func CreateNamespaces(ctx context.Context, c client.Client, refs []Ref) error {
	seen := map[string]bool{}
	for _, r := range refs {
		if seen[r.Namespace] {
			continue
		}
		seen[r.Namespace] = true
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.Namespace, Labels: map[string]string{RunLabel: "true"}}}
		if err := c.Create(ctx, ns); err != nil {
			return fmt.Errorf("creating namespace %s: %w", r.Namespace, err)
		}
	}
	return nil
}

// Traffic providers the bench drives: its Rollouts route through an HTTPRoute each (Gateway
// API, the default), or through a stable Ingress each, beside which KULTA keeps a canary
// Ingress (ingress-nginx).
const (
	ProviderGatewayAPI = gatewayapi.ProviderName
	ProviderNGINX      = nginx.ProviderName
)

// Providers are the traffic providers the bench can drive.
var Providers = []string{ProviderGatewayAPI, ProviderNGINX}

// CreateRollout creates one Rollout with its two Services and, for provider, its HTTPRoute
// (Gateway API; also for "") or its stable Ingress (NGINX): a canary with steps 20 → 50 → 100,
// replicas 1. The Rollout carries r's shard label when r has a shard.
func CreateRollout(ctx context.Context, c client.Client, r Ref, provider string) error {
	labels := map[string]string{RunLabel: "true"}
	var route client.Object
	switch provider {
	case "", ProviderGatewayAPI:
		route = rollouttest.Route(r.Namespace, r.Name, r.Name+"-stable", r.Name+"-canary")
	case ProviderNGINX:
		route = stableIngress(r)
	default:
		return fmt.Errorf("no traffic provider %q in the bench (known: %v)", provider, Providers)
	}
	route.SetLabels(labels)
	ro := rolloutOf(r, provider)
	ro.Labels = rolloutLabels(r)
	for _, obj := range []client.Object{service(r, "-stable"), service(r, "-canary"), route, ro} {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return nil
}

// rolloutOf is the bench's Rollout r, routed by provider, without its labels.
func rolloutOf(r Ref, provider string) *kultav1alpha1.Rollout {
	routing := testutil.WithHTTPRoute(r.Name)
	if provider == ProviderNGINX {
		routing = testutil.WithNGINX(r.Name)
	}
	return testutil.Rollout(r.Namespace, r.Name,
		testutil.WithCanarySteps(testutil.Weight(20), testutil.Weight(50), testutil.Weight(100)),
		testutil.WithReplicas(1),
		routing,
		testutil.WithImage(InitialImage))
}

// stableIngress is r's stable Ingress (NGINX): every request for host NAME.bench.example to
// its stable Service.
func stableIngress(r Ref) *networkingv1.Ingress {
	return rollouttest.StableIngress(r.Namespace, r.Name, r.Name+".bench.example", r.Name+"-stable")
}

// rolloutLabels are the labels of r's Rollout: the bench's run label and, in a sharded run,
// its shard.
func rolloutLabels(r Ref) map[string]string {
	labels := map[string]string{RunLabel: "true"}
	if r.Shard != "" {
		labels[kultav1alpha1.ShardLabel] = r.Shard
	}
	return labels
}

func service(r Ref, suffix string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name + suffix, Labels: map[string]string{RunLabel: "true"}},
		Spec: corev1.ServiceSpec{
			// Headless: the test API server's Service IP range holds only a few hundred addresses,
			// fewer than two Services per Rollout need at N=1,000 and more.
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{"app": r.Name},
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// SetImage patches a Rollout's first container image: a new pod template, so a new revision.
func SetImage(ctx context.Context, c client.Client, r Ref, image string) error {
	patch := fmt.Appendf(nil, `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":%q}]`, image)
	ro := &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name}}
	if err := c.Patch(ctx, ro, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		return fmt.Errorf("patching the image: %w", err)
	}
	return nil
}
