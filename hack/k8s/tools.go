//go:build tools

// Package k8s pins the Kubernetes, etcd and kwok commands that KULTA's tests run as real
// processes. It is a separate module because k8s.io/kubernetes and etcd's server carry replace
// directives that `go install pkg@version` refuses; `make k8s-bin` builds from here.
package k8s

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
