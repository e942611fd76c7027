// Package scenarios holds KULTA's end-to-end scenarios: each test runs on a full local cluster
// (package e2e/cluster) with the real kulta-controller binary (package e2e/controllerproc), a
// real Prometheus, a CloudEvents receiver and the Gateway stand-in of package e2e/simulator, and
// drives Rollouts the way a user would: it creates Services, an HTTPRoute and a Rollout, changes
// the image, promotes, and checks what a user would see.
//
// TestStrategies runs one scenario per strategy side by side in one cluster, with two about a
// Rollout's life around them: a Rollout deleted mid-canary hands its traffic and Services back,
// and a rolled-back revision keeps its Pods until a slow stable revision is available again
// (the e2e cluster's kwok delays the Ready of Pods annotated cluster.PodReadyDelayAnnotation).
// TestDisruptions
// runs two controller replicas with leader election and takes the controller, the leader and
// Prometheus away in the middle of rollouts.
//
// Every scenario asserts the route states a watch saw (each change once), the ReplicaSets and
// ready Pods, the status and decisions, the Kubernetes Events in order and the CDEvents
// received. Images choose how the simulated Pods answer (see behaviours).
//
// The tests are behind the build tag e2e; run them with `make e2e`, or one of them with
// `make e2e GO_TEST_FLAGS='-count=1 -v -run TestDisruptions'`. Each test logs the folder that
// keeps every process's log (etcd, kube-apiserver, ..., kulta-controller-N.log) for a failure
// to be read afterwards.
package scenarios
