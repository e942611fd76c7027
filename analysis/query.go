package analysis

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// DefaultQueryTimeout bounds one instant query when NewPrometheus is given no WithTimeout.
const DefaultQueryTimeout = 10 * time.Second

// Querier runs PromQL instant queries. It is the only interface through which package
// analysis reads metrics; tests substitute a fake, the controller a *Prometheus.
type Querier interface {
	// Query evaluates query at the instant at. A scalar result is returned as a vector of one
	// sample without labels. Errors are those of the transport or of the server (a malformed
	// query, a timeout); a result without series is an empty vector, not an error.
	Query(ctx context.Context, query string, at time.Time) (model.Vector, error)
}

var _ Querier = (*Prometheus)(nil)

// Prometheus is a Querier backed by the HTTP API of a Prometheus server (or any server that
// speaks its /api/v1/query endpoint). It is safe for concurrent use.
type Prometheus struct {
	address  string
	api      promv1.API
	timeout  time.Duration
	warnings func(query string, warnings []string)
}

// prometheusOptions collects what the Options of NewPrometheus set.
type prometheusOptions struct {
	timeout      time.Duration
	auth         credentials
	caFile       string
	insecure     bool
	roundTripper http.RoundTripper
	warnings     func(query string, warnings []string)
}

// Option configures NewPrometheus.
type Option func(*prometheusOptions)

// WithTimeout bounds each query: the request is cancelled after d and the server is asked to
// give up after d as well. Values of zero or less keep DefaultQueryTimeout.
func WithTimeout(d time.Duration) Option {
	return func(o *prometheusOptions) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// WithBearerToken sends "Authorization: Bearer token" with every query. It replaces any other
// authentication option given before it.
func WithBearerToken(token string) Option {
	return func(o *prometheusOptions) {
		o.auth = credentials{bearerToken: token}
	}
}

// WithBearerTokenFile sends the token read from path as a bearer token. The file is read for
// each request, so rotated tokens (such as projected service-account tokens) are picked up. It
// replaces any other authentication option given before it.
func WithBearerTokenFile(path string) Option {
	return func(o *prometheusOptions) {
		o.auth = credentials{bearerTokenFile: path}
	}
}

// WithBasicAuth sends HTTP basic authentication with every query. It replaces any other
// authentication option given before it.
func WithBasicAuth(username, password string) Option {
	return func(o *prometheusOptions) {
		o.auth = credentials{username: username, password: password, basic: true}
	}
}

// WithCAFile verifies an https server against the PEM certificates in path instead of the
// system roots. The file is read once, by NewPrometheus.
func WithCAFile(path string) Option {
	return func(o *prometheusOptions) {
		o.caFile = path
	}
}

// WithInsecureSkipVerify disables verification of the server's TLS certificate. Use it only
// for tests and demos.
func WithInsecureSkipVerify() Option {
	return func(o *prometheusOptions) {
		o.insecure = true
	}
}

// WithRoundTripper sends queries through rt instead of the default transport. Authentication
// options still apply on top of it; TLS options cannot be combined with it.
func WithRoundTripper(rt http.RoundTripper) Option {
	return func(o *prometheusOptions) {
		o.roundTripper = rt
	}
}

// WithWarningHandler receives the warnings a server attaches to a successful query result
// (such as PromQL hints that a metric might not be a counter). Without it, warnings are
// discarded: they never change a result.
func WithWarningHandler(handle func(query string, warnings []string)) Option {
	return func(o *prometheusOptions) {
		o.warnings = handle
	}
}

// NewPrometheus returns a Querier for the Prometheus server at address, an http:// or https://
// base URL such as http://prometheus.monitoring:9090. It does not contact the server.
func NewPrometheus(address string, opts ...Option) (*Prometheus, error) {
	if err := validateAddress(address); err != nil {
		return nil, err
	}
	o := prometheusOptions{timeout: DefaultQueryTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	rt, err := o.transport()
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", address, err)
	}
	client, err := api.NewClient(api.Config{Address: address, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: creating the client: %w", address, err)
	}
	return &Prometheus{address: address, api: promv1.NewAPI(client), timeout: o.timeout, warnings: o.warnings}, nil
}

// transport builds the round tripper from the options.
func (o *prometheusOptions) transport() (http.RoundTripper, error) {
	base := o.roundTripper
	switch {
	case base != nil && (o.caFile != "" || o.insecure):
		return nil, errors.New("WithRoundTripper cannot be combined with TLS options")
	case base == nil && (o.caFile != "" || o.insecure):
		tlsConfig, err := newTLSConfig(o.caFile, o.insecure)
		if err != nil {
			return nil, err
		}
		base = newTransport(tlsConfig)
	case base == nil:
		base = api.DefaultRoundTripper
	}
	if o.auth.empty() {
		return base, nil
	}
	return &authRoundTripper{credentials: o.auth, next: base}, nil
}

// validateAddress accepts absolute http and https URLs with a host.
func validateAddress(address string) error {
	u, err := url.Parse(address)
	if err != nil {
		return fmt.Errorf("prometheus address %q: %w", address, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("prometheus address %q must be an http:// or https:// URL with a host", address)
	}
	return nil
}

// Address returns the base URL the Querier sends queries to.
func (p *Prometheus) Address() string {
	return p.address
}

// Query evaluates query at the instant at, within the configured timeout.
func (p *Prometheus) Query(ctx context.Context, query string, at time.Time) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	value, warnings, err := p.api.Query(ctx, query, at, promv1.WithTimeout(p.timeout))
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", p.address, err)
	}
	if len(warnings) > 0 && p.warnings != nil {
		p.warnings(query, warnings)
	}
	return toVector(value)
}

// toVector turns an instant-query result into a vector: a scalar becomes one sample without
// labels, no result an empty vector; range vectors and strings are errors.
func toVector(value model.Value) (model.Vector, error) {
	switch v := value.(type) {
	case nil:
		return model.Vector{}, nil
	case model.Vector:
		return v, nil
	case *model.Scalar:
		return model.Vector{&model.Sample{Metric: model.Metric{}, Value: v.Value, Timestamp: v.Timestamp}}, nil
	default:
		return nil, fmt.Errorf("query returned a %s; an instant vector or a scalar is expected", value.Type())
	}
}
