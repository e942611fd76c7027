package occurrence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/false-systems/kulta/internal/events"
)

// Defaults of Options, and the names of the files.
const (
	DefaultMaxFileBytes int64 = 10 << 20
	DefaultMaxFiles           = 5
	// CurrentFile is the file occurrences are appended to.
	CurrentFile = "occurrences.jsonl"
)

// Options configure a Writer. Zero values take the defaults.
type Options struct {
	// Dir is the directory of the occurrence files; empty writes to Stdout instead.
	Dir string
	// MaxFileBytes bounds each file: a line that would take the current file past it goes to a
	// new file. A single line longer than MaxFileBytes gets a file of its own. Default 10 MiB.
	MaxFileBytes int64
	// MaxFiles is how many rotated files (occurrences-1.jsonl, the newest, to
	// occurrences-MaxFiles.jsonl) are kept. Default 5.
	MaxFiles int
	// Stdout receives the lines when Dir is empty. Default os.Stdout.
	Stdout io.Writer
	// Cluster names the cluster in each occurrence's context; empty leaves it out.
	Cluster string
	// Clock stamps transitions that carry no time. Default: the real clock.
	Clock clock.PassiveClock
	// NewID returns the id of an occurrence at a time. Default NewULID.
	NewID func(time.Time) (string, error)
	// Logger logs failures to write. Default ctrl.Log.WithName("occurrence").
	Logger logr.Logger
}

// Stats counts what a Writer did.
type Stats struct {
	// Written counts occurrences written.
	Written int64
	// Errors counts occurrences that could not be built or written.
	Errors int64
}

// Writer writes transitions as occurrences, one JSON object per line. It is safe for concurrent
// use.
type Writer struct {
	opts Options
	log  logr.Logger

	mu   sync.Mutex
	file *os.File
	size int64

	written, errors atomic.Int64
}

var _ events.Sink = (*Writer)(nil)

// New returns a Writer to opts.Dir, which it creates if needed, or to stdout.
func New(opts Options) (*Writer, error) {
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = DefaultMaxFileBytes
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.NewID == nil {
		opts.NewID = NewULID
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = ctrl.Log.WithName("occurrence")
	}
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("creating occurrence directory: %w", err)
		}
	}
	return &Writer{opts: opts, log: opts.Logger}, nil
}

// Emit writes t as one line. It never fails the caller: errors are counted and logged.
func (w *Writer) Emit(t events.Transition) {
	if err := w.emit(t); err != nil {
		w.errors.Add(1)
		writeErrorsTotal.Inc()
		w.log.Error(err, "Occurrence not written", "transition", t.Kind)
	}
}

func (w *Writer) emit(t events.Transition) error {
	if t.Rollout == nil {
		return errors.New("transition has no Rollout")
	}
	if t.Time.IsZero() {
		t.Time = w.opts.Clock.Now()
	}
	id, err := w.opts.NewID(t.Time)
	if err != nil {
		return fmt.Errorf("occurrence id: %w", err)
	}
	occ := Build(t, id, w.opts.Cluster)
	var line bytes.Buffer
	enc := json.NewEncoder(&line) // Encode ends the line with '\n'
	enc.SetEscapeHTML(false)      // keep "error-rate 12.5 > 5" readable
	if err := enc.Encode(occ); err != nil {
		return fmt.Errorf("encoding occurrence %s: %w", occ.Type, err)
	}
	if err := w.write(line.Bytes()); err != nil {
		return fmt.Errorf("writing occurrence %s: %w", occ.Type, err)
	}
	w.written.Add(1)
	writtenTotal.WithLabelValues(occ.Type).Inc()
	return nil
}

// Stats returns what this Writer has done so far.
func (w *Writer) Stats() Stats {
	return Stats{Written: w.written.Load(), Errors: w.errors.Load()}
}

// Close closes the current file. A later Emit opens it again.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closeFile()
}

func (w *Writer) write(line []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.opts.Dir == "" {
		if _, err := w.opts.Stdout.Write(line); err != nil {
			return fmt.Errorf("writing to stdout: %w", err)
		}
		return nil
	}
	if err := w.open(); err != nil {
		return err
	}
	if w.size > 0 && w.size+int64(len(line)) > w.opts.MaxFileBytes {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.file.Write(line)
	w.size += int64(n)
	if err != nil {
		// Start afresh with the next line; a partial line stays behind.
		return errors.Join(fmt.Errorf("appending to %s: %w", CurrentFile, err), w.closeFile())
	}
	return nil
}

// open opens the current file for appending, unless it is open.
func (w *Writer) open() error {
	if w.file != nil {
		return nil
	}
	path := filepath.Join(w.opts.Dir, CurrentFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	info, err := f.Stat()
	if err != nil {
		return errors.Join(fmt.Errorf("reading size of %s: %w", path, err), f.Close())
	}
	w.file, w.size = f, info.Size()
	return nil
}

func (w *Writer) closeFile() error {
	if w.file == nil {
		return nil
	}
	err := w.file.Close()
	w.file, w.size = nil, 0
	if err != nil {
		return fmt.Errorf("closing %s: %w", CurrentFile, err)
	}
	return nil
}

// rotate closes the current file, shifts occurrences-N.jsonl to N+1 (dropping the one past
// MaxFiles), renames the current file to occurrences-1.jsonl and opens a new one.
func (w *Writer) rotate() error {
	if err := w.closeFile(); err != nil {
		return err
	}
	if err := os.Remove(w.rotated(w.opts.MaxFiles)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing oldest occurrence file: %w", err)
	}
	for n := w.opts.MaxFiles - 1; n >= 1; n-- {
		if err := os.Rename(w.rotated(n), w.rotated(n+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotating occurrence files: %w", err)
		}
	}
	if err := os.Rename(filepath.Join(w.opts.Dir, CurrentFile), w.rotated(1)); err != nil {
		return fmt.Errorf("rotating %s: %w", CurrentFile, err)
	}
	return w.open()
}

// rotated is the path of the n-th newest rotated file.
func (w *Writer) rotated(n int) string {
	return filepath.Join(w.opts.Dir, fmt.Sprintf("occurrences-%d.jsonl", n))
}
