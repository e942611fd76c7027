// Package testenv starts a real kube-apiserver and etcd for tests, with KULTA's CRD and the
// Gateway API standard CRDs installed: those of the gateway-api module this repository requires,
// or an older release's (GatewayAPICRDDirAt, StartWithGatewayAPI).
//
// The binaries are built from Go modules by `make envtest-bin` into .cache/bin/k8s (or wherever
// KUBEBUILDER_ASSETS points); the only thing fetched at run time is an older gateway-api
// release, through the Go module proxy like any module. This package is for tests only:
// production code must not import it.
package testenv
