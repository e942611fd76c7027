//go:build !linux

package cluster

import (
	"errors"
	"syscall"
)

// childAttributes adds nothing outside Linux, which alone can tie a child's life to its parent's.
func childAttributes() *syscall.SysProcAttr { return nil }

// childProcesses needs /proc, which only Linux has.
func childProcesses([]string) ([]Process, error) {
	return nil, errors.New("finding the etcd and kube-apiserver processes needs Linux's /proc")
}
