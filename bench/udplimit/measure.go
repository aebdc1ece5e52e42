package main

import (
	"context"
	"errors"
	"time"
)

// drainQuiet is how long the sinks' count may stand still after the
// generator stops before the missing datagrams count as lost.
const drainQuiet = 300 * time.Millisecond

// runConfig is one measurement: one mode and one fan-out.
type runConfig struct {
	mode     string
	fanout   int
	payload  int
	pps      int // input datagrams per second; 0 sends as fast as possible
	duration time.Duration
	verify   bool // sinks check every byte, not only the size
}

// result is one measurement, as written to the JSON file.
type result struct {
	Mode                  string  `json:"mode"`
	Fanout                int     `json:"fanout"`
	Payload               int     `json:"payload"`
	InputPPS              int     `json:"input_pps"`
	SentPackets           uint64  `json:"sent_packets"`
	ReadPackets           uint64  `json:"read_packets"`
	ForwardedPackets      uint64  `json:"forwarded_packets"`
	ReceivedPackets       uint64  `json:"received_packets"`
	Loss                  float64 `json:"loss"`
	CPUSeconds            float64 `json:"cpu_seconds"`
	WallSeconds           float64 `json:"wall_seconds"`
	ForwardedPerCPUSecond float64 `json:"forwarded_per_cpu_second"`
	ForwardedPerSecond    float64 `json:"forwarded_per_second"`
	MeanReadBatch         float64 `json:"mean_read_batch"`
	GSO                   bool    `json:"gso"`
	Unsupported           string  `json:"unsupported,omitempty"`

	corrupt uint64   // datagrams of the wrong size or bytes
	perSink []uint64 // datagrams each sink received
}

// runOne measures one forwarder: sinks up, forwarder started, CPU clock
// zeroed, load for rc.duration, wait for the last copies, CPU clock read.
func runOne(ctx context.Context, rc runConfig, launch launcher) (res result, err error) {
	sinks, err := openSinks(rc.fanout, rc.payload, rc.verify)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, sinks.close()) }()
	ctl, err := launch(ctx, rc.mode, sinks.addrs())
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, ctl.close()) }()
	gen, err := newGenerator(ctl.addr, rc.payload)
	if err != nil {
		return res, err
	}
	defer gen.close()

	if err := ctl.start(); err != nil {
		return res, err
	}
	t0 := time.Now()
	sent, err := gen.run(ctx, rc.pps, rc.duration)
	if err != nil {
		return res, err
	}
	last := waitDrain(ctx, sinks, sent*uint64(rc.fanout), time.Now(), drainQuiet)
	rep, err := ctl.stop()
	if err != nil {
		return res, err
	}
	return newResult(rc, sent, rep, sinks, last.Sub(t0).Seconds()), nil
}

func newResult(rc runConfig, sent uint64, rep report, sinks *sinkSet, wall float64) result {
	received, corrupt := sinks.total()
	r := result{
		Mode: rc.mode, Fanout: rc.fanout, Payload: rc.payload, InputPPS: rc.pps,
		SentPackets: sent, ReadPackets: rep.Read, ForwardedPackets: rep.Forwarded,
		ReceivedPackets: received, CPUSeconds: rep.CPUSeconds, WallSeconds: wall,
		GSO:     rc.mode == modeGSO,
		corrupt: corrupt, perSink: sinks.perSink(),
	}
	if want := sent * uint64(rc.fanout); want > 0 {
		r.Loss = 1 - float64(received)/float64(want)
	}
	if rep.CPUSeconds > 0 {
		r.ForwardedPerCPUSecond = float64(rep.Forwarded) / rep.CPUSeconds
	}
	if wall > 0 {
		r.ForwardedPerSecond = float64(rep.Forwarded) / wall
	}
	if rep.Reads > 0 {
		r.MeanReadBatch = float64(rep.Read) / float64(rep.Reads)
	}
	return r
}

// unsupported is the result row of a mode this kernel cannot run.
func unsupported(rc runConfig, why error) result {
	return result{Mode: rc.mode, Fanout: rc.fanout, Payload: rc.payload, InputPPS: rc.pps,
		Unsupported: why.Error()}
}
