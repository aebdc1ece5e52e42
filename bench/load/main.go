// Command load runs Quartet's SFU scenarios, each against a freshly started
// `quartet serve` process on 127.0.0.1, with `quartet loadtest` as a
// separate process generating the load, and writes a results table:
//
//   - fan-out: one video+audio publisher (1.5 Mbps) to 25, 50, 100 and 200
//     subscribers;
//   - meeting: 8 publishers who all see each other, and 16 audio-only;
//   - simulcast: the 100-subscriber fan-out and the 8×8 meeting with three
//     VP8 layers, the receivers' preferences spread over them;
//   - join storm: one publisher, then 100 subscribers joining at 20/s
//     (time to first media, keyframe wait);
//   - idle signaling: 2,000 connected participants without media (server
//     memory per connection).
//
// It samples the server every 200 ms (CPU time and memory from /proc,
// counters from /metrics) and computes the forwarding figures over the
// steady window the load generator reports: from the moment the last
// participant received media to the moment the publishers stopped. It also
// runs bench/udplimit, a raw UDP forwarder, at the same fan-outs so the
// SFU's forwarded packets per CPU-second can be read as a fraction of that
// physical limit.
//
//	go run ./bench/load                         # from the repository root
//	go run ./bench/load --quick                 # short smoke run
//	go run ./bench/load --only fanout-100,idle --out results.md --json results.json
//
// Needs Linux (/proc). Everything binds to 127.0.0.1 on ports it picks,
// every run is bounded in time, and every process it starts is stopped at
// the end, on error and on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	quick       bool
	only        string
	out         string
	jsonFile    string
	quartet     string
	udplimit    bool
	udplimitPPS int
	duration    time.Duration
	timeout     time.Duration
	keep        bool
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/load:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, o, log); err != nil {
		log.Error("bench/load failed", "err", err)
		cancel()
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "short runs (about 6 s per media scenario) for a smoke test")
	fs.StringVar(&o.only, "only", "", "run only these scenarios: comma-separated names or prefixes (fanout, meeting, joinstorm, idle, fanout-100, ...)")
	fs.StringVar(&o.out, "out", "", "also write the markdown tables to this file")
	fs.StringVar(&o.jsonFile, "json", "", "also write the raw results to this file as JSON")
	fs.StringVar(&o.quartet, "quartet", "", "quartet binary to use (default: go build ./cmd/quartet into a temporary directory)")
	fs.BoolVar(&o.udplimit, "udplimit", true, "also run bench/udplimit at the fan-out scenarios' fan-outs")
	fs.IntVar(&o.udplimitPPS, "udplimit-pps", 0, "input datagrams per second for bench/udplimit (0: its default)")
	fs.DurationVar(&o.duration, "duration", 0, "length of every scenario's loadtest run, joins included (0: the scenario's default)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (binaries, logs, loadtest reports)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.duration < 0 || o.timeout <= 0 || o.udplimitPPS < 0 {
		return o, fmt.Errorf("--duration and --udplimit-pps must not be negative, --timeout must be positive")
	}
	if _, err := selectScenarios(scenarios(), o.only); err != nil {
		return o, err
	}
	return o, nil
}
