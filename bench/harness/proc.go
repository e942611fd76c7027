package harness

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ClockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It is 100 on every
// Linux architecture Go supports; reading sysconf(_SC_CLK_TCK) would need cgo.
const ClockTicks = 100

// ProcMemory is what /proc/<pid>/status says about a process's memory, in bytes.
type ProcMemory struct {
	// RSS is VmRSS, the resident set now.
	RSS uint64
	// HWM is VmHWM, the peak resident set since the process started.
	HWM uint64
	// Anon and File split RSS (RssAnon, RssFile): anonymous memory (the Go heap, stacks and
	// runtime) and file-backed pages (the binary's code and read-only data, which the kernel
	// can drop and read again under memory pressure). Zero where the kernel does not report them.
	Anon, File uint64
}

// ParseProcStatus reads VmRSS, VmHWM, RssAnon and RssFile (reported in kB) from
// /proc/<pid>/status content; VmRSS and VmHWM must be there.
func ParseProcStatus(r io.Reader) (ProcMemory, error) {
	var m ProcMemory
	found := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM" && key != "RssAnon" && key != "RssFile") {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			return m, fmt.Errorf("unexpected %s line %q", key, sc.Text())
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("parsing %s: %w", key, err)
		}
		switch key {
		case "VmRSS":
			m.RSS = kb * 1024
			found++
		case "VmHWM":
			m.HWM = kb * 1024
			found++
		case "RssAnon":
			m.Anon = kb * 1024
		case "RssFile":
			m.File = kb * 1024
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("reading status: %w", err)
	}
	if found != 2 {
		return m, fmt.Errorf("VmRSS or VmHWM missing from status (is the process a zombie?)")
	}
	return m, nil
}

// ProcStat is the part of /proc/<pid>/stat the bench uses.
type ProcStat struct {
	// Comm is the executable name (without the parentheses).
	Comm string
	// PPID is the parent's process id.
	PPID int
	// CPUSeconds is utime + stime, converted with ClockTicks.
	CPUSeconds float64
}

// ParseProcStat parses one /proc/<pid>/stat line. The command name may hold spaces and
// parentheses, so fields are counted from its last ")".
func ParseProcStat(line string) (ProcStat, error) {
	open := strings.IndexByte(line, '(')
	closing := strings.LastIndexByte(line, ')')
	if open < 0 || closing < open {
		return ProcStat{}, fmt.Errorf("no command name in stat line %q", line)
	}
	st := ProcStat{Comm: line[open+1 : closing]}
	// After ")": state(3) ppid(4) ... utime(14) stime(15); fields[0] is field 3.
	fields := strings.Fields(line[closing+1:])
	if len(fields) < 13 {
		return st, fmt.Errorf("short stat line %q", line)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return st, fmt.Errorf("parsing ppid: %w", err)
	}
	utime, err := strconv.ParseUint(fields[11], 10, 64)
	if err != nil {
		return st, fmt.Errorf("parsing utime: %w", err)
	}
	stime, err := strconv.ParseUint(fields[12], 10, 64)
	if err != nil {
		return st, fmt.Errorf("parsing stime: %w", err)
	}
	st.PPID = ppid
	st.CPUSeconds = float64(utime+stime) / ClockTicks
	return st, nil
}

// ReadProcStat reads /proc/<pid>/stat.
func ReadProcStat(pid int) (ProcStat, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return ProcStat{}, fmt.Errorf("reading stat of %d: %w", pid, err)
	}
	return ParseProcStat(strings.TrimSpace(string(data)))
}

// ReadProcMemory reads /proc/<pid>/status.
func ReadProcMemory(pid int) (ProcMemory, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return ProcMemory{}, fmt.Errorf("opening status of %d: %w", pid, err)
	}
	m, err := ParseProcStatus(f)
	if cerr := f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing status of %d: %w", pid, cerr)
	}
	return m, err
}

// ChildByName finds a child of parent whose command name is comm, such as the kube-apiserver
// envtest started; it returns 0 when there is none.
func ChildByName(parent int, comm string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("listing /proc: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := ReadProcStat(pid)
		if err != nil {
			continue // the process ended while we looked
		}
		if st.PPID == parent && st.Comm == comm {
			return pid, nil
		}
	}
	return 0, nil
}
