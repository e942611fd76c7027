package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// workerAttributes put the worker in a process group of its own, out of reach of the terminal's
// Ctrl-C (the supervisor hands it on), and send it SIGTERM, so that it tears down, when the
// supervisor dies.
func workerAttributes() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// controllerAttributes make the kernel stop the controller when the worker dies.
func controllerAttributes() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// acquireLock creates and locks path, writing this process's id into it. When another demo
// holds it, the error names that demo's process id.
func acquireLock(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the folder of the lock file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := lockHolder(f)
		if cerr := f.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, badInput(fmt.Errorf("another KULTA demo is already running (PID %s, holding %s); "+
				"wait until it ends, or stop it with `kill %s`", holder, path, holder))
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err != nil {
		return nil, errors.Join(fmt.Errorf("clearing the lock file: %w", err), f.Close())
	}
	if _, err := f.WriteAt(pid, 0); err != nil {
		return nil, errors.Join(fmt.Errorf("writing the lock file: %w", err), f.Close())
	}
	return f, nil
}

// lockHolder is the process id written in the lock file, or "unknown".
func lockHolder(f *os.File) string {
	buf := make([]byte, 32)
	n, err := f.ReadAt(buf, 0)
	holder := strings.TrimSpace(string(buf[:n]))
	if holder == "" || (err != nil && n == 0) {
		return "unknown"
	}
	return holder
}

// keepLock makes sure the lock the supervisor handed on stays with the worker alone: the
// processes the worker starts do not inherit it. The descriptor stays open until the worker
// exits.
func keepLock() {
	syscall.CloseOnExec(lockFD)
}
