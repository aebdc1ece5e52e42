package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// results is everything one invocation measured.
type results struct {
	Machine         string        `json:"machine"`
	Quartet         string        `json:"quartet"`
	Commit          string        `json:"commit,omitempty"`
	Quick           bool          `json:"quick"`
	Started         time.Time     `json:"started"`
	Scenarios       []result      `json:"scenarios"`
	UDPLimit        []udpLimitRow `json:"udplimit,omitempty"`
	UDPLimitCommand string        `json:"udplimit_command,omitempty"`
	UDPLimitError   string        `json:"udplimit_error,omitempty"`
}

// compare puts each fan-out row next to udplimit's at the same fan-out.
func (res *results) compare() {
	for i := range res.Scenarios {
		r := &res.Scenarios[i]
		if r.Kind != kindFanout || r.ForwardedPerCPUSecond <= 0 {
			continue
		}
		batch, best, ok := baseline(res.UDPLimit, r.Fanout)
		if !ok {
			continue
		}
		r.UDPLimitBatchFraction = r.ForwardedPerCPUSecond / batch.ForwardedPerCPUSecond
		r.UDPLimitBestFraction = r.ForwardedPerCPUSecond / best.ForwardedPerCPUSecond
		r.UDPLimitBestMode = best.Mode
	}
}

// write prints the tables to stdout and to --out, and the raw results to
// --json.
func (res *results) write(stdout io.Writer, o options) error {
	var md strings.Builder
	res.markdown(&md)
	if _, err := io.WriteString(stdout, md.String()); err != nil {
		return err
	}
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md.String()), 0o644); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	if o.jsonFile != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonFile, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	return nil
}

func (res *results) markdown(w io.Writer) {
	tree := ""
	if res.Commit != "" {
		tree = " at " + res.Commit
	}
	fmt.Fprintf(w, "\n%s%s; %s; %s\n", res.Quartet, tree, res.Machine, res.Started.Format("2006-01-02"))
	res.mediaTable(w)
	res.simulcastTable(w)
	res.joinTable(w)
	res.idleTable(w)
	res.udpLimitTables(w)
	res.notes(w)
}

func (res *results) byKind(kinds ...string) []result {
	var out []result
	for _, r := range res.Scenarios {
		for _, k := range kinds {
			if r.Kind == k && r.Report != nil {
				out = append(out, r)
			}
		}
	}
	return out
}

func (res *results) mediaTable(w io.Writer) {
	rows := res.byKind(kindFanout, kindMeeting, kindJoinStorm)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| scenario | participants | steady s | forwarded packets | forwarded packets/s | server CPU s | "+
		"server CPU s per 1,000 forwarded | forwarded per CPU-second | of udplimit batch | of udplimit best | "+
		"delivered Mbps | loss | latency p50 / p99 ms | SFU drops | server cores (idle) | subscriber video streams | streams per server core | "+
		"generator cores | other cores | generator CPU s (whole run) | peak RSS MiB | status |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		rep := r.Report
		fmt.Fprintf(w, "| %s | %d | %.1f | %s | %s | %.2f | %.4f | %s | %s | %s | %.1f | %.3f%% | %.1f / %.1f | %s | %.2f (%.3f) | %d | %s | %.2f | %.2f | %.1f | %.0f | %s |\n",
			r.Scenario, rep.Joined, r.SteadySeconds, thousands(r.ForwardedPackets), thousands(r.ForwardedPerSecond),
			r.ServerCPUSeconds, r.ServerCPUSecondsPer1000, thousands(r.ForwardedPerCPUSecond),
			fraction(r.UDPLimitBatchFraction, ""), fraction(r.UDPLimitBestFraction, r.UDPLimitBestMode),
			rep.ReceivedMbps, rep.Loss*100, rep.Latency.P50, rep.Latency.P99, thousands(r.DroppedPackets),
			r.ServerCores, r.ServerIdleCores, r.SubscriberStreams, thousands(r.StreamsPerServerCore),
			r.GeneratorCores, r.OtherCores, r.GeneratorCPUSeconds, mib(r.Memory.PeakRSS), r.Status)
	}
}

// simulcastTable shows what the receivers of simulcast scenarios got, by
// layer.
func (res *results) simulcastTable(w io.Writer) {
	var rows []result
	for _, r := range res.byKind(kindFanout, kindMeeting) {
		if r.Report.Simulcast {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| simulcast scenario | layers kbit/s | receivers' quality | video packets received low / medium / high | streams paused | subscriber video streams | streams per server core |")
	fmt.Fprintln(w, "|---|---|---|---|---:|---:|---:|")
	for _, r := range rows {
		rep := r.Report
		kbps := make([]string, len(rep.SimulcastLayers))
		for i, b := range rep.SimulcastLayers {
			kbps[i] = strconv.Itoa(b / 1000)
		}
		pkts := make([]string, len(rep.LayerPackets))
		for i, n := range rep.LayerPackets {
			pkts[i] = thousands(float64(n))
		}
		quality := "high (default)"
		if rep.QualitySpread {
			quality = "low, medium, high in turn"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %d | %s |\n", r.Scenario, strings.Join(kbps, " / "), quality,
			strings.Join(pkts, " / "), rep.PausedStreams, r.SubscriberStreams, thousands(r.StreamsPerServerCore))
	}
}

func (res *results) joinTable(w io.Writer) {
	rows := res.byKind(kindJoinStorm)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| scenario | participants | join rate /s | all joined s | all with media s | "+
		"first media p50 / p95 / max ms | keyframe wait p50 / p95 / max ms | status |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		rep := r.Report
		fmt.Fprintf(w, "| %s | %d | %g | %.2f | %.2f | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f | %s |\n",
			r.Scenario, rep.Joined, rep.JoinRate, rep.JoinedAt.Sub(rep.StartedAt).Seconds(),
			rep.AllMediaAt.Sub(rep.StartedAt).Seconds(),
			rep.FirstMedia.P50, rep.FirstMedia.P95, rep.FirstMedia.Max,
			rep.KeyframeWait.P50, rep.KeyframeWait.P95, rep.KeyframeWait.Max, r.Status)
	}
}

func (res *results) idleTable(w io.Writer) {
	rows := res.byKind(kindIdle)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| scenario | connections | all joined s | RSS before MiB | RSS connected MiB | "+
		"RSS per connection KiB | Go heap in use per connection KiB | goroutine stacks per connection KiB | "+
		"goroutines per connection | peak RSS MiB | server CPU s joining | server cores, all connected | generator CPU s (whole run) | status |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		m, rep := r.Memory, r.Report
		fmt.Fprintf(w, "| %s | %d | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.3f | %.1f | %s |\n",
			r.Scenario, m.Connections, rep.JoinedAt.Sub(rep.StartedAt).Seconds(), mib(m.RSSBefore), mib(m.RSSConnected),
			m.RSSPerConnection/1024, m.HeapPerConnection/1024, m.StackPerConnection/1024, m.GoroutinesPerConn,
			mib(m.PeakRSS), r.ServerCPUJoining, r.ServerCores, r.GeneratorCPUSeconds, r.Status)
	}
}

func (res *results) udpLimitTables(w io.Writer) {
	if res.UDPLimitError != "" {
		fmt.Fprintf(w, "\nNo bench/udplimit baseline: %s\n", firstLine(res.UDPLimitError))
	}
	if len(res.UDPLimit) == 0 {
		return
	}
	fmt.Fprintf(w, "\nRaw UDP forwarder (`%s`), forwarded packets per CPU-second:\n", res.UDPLimitCommand)
	fmt.Fprintln(w, "\n| fan-out | input pps | perpacket | batch | gso | batch mean read batch | batch loss |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, f := range fanoutsOfRows(res.UDPLimit) {
		cells := map[string]string{}
		var batch udpLimitRow
		var pps int
		for _, r := range res.UDPLimit {
			if r.Fanout != f {
				continue
			}
			pps = r.InputPPS
			cells[r.Mode] = "unsupported"
			if r.Unsupported == "" {
				cells[r.Mode] = thousands(r.ForwardedPerCPUSecond)
			}
			if r.Mode == "batch" {
				batch = r
			}
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %.1f | %.3f%% |\n", f, thousands(float64(pps)),
			orDash(cells["perpacket"]), orDash(cells["batch"]), orDash(cells["gso"]), batch.MeanReadBatch, batch.Loss*100)
	}
	fmt.Fprintln(w, "\n| fan-out | SFU forwarded per CPU-second | udplimit batch | SFU / batch | udplimit best | SFU / best |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|")
	for _, r := range res.Scenarios {
		if r.Kind != kindFanout || r.UDPLimitBatchFraction == 0 {
			continue
		}
		batch, best, _ := baseline(res.UDPLimit, r.Fanout)
		fmt.Fprintf(w, "| %d | %s | %s | **%.2f** | %s (%s) | %.2f |\n", r.Fanout, thousands(r.ForwardedPerCPUSecond),
			thousands(batch.ForwardedPerCPUSecond), r.UDPLimitBatchFraction,
			thousands(best.ForwardedPerCPUSecond), best.Mode, r.UDPLimitBestFraction)
	}
}

// notes lists what a reader must know to trust the tables: failures,
// missing figures and runs where server and generator saturated the CPU.
func (res *results) notes(w io.Writer) {
	var lines []string
	for _, r := range res.Scenarios {
		if r.Report == nil {
			lines = append(lines, fmt.Sprintf("%s: %s", r.Scenario, firstLine(r.Status)))
			continue
		}
		if r.Saturated {
			lines = append(lines, fmt.Sprintf("%s: server (%.2f cores) and load generator (%.2f cores) together used "+
				"the machine's %d cores in the steady window; the generator competed with the server for CPU",
				r.Scenario, r.ServerCores, r.GeneratorCores, runtime.NumCPU()))
		}
		if r.OtherCores >= 0.2 {
			lines = append(lines, fmt.Sprintf("%s: other processes used %.2f cores during the steady window; "+
				"the figures are disturbed", r.Scenario, r.OtherCores))
		}
		if r.HostUDPReceiveBufferDrops > 0 {
			lines = append(lines, fmt.Sprintf("%s: the host dropped %d UDP datagrams on full receive buffers (RcvbufErrors)",
				r.Scenario, r.HostUDPReceiveBufferDrops))
		}
		for _, n := range r.Notes {
			lines = append(lines, r.Scenario+": "+n)
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "\nNotes:")
	fmt.Fprintln(w)
	for _, l := range lines {
		fmt.Fprintln(w, "- "+l)
	}
}

func fanoutsOfRows(rows []udpLimitRow) []int {
	var out []int
	seen := map[int]bool{}
	for _, r := range rows {
		if !seen[r.Fanout] {
			seen[r.Fanout] = true
			out = append(out, r.Fanout)
		}
	}
	return out
}

func fraction(f float64, mode string) string {
	switch {
	case f == 0:
		return "-"
	case mode != "":
		return fmt.Sprintf("%.2f (%s)", f, mode)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func mib(b float64) float64 { return b / (1 << 20) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// thousands formats a rounded count with thousands separators.
func thousands(v float64) string {
	n := int64(v + 0.5)
	if v < 0 {
		n = int64(v - 0.5)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
