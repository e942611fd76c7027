package main

import (
	"fmt"
	"log/slog"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/go-logr/logr"
)

// setMemoryLimit gives the Go runtime a soft memory limit of ratio times the memory limit
// provider reports (the container's cgroup limit in production), so that the garbage collector
// works harder as the heap nears the limit instead of the kernel killing the process. A
// GOMEMLIMIT in the environment wins; with no limit to read, the runtime keeps none. It returns
// the limit set, in bytes.
func setMemoryLimit(ratio float64, provider memlimit.Provider, log logr.Logger) (int64, error) {
	limit, err := memlimit.Set(memlimit.WithRatio(ratio), memlimit.WithProvider(provider),
		memlimit.WithLogger(slog.New(logr.ToSlogHandler(log))))
	if err != nil {
		return limit, fmt.Errorf("setting the Go memory limit to %g of the container's: %w", ratio, err)
	}
	return limit, nil
}
