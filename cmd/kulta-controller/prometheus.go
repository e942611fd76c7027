package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/false-systems/kulta/analysis"
)

// prometheusOptions configure how the controller queries Prometheus for analysis.
type prometheusOptions struct {
	address         string
	timeout         time.Duration
	bearerTokenFile string
	username        string
	passwordFile    string
	caFile          string
	insecure        bool
}

func (p *prometheusOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&p.address, "prometheus-address", os.Getenv("KULTA_PROMETHEUS_ADDRESS"), "Prometheus used by Rollouts that name none (env KULTA_PROMETHEUS_ADDRESS).")
	fs.DurationVar(&p.timeout, "prometheus-timeout", 10*time.Second, "Timeout of one Prometheus query.")
	fs.StringVar(&p.bearerTokenFile, "prometheus-bearer-token-file", "", "File with a bearer token for Prometheus, re-read on each query.")
	fs.StringVar(&p.username, "prometheus-username", "", "Basic-auth user for Prometheus.")
	fs.StringVar(&p.passwordFile, "prometheus-password-file", "", "File with the basic-auth password for Prometheus.")
	fs.StringVar(&p.caFile, "prometheus-ca-file", "", "CA bundle that signs Prometheus's TLS certificate.")
	fs.BoolVar(&p.insecure, "prometheus-insecure-skip-verify", false, "Do not verify Prometheus's TLS certificate.")
}

// checker is the analyzer the reconciler runs, with these options.
func (p *prometheusOptions) checker() (*analysis.Checker, error) {
	opts := []analysis.Option{analysis.WithTimeout(p.timeout)}
	if p.bearerTokenFile != "" {
		opts = append(opts, analysis.WithBearerTokenFile(p.bearerTokenFile))
	}
	if p.username != "" {
		password, err := os.ReadFile(p.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("reading --prometheus-password-file: %w", err)
		}
		opts = append(opts, analysis.WithBasicAuth(p.username, strings.TrimSpace(string(password))))
	}
	if p.caFile != "" {
		opts = append(opts, analysis.WithCAFile(p.caFile))
	}
	if p.insecure {
		opts = append(opts, analysis.WithInsecureSkipVerify())
	}
	return &analysis.Checker{DefaultAddress: p.address, Options: opts}, nil
}
