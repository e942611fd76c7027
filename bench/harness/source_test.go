package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSourceString(t *testing.T) {
	for _, tc := range []struct {
		s    Source
		want string
	}{
		{Source{Commit: "5a73364e0c1d2b3a4f5e6d7c8b9a0f1e2d3c4b5a"}, "commit 5a73364"},
		{Source{Commit: "5a73364e0c1d2b3a4f5e6d7c8b9a0f1e2d3c4b5a", Modified: true}, "commit 5a73364 with uncommitted changes"},
		{Source{Commit: "abc"}, "commit abc"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestReadSourceTellsCommitAndChanges(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git on PATH")
	}
	dir := t.TempDir()
	// Neither the user's git settings (commit signing, say) nor a repository above the
	// temporary folder may change what the test sees.
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if _, err := ReadSource(ctx, dir); err == nil {
		t.Fatal("ReadSource outside a repository: no error")
	}
	git("init", "-q")
	if err := os.MkdirAll(filepath.Join(dir, "internal"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("internal/a.go", "package a\n")
	write("README.md", "text\n")
	git("add", ".")
	git("commit", "-q", "-m", "first")
	head := git("rev-parse", "HEAD")

	s, err := ReadSource(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if s != (Source{Commit: head}) {
		t.Errorf("clean tree: got %+v, want commit %s unmodified", s, head)
	}
	// Bench output and docs are not the controller's code: a change there, or a new file
	// there, is not a change to what was measured.
	write("README.md", "other text\n")
	write("results.json", "{}\n")
	if s, err = ReadSource(ctx, dir); err != nil || s.Modified {
		t.Errorf("docs edited, results added: got %+v, %v; want unmodified", s, err)
	}
	// A new file among the controller's sources is built in, as an edited one is.
	write("internal/b.go", "package a\n\nconst Y = 2\n")
	if s, err = ReadSource(ctx, dir); err != nil || s != (Source{Commit: head, Modified: true}) {
		t.Errorf("new source file: got %+v, %v; want commit %s modified", s, err, head)
	}
	if err := os.Remove(filepath.Join(dir, "internal", "b.go")); err != nil {
		t.Fatal(err)
	}
	write("internal/a.go", "package a\n\nconst X = 1\n")
	if s, err = ReadSource(ctx, dir); err != nil || s != (Source{Commit: head, Modified: true}) {
		t.Errorf("edited source file: got %+v, %v; want commit %s modified", s, err, head)
	}
}
