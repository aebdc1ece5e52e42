package host

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// ProcCPU is utime+stime of pid, all threads, in seconds. /proc/PID/stat
// is used rather than schedstat because schedstat is per thread: summing
// /proc/PID/task/*/schedstat would lose the time of threads that exited.
// Its 10 ms tick is small next to a benchmark's CPU seconds. ticks is
// USER_HZ, from ClockTicks.
func ProcCPU(pid int, ticks float64) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b), ticks)
}

// parseStatCPU reads utime+stime (fields 14 and 15) from a /proc/PID/stat
// line, in seconds.
func parseStatCPU(line string, ticks float64) (float64, error) {
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses; fields from 3 (state) on follow the last ')'.
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(line[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat: %w", err)
	}
	return float64(utime+stime) / ticks, nil
}

// ClockTicks is the kernel's USER_HZ (getconf CLK_TCK), the unit of the
// CPU times in /proc.
func ClockTicks() (float64, error) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 0, fmt.Errorf("getconf CLK_TCK: %w", err)
	}
	ticks, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return 0, fmt.Errorf("getconf CLK_TCK: %w", err)
	}
	return ticks, nil
}

// UDPRcvbufErrors is the host's count of UDP datagrams dropped because a
// socket's receive buffer was full (/proc/net/snmp), or 0 if unknown. The
// counter is host-wide, so a benchmark takes the change over its run.
func UDPRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	return parseSNMP(string(b), "Udp:", "RcvbufErrors")
}

// parseSNMP reads one counter from /proc/net/snmp text, where each
// protocol has a line of names followed by a line of values.
func parseSNMP(text, proto, name string) int64 {
	var names []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != proto {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == name && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
		return 0
	}
	return 0
}

// Machine describes the host for a results header: cores, CPU model,
// kernel, Go.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d cores of %s, Linux %s, %s", runtime.NumCPU(), model,
		strings.TrimSpace(string(kernel)), runtime.Version())
}
