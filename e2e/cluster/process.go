package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Process is one operating-system process of a running cluster.
type Process struct {
	// Name is the binary's name, such as "kube-apiserver".
	Name string
	// PID is the process id.
	PID int
}

// process is a binary that Start runs itself (etcd and kube-apiserver are envtest's).
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	log     *os.File
	// done is closed once the process has exited and waitErr is set.
	done    chan struct{}
	waitErr error
	// reported is set once exitError has described the process's unexpected end.
	reported bool
}

// startProcess runs dir/name with args, its output (stdout and stderr) going to
// logDir/name.log and env added to this process's environment.
func startProcess(dir, name, logDir string, args, env []string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating log file for %s: %w", name, err)
	}
	cmd := exec.Command(filepath.Join(dir, name), args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = childAttributes()
	if err := cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("starting %s: %w", name, err), closeLog(logFile))
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, log: logFile, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes a process that ended on its own, with the end of its log.
func (p *process) exitError() error {
	p.reported = true
	return fmt.Errorf("%s exited unexpectedly (%w); log %s ends with:\n%s",
		p.name, p.waitErr, p.logPath, logTail(p.logPath, 20))
}

// terminate sends SIGTERM, unless the process has already ended.
func (p *process) terminate() error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping %s: %w", p.name, err)
	}
	return nil
}

// wait waits until the process has ended, killing it once deadline passes, and closes its log.
// It fails when the process could not be killed, or when crashed says that it had ended before
// it was asked to stop.
func (p *process) wait(deadline time.Time, crashed bool) error {
	var errs []error
	if crashed {
		errs = append(errs, p.exitError())
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("killing %s: %w", p.name, err))
		} else {
			<-p.done
		}
	}
	errs = append(errs, closeLog(p.log))
	return errors.Join(errs...)
}

// closeLog closes a log file.
func closeLog(f *os.File) error {
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing log %s: %w", f.Name(), err)
	}
	return nil
}

// logTail returns up to n last lines of the file at path, or why it cannot be read.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
