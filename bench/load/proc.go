package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a program the benchmark started; its output goes to a log.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // after done
}

func startProcess(name, logPath string, env []string, path string, args ...string) (*process, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop asks the process to end with SIGTERM, then kills it after grace.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	_ = p.log.Close()
}

// wait waits for the process to exit by itself until ctx ends, then stops it.
func (p *process) wait(ctx context.Context) error {
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop(5 * time.Second)
		return fmt.Errorf("%s did not finish in time: %w", p.name, ctx.Err())
	}
	_ = p.log.Close()
	return p.err
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// cpuUsed is the user+system CPU seconds of an exited process, from wait4.
func (p *process) cpuUsed() float64 {
	st := p.cmd.ProcessState
	if st == nil {
		return 0
	}
	return (st.UserTime() + st.SystemTime()).Seconds()
}

func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log.Name())
	return lastLines(string(b), 20)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ================================================================= /proc

// procCPU is utime+stime of pid, all threads, in seconds. /proc/PID/stat
// is used rather than schedstat because schedstat is per thread: summing
// /proc/PID/task/*/schedstat would lose the time of threads that exited.
// Its 10 ms tick is small next to the steady windows' CPU seconds.
func procCPU(pid int, ticks float64) (float64, error) {
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

// hostBusy is the CPU seconds all cores of the host spent busy, from the
// first line of /proc/stat: everything but idle and iowait.
func hostBusy(ticks float64) (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseHostBusy(line, ticks)
}

// parseHostBusy reads "cpu user nice system idle iowait irq softirq steal ...".
func parseHostBusy(line string, ticks float64) (float64, error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy uint64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += n
	}
	return float64(busy) / ticks, nil
}

// memory is a process's resident set now and at its peak, in bytes.
type memory struct {
	rss, peak float64
}

func procMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseStatusMemory(string(b))
}

// parseStatusMemory reads VmRSS and VmHWM from /proc/PID/status.
func parseStatusMemory(text string) (memory, error) {
	rss, err1 := statusKB(text, "VmRSS")
	peak, err2 := statusKB(text, "VmHWM")
	if err := errors.Join(err1, err2); err != nil {
		return memory{}, err
	}
	return memory{rss: rss, peak: peak}, nil
}

// statusKB finds "key:   123 kB" in /proc/PID/status text and returns bytes.
func statusKB(text, key string) (float64, error) {
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status: %s: unexpected %q", key, strings.TrimSpace(v))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc status: %s: %w", key, err)
		}
		return float64(n) * 1024, nil
	}
	return 0, fmt.Errorf("/proc status: no %s", key)
}

// udpRcvbufErrors is the host's count of UDP datagrams dropped because a
// socket's receive buffer was full (/proc/net/snmp), or 0 if unknown.
func udpRcvbufErrors() int64 {
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

// machine describes the host: cores, CPU model, kernel, Go.
func machine() string {
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

// clockTicks is the kernel's USER_HZ (getconf CLK_TCK).
func clockTicks() (float64, error) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 0, fmt.Errorf("getconf CLK_TCK: %w", err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

// ============================================================== network

// freePorts returns n distinct ports free on 127.0.0.1 for both UDP and
// TCP at the time of the call.
func freePorts(n int) ([]int, error) {
	var ports []int
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for tries := 0; len(ports) < n && tries < 50; tries++ {
		t, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		closers = append(closers, t)
		port := t.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken for UDP: try another
		}
		closers = append(closers, u)
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, errors.New("no free ports on 127.0.0.1")
	}
	return ports, nil
}

// waitHealthy polls url (the server's /healthz) until it answers 200.
func waitHealthy(ctx context.Context, client *http.Client, url string, p *process) error {
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if p.exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.logTail())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if res, err := client.Do(req); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: no healthy answer from %s\n%s", p.name, url, p.logTail())
}
