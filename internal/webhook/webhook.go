// Package webhook calls the webhooks of a Rollout's strategy: it resolves their URL and token
// (from the spec or a Secret), POSTs the JSON payload with a timeout, and turns the answer into
// a result whose message never carries the URL or the token.
//
// Reading Secrets is the only permission it needs. The chart grants it for the Secrets its
// values name (webhooks.secretNames), by name, and never list or watch.
//
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/metrics"
)

const (
	// DefaultTimeout bounds a call whose webhook sets no timeout.
	DefaultTimeout = 10 * time.Second
	// MaxTimeout bounds every call, whatever the webhook says.
	MaxTimeout = 5 * time.Minute
	// MaxRedirects is how many redirects a call follows, each to http or https only.
	MaxRedirects = 3
	// MaxResponseBytes is how much of an answer's body is read; the rest is dropped.
	MaxResponseBytes = 64 << 10
	// messageBytes is how much of the body the message quotes.
	messageBytes = 200
)

// Weights is the traffic split at the call.
type Weights struct {
	Stable int32 `json:"stable"`
	Canary int32 `json:"canary"`
}

// Payload is the JSON body of every call.
type Payload struct {
	// Webhook and Type name the webhook called.
	Webhook string                    `json:"webhook"`
	Type    kultav1alpha1.WebhookType `json:"type"`
	// Name and Namespace name the Rollout.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Strategy is the Rollout's strategy; Phase its phase at the call.
	Strategy string `json:"strategy"`
	Phase    string `json:"phase,omitempty"`
	// Revision is the pod-template hash of the revision rolling out; StableRevision the one it
	// replaces.
	Revision       string `json:"revision"`
	StableRevision string `json:"stableRevision,omitempty"`
	// Step is the canary step index (absent for the other strategies), Steps their number.
	Step  *int32 `json:"step,omitempty"`
	Steps int    `json:"steps,omitempty"`
	// Weights is the split the routes (or the Pods) carry at the call; NextWeights, for
	// confirm-traffic-increase, the split the step asks for.
	Weights     Weights  `json:"weights"`
	NextWeights *Weights `json:"nextWeights,omitempty"`
	// Outcome is, for post-rollout, Completed or Failed.
	Outcome string `json:"outcome,omitempty"`
	// Metadata is the webhook's metadata, as written in the spec.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Timestamp is when the call was sent.
	Timestamp time.Time `json:"timestamp"`
}

// Result classifies an answer.
type Result string

// Results, also the result label of kulta_webhook_calls_total.
const (
	Passed        Result = "passed"
	Rejected      Result = "rejected"
	Unanswered    Result = "unanswered"
	Misconfigured Result = "misconfigured"
)

// Answer is what one call came to.
type Answer struct {
	Result Result
	// Code is the HTTP status, 0 without an answer.
	Code int
	// Message says what the answer was, with no URL or token in it.
	Message string
}

// OK reports a 2xx answer.
func (a Answer) OK() bool { return a.Result == Passed }

// Caller calls webhooks.
type Caller struct {
	// Secrets reads the Secrets that urlFrom and tokenFrom name; a reader that goes to the API
	// server (the controller needs get on those Secrets, never list or watch).
	Secrets client.Reader
	// HTTP sends the calls; nil uses a client that follows at most MaxRedirects redirects to
	// http and https URLs.
	HTTP *http.Client
}

// NewHTTPClient is the client a Caller uses by default.
func NewHTTPClient() *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxResponseHeaderBytes = 64 << 10
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return fmt.Errorf("more than %d redirects", MaxRedirects)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s URL; only http and https are followed", req.URL.Scheme)
			}
			return nil
		},
	}
}

// Timeout is the bound of one call of hook.
func Timeout(hook kultav1alpha1.Webhook) time.Duration {
	if hook.Timeout == nil {
		return DefaultTimeout
	}
	d, err := hook.Timeout.Parse()
	if err != nil || d <= 0 {
		return DefaultTimeout
	}
	return min(d, MaxTimeout)
}

// Call sends payload to hook of a Rollout in namespace and waits for its answer, at most the
// hook's timeout. It never fails: every outcome is an Answer, counted in the webhook metrics.
func (c *Caller) Call(ctx context.Context, namespace string, hook kultav1alpha1.Webhook, payload Payload) Answer {
	start := time.Now()
	answer, secrets := c.call(ctx, namespace, hook, payload)
	answer.Message = redact(answer.Message, secrets)
	metrics.WebhookCalls.WithLabelValues(string(hook.Type), string(answer.Result)).Inc()
	if answer.Result != Misconfigured {
		metrics.WebhookDuration.WithLabelValues(string(hook.Type)).Observe(time.Since(start).Seconds())
	}
	return answer
}

// call does the work of Call; it also returns the secret strings the message must not show.
func (c *Caller) call(ctx context.Context, namespace string, hook kultav1alpha1.Webhook, payload Payload) (Answer, []string) {
	target, token, secrets, err := c.resolve(ctx, namespace, hook)
	if err != nil {
		return Answer{Result: Misconfigured, Message: err.Error()}, secrets
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return Answer{Result: Misconfigured, Message: fmt.Sprintf("encoding the payload: %v", err)}, secrets
	}
	timeout := Timeout(hook)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		// The URL parsed in resolve; this is a request Go refuses, such as a bad host.
		return Answer{Result: Misconfigured, Message: "the URL cannot be called"}, secrets
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kulta-controller")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	httpClient := c.HTTP
	if httpClient == nil {
		httpClient = defaultClient
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Answer{Result: Unanswered, Message: fmt.Sprintf("no answer within %s", timeout)}, secrets
		}
		return Answer{Result: Unanswered, Message: "no answer: " + Cause(err)}, secrets
	}
	defer func() {
		// The rest of the body is dropped; closing frees the connection.
		if err := resp.Body.Close(); err != nil {
			ctrl.LoggerFrom(ctx).V(1).Info("Closing a webhook's answer", "webhook", hook.Name, "error", Cause(err))
		}
	}()
	message := fmt.Sprintf("HTTP %d", resp.StatusCode)
	head, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	// Secrets are taken out before the quote is cut, so that no part of one survives it.
	switch quoted := quote([]byte(redact(string(head), secrets))); {
	case err != nil:
		// The status decides; a body cut short only loses the quote.
		message += " (body unreadable: " + Cause(err) + ")"
	case quoted != "":
		message += ": " + quoted
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return Answer{Result: Passed, Code: resp.StatusCode, Message: message}, secrets
	}
	return Answer{Result: Rejected, Code: resp.StatusCode, Message: message}, secrets
}

var defaultClient = NewHTTPClient()

// resolve reads the hook's URL and token, checking that the URL is absolute http or https.
func (c *Caller) resolve(ctx context.Context, namespace string, hook kultav1alpha1.Webhook) (target, token string, secrets []string, err error) {
	target = hook.URL
	if hook.URLFrom != nil {
		if target, err = c.secret(ctx, namespace, "urlFrom", *hook.URLFrom); err != nil {
			return "", "", nil, err
		}
		target = strings.TrimSpace(target)
		secrets = append(secrets, target)
	}
	if hook.TokenFrom != nil {
		if token, err = c.secret(ctx, namespace, "tokenFrom", *hook.TokenFrom); err != nil {
			return "", "", secrets, err
		}
		token = strings.TrimSpace(token)
		secrets = append(secrets, token)
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Say which field, never the URL: from a Secret it may carry a token.
		return "", "", secrets, fmt.Errorf("%s is not an absolute http or https URL", urlField(hook))
	}
	if hook.URLFrom != nil {
		// A receiver may echo the path or the query alone: either may be the secret.
		secrets = append(secrets, u.EscapedPath(), u.Path, u.RawQuery)
	}
	return target, token, secrets, nil
}

func urlField(hook kultav1alpha1.Webhook) string {
	if hook.URLFrom != nil {
		return fmt.Sprintf("the value of key %s of Secret %s (urlFrom)", hook.URLFrom.Key, hook.URLFrom.Name)
	}
	return "url"
}

// secret reads one key of a Secret in namespace.
func (c *Caller) secret(ctx context.Context, namespace, field string, ref kultav1alpha1.SecretKeyRef) (string, error) {
	if c.Secrets == nil {
		return "", fmt.Errorf("%s: no Secret reader configured", field)
	}
	var s corev1.Secret
	if err := c.Secrets.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, &s); err != nil {
		return "", fmt.Errorf("%s: reading Secret %s/%s: %w", field, namespace, ref.Name, err)
	}
	v, ok := s.Data[ref.Key]
	if !ok || len(v) == 0 {
		return "", fmt.Errorf("%s: Secret %s/%s has no key %s", field, namespace, ref.Name, ref.Key)
	}
	return string(v), nil
}

// Cause is the reason of a failed request without the URL, host or address Go's errors
// carry: from a Secret, any part of the URL may be the secret.
func Cause(err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		switch {
		case dnsErr.IsNotFound:
			return "the host name does not resolve"
		case dnsErr.IsTimeout:
			return "the host name lookup timed out"
		}
		return "the host name lookup failed"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		inner := opErr.Err
		var sysErr *os.SyscallError
		if errors.As(inner, &sysErr) {
			inner = sysErr.Err
		}
		return opErr.Op + ": " + inner.Error()
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return err.Error()
}

// quote is the start of a body, printable and on one line.
func quote(body []byte) string {
	s := strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case !unicode.IsPrint(r):
			return -1
		}
		return r
	}, string(body))
	s = strings.TrimSpace(s)
	if len(s) > messageBytes {
		cut := messageBytes
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// redact replaces every secret string in message.
func redact(message string, secrets []string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			message = strings.ReplaceAll(message, s, "[redacted]")
		}
	}
	return message
}
