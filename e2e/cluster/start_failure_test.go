//go:build e2e

package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// When a component dies while the cluster starts, Start fails with the end of that component's
// log and stops everything it had started.
func TestStartFailsWhenAComponentDies(t *testing.T) {
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	realBins, err := binDir("", filepath.Join(root, "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bins := t.TempDir()
	for _, name := range requiredBinaries {
		if name == binKwok {
			continue
		}
		if err := os.Symlink(filepath.Join(realBins, name), filepath.Join(bins, name)); err != nil {
			t.Fatal(err)
		}
	}
	script := "#!/bin/sh\necho 'kwok: cannot start, as this test wants'\nexit 3\n"
	if err := os.WriteFile(filepath.Join(bins, binKwok), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{BinDir: bins, LogDir: t.TempDir()})
	if err == nil {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
		t.Fatal("Start succeeded although kwok exits at once")
	}
	t.Log(err)
	for _, want := range []string{"kwok exited unexpectedly", "exit status 3", "as this test wants"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q", want)
		}
	}
	if strings.Count(err.Error(), "exited unexpectedly") != 1 {
		t.Errorf("the crash is reported more than once")
	}

	var exes []string
	for _, name := range requiredBinaries {
		exe, err := filepath.EvalSymlinks(filepath.Join(bins, name))
		if err != nil {
			t.Fatal(err)
		}
		exes = append(exes, exe)
	}
	left, err := childProcesses(exes)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("processes left running after the failed Start: %v", left)
	}
}
