package occurrence

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/false-systems/kulta/internal/events"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name       string
		transition events.Transition
		wantType   string
		required   []string
	}{
		{"progressing", progressing(), "canary.rollout.progressing", []string{"reasoning", "history"}},
		{"completed", completed(), "canary.rollout.completed", []string{"history"}},
		{"failed", failed(), "canary.rollout.failed", []string{"error", "reasoning", "history"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w, err := New(Options{Stdout: &out, NewID: fixedIDs(), Cluster: "eu-west-1", Logger: logr.Discard()})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			w.Emit(tc.transition)
			if st := w.Stats(); st != (Stats{Written: 1}) {
				t.Fatalf("stats %+v, want 1 written", st)
			}
			line := out.Bytes()
			if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
				t.Fatalf("want exactly one line, got %q", line)
			}
			occ := checkKeys(t, line, tc.required)
			if occ["type"] != tc.wantType {
				t.Errorf("type %v, want %s", occ["type"], tc.wantType)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, line, "", "  "); err != nil {
				t.Fatalf("indenting: %v", err)
			}
			compareGolden(t, filepath.Join("testdata", tc.name+".golden.json"), pretty.Bytes())
		})
	}
}

// checkKeys checks that line is one JSON object with the keys every occurrence has, plus
// required, and returns it.
func checkKeys(t *testing.T, line []byte, required []string) map[string]any {
	t.Helper()
	var occ map[string]any
	if err := json.Unmarshal(line, &occ); err != nil {
		t.Fatalf("line is not a JSON object: %v", err)
	}
	for _, key := range append([]string{"id", "timestamp", "source", "type", "severity", "outcome", "context", "data", "entities"}, required...) {
		if _, ok := occ[key]; !ok {
			t.Errorf("occurrence lacks %q", key)
		}
	}
	if e, ok := occ["error"].(map[string]any); ok {
		for _, key := range []string{"code", "what_failed", "why_it_matters", "possible_causes", "suggested_fix"} {
			if _, ok := e[key]; !ok {
				t.Errorf("error block lacks %q", key)
			}
		}
	}
	if occ["source"] != "kulta" {
		t.Errorf("source %v, want kulta", occ["source"])
	}
	return occ
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o600); err != nil {
			t.Fatalf("writing %s: %v", path, err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s (run with -update to create it): %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n got: %s\nwant: %s", path, got, want)
	}
}

func TestClassify(t *testing.T) {
	paused := progressing()
	paused.Kind, paused.Decision.Reason = events.Paused, "PauseStarted"
	pausedByFailure := failed()
	pausedByFailure.Kind = events.Paused
	reverted := failed()
	reverted.Decision.Reason = "RevertedToStable"
	for name, tc := range map[string]struct {
		transition events.Transition
		suffix     string
		severity   Severity
		outcome    Outcome
		hasError   bool
	}{
		"progressing":       {progressing(), "progressing", SeverityInfo, OutcomeInProgress, false},
		"paused":            {paused, "paused", SeverityInfo, OutcomeInProgress, false},
		"paused by failure": {pausedByFailure, "paused", SeverityWarning, OutcomeInProgress, true},
		"completed":         {completed(), "completed", SeverityInfo, OutcomeSuccess, false},
		"failed":            {failed(), "failed", SeverityError, OutcomeFailure, true},
		"reverted":          {reverted, "failed", SeverityWarning, OutcomeFailure, true},
	} {
		occ := Build(tc.transition, "id", "")
		if occ.Type != "canary.rollout."+tc.suffix || occ.Severity != tc.severity || occ.Outcome != tc.outcome || (occ.Error != nil) != tc.hasError {
			t.Errorf("%s: got %s %s %s error=%v", name, occ.Type, occ.Severity, occ.Outcome, occ.Error != nil)
		}
		if occ.Error != nil && (occ.Error.WhatFailed == "" || occ.Error.WhyItMatters == "" || len(occ.Error.PossibleCauses) == 0 || occ.Error.SuggestedFix == "") {
			t.Errorf("%s: incomplete error block %+v", name, occ.Error)
		}
	}
}

func TestErrorAdvicePerReason(t *testing.T) {
	seen := map[string]string{}
	for _, reason := range []string{"AnalysisFailed", "ProgressDeadlineExceeded", "Aborted", "VariantBLost", "RevertedToStable", "SomethingElse"} {
		tr := failed()
		tr.Decision.Reason = reason
		occ := Build(tr, "id", "")
		if occ.Error == nil || occ.Error.Code != reason {
			t.Fatalf("%s: error block %+v", reason, occ.Error)
		}
		if other, dup := seen[occ.Error.SuggestedFix]; dup {
			t.Errorf("%s and %s give the same advice", reason, other)
		}
		seen[occ.Error.SuggestedFix] = reason
	}
}

func TestStrategyPrefixes(t *testing.T) {
	for want, mutate := range map[string]func(*events.Transition){
		"canary": func(*events.Transition) {},
		"bluegreen": func(tr *events.Transition) {
			tr.Rollout.Spec.Strategy.Canary = nil
			tr.Rollout.Status.Strategy = "blueGreen"
		},
		"abtesting": func(tr *events.Transition) {
			tr.Rollout.Spec.Strategy.Canary = nil
			tr.Rollout.Status.Strategy = "abTesting"
		},
		"rolling": func(tr *events.Transition) {
			tr.Rollout.Spec.Strategy.Canary = nil
			tr.Rollout.Status.Strategy = "simple"
		},
	} {
		tr := completed()
		mutate(&tr)
		if occ := Build(tr, "id", ""); !strings.HasPrefix(occ.Type, want+".rollout.") {
			t.Errorf("type %s, want prefix %s", occ.Type, want)
		}
	}
}
