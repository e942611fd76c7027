//go:build e2e

package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/false-systems/kulta/e2e/cluster"
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

// controllerStopGrace is how long the controller may take to exit after SIGTERM.
const controllerStopGrace = 10 * time.Second

// world is everything the scenarios run against.
type world struct {
	cluster    *cluster.Cluster
	client     client.Client
	watcher    client.WithWatch
	prometheus *testenv.Prometheus
	simulator  *simulator.Simulator
	cdevents   *testenv.CDEventsReceiver
	// controllers are the kulta-controller replicas; with more than one they elect a leader.
	controllers []*controller
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
	bin := filepath.Join(t.TempDir(), "kulta-controller")
	built := make(chan error, 1)
	go func() { built <- buildController(ctx, root, bin) }()

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
	for i := range opts.replicas {
		ctrl := &controller{
			bin:         bin,
			name:        fmt.Sprintf("kulta-controller-%d", i),
			kubeconfig:  c.Kubeconfig(),
			logDir:      c.LogDir(),
			metricsAddr: freeAddr(t),
			probeAddr:   freeAddr(t),
			sink:        w.cdevents.URL(),
			leaderElect: opts.replicas > 1,
		}
		w.controllers = append(w.controllers, ctrl)
		targets = append(targets, ctrl.metricsAddr)
	}
	w.prometheus = testenv.StartPrometheus(t, targets...)
	for _, ctrl := range w.controllers {
		ctrl.prometheus = w.prometheus.Address()
		if err := ctrl.start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := ctrl.stop(); err != nil {
				t.Error(err)
			}
		})
	}
	return w
}

// buildController compiles cmd/kulta-controller into bin.
func buildController(ctx context.Context, root, bin string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kulta-controller")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building kulta-controller: %w\n%s", err, out)
	}
	return nil
}

// controller is one kulta-controller process, which a scenario may kill and start again on
// the same addresses. Each run appends to NAME.log in the cluster's log folder.
type controller struct {
	bin, name, kubeconfig, logDir string
	metricsAddr, probeAddr        string
	prometheus, sink              string
	leaderElect                   bool

	cmd     *exec.Cmd
	log     *os.File
	exited  chan struct{}
	waitErr error
	// killed is set when the scenario killed the process, so its exit is not a failure.
	killed bool
}

// args are the controller's flags.
func (c *controller) args() []string {
	args := []string{"--kubeconfig", c.kubeconfig,
		"--metrics-bind-address", c.metricsAddr, "--health-probe-bind-address", c.probeAddr,
		"--prometheus-address", c.prometheus, "--cdevents-enabled", "--cdevents-sink-url", c.sink,
		"--graceful-shutdown-timeout", "5s", "--zap-log-level", "info"}
	if c.leaderElect {
		args = append(args, "--leader-elect", "--leader-election-namespace", "default",
			"--leader-election-lease-duration", "4s", "--leader-election-renew-deadline", "3s",
			"--leader-election-retry-period", "500ms")
	}
	return args
}

// logPath is the controller's log file.
func (c *controller) logPath() string { return filepath.Join(c.logDir, c.name+".log") }

// start runs the process and waits until it answers /readyz (a standby replica is ready too).
func (c *controller) start(ctx context.Context) error {
	logFile, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the log of %s: %w", c.name, err)
	}
	cmd := exec.Command(c.bin, c.args()...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", c.name, errors.Join(err, logFile.Close()))
	}
	c.cmd, c.log, c.exited, c.killed = cmd, logFile, make(chan struct{}), false
	exited := c.exited
	go func() {
		c.waitErr = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(time.Minute)
	for !ready(ctx, "http://"+c.probeAddr+"/readyz") {
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start: %w (log: %s)", c.name, c.waitErr, c.logPath())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not ready within a minute (log: %s)", c.name, c.logPath())
		}
	}
	return nil
}

// running reports whether the process is alive.
func (c *controller) running() bool {
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL, as a node failure or an OOM kill would.
func (c *controller) kill() error {
	if !c.running() {
		return fmt.Errorf("%s is not running", c.name)
	}
	c.killed = true
	if err := c.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("killing %s: %w", c.name, err)
	}
	<-c.exited
	return c.closeLog()
}

// stop ends a running process with SIGTERM and checks it exits cleanly within
// controllerStopGrace; a process that died on its own, and was not killed, is reported.
func (c *controller) stop() error {
	if c.cmd == nil {
		return nil
	}
	select {
	case <-c.exited:
		if c.killed {
			return nil
		}
		return errors.Join(fmt.Errorf("%s exited before the end of the test: %w (log: %s)", c.name, c.waitErr, c.logPath()), c.closeLog())
	default:
	}
	var errs []error
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		errs = append(errs, fmt.Errorf("signalling %s: %w", c.name, err))
	}
	select {
	case <-c.exited:
		if c.waitErr != nil {
			errs = append(errs, fmt.Errorf("%s did not exit cleanly: %w (log: %s)", c.name, c.waitErr, c.logPath()))
		}
	case <-time.After(controllerStopGrace):
		errs = append(errs, fmt.Errorf("%s did not exit within %s of SIGTERM; killed (log: %s)", c.name, controllerStopGrace, c.logPath()))
		if err := c.cmd.Process.Kill(); err != nil {
			errs = append(errs, fmt.Errorf("killing %s: %w", c.name, err))
		}
		<-c.exited
	}
	return errors.Join(append(errs, c.closeLog())...)
}

// closeLog closes the log file of the last run.
func (c *controller) closeLog() error {
	if c.log == nil {
		return nil
	}
	err := c.log.Close()
	c.log = nil
	if err != nil {
		return fmt.Errorf("closing the log of %s: %w", c.name, err)
	}
	return nil
}

// leading reports whether the process holds the leader-election Lease, from its own
// leader_election_master_status metric. Without leader election a running process leads.
func (c *controller) leading(ctx context.Context) bool {
	if !c.running() {
		return false
	}
	if !c.leaderElect {
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.metricsAddr+"/metrics", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	body, err := io.ReadAll(resp.Body)
	if errors.Join(err, resp.Body.Close()) != nil {
		return false
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "leader_election_master_status{") && strings.HasSuffix(line, " 1") {
			return true
		}
	}
	return false
}

// ready reports whether url answers 200.
func ready(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	ok := resp.StatusCode == http.StatusOK
	return resp.Body.Close() == nil && ok
}

// freeAddr is a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("releasing %s: %v", addr, err)
	}
	return addr
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
