package occurrence

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestRotation(t *testing.T) {
	const maxBytes, maxFiles, lines = 6000, 3, 60
	dir := t.TempDir()
	w, err := New(Options{Dir: dir, MaxFileBytes: maxBytes, MaxFiles: maxFiles, NewID: fixedIDs(), Logger: logr.Discard()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for i := range lines {
		tr := progressing()
		tr.Time = tr.Time.Add(time.Duration(i) * time.Second)
		w.Emit(tr)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := w.Stats(); st != (Stats{Written: lines}) {
		t.Fatalf("stats %+v, want %d written", st, lines)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	if len(files) > maxFiles+1 {
		t.Errorf("%d files, want at most %d: %v", len(files), maxFiles+1, files)
	}
	// Oldest file first: occurrences-3, -2, -1, then the current one.
	order := []string{CurrentFile}
	for n := 1; n <= maxFiles; n++ {
		order = append([]string{fmt.Sprintf("occurrences-%d.jsonl", n)}, order...)
	}
	var ids []string
	for _, name := range order {
		ids = append(ids, readLines(t, filepath.Join(dir, name), maxBytes)...)
	}
	t.Logf("kept %d of %d lines in %d files", len(ids), lines, len(files))
	if len(ids) == 0 || len(ids) >= lines {
		t.Fatalf("kept %d lines of %d, want some dropped by rotation", len(ids), lines)
	}
	first := lines - len(ids) + 1
	for i, id := range ids {
		if want := fmt.Sprintf("01JNZ6V8W0%016d", first+i); id != want {
			t.Fatalf("line %d across files has id %s, want %s: the newest lines, in order", i, id, want)
		}
	}
	if !sort.StringsAreSorted(ids) {
		t.Errorf("ids out of order: %v", ids)
	}
}

// readLines checks that the file is at most maxBytes of whole JSON lines and returns their ids.
func readLines(t *testing.T, path string, maxBytes int64) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if int64(len(data)) > maxBytes {
		t.Errorf("%s has %d bytes, over the bound of %d", path, len(data), maxBytes)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("%s ends in a partial line", path)
	}
	var ids []string
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		var occ Occurrence
		if err := json.Unmarshal(scanner.Bytes(), &occ); err != nil {
			t.Fatalf("%s: a line is not one JSON object (split across files?): %v", path, err)
		}
		ids = append(ids, occ.ID)
	}
	if err := scanner.Err(); err != nil {
		t.Fatalf("scanning %s: %v", path, err)
	}
	return ids
}

func TestAppendsToExistingFile(t *testing.T) {
	dir := t.TempDir()
	for range 2 {
		w, err := New(Options{Dir: dir, NewID: fixedIDs(), Logger: logr.Discard()})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		w.Emit(completed())
		if err := w.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if ids := readLines(t, filepath.Join(dir, CurrentFile), DefaultMaxFileBytes); len(ids) != 2 {
		t.Errorf("%d lines, want 2 (a restart appends)", len(ids))
	}
}

func TestWriteErrorsAreCountedNotReturned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "occurrences")
	w, err := New(Options{Dir: dir, Logger: logr.Discard()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatalf("removing %s: %v", dir, err)
	}
	before := testutil.ToFloat64(writeErrorsTotal)
	w.Emit(failed())
	if st := w.Stats(); st != (Stats{Errors: 1}) {
		t.Errorf("stats %+v, want 1 error", st)
	}
	if d := testutil.ToFloat64(writeErrorsTotal) - before; d != 1 {
		t.Errorf("kulta_occurrence_write_errors_total grew by %v, want 1", d)
	}
}

func TestDefaultsStampTimeAndULID(t *testing.T) {
	var out bytes.Buffer
	now := time.Date(2026, 4, 1, 8, 30, 0, 123456789, time.UTC)
	w, err := New(Options{Stdout: &out, Clock: clocktesting.NewFakePassiveClock(now), Logger: logr.Discard()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tr := completed()
	tr.Time = time.Time{}
	tr.Decision.Timestamp = metav1.Time{}
	before := testutil.ToFloat64(writtenTotal.WithLabelValues("canary.rollout.completed"))
	w.Emit(tr)
	var occ Occurrence
	if err := json.Unmarshal(out.Bytes(), &occ); err != nil {
		t.Fatalf("decoding %q: %v", out.String(), err)
	}
	if occ.Timestamp != "2026-04-01T08:30:00.123456789Z" {
		t.Errorf("timestamp %s, want the clock's time in RFC 3339 with nanoseconds", occ.Timestamp)
	}
	wantPrefix, err := NewULID(now)
	if err != nil {
		t.Fatalf("NewULID: %v", err)
	}
	if len(occ.ID) != 26 || occ.ID[:10] != wantPrefix[:10] {
		t.Errorf("id %s is not a ULID of %s (%s...)", occ.ID, now, wantPrefix[:10])
	}
	if d := testutil.ToFloat64(writtenTotal.WithLabelValues("canary.rollout.completed")) - before; d != 1 {
		t.Errorf("kulta_occurrences_written_total grew by %v, want 1", d)
	}
}

func TestULID(t *testing.T) {
	if got := encodeULID([16]byte{}); got != "00000000000000000000000000" {
		t.Errorf("zero ULID %s", got)
	}
	var ones [16]byte
	for i := range ones {
		ones[i] = 0xff
	}
	if got := encodeULID(ones); got != "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" {
		t.Errorf("largest ULID %s", got)
	}
	// The timestamp of the example in the ULID specification.
	id, err := NewULID(time.UnixMilli(1469918176385))
	if err != nil {
		t.Fatalf("NewULID: %v", err)
	}
	if id[:10] != "01ARYZ6S41" {
		t.Errorf("time part %s, want 01ARYZ6S41", id[:10])
	}
	other, err := NewULID(time.UnixMilli(1469918176385))
	if err != nil || other == id {
		t.Errorf("two ULIDs of one millisecond: %s and %s (%v), want different", id, other, err)
	}
	later, err := NewULID(time.UnixMilli(1469918176386))
	if err != nil || later <= id {
		t.Errorf("ULID of a later millisecond %s does not sort after %s (%v)", later, id, err)
	}
}
