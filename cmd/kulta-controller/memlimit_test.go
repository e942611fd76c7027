package main

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/go-logr/logr"
)

// TestMemoryLimitFollowsTheContainer checks the runtime's soft memory limit becomes the ratio
// of the limit the provider reports (the cgroup's, in a Pod).
func TestMemoryLimitFollowsTheContainer(t *testing.T) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		t.Skip("GOMEMLIMIT is set in the environment, and wins")
	}
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)

	container := uint64(512 << 20)
	got, err := setMemoryLimit(0.9, memlimit.Limit(container), logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	want := int64(float64(container) * 0.9)
	if got != want || debug.SetMemoryLimit(-1) != want {
		t.Errorf("limit %d, runtime has %d, want %d", got, debug.SetMemoryLimit(-1), want)
	}
}
