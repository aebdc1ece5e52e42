package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/quartet-rtc/quartet/bench/internal/host"
)

// ================================================================= /proc

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

// waitHealthy polls url (the server's /healthz) until it answers 200.
func waitHealthy(ctx context.Context, client *http.Client, url string, p *host.Process) error {
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.Err(), p.LogTail())
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
	return fmt.Errorf("%s: no healthy answer from %s\n%s", p.Name, url, p.LogTail())
}
