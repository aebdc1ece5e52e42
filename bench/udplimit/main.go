// Command udplimit measures the physical limit that Quartet's SFU
// forwarding is compared against: a raw UDP forwarder that re-sends every
// datagram it receives to N destinations and does nothing else.
//
//	go run ./bench/udplimit                        # all modes, fan-outs 1,10,25,50,100
//	go run ./bench/udplimit -mode gso -fanout 50 -pps 4000 -json out.json
//
// A generator sends numbered datagrams to the forwarder at -pps, by
// default min(20000, 200000/fan-out) a second so that even the per-packet
// mode keeps up and the figure is CPU per forwarded datagram, not drops.
// The forwarder runs as a child process (this program again, with a
// hidden -role flag) so that its CPU time is its own: the child reads
// getrusage(RUSAGE_SELF), user plus system, when the load starts and
// after it has drained, and reports the difference over its stdout. N sink
// sockets count the copies. Modes, in order:
//
//   - perpacket: one recvfrom per datagram and one sendto per copy;
//   - batch: recvmmsg up to 64 datagrams, sendmmsg all their copies
//     (golang.org/x/net/ipv4 ReadBatch/WriteBatch);
//   - gso: as batch, but each run of equal-sized datagrams of a read goes
//     to each destination as one UDP GSO message (a UDP_SEGMENT control
//     message, Linux 4.18+), still in sendmmsg calls; reported as
//     unsupported where the kernel refuses it.
//
// Everything binds to 127.0.0.1 and stops by itself: each measurement
// lasts -duration plus a short drain, the child exits on its own timeout,
// and -timeout bounds the whole run.
//
// On loopback the receiving side's kernel work lands on the sender: the
// kernel delivers each datagram into the sink's socket, and wakes the
// sink, within the forwarder's send call, so the forwarder's CPU includes
// it (kernels built without CONFIG_IRQ_TIME_ACCOUNTING, such as the
// development machine's, charge softirq time to the running task). A GSO message crosses loopback whole and is cut
// into datagrams only at the receiving socket, which gets one wakeup for
// all of them; part of GSO's gain here is that saving.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	modes    []string
	fanouts  []int
	payload  int
	pps      int // 0: as fast as possible; autoPPS: chosen per fan-out
	duration time.Duration
	timeout  time.Duration
	jsonFile string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == roleFlag {
		os.Exit(forwarderMain(os.Args[1:]))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "udplimit:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o, log); err != nil {
		log.Error("udplimit failed", "err", err)
		cancel()
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("udplimit", flag.ContinueOnError)
	mode := fs.String("mode", "all", "perpacket, batch, gso or all")
	fanouts := fs.String("fanout", "1,10,25,50,100", "destinations per datagram, comma-separated")
	fs.IntVar(&o.payload, "payload", 1200, "UDP payload bytes")
	pps := fs.String("pps", "auto", "input datagrams per second offered to the forwarder: a number, max (as fast as the generator can), or auto (min(20000, 200000/fan-out))")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "load time per mode and fan-out")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on the whole run")
	fs.StringVar(&o.jsonFile, "json", "", "also write the results to this file as a JSON array")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case *mode == "all":
		o.modes = modes
	case slices.Contains(modes, *mode):
		o.modes = []string{*mode}
	default:
		return o, fmt.Errorf("-mode %q: want perpacket, batch, gso or all", *mode)
	}
	for _, f := range strings.Split(*fanouts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1000 {
			return o, fmt.Errorf("-fanout: %q is not a number from 1 to 1000", f)
		}
		o.fanouts = append(o.fanouts, n)
	}
	if o.payload < 16 || o.payload > maxDatagram {
		return o, fmt.Errorf("-payload %d: want 16 to %d bytes", o.payload, maxDatagram)
	}
	switch *pps {
	case "auto":
		o.pps = autoPPS
	case "max":
		o.pps = 0
	default:
		n, err := strconv.Atoi(*pps)
		if err != nil || n < 1 {
			return o, fmt.Errorf("-pps %q: want a positive number, max or auto", *pps)
		}
		o.pps = n
	}
	if o.duration <= 0 || o.timeout <= 0 {
		return o, fmt.Errorf("-duration and -timeout must be positive")
	}
	return o, nil
}

// run measures every mode at every fan-out, in that order, and prints the
// table.
func run(ctx context.Context, o options, log *slog.Logger) error {
	launch := launchProcess(o.duration + time.Minute)
	var results []result
	for _, mode := range o.modes {
		var gsoErr error
		if mode == modeGSO {
			if gsoErr = probeGSO(); gsoErr != nil {
				log.Warn("UDP GSO unsupported", "err", gsoErr)
			}
		}
		for _, fanout := range o.fanouts {
			rc := runConfig{mode: mode, fanout: fanout, payload: o.payload, pps: inputPPS(o.pps, fanout), duration: o.duration}
			if gsoErr != nil {
				results = append(results, unsupported(rc, gsoErr))
				continue
			}
			r, err := runOne(ctx, rc, launch)
			if err != nil {
				return fmt.Errorf("mode %s, fan-out %d: %w", mode, fanout, err)
			}
			log.Info("measured", "mode", mode, "fanout", fanout, "sent", r.SentPackets,
				"forwarded", r.ForwardedPackets, "received", r.ReceivedPackets,
				"cpu_s", r.CPUSeconds, "per_cpu_s", int(r.ForwardedPerCPUSecond))
			results = append(results, r)
		}
	}
	printTable(os.Stdout, results)
	if o.jsonFile != "" {
		return writeJSON(o.jsonFile, results)
	}
	return nil
}

// autoPPS in options.pps asks for the input rate inputPPS picks.
const autoPPS = -1

// inputPPS returns the input rate for a fan-out. The automatic rate keeps
// the output near 200,000 copies a second (input at most 20,000 a
// second), which the slowest mode, per-packet, sustains without loss on
// two cores shared with the generator and the sinks: the figure of merit
// is CPU per forwarded datagram, not how much an overloaded forwarder
// drops.
func inputPPS(pps, fanout int) int {
	if pps != autoPPS {
		return pps
	}
	return min(20000, 200000/fanout)
}

func writeJSON(path string, results []result) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func printTable(w io.Writer, results []result) {
	fmt.Fprintln(w, "| mode | fan-out | payload | input pps | sent | forwarded | received | loss | forwarder CPU s | wall s | forwarded per CPU-second | forwarded per second | mean read batch |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		if r.Unsupported != "" {
			fmt.Fprintf(w, "| %s | %d | %d | %d | unsupported: %s |||||||||\n", r.Mode, r.Fanout, r.Payload, r.InputPPS, r.Unsupported)
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %d | %.3f%% | %.3f | %.2f | %.0f | %.0f | %.1f |\n",
			r.Mode, r.Fanout, r.Payload, r.InputPPS, r.SentPackets, r.ForwardedPackets, r.ReceivedPackets,
			100*r.Loss, r.CPUSeconds, r.WallSeconds, r.ForwardedPerCPUSecond, r.ForwardedPerSecond, r.MeanReadBatch)
	}
}
