package main

import (
	"os"
	"runtime/debug"

	"github.com/go-logr/logr"
)

// defaultGCPercent is --gc-percent's default: a heap of one and a quarter times the live data
// rather than Go's twice. Measured at 1,000 Rollouts over three waves (bench/README, "Where
// the memory goes"): against 50, the earlier default, 8 to 10 MiB less peak RSS (89 and 91
// against 99) for a fifth to a quarter more controller CPU, which stays under a quarter of
// the API server's work in a wave, and waves as long.
const defaultGCPercent = 25

// setGCPercent sets the garbage collector's goal: a collection starts when the heap has grown
// by percent of what the last one left live. Go's default is 100, a heap of twice the live
// data; KULTA's live data is mostly its informer cache, which a lower goal keeps closer to its
// size at the cost of more frequent collections. A GOGC in the environment wins, as
// GOMEMLIMIT does over --auto-gomemlimit-ratio; percent 0 leaves Go's default. It reports
// whether it set the goal.
func setGCPercent(percent int, log logr.Logger) bool {
	if percent == 0 {
		return false
	}
	if v, set := lookupGOGC(); set {
		log.Info("GOGC in the environment wins over --gc-percent", "GOGC", v, "gcPercent", percent)
		return false
	}
	debug.SetGCPercent(percent)
	return true
}

// lookupGOGC is the GOGC environment variable, when set to a value: the runtime reads an
// empty one as unset.
func lookupGOGC() (string, bool) {
	v := os.Getenv("GOGC")
	return v, v != ""
}
