//go:build e2e

package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/false-systems/kulta/e2e/cluster"
)

// The cluster runs a Deployment's Pods to Ready, rolls them to a new image, and leaves no
// process or open port behind when stopped.
func TestClusterRunsAndRollsADeployment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	began := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	startTime := time.Since(began)
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping cluster: %v", err)
		}
		if t.Failed() {
			t.Logf("cluster logs kept in %s", c.LogDir())
		} else if err := os.RemoveAll(c.LogDir()); err != nil {
			t.Errorf("removing logs: %v", err)
		}
	})
	t.Logf("cluster started in %v (logs in %s)", startTime.Round(time.Millisecond), c.LogDir())

	procs, err := c.Processes()
	if err != nil {
		t.Fatal(err)
	}
	addresses := c.Addresses()
	t.Logf("processes %v, listening on %v", procs, addresses)

	cl := c.Client()
	var gw gatewayv1.Gateway
	if err := cl.Get(ctx, client.ObjectKey{Namespace: cluster.GatewayNamespace, Name: cluster.GatewayName}, &gw); err != nil {
		t.Fatalf("reading the Gateway: %v", err)
	}

	// kwok renews the Node's Lease as a kubelet does, so the Node stays Ready for longer than
	// the node-lifecycle controller's grace period.
	lease := &coordinationv1.Lease{}
	leaseKey := client.ObjectKey{Namespace: corev1.NamespaceNodeLease, Name: c.NodeName()}
	var firstRenew time.Time
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := cl.Get(ctx, leaseKey, lease); err != nil {
			return false, fmt.Errorf("reading the Node's Lease: %w", err)
		}
		if lease.Spec.RenewTime == nil {
			return false, nil
		}
		if firstRenew.IsZero() {
			firstRenew = lease.Spec.RenewTime.Time
		}
		return lease.Spec.RenewTime.After(firstRenew), nil
	})
	if err != nil {
		t.Fatalf("the Node's Lease %s was not renewed after %s (spec %+v): %v", leaseKey, firstRenew.Format(time.RFC3339Nano), lease.Spec, err)
	}

	deploy := nginxDeployment("nginx:1.27")
	began = time.Now()
	if err := cl.Create(ctx, deploy); err != nil {
		t.Fatalf("creating Deployment: %v", err)
	}
	waitRolledOut(ctx, t, cl, "nginx:1.27")
	readyTime := time.Since(began)
	t.Logf("3 Pods Ready %v after the Deployment was created", readyTime.Round(time.Millisecond))
	logMemory(t, procs)

	out, err := exec.CommandContext(ctx, filepath.Join(c.BinDir(), "kubectl"), "--kubeconfig", c.Kubeconfig(),
		"get", "deployment", deploy.Name, "-n", deploy.Namespace, "-o", "jsonpath={.status.readyReplicas}").CombinedOutput()
	if err != nil || string(out) != "3" {
		t.Errorf("kubectl with Kubeconfig: ready replicas %q, error %v", out, err)
	}

	patch := client.MergeFrom(deploy.DeepCopy())
	deploy.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
	began = time.Now()
	if err := cl.Patch(ctx, deploy, patch); err != nil {
		t.Fatalf("updating the image: %v", err)
	}
	waitRolledOut(ctx, t, cl, "nginx:1.28")
	t.Logf("rolling update of 3 Pods took %v", time.Since(began).Round(time.Millisecond))

	began = time.Now()
	if err := c.Stop(); err != nil {
		t.Fatalf("stopping cluster: %v", err)
	}
	t.Logf("cluster stopped in %v", time.Since(began).Round(time.Millisecond))

	for _, p := range procs {
		if err := syscall.Kill(p.PID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after Stop (signal 0: %v)", p.Name, p.PID, err)
		}
	}
	for _, addr := range addresses {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			t.Errorf("%s still accepts connections after Stop", addr)
			if err := conn.Close(); err != nil {
				t.Errorf("closing connection to %s: %v", addr, err)
			}
		}
	}
	if _, err := os.Stat(c.Kubeconfig()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("kubeconfig %s not removed by Stop: %v", c.Kubeconfig(), err)
	}
}

// nginxDeployment is a Deployment of three nginx Pods in namespace default.
func nginxDeployment(image string) *appsv1.Deployment {
	labels := map[string]string{"app": "nginx"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "nginx",
					Image: image,
					Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				}}},
			},
		},
	}
}

// waitRolledOut waits until the nginx Deployment has finished rolling out image: exactly three
// Pods, all Ready and running image, and the Deployment's status agrees.
func waitRolledOut(ctx context.Context, t *testing.T, cl client.Client, image string) {
	t.Helper()
	state := "nothing read yet"
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var deploy appsv1.Deployment
		if err := cl.Get(ctx, client.ObjectKey{Namespace: "default", Name: "nginx"}, &deploy); err != nil {
			return false, fmt.Errorf("reading Deployment: %w", err)
		}
		var pods corev1.PodList
		if err := cl.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels{"app": "nginx"}); err != nil {
			return false, fmt.Errorf("listing Pods: %w", err)
		}
		ready := 0
		for i := range pods.Items {
			if podReady(&pods.Items[i]) && pods.Items[i].Spec.Containers[0].Image == image {
				ready++
			}
		}
		s := deploy.Status
		state = fmt.Sprintf("%d Pods, %d Ready with %s; Deployment generation %d observed %d, replicas %d updated %d available %d",
			len(pods.Items), ready, image, deploy.Generation, s.ObservedGeneration, s.Replicas, s.UpdatedReplicas, s.AvailableReplicas)
		return len(pods.Items) == 3 && ready == 3 && s.ObservedGeneration == deploy.Generation &&
			s.Replicas == 3 && s.UpdatedReplicas == 3 && s.AvailableReplicas == 3, nil
	})
	if err != nil {
		t.Fatalf("waiting for the rollout of %s (%s): %v", image, state, err)
	}
}

// podReady reports whether pod is Ready and not being deleted.
func podReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// logMemory logs each process's resident memory (VmRSS, from /proc) and the total.
func logMemory(t *testing.T, procs []cluster.Process) {
	t.Helper()
	var total int64
	parts := make([]string, 0, len(procs))
	for _, p := range procs {
		kb, err := residentKiB(p.PID)
		if err != nil {
			t.Logf("memory of %s: %v", p.Name, err)
			continue
		}
		total += kb
		parts = append(parts, fmt.Sprintf("%s %d MiB", p.Name, kb/1024))
	}
	t.Logf("resident memory: %s; total %d MiB", strings.Join(parts, ", "), total/1024)
}

// residentKiB reads VmRSS from /proc/PID/status.
func residentKiB(pid int) (int64, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("reading memory use: %w", err)
	}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) >= 2 && fields[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing VmRSS: %w", err)
			}
			return kb, nil
		}
	}
	if err := scanner.Err(); err != nil {
		return 0, fmt.Errorf("scanning /proc status: %w", err)
	}
	return 0, errors.New("no VmRSS in /proc status")
}
