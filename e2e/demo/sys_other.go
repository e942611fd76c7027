//go:build !linux

package main

import (
	"errors"
	"os"
	"syscall"
)

// errLinuxOnly says why the demo does not run here.
var errLinuxOnly = errors.New("the demo runs on Linux only: it ties its processes' lives together with Linux's parent-death signal")

// workerAttributes add nothing outside Linux.
func workerAttributes() *syscall.SysProcAttr { return nil }

// controllerAttributes add nothing outside Linux.
func controllerAttributes() *syscall.SysProcAttr { return nil }

// acquireLock refuses: the demo runs on Linux only.
func acquireLock(string) (*os.File, error) { return nil, badInput(errLinuxOnly) }

// keepLock does nothing outside Linux.
func keepLock() {}
