package harness

import (
	"context"
	"testing"
)

// TestAPIServerMetricsReadsAreNotCounted runs a real API server: it does not count the reads of
// its own /metrics in apiserver_request_total, so the bench does not count them as its own
// either, or they would come off the non-resource GETs the controller is left with (the API
// server's count less the bench's).
func TestAPIServerMetricsReadsAreNotCounted(t *testing.T) {
	r := &runner{harnessCount: NewRequestCounter(), standinCount: NewRequestCounter()}
	t.Cleanup(func() {
		if err := r.teardown(); err != nil {
			t.Error(err)
		}
	})
	if err := r.startEnv(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	read := func() RequestCounts {
		t.Helper()
		ss, err := Scrape(ctx, r.apiHTTP, r.apiMetricsURL)
		if err != nil {
			t.Fatal(err)
		}
		return APIServerRequests(ss)
	}
	nonResource := RequestKey{Verb: "GET", Resource: NonResource}
	before := r.harnessCount.Snapshot()
	first := read()
	for range 3 {
		read()
	}
	last := read()
	if got := r.harnessCount.Snapshot().Sub(before); len(got) != 0 {
		t.Errorf("five reads of the API server's /metrics counted as the bench's requests: %v", got)
	}
	// The API server's own count: were it to count the reads, the bench would have to too.
	if grew := last[nonResource] - first[nonResource]; grew >= 4 {
		t.Errorf("the API server counted %v non-resource GETs over four reads of its /metrics; the bench must count them as its own", grew)
	}
}
