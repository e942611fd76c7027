//go:build e2e

package main

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/false-systems/kulta/internal/testenv"
)

// demoBin is the demo binary that TestMain builds; the tests run it as `make demo` does.
var demoBin string

// prSetChildSubreaper is prctl's PR_SET_CHILD_SUBREAPER: processes orphaned below this one are
// handed to it instead of init, so that the tests can see whatever a demo left behind.
const prSetChildSubreaper = 36

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

// testMain makes the test process a subreaper, builds the demo and runs the tests.
func testMain(m *testing.M) int {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		log.Printf("becoming a child subreaper: %v", errno)
		return 1
	}
	dir, err := os.MkdirTemp("", "kulta-demo-test-")
	if err != nil {
		log.Printf("creating a folder for the demo binary: %v", err)
		return 1
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			log.Printf("removing %s: %v", dir, err)
		}
	}()
	demoBin = filepath.Join(dir, "kulta-demo")
	if out, err := exec.Command("go", "build", "-o", demoBin, ".").CombinedOutput(); err != nil {
		log.Printf("building the demo: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// TestDemoRefusesBadInput: each problem is reported, with what to do about it, within seconds
// and before anything is started.
func TestDemoRefusesBadInput(t *testing.T) {
	empty := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("taking a port: %v", err)
	}
	defer func() {
		if err := taken.Close(); err != nil {
			t.Errorf("releasing %s: %v", taken.Addr(), err)
		}
	}()
	takenPort := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{{
		name: "port taken",
		args: []string{"--prometheus-port", takenPort},
		want: []string{"127.0.0.1:" + takenPort + " is already in use", "--prometheus-port", "KULTA_DEMO_PROMETHEUS_PORT=9091 make demo"},
	}, {
		name: "port taken, from the environment",
		env:  []string{prometheusPortEnv + "=" + takenPort},
		want: []string{"127.0.0.1:" + takenPort + " is already in use"},
	}, {
		name: "no cluster binaries",
		env:  []string{"KUBEBUILDER_ASSETS=" + empty},
		args: []string{"--prometheus-port", "0"},
		want: []string{"cluster binaries missing in " + empty, "kube-apiserver", "kwok", "make demo", "make cluster-bin"},
	}, {
		name: "no Prometheus binary",
		env:  []string{"KULTA_PROMETHEUS_BIN=" + filepath.Join(empty, "prometheus")},
		args: []string{"--prometheus-port", "0"},
		want: []string{"no Prometheus binary at " + filepath.Join(empty, "prometheus"), "make prometheus-bin"},
	}, {
		name: "a bad flag",
		args: []string{"--prometheus-port", "70000"},
		want: []string{"--prometheus-port 70000 is not a port number"},
	}, {
		name: "an unknown provider",
		env:  []string{providerEnv + "=traefik"},
		args: []string{"--prometheus-port", "0"},
		want: []string{providerEnv + `="traefik" is not a traffic provider`, "gatewayapi, istio, nginx"},
	}, {
		name: "an unknown provider flag",
		args: []string{"--prometheus-port", "0", "--provider", "linkerd"},
		want: []string{`--provider "linkerd" is not a traffic provider`, "gatewayapi, istio, nginx"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := startDemo(t, tc.env, tc.args...)
			code := run.wait(t, 30*time.Second)
			out := run.output()
			if code != exitBadInput {
				t.Errorf("exit code %d, want %d; output:\n%s", code, exitBadInput, out)
			}
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("output does not say %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "Starting") {
				t.Errorf("the demo started something despite the problem:\n%s", out)
			}
			assertNoOrphans(t)
		})
	}
}

// TestDemo runs the whole demo without a terminal, and a second one while it runs: the second
// is refused at once, naming the first; the first shows the healthy update and the automatic
// rollback, exits 0 and leaves no process and no listening port behind.
func TestDemo(t *testing.T) {
	began := time.Now()
	// The default provider, Gateway API, whatever the environment says.
	run := startDemo(t, []string{providerEnv + "="}, "--prometheus-port", "0", "--timeout", "8m")
	run.waitOutput(t, "Building kulta-controller", 30*time.Second)

	second := startDemo(t, nil, "--prometheus-port", "0")
	if code := second.wait(t, 30*time.Second); code != exitBadInput {
		t.Errorf("second demo: exit code %d, want %d; output:\n%s", code, exitBadInput, second.output())
	}
	wantHolder := fmt.Sprintf("another KULTA demo is already running (PID %d", run.cmd.Process.Pid)
	if out := second.output(); !strings.Contains(out, wantHolder) {
		t.Errorf("second demo does not say %q:\n%s", wantHolder, out)
	}

	run.waitOutput(t, "== 2. A healthy update", 5*time.Minute)
	snap := takeSnapshot(t, run)
	promURL := regexp.MustCompile(`Prometheus\s+(http://127\.0\.0\.1:\d+)`).FindStringSubmatch(run.output())
	if promURL == nil {
		t.Errorf("the output names no Prometheus address:\n%s", run.output())
	} else if err := httpOK(promURL[1] + "/-/ready"); err != nil {
		t.Errorf("Prometheus on the demo's port: %v", err)
	}

	code := run.wait(t, 6*time.Minute)
	out := run.output()
	t.Logf("demo exited %d after %s; output:\n%s", code, time.Since(began).Round(time.Second), out)
	if code != exitOK {
		t.Errorf("exit code %d, want 0", code)
	}
	for _, want := range []string{
		"Summary (traffic moved by KULTA's gatewayAPI provider, Gateway API: HTTPRoute default/web)",
		"2. Update to nginx:1.28: Completed in",
		"100/0 -> 80/20 -> 50/50 -> 100/0",
		"3. Update to " + badImage + ": Rolled back by KULTA in",
		"final decision: Rollback, reason AnalysisFailed",
		"scaled to 0 Pods",
		"everything it started has been stopped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not show %q", want)
		}
	}
	snap.assertGone(t)
}

// TestDemoInterrupted interrupts a running demo as Ctrl-C in its terminal would: it stops
// everything, says so, and exits 130.
func TestDemoInterrupted(t *testing.T) {
	run := startDemo(t, nil, "--prometheus-port", "0", "--timeout", "5m")
	run.waitOutput(t, "Everything is up", 5*time.Minute)
	snap := takeSnapshot(t, run)
	// The terminal sends SIGINT to its foreground process group, which the demo leads here.
	if err := syscall.Kill(-run.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatalf("interrupting the demo: %v", err)
	}
	interrupted := time.Now()
	code := run.wait(t, time.Minute)
	out := run.output()
	t.Logf("demo exited %d %s after the interrupt; output:\n%s", code, time.Since(interrupted).Round(100*time.Millisecond), out)
	if code != exitInterrupted {
		t.Errorf("exit code %d, want %d", code, exitInterrupted)
	}
	for _, want := range []string{"interrupted (interrupt signal received)", "everything the demo started has been stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q", want)
		}
	}
	snap.assertGone(t)
}

// demoRun is a demo running as a subprocess without a terminal.
type demoRun struct {
	cmd  *exec.Cmd
	out  *testenv.LockedBuffer
	done chan struct{}
}

// startDemo runs the demo binary with args and env added to this process's environment, in a
// session of its own (so with no controlling terminal); it is stopped when t ends.
func startDemo(t *testing.T, env []string, args ...string) *demoRun {
	t.Helper()
	run := &demoRun{cmd: exec.Command(demoBin, args...), out: &testenv.LockedBuffer{}, done: make(chan struct{})}
	run.cmd.Env = append(os.Environ(), env...)
	run.cmd.Stdout, run.cmd.Stderr = run.out, run.out
	run.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := run.cmd.Start(); err != nil {
		t.Fatalf("starting the demo: %v", err)
	}
	go func() {
		// The exit status is read from ProcessState; Wait's error repeats it.
		_ = run.cmd.Wait()
		close(run.done)
	}()
	t.Cleanup(func() { run.stop(t) })
	return run
}

// stop ends a demo that is still running: SIGTERM, then SIGKILL to its process group.
func (r *demoRun) stop(t *testing.T) {
	select {
	case <-r.done:
		return
	default:
	}
	t.Logf("stopping the demo (PID %d)", r.cmd.Process.Pid)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("stopping the demo: %v", err)
	}
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		t.Errorf("the demo did not stop within a minute of SIGTERM; killing it")
		if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Errorf("killing the demo: %v", err)
		}
		<-r.done
	}
}

// wait waits until the demo exits and returns its exit code; it fails the test after timeout.
func (r *demoRun) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
		return r.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("the demo did not exit within %s; output:\n%s", timeout, r.output())
		return -1
	}
}

// waitOutput waits until the output contains text; it fails the test when the demo exits first
// or after timeout.
func (r *demoRun) waitOutput(t *testing.T, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(r.output(), text) {
		select {
		case <-r.done:
			t.Fatalf("the demo exited (%s) before it printed %q; output:\n%s", r.cmd.ProcessState, text, r.output())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not print %q within %s; output:\n%s", text, timeout, r.output())
		}
	}
}

// output is what the demo wrote so far, standard output and error together.
func (r *demoRun) output() string { return r.out.String() }

// httpOK fails unless url answers 200.
func httpOK(url string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if err := resp.Body.Close(); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// demoSnapshot is what a running demo consists of: its processes and their listening sockets.
type demoSnapshot struct {
	procs []procInfo
	// listening maps the inode of each listening TCP socket of those processes to its port.
	listening map[uint64]int
}

// takeSnapshot records the demo's processes and listening sockets, and checks that they are the
// ones a running demo has.
func takeSnapshot(t *testing.T, run *demoRun) *demoSnapshot {
	t.Helper()
	procs, err := descendants(run.cmd.Process.Pid)
	if err != nil {
		t.Fatalf("listing the demo's processes: %v", err)
	}
	s := &demoSnapshot{procs: procs, listening: map[uint64]int{}}
	names := map[string]bool{}
	var inodes []uint64
	for _, p := range procs {
		names[filepath.Base(p.exe)] = true
		found, err := socketInodes(p.pid)
		if err != nil {
			t.Fatalf("reading the sockets of %s (%d): %v", p.exe, p.pid, err)
		}
		inodes = append(inodes, found...)
	}
	for _, want := range []string{"kulta-demo", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "prometheus", "kulta-controller"} {
		if !names[want] {
			t.Errorf("no %s among the running demo's processes %v", want, procs)
		}
	}
	listening, err := listeningSockets()
	if err != nil {
		t.Fatal(err)
	}
	for _, inode := range inodes {
		if port, ok := listening[inode]; ok {
			s.listening[inode] = port
		}
	}
	// etcd (client and peer), kube-apiserver, Prometheus, its proxy, the simulator and the
	// controller's metrics and health ports.
	if len(s.listening) < 8 {
		t.Errorf("the running demo listens on %d ports, want at least 8: %v", len(s.listening), s.listening)
	}
	t.Logf("the running demo: %d processes, listening on ports %v", len(procs), s.listening)
	return s
}

// assertGone checks that none of the snapshot's processes runs any more, that no process was
// orphaned to the test, and that none of the snapshot's sockets listens any more.
func (s *demoSnapshot) assertGone(t *testing.T) {
	t.Helper()
	for _, p := range s.procs {
		now, err := readProc(p.pid)
		if err == nil && now.start == p.start && now.state != 'Z' {
			t.Errorf("process %d (%s) is still running after the demo", p.pid, p.exe)
		}
	}
	assertNoOrphans(t)
	listening, err := listeningSockets()
	if err != nil {
		t.Fatal(err)
	}
	for inode, port := range s.listening {
		if listening[inode] == port {
			t.Errorf("port %d is still listening after the demo", port)
		}
	}
}

// assertNoOrphans fails when a process that a demo started outlived it: as a subreaper, the
// test inherits such processes.
func assertNoOrphans(t *testing.T) {
	t.Helper()
	procs, err := allProcs()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.ppid == os.Getpid() && p.state != 'Z' {
			t.Errorf("process %d (%s) outlived the demo that started it", p.pid, p.exe)
		}
	}
}

// procInfo is one process as /proc shows it.
type procInfo struct {
	pid, ppid int
	state     byte
	start     uint64 // clock ticks after boot; with pid, it tells a process from a later one
	exe       string
}

func (p procInfo) String() string { return fmt.Sprintf("%s(%d)", filepath.Base(p.exe), p.pid) }

// readProc reads /proc/PID/stat ("pid (comm) state ppid ... starttime ...", where comm may
// contain spaces and parentheses) and the executable.
func readProc(pid int) (procInfo, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procInfo{}, fmt.Errorf("reading process %d: %w", pid, err)
	}
	end := bytes.LastIndexByte(data, ')')
	fields := bytes.Fields(data[end+1:])
	// After comm: state is field 3 of stat, ppid 4 and starttime 22.
	if end < 0 || len(fields) < 20 {
		return procInfo{}, fmt.Errorf("process %d: unexpected stat %q", pid, data)
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	if err != nil {
		return procInfo{}, fmt.Errorf("process %d: parent: %w", pid, err)
	}
	start, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return procInfo{}, fmt.Errorf("process %d: start time: %w", pid, err)
	}
	// A zombie has no executable any more; its name then stays empty.
	exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
	if err != nil {
		exe = ""
	}
	return procInfo{pid: pid, ppid: ppid, state: fields[0][0], start: start, exe: exe}, nil
}

// allProcs lists every process; processes that end while it looks are left out.
func allProcs() ([]procInfo, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var procs []procInfo
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue // not a process
		}
		p, err := readProc(pid)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// descendants are root and every running process below it.
func descendants(root int) ([]procInfo, error) {
	procs, err := allProcs()
	if err != nil {
		return nil, err
	}
	children := map[int][]procInfo{}
	var out []procInfo
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
		if p.pid == root {
			out = append(out, p)
		}
	}
	for i := 0; i < len(out); i++ {
		for _, child := range children[out[i].pid] {
			if child.state != 'Z' {
				out = append(out, child)
			}
		}
	}
	return out, nil
}

// socketInodes are the inodes of the sockets process pid has open.
func socketInodes(pid int) ([]uint64, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // it has just ended
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	var inodes []uint64
	for _, entry := range entries {
		target, err := os.Readlink(filepath.Join(dir, entry.Name()))
		if err != nil {
			continue // closed while it was looked at
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(inode, "]"), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("socket %q of process %d: %w", target, pid, err)
			}
			inodes = append(inodes, n)
		}
	}
	return inodes, nil
}

// listeningSockets maps the inode of every listening TCP socket (IPv4 and IPv6) to its port.
func listeningSockets() (map[uint64]int, error) {
	const stateListen = "0A"
	out := map[uint64]int{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", table, err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		for _, line := range lines[1:] {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != stateListen {
				continue
			}
			_, portHex, found := strings.Cut(fields[1], ":")
			port, perr := strconv.ParseUint(portHex, 16, 16)
			inode, ierr := strconv.ParseUint(fields[9], 10, 64)
			if !found || perr != nil || ierr != nil {
				return nil, fmt.Errorf("unexpected line in %s: %q", table, line)
			}
			out[inode] = int(port)
		}
	}
	return out, nil
}
