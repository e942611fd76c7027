// Package cluster starts a full local cluster from the cached binaries for end-to-end tests and
// the demo: etcd and kube-apiserver (through envtest, with KULTA's and Gateway API's CRDs),
// kube-controller-manager and kube-scheduler (so Deployments and ReplicaSets really create and
// schedule Pods), and kwok, which plays the kubelet for one fake Node so that Pods turn Ready
// without containers. A GatewayClass and a Gateway are created for HTTPRoutes to attach to.
//
// The binaries come from `make cluster-bin` (which includes `make envtest-bin`); nothing is
// downloaded. Every process writes its output to a file in Cluster.LogDir, and Stop leaves no
// process running and no port listening.
//
// This package is test and demo support only; KULTA's controller does not import it.
package cluster
