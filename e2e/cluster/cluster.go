package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kultascheme "github.com/false-systems/kulta/internal/scheme"
	"github.com/false-systems/kulta/internal/testenv"
)

// Defaults for Options.
const (
	// DefaultNodeName is the name of the fake Node that kwok runs Pods on.
	DefaultNodeName = "kwok-node-0"
	// DefaultPodCIDR is the range kwok gives Pod IPs from.
	DefaultPodCIDR = "10.244.0.0/16"
	// DefaultStopGracePeriod is how long Stop waits after SIGTERM before it sends SIGKILL.
	DefaultStopGracePeriod = 5 * time.Second
	// DefaultReadyTimeout bounds how long Start waits for the fake Node to become Ready.
	DefaultReadyTimeout = time.Minute
)

// PodReadyDelayAnnotation, on a Pod, is how long (a Go duration such as "20s") kwok waits after
// it first sees the Pod on the fake Node before it makes the Pod Running and Ready. Pods without
// it turn Ready at once. Set it in a Pod template to make one revision slow to start.
const PodReadyDelayAnnotation = "pod-ready.stage.kwok.x-k8s.io/delay"

// adminUserName is the user, in group system:masters, that Kubeconfig and Config act as.
const adminUserName = "kulta-e2e-admin"

// Options configure Start. The zero value is a working configuration.
type Options struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and
	// kwok. Default: $KUBEBUILDER_ASSETS, else .cache/bin/k8s in the repository, where
	// `make cluster-bin` builds them.
	BinDir string
	// LogDir receives one log file per process (etcd.log, kube-apiserver.log, ...). It is kept
	// after Stop for debugging. Default: a new folder under the system's temporary folder.
	LogDir string
	// NodeName names the fake Node. Default: DefaultNodeName.
	NodeName string
	// PodCIDR is the range kwok gives Pod IPs from. Default: DefaultPodCIDR.
	PodCIDR string
	// StopGracePeriod is how long Stop lets kwok, kube-scheduler and kube-controller-manager
	// shut down after SIGTERM before it kills them. Default: DefaultStopGracePeriod.
	StopGracePeriod time.Duration
	// ReadyTimeout bounds how long Start waits for the fake Node to become Ready and
	// schedulable (ctx may end it sooner). Default: DefaultReadyTimeout.
	ReadyTimeout time.Duration
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.NodeName == "" {
		o.NodeName = DefaultNodeName
	}
	if o.PodCIDR == "" {
		o.PodCIDR = DefaultPodCIDR
	}
	if o.StopGracePeriod <= 0 {
		o.StopGracePeriod = DefaultStopGracePeriod
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	return o
}

// Cluster is a running local cluster. Its methods are not safe for concurrent use with Stop.
type Cluster struct {
	opts       Options
	binDir     string
	logDir     string
	workDir    string
	kubeconfig string

	env     *envtest.Environment
	envLogs []*os.File
	config  *rest.Config
	client  client.Client
	scheme  *runtime.Scheme
	// procs are kube-controller-manager, kube-scheduler and kwok, in the order they started.
	procs   []*process
	stopped bool
}

// Start starts a full local cluster: etcd and kube-apiserver with KULTA's, Gateway API's and
// Istio's CRDs installed, kube-controller-manager (deployment, replicaset, garbage-collector and
// node-lifecycle controllers), kube-scheduler and kwok; then it creates the fake Node, the
// GatewayClass GatewayClassName and the Gateway GatewayName in GatewayNamespace, and returns once
// the Node is Ready and schedulable. The working directory must be inside the repository (as
// under `go test` or `make`): the CRDs and kwok's stages are found from there.
//
// ctx bounds creating the objects and waiting for the Node (envtest's own start of etcd and
// kube-apiserver has its own limit of a minute), not the cluster's life: call Stop. When Start
// fails, everything it had started is stopped again.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	opts = opts.withDefaults()
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, fmt.Errorf("starting cluster: %w", err)
	}
	bins, err := binDir(opts.BinDir, root)
	if err != nil {
		return nil, err
	}
	if err := checkBinaries(bins); err != nil {
		return nil, err
	}
	stages, err := stageFiles(root)
	if err != nil {
		return nil, err
	}
	gatewayCRDs, err := testenv.GatewayAPICRDDir(root)
	if err != nil {
		return nil, err
	}
	istioCRDs, err := testenv.IstioCRDFile(root)
	if err != nil {
		return nil, err
	}
	scheme, err := kultascheme.New()
	if err != nil {
		return nil, fmt.Errorf("starting cluster: %w", err)
	}
	if err := istionetworkingv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("starting cluster: adding Istio's networking kinds to the scheme: %w", err)
	}
	logDir, err := makeLogDir(opts.LogDir)
	if err != nil {
		return nil, err
	}
	workDir, err := os.MkdirTemp("", "kulta-e2e-cluster-")
	if err != nil {
		return nil, fmt.Errorf("creating the cluster's work folder: %w", err)
	}
	c := &Cluster{opts: opts, binDir: bins, logDir: logDir, workDir: workDir, scheme: scheme}
	if err := c.start(ctx, []string{filepath.Join(root, "charts", "kulta", "crds"), gatewayCRDs, istioCRDs}, stages); err != nil {
		return nil, errors.Join(fmt.Errorf("starting cluster (logs in %s): %w", logDir, err), c.Stop())
	}
	return c, nil
}

// makeLogDir creates dir, or a new temporary folder when dir is empty.
func makeLogDir(dir string) (string, error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "kulta-e2e-logs-")
		if err != nil {
			return "", fmt.Errorf("creating the log folder: %w", err)
		}
		return tmp, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the log folder: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("log folder %s: %w", dir, err)
	}
	return abs, nil
}

// start brings the processes up one after another; Start stops whatever it started on failure.
func (c *Cluster) start(ctx context.Context, crdDirs, stages []string) error {
	if err := c.startAPIServer(crdDirs); err != nil {
		return err
	}
	kubeconfig := "--kubeconfig=" + c.kubeconfig
	commands := []struct {
		name string
		args []string
		env  []string
	}{
		{name: binControllerManager, args: []string{
			kubeconfig,
			"--controllers=deployment-controller,replicaset-controller,garbage-collector-controller,node-lifecycle-controller",
			"--leader-elect=false",
			"--secure-port=0",
			"--use-service-account-credentials=false",
		}},
		{name: binScheduler, args: []string{kubeconfig, "--leader-elect=false", "--secure-port=0"}},
		{name: binKwok, args: kwokArgs(kubeconfig, c.opts.PodCIDR, stages),
			// kwok reads ~/.kwok/kwok.yaml unless its work folder is elsewhere.
			env: []string{"KWOK_WORKDIR=" + filepath.Join(c.workDir, "kwok")}},
	}
	for _, command := range commands {
		p, err := startProcess(c.binDir, command.name, c.logDir, command.args, command.env)
		if err != nil {
			return err
		}
		c.procs = append(c.procs, p)
	}
	if err := c.createObjects(ctx); err != nil {
		return err
	}
	return c.waitNodeReady(ctx)
}

// nodeLeaseSeconds is the duration of the fake Node's Lease, which kwok renews as a kubelet
// does. The heartbeat stage updates the Node's status only every ten minutes and counts on the
// Lease: without it the node-lifecycle controller marks the Node NotReady after its grace period
// (about 50 s) and every Pod on it unready.
const nodeLeaseSeconds = 40

// kwokArgs are kwok's flags: manage every Node, keep its Lease fresh, give Pods IPs from
// podCIDR, and run the stages.
func kwokArgs(kubeconfig, podCIDR string, stages []string) []string {
	args := []string{kubeconfig, "--manage-all-nodes=true", "--cidr=" + podCIDR,
		fmt.Sprintf("--node-lease-duration-seconds=%d", nodeLeaseSeconds)}
	for _, stage := range stages {
		args = append(args, "--config="+stage)
	}
	return args
}

// startAPIServer starts etcd and kube-apiserver through envtest, installs the CRDs from
// crdDirs, and writes the administrator's kubeconfig.
func (c *Cluster) startAPIServer(crdDirs []string) error {
	etcdLog, err := c.openLog(binEtcd)
	if err != nil {
		return err
	}
	apiServerLog, err := c.openLog(binAPIServer)
	if err != nil {
		return err
	}
	c.env = &envtest.Environment{
		BinaryAssetsDirectory: c.binDir,
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: true,
		Scheme:                c.scheme,
		ControlPlane: envtest.ControlPlane{
			Etcd:      &envtest.Etcd{Out: etcdLog, Err: etcdLog},
			APIServer: &envtest.APIServer{Out: apiServerLog, Err: apiServerLog},
		},
	}
	if _, err := c.env.Start(); err != nil {
		return fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	admin, err := c.env.AddUser(envtest.User{Name: adminUserName, Groups: []string{"system:masters"}},
		&rest.Config{QPS: 1000, Burst: 2000})
	if err != nil {
		return fmt.Errorf("adding the administrator user: %w", err)
	}
	c.config = admin.Config()
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("building the administrator's kubeconfig: %w", err)
	}
	c.kubeconfig = filepath.Join(c.workDir, "kubeconfig")
	if err := os.WriteFile(c.kubeconfig, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	c.client, err = client.New(c.config, client.Options{Scheme: c.scheme})
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	return nil
}

// openLog creates LogDir/name.log for a process that envtest runs; Stop closes it.
func (c *Cluster) openLog(name string) (*os.File, error) {
	f, err := os.Create(filepath.Join(c.logDir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("creating log file for %s: %w", name, err)
	}
	c.envLogs = append(c.envLogs, f)
	return f, nil
}

// Stop stops kwok, kube-scheduler and kube-controller-manager (SIGTERM, then SIGKILL after
// Options.StopGracePeriod), then kube-apiserver and etcd, and removes the kubeconfig and the
// other working files; the logs stay in LogDir. Nothing the cluster started is left running
// or listening. It also reports a process that had exited on its own before Stop. Calling
// Stop again does nothing.
func (c *Cluster) Stop() error {
	if c.stopped {
		return nil
	}
	c.stopped = true
	var errs []error
	crashed := make([]bool, len(c.procs))
	for i := len(c.procs) - 1; i >= 0; i-- {
		crashed[i] = c.procs[i].exited() && !c.procs[i].reported
		errs = append(errs, c.procs[i].terminate())
	}
	deadline := time.Now().Add(c.opts.StopGracePeriod)
	for i := len(c.procs) - 1; i >= 0; i-- {
		errs = append(errs, c.procs[i].wait(deadline, crashed[i]))
	}
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping etcd and kube-apiserver: %w", err))
		}
	}
	for _, f := range c.envLogs {
		errs = append(errs, closeLog(f))
	}
	if err := os.RemoveAll(c.workDir); err != nil {
		errs = append(errs, fmt.Errorf("removing the cluster's work folder: %w", err))
	}
	return errors.Join(errs...)
}

// Kubeconfig is the path of a kubeconfig file for an administrator (group system:masters), for
// kubectl and other processes. It is removed by Stop.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// LogDir is the folder with one log file per process; it is kept after Stop.
func (c *Cluster) LogDir() string { return c.logDir }

// BinDir is the folder the cluster's binaries (and kubectl) were run from.
func (c *Cluster) BinDir() string { return c.binDir }

// NodeName is the name of the fake Node.
func (c *Cluster) NodeName() string { return c.opts.NodeName }

// Config returns a copy of the administrator's REST config, the same identity as Kubeconfig.
func (c *Cluster) Config() *rest.Config { return rest.CopyConfig(c.config) }

// Client is a direct (uncached) client for the administrator, using Scheme.
func (c *Cluster) Client() client.Client { return c.client }

// Scheme knows the core kinds, KULTA's kinds, Gateway API's kinds and Istio's networking kinds.
func (c *Cluster) Scheme() *runtime.Scheme { return c.scheme }

// Processes lists the cluster's running processes: etcd and kube-apiserver (found in /proc
// among this process's children, so on Linux only), kube-controller-manager, kube-scheduler
// and kwok.
func (c *Cluster) Processes() ([]Process, error) {
	exes := make([]string, 0, 2)
	for _, name := range []string{binEtcd, binAPIServer} {
		exe, err := filepath.EvalSymlinks(filepath.Join(c.binDir, name))
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", name, err)
		}
		exes = append(exes, exe)
	}
	found, err := childProcesses(exes)
	if err != nil {
		return nil, err
	}
	if len(found) != len(exes) {
		return nil, fmt.Errorf("expected etcd and kube-apiserver among this process's children, found %v", found)
	}
	for _, p := range c.procs {
		found = append(found, Process{Name: p.name, PID: p.cmd.Process.Pid})
	}
	return found, nil
}

// Addresses are the host:port addresses the cluster listens on for clients: kube-apiserver's
// secure port and etcd's client port. (kube-controller-manager and kube-scheduler run with
// --secure-port=0 and kwok without a server, so they listen nowhere.)
func (c *Cluster) Addresses() []string {
	serving := c.env.ControlPlane.APIServer.SecureServing
	return []string{
		net.JoinHostPort(serving.Address, serving.Port),
		c.env.ControlPlane.Etcd.URL.Host,
	}
}
