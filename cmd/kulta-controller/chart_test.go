package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

// TestChartShardsRunAsRendered renders the chart with three shards beside the main replicas
// (charts/kulta/ci/sharded-values.yaml) and runs what it renders as a kubelet would: every
// replica of every Deployment is a controller process started with its container's arguments
// and environment, its ports moved to free local ones. Each Deployment has a leader of its
// own; each leader answers /readyz on the probe port, reconciles the Rollouts of its shard
// and only those, its standby none; the main replicas take the Rollout no shard claims, and a
// Rollout labelled for a shard the chart does not run is left alone by every process.
func TestChartShardsRunAsRendered(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, bin, kubeconfig, ns := processSetup(t, e, "chartshards")
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := testutil.Helm(root, t.TempDir(), "template", "kulta", "charts/kulta", "--namespace", ns, "--skip-crds",
		"-f", filepath.Join("charts", "kulta", "ci", "sharded-values.yaml"), "--set", "watchNamespaces[0]="+ns)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := testutil.DecodeManifestsFrom(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	// The processes of each Deployment, and the shard it runs ("" for the main replicas).
	pods := map[string][]*replica{}
	shardOf := map[string]string{}
	for _, obj := range objs {
		if obj.GetKind() != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d); err != nil {
			t.Fatalf("Deployment %s: %v", obj.GetName(), err)
		}
		for i := range ptr.Deref(d.Spec.Replicas, 1) {
			pods[d.Name] = append(pods[d.Name], runAsPod(t, bin, kubeconfig, fmt.Sprintf("%s-%d", d.Name, i), ns, d.Spec.Template.Spec))
		}
		shardOf[d.Name] = d.Labels[kultav1alpha1.ShardLabel]
	}
	g.Expect(shardOf).To(Equal(map[string]string{"kulta": "", "kulta-shard-alpha": "alpha", "kulta-shard-beta": "beta",
		"kulta-shard-gamma": "gamma"}), "the Deployments the sharded values render, and their shards")

	leaders := map[string]*replica{}
	for name, replicas := range pods {
		g.Expect(len(replicas)).To(BeNumerically(">", 1), "Deployment %s runs a standby", name)
		leaders[name], _ = leaderOf(t, g, replicas...)
	}
	for name, leader := range leaders {
		g.Expect(leader.leading()).To(BeTrue(), "Deployment %s leads beside the others: a Lease of its own", name)
	}

	owned := map[string]*kultav1alpha1.Rollout{}
	for name, shard := range shardOf {
		owned[name] = createShardRollout(ctx, g, e, ns, "ro-"+name, shard)
	}
	unclaimed := createShardRollout(ctx, g, e, ns, "ro-delta", "delta")
	for name, ro := range owned {
		g.Eventually(func(g Gomega) {
			got := &kultav1alpha1.Rollout{}
			g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), got)).To(Succeed())
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		}).WithTimeout(30*time.Second).Should(Succeed(), "Rollout %s, for Deployment %s", ro.Name, name)
	}
	// A process keeps a Rollout's record from its first reconcile of it: over a while, each
	// leader has reconciled its own Rollout alone, no standby any, and no process the Rollout of
	// a shard that nothing runs.
	g.Consistently(func(g Gomega) {
		for name, replicas := range pods {
			for _, r := range replicas {
				want := []string(nil)
				if r == leaders[name] {
					want = []string{owned[name].Name}
				}
				g.Expect(r.rollouts()).To(Equal(want), "Rollouts reconciled by a process of Deployment %s", name)
			}
		}
		got := &kultav1alpha1.Rollout{}
		g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(unclaimed), got)).To(Succeed())
		g.Expect(got.Status.ObservedGeneration).To(BeZero(), "no status written for a shard no Deployment runs")
		g.Expect(got.Finalizers).To(BeEmpty())
	}).WithTimeout(3 * time.Second).Should(Succeed())
}

// logTail is how much of a process's output a failed test prints.
const logTail = 4096

// runAsPod starts a controller process as the kubelet would start the first container of spec
// for the Pod named pod in namespace: with its arguments and environment, where the metrics
// and probe ports become free local addresses, and a kubeconfig stands in for the Pod's
// service account. It waits until the process answers /readyz on its probe address. The
// process's output goes to a file that the test prints if it fails.
func runAsPod(t *testing.T, bin, kubeconfig, pod, namespace string, spec corev1.PodSpec) *replica {
	t.Helper()
	c := spec.Containers[0]
	if len(c.Command) > 0 {
		t.Fatalf("Pod %s: the container sets a command (%v); the image's entrypoint is the controller", pod, c.Command)
	}
	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	args := []string{"--kubeconfig=" + kubeconfig}
	var bound []string
	for _, arg := range c.Args {
		switch {
		case strings.HasPrefix(arg, "--metrics-bind-address="):
			arg, bound = "--metrics-bind-address="+metricsAddr, append(bound, "metrics")
		case strings.HasPrefix(arg, "--health-probe-bind-address="):
			arg, bound = "--health-probe-bind-address="+probeAddr, append(bound, "probes")
		case arg == "--metrics-secure=true":
			t.Fatalf("Pod %s serves its metrics over HTTPS; this test reads them over HTTP", pod)
		}
		args = append(args, arg)
	}
	if !slices.Equal(bound, []string{"metrics", "probes"}) {
		t.Fatalf("Pod %s: want the metrics and probe addresses among its arguments once each, in that order: %v", pod, c.Args)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for _, v := range c.Env {
		value := v.Value
		if v.ValueFrom != nil {
			switch ref := v.ValueFrom.FieldRef; {
			case ref != nil && ref.FieldPath == "metadata.namespace":
				value = namespace
			case ref != nil && ref.FieldPath == "metadata.name":
				value = pod
			default:
				t.Fatalf("Pod %s: environment variable %s comes from a source this test does not stand in for: %+v", pod, v.Name, v.ValueFrom)
			}
		}
		cmd.Env = append(cmd.Env, v.Name+"="+value)
	}
	logPath := filepath.Join(t.TempDir(), pod+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := logFile.Close(); err != nil {
			t.Errorf("closing %s: %v", logPath, err)
		}
		if !t.Failed() {
			return
		}
		if data, err := os.ReadFile(logPath); err == nil {
			t.Logf("output of Pod %s (%s), its last %d bytes:\n%s", pod, strings.Join(args, " "), min(len(data), logTail), data[max(0, len(data)-logTail):])
		}
	})
	cmd.Stdout, cmd.Stderr = logFile, logFile
	r := startProcess(t, cmd, metricsAddr)
	NewWithT(t).Eventually(func() error {
		select {
		case <-r.exited:
			return StopTrying(fmt.Sprintf("Pod %s exited: %v", pod, r.waitErr))
		default:
		}
		_, err := httpGet("http://" + probeAddr + "/readyz")
		return err
	}).WithTimeout(30*time.Second).Should(Succeed(), "Pod %s ready", pod)
	return r
}
