//go:build e2e

package scenarios

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/false-systems/kulta/e2e/cluster"
	"github.com/false-systems/kulta/e2e/controllerproc"
	"github.com/false-systems/kulta/e2e/simulator"
	"github.com/false-systems/kulta/internal/testenv"
)

// The images of the scenarios; behaviours says how their Pods answer.
const (
	// goodImage is the image of the first revisions.
	goodImage = "nginx:1.27"
	// betterImage is the healthy update.
	betterImage = "nginx:1.28"
	// badImage is the image whose Pods answer one request in ten with a 5xx status.
	badImage = "nginx:1.28-bad"
	// variantA and variantB are an A/B test's images: B fails 1 % of requests, A 8 %.
	variantA = "search:a"
	variantB = "search:b"
)

// headerRate is the requests per second that carry the A/B experiments' header.
const headerRate = 100

// world is everything the scenarios run against.
type world struct {
	cluster    *cluster.Cluster
	client     client.Client
	watcher    client.WithWatch
	prometheus *testenv.Prometheus
	simulator  *simulator.Simulator
	cdevents   *testenv.CDEventsReceiver
	// controllers are the kulta-controller replicas; with more than one they elect a leader.
	controllers []*controllerproc.Process
}

// worldOptions configure startWorld.
type worldOptions struct {
	// replicas is the number of controller processes. Default 1; with 2 or more they run with
	// leader election, as the chart's HA configuration does.
	replicas int
}

// behaviours is how the simulated Pods of each image answer, for every world.
var behaviours = map[string]simulator.Behaviour{
	badImage:    {ErrorRatio: 0.1, Latency: 10 * time.Millisecond},
	variantA:    {ErrorRatio: 0.08, Latency: 10 * time.Millisecond},
	variantB:    {ErrorRatio: 0.01, Latency: 10 * time.Millisecond},
	goodImage:   simulator.DefaultBehaviour,
	betterImage: simulator.DefaultBehaviour,
}

// startWorld starts the cluster, the Gateway simulator, a CDEvents receiver, Prometheus
// (scraping the simulator and every controller) and the controller processes; all of them stop
// when t ends, in reverse order.
func startWorld(ctx context.Context, t *testing.T, opts worldOptions) *world {
	t.Helper()
	if opts.replicas < 1 {
		opts.replicas = 1
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatalf("locating the repository: %v", err)
	}
	binDir := t.TempDir()
	built := make(chan error, 1)
	go func() { built <- controllerproc.Build(ctx, root, binDir, "./cmd/kulta-controller") }()

	began := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		t.Fatalf("starting the cluster: %v", errors.Join(err, <-built))
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
	})
	t.Logf("cluster up in %s (logs in %s)", time.Since(began).Round(time.Millisecond), c.LogDir())
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	watcher, err := client.NewWithWatch(c.Config(), client.Options{Scheme: c.Scheme()})
	if err != nil {
		t.Fatalf("creating a watching client: %v", err)
	}

	sim, err := simulator.Start(ctx, c.Client(), simulator.Options{
		Behaviour:  behaviours,
		HeaderRate: headerRate,
		OnError:    func(err error) { t.Logf("gateway simulator: %v", err) },
	})
	if err != nil {
		t.Fatalf("starting the gateway simulator: %v", err)
	}
	t.Cleanup(func() {
		if err := sim.Stop(); err != nil {
			t.Errorf("stopping the gateway simulator: %v", err)
		}
	})

	w := &world{cluster: c, client: c.Client(), watcher: watcher, simulator: sim, cdevents: testenv.StartCDEventsReceiver(t)}
	targets := []string{sim.Target()}
	addrs := make([][2]string, opts.replicas)
	for i := range addrs {
		addrs[i] = [2]string{freeAddr(t), freeAddr(t)}
		targets = append(targets, addrs[i][0])
	}
	w.prometheus = testenv.StartPrometheus(t, targets...)
	for i, addr := range addrs {
		proc := controllerproc.New(controllerproc.Options{
			Bin:              filepath.Join(binDir, "kulta-controller"),
			Kubeconfig:       c.Kubeconfig(),
			LogPath:          filepath.Join(c.LogDir(), fmt.Sprintf("kulta-controller-%d.log", i)),
			MetricsAddr:      addr[0],
			ProbeAddr:        addr[1],
			PrometheusURL:    w.prometheus.Address(),
			CDEventsURL:      w.cdevents.URL(),
			LeaderElect:      opts.replicas > 1,
			TrafficProviders: trafficProviders,
		})
		w.controllers = append(w.controllers, proc)
		if err := proc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := proc.Stop(); err != nil {
				t.Error(err)
			}
		})
	}
	return w
}

// freeAddr is a loopback address that was free a moment ago, and that no other part of this
// test process was given (testenv.FreeAddr).
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// unserved is how many requests of namespace found no ready Pod so far (simulator.Unserved),
// once a simulator tick begun now has ended: a tick that read the cluster earlier, and is slow
// under load, has counted its requests by then.
func (w *world) unserved(ctx context.Context, t *testing.T, namespace string) float64 {
	t.Helper()
	if err := w.simulator.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	return w.simulator.Unserved(namespace)
}

// newNamespace creates a namespace named after prefix for one scenario.
func (w *world) newNamespace(ctx context.Context, t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := w.client.Create(ctx, ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}
