# KULTA's build. Everything the tests need is built from Go modules into .cache/ (git-ignored)
# and reused while its version stamp matches; nothing is downloaded at run time except through
# the Go module proxy.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CACHE      := $(CURDIR)/.cache
BIN        := $(CACHE)/bin
K8S_BIN    := $(BIN)/k8s

K8S_VERSION            := v1.37.2
CONTROLLER_GEN_VERSION := v0.23.0
GOLANGCI_LINT_VERSION  := v2.15.0
HELM_VERSION           := v3.22.0
PROMETHEUS_VERSION     := v0.316.0
VERSION                ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

K8S_LDFLAGS := -s -w -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37

CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT  := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM           := $(BIN)/helm-$(HELM_VERSION)
PROMETHEUS_BIN := $(BIN)/prometheus

GO_TEST_FLAGS ?= -count=1
export KUBEBUILDER_ASSETS := $(K8S_BIN)
export KULTA_PROMETHEUS_BIN := $(PROMETHEUS_BIN)/prometheus
export KULTA_HELM := $(HELM)

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code and the CRD (charts/kulta/crds).
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:dir=charts/kulta/crds

.PHONY: verify-generated
verify-generated: generate ## Fail when generated files differ from what is committed.
	@untracked=$$(git ls-files --others --exclude-standard -- api charts/kulta/crds); \
	if ! git diff --quiet -- api charts/kulta/crds || [ -n "$$untracked" ]; then \
		echo "Generated files are stale; run 'make generate' and commit:"; \
		git --no-pager diff --stat -- api charts/kulta/crds; echo "$$untracked"; exit 1; \
	fi

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: $(GOLANGCI_LINT) ## gofmt, go vet and golangci-lint.
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "Not gofmt-formatted:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	$(GOLANGCI_LINT) run ./...

.PHONY: build
build: ## Build the static controller and kubectl plugin binaries into bin/.
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/kulta-controller ./cmd/kulta-controller
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/kubectl-kulta ./cmd/kubectl-kulta

.PHONY: test
test: verify-generated lint build envtest-bin helm-bin prometheus-bin ## Unit, envtest and Prometheus suites.
	go test $(GO_TEST_FLAGS) -timeout 20m ./...

.PHONY: bench
bench: envtest-bin ## Cost at scale on a real API server (not part of `make test`); BENCH_N=100,1000,5000, BENCH_FLAGS for the rest (bench/README.md).
	go run ./bench/cmd/kulta-bench -n $(or $(BENCH_N),100,1000,5000) -out bench/results $(BENCH_FLAGS)

.PHONY: e2e
e2e: cluster-bin prometheus-bin ## End-to-end tests on a full local cluster (etcd, API server, controller manager, scheduler, kwok, Prometheus).
	go test $(GO_TEST_FLAGS) -tags e2e -parallel 8 -timeout 30m ./e2e/...

.PHONY: demo
demo: DEMO_BIN := $(BIN)/kulta-demo
demo: cluster-bin prometheus-bin ## A canary KULTA completes, then one it rolls back on its own (1-2 min once built; KULTA_DEMO_PROVIDER=gatewayapi|istio|nginx picks the traffic provider, Gateway API by default; Prometheus on 127.0.0.1:9090, KULTA_DEMO_PROMETHEUS_PORT=N to move it).
	go build -o $(DEMO_BIN) ./e2e/demo
	$(DEMO_BIN)

.PHONY: unit
unit: ## Only the tests that need no API server (quick).
	go test $(GO_TEST_FLAGS) -short ./...

##@ Binaries built from Go modules (cached in .cache/bin)

.PHONY: envtest-bin
envtest-bin: $(K8S_BIN)/.envtest-$(K8S_VERSION) ## etcd and kube-apiserver for envtest.

$(K8S_BIN)/.envtest-$(K8S_VERSION): hack/k8s/go.mod hack/k8s/go.sum
	@mkdir -p $(K8S_BIN)
	@echo "Building kube-apiserver and etcd $(K8S_VERSION) from Go modules (several minutes when cold)"
	cd hack/k8s && CGO_ENABLED=0 go build -trimpath -ldflags "$(K8S_LDFLAGS)" -o $(K8S_BIN)/ k8s.io/kubernetes/cmd/kube-apiserver
	cd hack/k8s && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o $(K8S_BIN)/etcd go.etcd.io/etcd/server/v3
	@touch $@

.PHONY: prometheus-bin
prometheus-bin: $(PROMETHEUS_BIN)/.prometheus-$(PROMETHEUS_VERSION) ## Prometheus server for the analysis tests and the demo.

$(PROMETHEUS_BIN)/.prometheus-$(PROMETHEUS_VERSION): hack/prometheus/go.mod hack/prometheus/go.sum hack/prometheus/build.sh
	@echo "Building Prometheus $(PROMETHEUS_VERSION) from Go modules (several minutes when cold)"
	hack/prometheus/build.sh $(PROMETHEUS_BIN)
	@touch $@

.PHONY: cluster-bin
cluster-bin: envtest-bin $(K8S_BIN)/.cluster-$(K8S_VERSION) ## kube-controller-manager, kube-scheduler, kubectl and kwok for the full local cluster.

$(K8S_BIN)/.cluster-$(K8S_VERSION): hack/k8s/go.mod hack/k8s/go.sum hack/cluster-bin.sh
	@rm -f $@
	hack/cluster-bin.sh $(K8S_BIN)

.PHONY: helm-bin
helm-bin: $(HELM) ## helm, for the chart tests.

$(HELM): hack/helm/go.mod hack/helm/go.sum
	@mkdir -p $(BIN)
	@echo "Building helm $(HELM_VERSION) from Go modules"
	cd hack/helm && CGO_ENABLED=0 go build -trimpath -o $@ -ldflags "-s -w \
		-X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37 \
		-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37" \
		helm.sh/helm/v3/cmd/helm

$(CONTROLLER_GEN): hack/tools/go.mod hack/tools/go.sum
	@mkdir -p $(BIN)
	cd hack/tools && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(GOLANGCI_LINT): hack/lint/go.mod hack/lint/go.sum
	@mkdir -p $(BIN)
	@echo "Building golangci-lint $(GOLANGCI_LINT_VERSION) from Go modules"
	cd hack/lint && go build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: clean
clean: ## Remove built binaries (.cache).
	rm -rf $(CACHE)
