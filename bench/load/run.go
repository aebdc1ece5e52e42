package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/quartet-rtc/quartet/bench/internal/host"
	"github.com/quartet-rtc/quartet/internal/loadtest"
)

// bench is what every scenario shares.
type bench struct {
	o       options
	log     *slog.Logger
	work    string
	quartet string
	ticks   float64
	client  *http.Client
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	if runtime.GOOS != "linux" {
		return errors.New("needs Linux: CPU time and memory are read from /proc")
	}
	list, err := selectScenarios(scenarios(), o.only)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "quartet-bench-load-")
	if err != nil {
		return err
	}
	if o.keep {
		log.Info("work directory", "dir", work)
	} else {
		defer os.RemoveAll(work)
	}
	ticks, err := host.ClockTicks()
	if err != nil {
		return err
	}
	b := &bench{o: o, log: log, work: work, quartet: o.quartet, ticks: ticks,
		client: &http.Client{Timeout: 2 * time.Second}}
	if b.quartet == "" {
		b.quartet = filepath.Join(work, "quartet")
		if err := goBuild(ctx, b.quartet, "./cmd/quartet"); err != nil {
			return err
		}
	}
	ver, _ := exec.CommandContext(ctx, b.quartet, "version").Output()
	res := results{Machine: host.Machine(), Quartet: strings.TrimSpace(string(ver)), Commit: gitCommit(ctx),
		Quick: o.quick, Started: time.Now()}
	log.Info("machine", "machine", res.Machine, "quartet", res.Quartet, "commit", res.Commit)

	for _, sc := range list {
		r, err := b.runScenario(ctx, sc)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			log.Error("scenario failed", "scenario", sc.name, "err", err)
			r = result{Scenario: sc.name, Kind: sc.kind, Participants: sc.participants, Status: "error: " + err.Error()}
		}
		res.Scenarios = append(res.Scenarios, r)
	}
	if fanouts := fanoutsOf(list); o.udplimit && len(fanouts) > 0 {
		// Not fatal: the SFU figures stand on their own, and the
		// output says why the comparison is missing.
		if res.UDPLimit, res.UDPLimitCommand, err = b.runUDPLimit(ctx, fanouts); err != nil {
			log.Error("no bench/udplimit baseline", "err", err)
			res.UDPLimitError = err.Error()
		}
		res.compare()
	}
	return res.write(os.Stdout, o)
}

// gitCommit names the tree being measured: the short commit, with
// "+changes" when tracked files differ from it; empty outside a checkout.
func gitCommit(ctx context.Context) string {
	head, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(head))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		commit += "+changes"
	}
	return commit
}

// goBuild builds a package of this module into out.
func goBuild(ctx context.Context, out, pkg string) error {
	build := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build %s (run from the repository root): %w", pkg, err)
	}
	return nil
}

// runScenario starts a server, runs the loadtest against it while sampling
// the server, stops the server and computes the result.
func (b *bench) runScenario(ctx context.Context, sc scenario) (result, error) {
	dur := sc.runDuration(b.o)
	b.log.Info("scenario", "name", sc.name, "duration", dur, "loadtest", strings.Join(sc.args, " "))
	ports, err := host.FreePorts(2)
	if err != nil {
		return result{}, err
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	server, err := host.Start("quartet serve", filepath.Join(b.work, sc.name+"-server.log"), b.serverEnv(sc),
		b.quartet, "serve", "--http", httpAddr, "--udp-port", strconv.Itoa(ports[1]), "--turn-port", "0",
		"--log-level", "warn")
	if err != nil {
		return result{}, err
	}
	defer server.Stop(10 * time.Second)
	if err := waitHealthy(ctx, b.client, "http://"+httpAddr+"/healthz", server); err != nil {
		return result{}, err
	}
	// Let the server finish starting up before the baseline.
	time.Sleep(time.Second)
	smp := &sampler{serverPID: server.Pid(), ticks: b.ticks, client: b.client, metricsURL: "http://" + httpAddr + "/metrics"}
	idle, before, err := idleCores(ctx, smp)
	if err != nil {
		return result{}, err
	}
	drops := host.UDPRcvbufErrors()

	run, err := b.runLoadtest(ctx, sc, dur, httpAddr, smp)
	if err != nil {
		return result{}, err
	}
	if server.Exited() {
		return result{}, fmt.Errorf("the server exited during the run: %v\n%s", server.Err(), server.LogTail())
	}
	run.before, run.idleCores = before, idle
	run.rcvbufDrops = host.UDPRcvbufErrors() - drops
	server.Stop(10 * time.Second)
	run.serverExit = server.Err()
	return compute(sc, run), nil
}

// serverEnv lifts the limits a scenario would otherwise trip.
func (b *bench) serverEnv(sc scenario) []string {
	return []string{
		"QUARTET_ROOM_MAX_PARTICIPANTS=" + strconv.Itoa(max(100, sc.participants+10)),
		"QUARTET_SIGNAL_MAX_CONNECTIONS=" + strconv.Itoa(max(10000, 2*sc.participants)),
	}
}

// runOutput is what one loadtest run produced.
type runOutput struct {
	report      *loadtest.Report
	exitErr     error // the loadtest's own verdict: participants failed or loss
	output      string
	genCPU      float64 // whole run, from wait4
	before      sample
	idleCores   float64
	samples     []sample
	rcvbufDrops int64
	serverExit  error
}

// runLoadtest runs `quartet loadtest` as its own process and samples the
// server until it has exited, then once more.
func (b *bench) runLoadtest(ctx context.Context, sc scenario, dur time.Duration, httpAddr string, smp *sampler) (runOutput, error) {
	jsonPath := filepath.Join(b.work, sc.name+"-report.json")
	args := append([]string{"loadtest", "--url", "ws://" + httpAddr, "--room", sc.name,
		"--duration", dur.String(), "--json", jsonPath, "--quiet"}, sc.args...)
	gen, err := host.Start("quartet loadtest", filepath.Join(b.work, sc.name+"-loadtest.log"), nil, b.quartet, args...)
	if err != nil {
		return runOutput{}, err
	}
	defer gen.Stop(5 * time.Second)
	smp.genPID = gen.Pid()
	sampleCtx, stopSampling := context.WithCancel(ctx)
	samplesCh := make(chan []sample, 1)
	go func() { samplesCh <- smp.run(sampleCtx) }()

	// Joins, the run, the drain and closing thousands of participants.
	waitCtx, cancel := context.WithTimeout(ctx, dur+2*time.Minute)
	defer cancel()
	exitErr := gen.Wait(waitCtx)
	stopSampling()
	samples := <-samplesCh
	if last, err := smp.take(ctx); err == nil {
		samples = append(samples, last)
	}
	out := runOutput{exitErr: exitErr, output: gen.LogTail(), genCPU: gen.CPUUsed(), samples: samples}
	if waitCtx.Err() != nil {
		return out, fmt.Errorf("loadtest: %w", exitErr)
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return out, fmt.Errorf("loadtest wrote no report (%v):\n%s", exitErr, out.output)
	}
	out.report = &loadtest.Report{}
	if err := json.Unmarshal(data, out.report); err != nil {
		return out, fmt.Errorf("loadtest report %s: %w", jsonPath, err)
	}
	return out, nil
}

// idleMeasure is how long the idle server is sampled before each run.
const idleMeasure = 2 * time.Second

// idleCores samples the idle server as the run will and returns its CPU
// use, in cores, and the last sample, which is the run's baseline.
func idleCores(ctx context.Context, smp *sampler) (float64, sample, error) {
	sampleCtx, cancel := context.WithTimeout(ctx, idleMeasure)
	defer cancel()
	samples := smp.run(sampleCtx)
	if len(samples) < 2 {
		return 0, sample{}, errors.New("could not sample the server's /proc entry")
	}
	first, last := samples[0], samples[len(samples)-1]
	return (last.serverCPU - first.serverCPU) / last.at.Sub(first.at).Seconds(), last, nil
}

func fanoutsOf(list []scenario) []int {
	var fanouts []int
	for _, s := range list {
		if s.kind == kindFanout {
			fanouts = append(fanouts, s.fanout)
		}
	}
	return fanouts
}
