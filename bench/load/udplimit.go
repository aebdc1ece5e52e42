package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/quartet-rtc/quartet/bench/internal/host"
)

// udpLimitPayload matches the SFU's video packets (about 1200 bytes).
const udpLimitPayload = 1200

// udpLimitRow is one row of bench/udplimit's JSON output; fields this
// benchmark does not use are left out.
type udpLimitRow struct {
	Mode                  string  `json:"mode"`
	Fanout                int     `json:"fanout"`
	Payload               int     `json:"payload"`
	InputPPS              int     `json:"input_pps"`
	Loss                  float64 `json:"loss"`
	CPUSeconds            float64 `json:"cpu_seconds"`
	ForwardedPerCPUSecond float64 `json:"forwarded_per_cpu_second"`
	ForwardedPerSecond    float64 `json:"forwarded_per_second"`
	MeanReadBatch         float64 `json:"mean_read_batch"`
	Unsupported           string  `json:"unsupported,omitempty"`
}

// runUDPLimit builds and runs bench/udplimit at the given fan-outs and
// returns its rows and the command that reproduces them.
func (b *bench) runUDPLimit(ctx context.Context, fanouts []int) ([]udpLimitRow, string, error) {
	bin := filepath.Join(b.work, "udplimit")
	if err := goBuild(ctx, bin, "./bench/udplimit"); err != nil {
		return nil, "", err
	}
	fs := make([]string, len(fanouts))
	for i, f := range fanouts {
		fs[i] = strconv.Itoa(f)
	}
	out := filepath.Join(b.work, "udplimit.json")
	args := []string{"--mode", "all", "--fanout", strings.Join(fs, ","),
		"--payload", strconv.Itoa(udpLimitPayload), "--duration", "3s"}
	if b.o.udplimitPPS > 0 {
		args = append(args, "--pps", strconv.Itoa(b.o.udplimitPPS))
	}
	command := "go run ./bench/udplimit " + strings.Join(args, " ")
	args = append(args, "--json", out)
	b.log.Info("bench/udplimit", "command", command)
	runCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	logPath := filepath.Join(b.work, "udplimit.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Run(); err != nil {
		tail, _ := os.ReadFile(logPath)
		return nil, "", fmt.Errorf("bench/udplimit: %w\n%s", err, host.LastLines(string(tail), 10))
	}
	rows, err := readUDPLimit(out)
	return rows, command, err
}

func readUDPLimit(path string) ([]udpLimitRow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench/udplimit results: %w", err)
	}
	var rows []udpLimitRow
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, fmt.Errorf("bench/udplimit results %s: %w", path, err)
	}
	return rows, nil
}

// baseline finds udplimit's batch-mode row and its best row (most
// forwarded packets per CPU-second) at a fan-out.
func baseline(rows []udpLimitRow, fanout int) (batch, best udpLimitRow, ok bool) {
	for _, r := range rows {
		if r.Fanout != fanout || r.Unsupported != "" || r.ForwardedPerCPUSecond <= 0 {
			continue
		}
		if r.Mode == "batch" {
			batch, ok = r, true
		}
		if r.ForwardedPerCPUSecond > best.ForwardedPerCPUSecond {
			best = r
		}
	}
	return batch, best, ok
}
