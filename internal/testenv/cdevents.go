package testenv

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// CDEventsReceiver is a CloudEvents HTTP endpoint on loopback that records, per event source
// (KULTA uses the Rollout's API path), the short types of the binary-mode CDEvents it receives:
// dev.cdevents.service.deployed.0.3.0 is recorded as service.deployed, and the artifact each
// names (subject.content.artifactId, "" when none). Anything that is not a binary-mode
// CloudEvent is answered 400 and counted in Rejected.
type CDEventsReceiver struct {
	server *httptest.Server

	mu        sync.Mutex
	types     map[string][]string
	artifacts map[string][]string
	rejected  int
}

// StartCDEventsReceiver starts a receiver that stops when t ends.
func StartCDEventsReceiver(t testing.TB) *CDEventsReceiver {
	t.Helper()
	r := &CDEventsReceiver{types: map[string][]string{}, artifacts: map[string][]string{}}
	r.server = httptest.NewServer(r)
	t.Cleanup(r.server.Close)
	return r
}

// ServeHTTP records one CloudEvent.
func (r *CDEventsReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	typ, source := req.Header.Get("Ce-Type"), req.Header.Get("Ce-Source")
	if typ == "" || source == "" {
		r.mu.Lock()
		r.rejected++
		r.mu.Unlock()
		http.Error(w, "not a binary-mode CloudEvent", http.StatusBadRequest)
		return
	}
	short := strings.TrimPrefix(typ, "dev.cdevents.")
	if i := strings.LastIndex(short, ".0."); i > 0 {
		short = short[:i]
	}
	var body struct {
		Subject struct {
			Content struct {
				ArtifactID string `json:"artifactId"`
			} `json:"content"`
		} `json:"subject"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		r.mu.Lock()
		r.rejected++
		r.mu.Unlock()
		http.Error(w, "the body is not a CDEvent: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.types[source] = append(r.types[source], short)
	r.artifacts[source] = append(r.artifacts[source], body.Subject.Content.ArtifactID)
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// Artifacts returns the artifact each event from source named so far, in the order they
// arrived.
func (r *CDEventsReceiver) Artifacts(source string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.artifacts[source]...)
}

// URL is the receiver's address, for the controller's CDEvents sink.
func (r *CDEventsReceiver) URL() string { return r.server.URL }

// Types returns the short types received from source so far, in the order they arrived.
func (r *CDEventsReceiver) Types(source string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.types[source]...)
}

// Rejected counts the requests that were not binary-mode CloudEvents.
func (r *CDEventsReceiver) Rejected() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected
}
