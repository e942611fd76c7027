// Package testenv starts a real kube-apiserver and etcd for tests, with KULTA's CRD and the
// Gateway API standard CRDs installed.
//
// The binaries are built from Go modules by `make envtest-bin` into .cache/bin/k8s (or wherever
// KUBEBUILDER_ASSETS points); nothing is downloaded at run time. This package is for tests only:
// production code must not import it.
package testenv
