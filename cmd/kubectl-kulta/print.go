package main

import (
	"fmt"
	"io"
)

// printer writes formatted text and keeps the first write error, so that a run of writes can
// be checked once.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err != nil {
		return
	}
	if _, err := fmt.Fprintf(p.w, format, args...); err != nil {
		p.err = fmt.Errorf("writing: %w", err)
	}
}

// printf writes once and wraps the error.
func printf(w io.Writer, format string, args ...any) error {
	p := &printer{w: w}
	p.printf(format, args...)
	return p.err
}
