package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGatewayAPICRDDirAt fetches an old gateway-api release's CRDs and checks they are that
// release's: v1.0.0 has HTTPRoute and ReferenceGrant but no GRPCRoute in its standard channel,
// which the module this repository requires has. A release that does not exist is an error
// naming it.
func TestGatewayAPICRDDirAt(t *testing.T) {
	if testing.Short() {
		t.Skip("may fetch a gateway-api release through the Go module proxy")
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	old, err := GatewayAPICRDDirAt(root, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(old, "gateway-api@v1.0.0") {
		t.Errorf("v1.0.0's CRDs are in %s", old)
	}
	current, err := GatewayAPICRDDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for dir, grpc := range map[string]bool{old: false, current: true} {
		for file, want := range map[string]bool{
			"gateway.networking.k8s.io_httproutes.yaml":      true,
			"gateway.networking.k8s.io_referencegrants.yaml": true,
			"gateway.networking.k8s.io_grpcroutes.yaml":      grpc,
		} {
			_, err := os.Stat(filepath.Join(dir, file))
			if exists := err == nil; exists != want {
				t.Errorf("%s in %s: exists %v, want %v (%v)", file, dir, exists, want, err)
			}
		}
	}
	if _, err := GatewayAPICRDDirAt(root, "v0.0.0-no-such-release"); err == nil || !strings.Contains(err.Error(), "v0.0.0-no-such-release") {
		t.Errorf("a release that does not exist: %v, want an error naming it", err)
	}
}
