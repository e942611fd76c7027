package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/webhook"
)

// TestBoundsOfACall: redirects are followed at most webhook.MaxRedirects times and only to
// http or https; a huge answer is read only in part and quoted on one printable line; a
// receiver that is not there is named by no URL.
func TestBoundsOfACall(t *testing.T) {
	var hops int
	mux := http.NewServeMux()
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		hops++
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("/ftp", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ftp://files.example.com/x", http.StatusFound)
	})
	mux.HandleFunc("/once", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusTemporaryRedirect) })
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		line := strings.Repeat("x", 1023) + "\n"
		for range 10 << 10 { // 10 MiB
			if _, err := w.Write([]byte(line)); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL + "/secret-path"
	gone.Close()

	c := &webhook.Caller{}
	call := func(url string) webhook.Answer {
		return c.Call(context.Background(), "shop", kultav1alpha1.Webhook{Name: "h", Type: kultav1alpha1.WebhookConfirmPromotion, URL: url}, webhook.Payload{})
	}
	if a := call(srv.URL + "/loop"); a.Result != webhook.Unanswered || !strings.Contains(a.Message, "redirects") || hops > webhook.MaxRedirects+1 {
		t.Errorf("redirect loop: %+v after %d hops, want unanswered after at most %d", a, hops, webhook.MaxRedirects+1)
	}
	if a := call(srv.URL + "/ftp"); a.OK() || !strings.Contains(a.Message, "only http and https") {
		t.Errorf("redirect to ftp: %+v", a)
	}
	if a := call(srv.URL + "/once"); !a.OK() {
		t.Errorf("one redirect to a 200: %+v", a)
	}
	a := call(srv.URL + "/huge")
	if a.Result != webhook.Rejected || a.Code != http.StatusServiceUnavailable || len(a.Message) > 300 || strings.ContainsAny(a.Message, "\n\r") {
		t.Errorf("huge answer: %s %d, message of %d bytes %q", a.Result, a.Code, len(a.Message), a.Message)
	}
	if a := call(goneURL); a.Result != webhook.Unanswered || strings.Contains(a.Message, "secret-path") || strings.Contains(a.Message, strings.TrimPrefix(gone.URL, "http://")) {
		t.Errorf("no receiver: %+v names the URL", a)
	}
}
