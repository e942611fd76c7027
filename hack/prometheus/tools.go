//go:build tools

// Package prometheus pins the Prometheus server that KULTA's analysis tests and demo run as a
// real process. It is a separate module so that Prometheus' large dependency tree never enters
// KULTA's own go.mod; `make prometheus-bin` (hack/prometheus/build.sh) builds from here.
package prometheus

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
