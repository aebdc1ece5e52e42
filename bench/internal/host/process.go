// Package host holds what the benchmark programs under bench/ share about
// the machine they run on: the processes they start, CPU time and UDP
// drop counters read from /proc, a description of the host, and free
// loopback ports. It is Linux-only in practice: without /proc the readers
// return errors or zero.
package host

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is a program a benchmark started; its output goes to a log file,
// so a failure can be shown with the end of that log.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // set before done is closed
}

// Start runs path with args and the current environment plus env, with
// stdout and stderr written to a new file at logPath.
func Start(name, logPath string, env []string, path string, args ...string) (*Process, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, log: log, done: make(chan struct{})}
	// One goroutine waits so that Exited can poll and Stop can bound the wait.
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process ID, for reading /proc/PID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop asks the process to end with SIGTERM, so it can shut down cleanly,
// and kills it if it has not exited after grace. It is safe to call more
// than once and after the process exited.
func (p *Process) Stop(grace time.Duration) {
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

// Wait waits for the process to exit by itself and returns its exit error.
// If ctx ends first, it stops the process and says so.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
	case <-ctx.Done():
		p.Stop(5 * time.Second)
		return fmt.Errorf("%s did not finish in time: %w", p.Name, ctx.Err())
	}
	_ = p.log.Close()
	return p.err
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit error once it has exited, nil before.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// CPUUsed is the user+system CPU seconds of an exited process, from wait4,
// which also counts threads that ended before the process did; 0 before
// it exits.
func (p *Process) CPUUsed() float64 {
	if !p.Exited() {
		return 0
	}
	st := p.cmd.ProcessState
	if st == nil {
		return 0
	}
	return (st.UserTime() + st.SystemTime()).Seconds()
}

// LogTail is the last 20 lines of the process's log, enough to show why it
// failed without flooding the terminal.
func (p *Process) LogTail() string {
	b, _ := os.ReadFile(p.log.Name())
	return LastLines(string(b), 20)
}

// LastLines is the last n lines of s, without a trailing newline.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
