package main

import (
	"context"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/go-logr/logr"
)

// TestGCPercentSetsTheCollectorsGoal checks --gc-percent reaches the runtime, that 0 leaves it
// as it is, and that GOGC in the environment wins.
func TestGCPercentSetsTheCollectorsGoal(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)

	t.Setenv("GOGC", "200")
	if setGCPercent(40, logr.Discard()) {
		t.Fatal("--gc-percent=40 with GOGC=200 was applied, want GOGC to win")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC set: the goal became %d, want it left at 100", got)
	}
}

// TestGCPercentWithoutGOGC runs apart from the test that sets GOGC, since t.Setenv cannot
// unset a variable.
func TestGCPercentWithoutGOGC(t *testing.T) {
	if _, set := lookupGOGC(); set {
		t.Skip("GOGC is set in the environment, and wins")
	}
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)

	if !setGCPercent(40, logr.Discard()) {
		t.Fatal("--gc-percent=40 not applied")
	}
	if got := debug.SetGCPercent(100); got != 40 {
		t.Errorf("--gc-percent=40: the goal is %d", got)
	}
	if setGCPercent(0, logr.Discard()) {
		t.Error("--gc-percent=0 applied, want Go's default left")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("--gc-percent=0: the goal became %d, want 100 left", got)
	}
}

// TestGCPercentFlag checks the flag's default, its environment variable, and that bad values
// are refused with the flag or variable named.
func TestGCPercentFlag(t *testing.T) {
	o, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.gcPercent != defaultGCPercent {
		t.Errorf("--gc-percent defaults to %d, want %d", o.gcPercent, defaultGCPercent)
	}
	t.Setenv("KULTA_GC_PERCENT", "75")
	if o, err := parse(nil); err != nil || o.gcPercent != 75 {
		t.Errorf("KULTA_GC_PERCENT=75: %v, error %v", o, err)
	}
	if o, err := parse([]string{"--gc-percent=30"}); err != nil || o.gcPercent != 30 {
		t.Errorf("--gc-percent=30 with KULTA_GC_PERCENT=75: %v, error %v; want the flag to win", o, err)
	}
	t.Setenv("KULTA_GC_PERCENT", "half")
	if _, err := parse(nil); err == nil || !strings.Contains(err.Error(), "KULTA_GC_PERCENT") {
		t.Errorf("KULTA_GC_PERCENT=half: error %v, want one naming the variable", err)
	}
	t.Setenv("KULTA_GC_PERCENT", "")
	if code := run(context.Background(), []string{"--gc-percent=-1"}, nil); code != 2 {
		t.Errorf("--gc-percent=-1 exited %d, want 2", code)
	}
}
