package analysis

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// credentials is the authentication a Prometheus client sends; at most one kind is set.
type credentials struct {
	bearerToken     string
	bearerTokenFile string
	username        string
	password        string
	basic           bool
}

// empty reports whether no authentication is configured.
func (c credentials) empty() bool {
	return c.bearerToken == "" && c.bearerTokenFile == "" && !c.basic
}

// authRoundTripper adds an Authorization header to each request.
type authRoundTripper struct {
	credentials
	next http.RoundTripper
}

// RoundTrip sends a copy of req with the Authorization header set.
func (a *authRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	authorized := req.Clone(req.Context())
	switch {
	case a.basic:
		authorized.SetBasicAuth(a.username, a.password)
	case a.bearerTokenFile != "":
		token, err := os.ReadFile(a.bearerTokenFile)
		if err != nil {
			err = fmt.Errorf("reading the bearer token: %w", err)
			if req.Body != nil {
				// A RoundTripper must close the body even when it fails.
				err = errors.Join(err, req.Body.Close())
			}
			return nil, err
		}
		authorized.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	default:
		authorized.Header.Set("Authorization", "Bearer "+a.bearerToken)
	}
	resp, err := a.next.RoundTrip(authorized)
	if err != nil {
		return nil, fmt.Errorf("sending the request: %w", err)
	}
	return resp, nil
}

// newTLSConfig trusts the certificates in caFile (the system roots when empty) and skips
// verification when insecure is set.
func newTLSConfig(caFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// newTransport is an HTTP transport like the default one, with the given TLS settings.
func newTransport(tlsConfig *tls.Config) *http.Transport {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsConfig,
	}
}
