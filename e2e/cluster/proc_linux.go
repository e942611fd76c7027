package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// childAttributes makes the kernel kill a child process when this process ends, so that a test
// binary that dies (a panic, `go test -timeout`) leaves no cluster process behind.
func childAttributes() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// childProcesses finds the running children of this process whose executable is one of exes
// (absolute paths with symbolic links resolved), from /proc.
func childProcesses(exes []string) ([]Process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	self := os.Getpid()
	var found []Process
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue // not a process folder
		}
		ppid, err := parentPID(pid)
		if gone(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ppid != self {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", entry.Name(), "exe"))
		if gone(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading the executable of process %d: %w", pid, err)
		}
		for _, want := range exes {
			if exe == want {
				found = append(found, Process{Name: filepath.Base(exe), PID: pid})
			}
		}
	}
	return found, nil
}

// parentPID reads the parent's id from /proc/PID/stat ("pid (comm) state ppid ...", where comm
// may itself contain spaces and parentheses).
func parentPID(pid int) (int, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("reading the status of process %d: %w", pid, err)
	}
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, fmt.Errorf("process %d: unexpected /proc stat %q", pid, data)
	}
	fields := bytes.Fields(data[end+1:])
	if len(fields) < 2 {
		return 0, fmt.Errorf("process %d: unexpected /proc stat %q", pid, data)
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	if err != nil {
		return 0, fmt.Errorf("process %d: parent id in /proc stat: %w", pid, err)
	}
	return ppid, nil
}

// gone reports whether err says that a process ended while it was being looked at.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}
