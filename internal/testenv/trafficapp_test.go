package testenv

import (
	"testing"
	"time"
)

// TestTrafficLatencySpread checks the latencies a service's requests take: Latency for every
// request without a spread, and with one, evenly spaced values from Latency-LatencySpread to
// Latency+LatencySpread in turn, repeating, whose mean is Latency.
func TestTrafficLatencySpread(t *testing.T) {
	fixed := Traffic{Latency: 20 * time.Millisecond}
	for i := range int64(250) {
		if got := fixed.latency(i); got != fixed.Latency {
			t.Fatalf("request %d without a spread took %s, want %s", i, got, fixed.Latency)
		}
	}

	spread := Traffic{Latency: 100 * time.Millisecond, LatencySpread: 40 * time.Millisecond}
	const cycle = latencySteps + 1
	var sum time.Duration
	for i := range int64(cycle) {
		want := 60*time.Millisecond + time.Duration(i)*800*time.Microsecond
		got := spread.latency(i)
		if got != want {
			t.Errorf("request %d took %s, want %s", i, got, want)
		}
		if again := spread.latency(i + cycle); again != got {
			t.Errorf("request %d took %s, want %s as request %d", i+cycle, again, got, i)
		}
		sum += got
	}
	if first, last := spread.latency(0), spread.latency(cycle-1); first != 60*time.Millisecond || last != 140*time.Millisecond {
		t.Errorf("one cycle spans %s to %s, want 60ms to 140ms", first, last)
	}
	if mean := sum / cycle; mean != spread.Latency {
		t.Errorf("mean latency %s, want %s", mean, spread.Latency)
	}
}
