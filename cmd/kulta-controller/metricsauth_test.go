package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/false-systems/kulta/internal/testenv"
)

// TestSecureMetricsAskTheAPIServer starts the controller with --metrics-secure: /metrics is
// served over HTTPS and answers a scraper whose service account may get /metrics, and no
// other caller.
func TestSecureMetricsAskTheAPIServer(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "secure-metrics")
	scraper := e.ServiceAccountToken(t, ns, "scraper", "/metrics")
	stranger := e.ServiceAccountToken(t, ns, "stranger")
	// A process of its own: controller names are unique within a process, and TestControllerRuns
	// runs one in this one.
	r := startReplica(t, buildController(t), kubeconfigFor(t, e), ns, "--metrics-secure")
	metricsAddr := r.metricsAddr

	// The certificate is the self-signed one the metrics server makes for itself.
	httpsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a test of the server's answers, not of its certificate
	}}
	scrape := func(token string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
		if err != nil {
			return 0, err.Error()
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpsClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		body, err := io.ReadAll(resp.Body)
		if closeErr := resp.Body.Close(); err == nil {
			err = closeErr
		}
		if err != nil {
			return 0, err.Error()
		}
		return resp.StatusCode, string(body)
	}
	code := func(token string) func() int {
		return func() int { c, _ := scrape(token); return c }
	}
	g.Eventually(code(scraper)).WithTimeout(20 * time.Second).Should(Equal(http.StatusOK))
	body := func() string { _, b := scrape(scraper); return b }
	g.Eventually(body).WithTimeout(20 * time.Second).Should(ContainSubstring(`controller_runtime_max_concurrent_reconciles{controller="rollout"} 16`))
	g.Expect(code(stranger)()).To(Equal(http.StatusForbidden))
	g.Expect(code("")()).To(Equal(http.StatusUnauthorized))
	g.Expect(code("not-a-token")()).To(Equal(http.StatusUnauthorized))
	plain, err := http.Get("http://" + metricsAddr + "/metrics")
	if err == nil {
		g.Expect(plain.Body.Close()).To(Succeed())
		g.Expect(plain.StatusCode).To(Equal(http.StatusBadRequest), "plain HTTP on the HTTPS port")
	}

	select {
	case <-r.exited:
		t.Fatalf("the controller exited: %v", r.waitErr)
	default:
	}
}
