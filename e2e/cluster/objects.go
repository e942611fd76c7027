package cluster

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The Gateway that Start creates for HTTPRoutes to attach to. No controller serves it: KULTA
// only changes routes' weights, and tests read those from the routes.
const (
	// GatewayClassName names the GatewayClass.
	GatewayClassName = "kulta-e2e"
	// GatewayControllerName is the GatewayClass's controllerName.
	GatewayControllerName = "kulta.io/e2e-gateway"
	// GatewayName names the Gateway, which has one HTTP listener on port 80 accepting routes
	// from every namespace.
	GatewayName = "kulta-gateway"
	// GatewayNamespace is the Gateway's namespace.
	GatewayNamespace = "default"
)

// kwokNodeAnnotation and kwokNodeLabel mark a Node as kwok's fake one, as kwok's own examples do.
const (
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	kwokNodeLabel      = "type"
)

// createObjects creates the fake Node, the GatewayClass and the Gateway.
func (c *Cluster) createObjects(ctx context.Context) error {
	for _, obj := range []client.Object{fakeNode(c.opts.NodeName), gatewayClass(), gateway()} {
		if err := c.client.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return nil
}

// FakeNode is one more Node for kwok to manage (every Node here is kwok's), with room for
// plenty of Pods and labels added, for scenarios that place Pods on Nodes of their own.
func FakeNode(name string, labels map[string]string) *corev1.Node {
	node := fakeNode(name)
	for k, v := range labels {
		node.Labels[k] = v
	}
	return node
}

// fakeNode is a Node for kwok to manage, with room for plenty of Pods.
func fakeNode(name string) *corev1.Node {
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(32, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(256<<30, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Annotations: map[string]string{
				kwokNodeAnnotation:             "fake",
				"node.alpha.kubernetes.io/ttl": "0",
			},
			Labels: map[string]string{
				kwokNodeLabel:                   "kwok",
				corev1.LabelHostname:            name,
				corev1.LabelOSStable:            "linux",
				corev1.LabelArchStable:          "amd64",
				"node-role.kubernetes.io/agent": "",
			},
		},
		Status: corev1.NodeStatus{
			Capacity:    resources,
			Allocatable: resources,
			NodeInfo: corev1.NodeSystemInfo{
				Architecture:    "amd64",
				OperatingSystem: "linux",
				KubeletVersion:  "fake",
			},
			Phase: corev1.NodeRunning,
		},
	}
}

// gatewayClass is the GatewayClass GatewayClassName.
func gatewayClass() *gatewayv1.GatewayClass {
	return &gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: GatewayClassName},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: GatewayControllerName},
	}
}

// gateway is the Gateway GatewayName.
func gateway() *gatewayv1.Gateway {
	return &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: GatewayName, Namespace: GatewayNamespace},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: GatewayClassName,
			Listeners: []gatewayv1.Listener{{
				Name:     "http",
				Port:     80,
				Protocol: gatewayv1.HTTPProtocolType,
				AllowedRoutes: &gatewayv1.AllowedRoutes{
					Namespaces: &gatewayv1.RouteNamespaces{From: ptr.To(gatewayv1.NamespacesFromAll)},
				},
			}},
		},
	}
}

// waitNodeReady waits until kwok has made the fake Node Ready and the node-lifecycle controller
// has lifted its not-ready taint, so that Pods schedule at once. It fails early when one of the
// processes Start ran has exited.
func (c *Cluster) waitNodeReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReadyTimeout)
	defer cancel()
	state := "not checked yet"
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		for _, p := range c.procs {
			if p.exited() {
				return false, p.exitError()
			}
		}
		var node corev1.Node
		if err := c.client.Get(ctx, client.ObjectKey{Name: c.opts.NodeName}, &node); err != nil {
			return false, fmt.Errorf("reading node: %w", err)
		}
		var ready bool
		ready, state = nodeSchedulable(&node)
		return ready, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for node %s to become Ready and schedulable (%s): %w", c.opts.NodeName, state, err)
	}
	return nil
}

// nodeSchedulable reports whether node is Ready and free of the taints that keep Pods off an
// unready Node, and if not, why.
func nodeSchedulable(node *corev1.Node) (bool, string) {
	ready := false
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ready = cond.Status == corev1.ConditionTrue
		}
	}
	if !ready {
		return false, "the Ready condition is not True"
	}
	for _, taint := range node.Spec.Taints {
		if taint.Key == corev1.TaintNodeNotReady || taint.Key == corev1.TaintNodeUnreachable {
			return false, "tainted " + taint.Key
		}
	}
	return true, "ready"
}
