package cluster_test

import (
	"context"
	"strings"
	"testing"

	"github.com/false-systems/kulta/e2e/cluster"
)

// Start fails before it runs anything when the binaries are missing, and says how to build them.
func TestStartWithoutBinariesSaysToBuildThem(t *testing.T) {
	dir := t.TempDir()
	c, err := cluster.Start(context.Background(), cluster.Options{BinDir: dir})
	if err == nil {
		t.Fatalf("Start succeeded without binaries in %s", dir)
	}
	if c != nil {
		t.Errorf("Start returned a cluster along with the error %v", err)
	}
	for _, want := range []string{"make cluster-bin", "kube-scheduler", "kwok", dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
