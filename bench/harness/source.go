package harness

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Source names the code a run measured: the commit the controller was built from, and whether
// the working tree differed from it (a change not yet committed).
type Source struct {
	Commit   string `json:"commit"`
	Modified bool   `json:"modified,omitempty"`
}

// String is how the results name the code: the commit's first 7 characters, and "with
// uncommitted changes" when the tree differed.
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

// ReadSource asks git which commit the repository at root has checked out and whether its
// tracked files differ from it. Untracked files are left out: bench output lands in the tree.
func ReadSource(ctx context.Context, root string) (Source, error) {
	head, err := gitOutput(ctx, root, "rev-parse", "HEAD")
	if err != nil {
		return Source{}, err
	}
	status, err := gitOutput(ctx, root, "status", "--porcelain", "--untracked-files=no")
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
		return "", fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
