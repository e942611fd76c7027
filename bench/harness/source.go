package harness

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Source names the code a run measured: the commit the controller was built from, and whether
// the controller's sources then differed from it (ControllerSources, new files included).
type Source struct {
	Commit   string `json:"commit"`
	Modified bool   `json:"modified,omitempty"`
}

// String is how the results name the code: the commit's first 7 characters, and "with
// uncommitted changes" when the controller's sources differed.
func (s Source) String() string {
	c := s.Commit
	if len(c) > 7 {
		c = c[:7]
	}
	if s.Modified {
		return "commit " + c + " with uncommitted changes"
	}
	return "commit " + c
}

// ControllerSources are the paths go build ./cmd/kulta-controller compiles from (the chart,
// docs, bench and its results are not among them).
var ControllerSources = []string{"go.mod", "go.sum", "cmd", "api", "internal", "providers", "analysis"}

// ReadSource asks git which commit the repository at root has checked out and whether the
// controller's sources differ from it, files not yet added included.
func ReadSource(ctx context.Context, root string) (Source, error) {
	head, err := gitOutput(ctx, root, "rev-parse", "HEAD")
	if err != nil {
		return Source{}, err
	}
	status, err := gitOutput(ctx, root, append([]string{"status", "--porcelain", "--untracked-files=all", "--"}, ControllerSources...)...)
	if err != nil {
		return Source{}, err
	}
	return Source{Commit: strings.TrimSpace(head), Modified: strings.TrimSpace(status) != ""}, nil
}

func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, msg)
		}
		return "", fmt.Errorf("git %s in %s: %w", strings.Join(args, " "), dir, err)
	}
	return string(out), nil
}
