package analysis

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// fakeAPI is an HTTP server speaking enough of Prometheus' /api/v1/query for client tests.
type fakeAPI struct {
	mu        sync.Mutex
	auth      []string
	timeouts  []string
	writeErrs []error // the slow query's client gives up before the answer
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.timeouts = append(f.timeouts, r.FormValue("timeout"))
	f.mu.Unlock()
	status, body := http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]}}`
	switch r.FormValue("query") {
	case "vector":
		body = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"service":"a"},"value":[1700000000,"1.5"]}]}}`
	case "scalar":
		body = `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"+Inf"]}}`
	case "matrix":
		body = `{"status":"success","data":{"resultType":"matrix","result":[]}}`
	case "warned":
		body = `{"status":"success","warnings":["metric might not be a counter"],"data":{"resultType":"vector","result":[]}}`
	case "slow":
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	default:
		status = http.StatusBadRequest
		body = `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:10: parse error: unclosed left parenthesis"}`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if _, err := io.WriteString(w, body); err != nil {
		f.mu.Lock()
		f.writeErrs = append(f.writeErrs, err)
		f.mu.Unlock()
	}
}

func (f *fakeAPI) lastAuth() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.auth[len(f.auth)-1]
}

func newFakeAPI(t *testing.T) (*fakeAPI, *httptest.Server) {
	t.Helper()
	api := &fakeAPI{}
	server := httptest.NewServer(api)
	t.Cleanup(server.Close)
	return api, server
}

func TestNewPrometheusRejectsBadAddresses(t *testing.T) {
	for _, address := range []string{"", "prometheus:9090", "ftp://prometheus", "http://", "http://%zz"} {
		if _, err := NewPrometheus(address); err == nil {
			t.Errorf("NewPrometheus(%q) succeeded, want an error", address)
		}
	}
}

func TestPrometheusQueryResults(t *testing.T) {
	_, server := newFakeAPI(t)
	var warned []string
	p, err := NewPrometheus(server.URL+"/", WithWarningHandler(func(query string, warnings []string) {
		warned = append(warned, query+": "+strings.Join(warnings, ","))
	}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Address() != server.URL+"/" {
		t.Errorf("Address = %q", p.Address())
	}
	ctx := context.Background()
	v, err := p.Query(ctx, "vector", time.Unix(1700000000, 0))
	if err != nil || len(v) != 1 || v[0].Value != 1.5 || v[0].Metric["service"] != "a" {
		t.Fatalf("vector: %v, %v", v, err)
	}
	v, err = p.Query(ctx, "scalar", time.Time{})
	if err != nil || len(v) != 1 || len(v[0].Metric) != 0 || !math.IsInf(float64(v[0].Value), 1) {
		t.Fatalf("scalar: %v, %v", v, err)
	}
	if _, err := p.Query(ctx, "matrix", time.Time{}); err == nil || !strings.Contains(err.Error(), "matrix") {
		t.Fatalf("matrix: err = %v, want an error naming the result type", err)
	}
	_, err = p.Query(ctx, "sum(rate(", time.Time{})
	var apiErr *promv1.Error
	if !errors.As(err, &apiErr) || apiErr.Type != promv1.ErrBadData || !strings.Contains(err.Error(), "parse error") {
		t.Fatalf("malformed query: err = %v, want bad_data with the parse error", err)
	}
	if _, err := p.Query(ctx, "warned", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if len(warned) != 1 || warned[0] != "warned: metric might not be a counter" {
		t.Fatalf("warnings = %q", warned)
	}
}

func TestPrometheusTimeout(t *testing.T) {
	api, server := newFakeAPI(t)
	p, err := NewPrometheus(server.URL, WithTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = p.Query(context.Background(), "slow", time.Time{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("query took %s despite a 200ms timeout", elapsed)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.timeouts[0] != "200ms" {
		t.Errorf("server was asked for timeout %q, want 200ms", api.timeouts[0])
	}
}

func TestPrometheusAuthentication(t *testing.T) {
	api, server := newFakeAPI(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, "first-token\n")
	tests := []struct {
		name string
		opt  Option
		want string
	}{
		{"none", WithTimeout(0), ""},
		{"bearer", WithBearerToken("s3cret"), "Bearer s3cret"},
		{"bearer file", WithBearerTokenFile(tokenFile), "Bearer first-token"},
		{"basic", WithBasicAuth("kulta", "pa:ss"), "Basic a3VsdGE6cGE6c3M="},
	}
	for _, tt := range tests {
		p, err := NewPrometheus(server.URL, tt.opt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Query(context.Background(), "vector", time.Time{}); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := api.lastAuth(); got != tt.want {
			t.Errorf("%s: Authorization = %q, want %q", tt.name, got, tt.want)
		}
	}

	p, err := NewPrometheus(server.URL, WithBearerTokenFile(tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, tokenFile, "rotated-token")
	if _, err := p.Query(context.Background(), "vector", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := api.lastAuth(); got != "Bearer rotated-token" {
		t.Errorf("after rotation: Authorization = %q", got)
	}
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Query(context.Background(), "vector", time.Time{}); err == nil || !strings.Contains(err.Error(), "bearer token") {
		t.Errorf("missing token file: err = %v", err)
	}
}

func TestPrometheusTLS(t *testing.T) {
	server := httptest.NewTLSServer(&fakeAPI{})
	t.Cleanup(server.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificate().Raw})))

	query := func(opts ...Option) error {
		p, err := NewPrometheus(server.URL, opts...)
		if err != nil {
			return err
		}
		_, err = p.Query(context.Background(), "vector", time.Time{})
		return err
	}
	if err := query(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted server: err = %v, want a certificate error", err)
	}
	if err := query(WithCAFile(caFile)); err != nil {
		t.Errorf("with the CA file: %v", err)
	}
	if err := query(WithInsecureSkipVerify(), WithBearerToken("t")); err != nil {
		t.Errorf("insecure: %v", err)
	}

	notPEM := filepath.Join(dir, "not.pem")
	writeFile(t, notPEM, "hello")
	bad := map[string][]Option{
		"missing CA file":         {WithCAFile(filepath.Join(dir, "missing.pem"))},
		"CA file without certs":   {WithCAFile(notPEM)},
		"round tripper with TLS":  {WithRoundTripper(http.DefaultTransport), WithInsecureSkipVerify()},
		"round tripper with a CA": {WithCAFile(caFile), WithRoundTripper(http.DefaultTransport)},
	}
	for name, opts := range bad {
		if _, err := NewPrometheus(server.URL, opts...); err == nil {
			t.Errorf("%s: NewPrometheus succeeded, want an error", name)
		}
	}
	p, err := NewPrometheus(server.URL, WithRoundTripper(server.Client().Transport), WithBasicAuth("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Query(context.Background(), "vector", time.Time{}); err != nil {
		t.Errorf("custom round tripper: %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
