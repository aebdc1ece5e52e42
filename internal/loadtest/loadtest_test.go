package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A short run against an in-process server: every subscriber gets every
// publisher's audio and video with nothing lost.
func TestShortRunDeliversEverything(t *testing.T) {
	var progress bytes.Buffer
	rep := runChecked(t, nil, func(cfg *Config) {
		cfg.Publishers, cfg.Subscribers = 2, 5
		cfg.Duration = 5 * time.Second
		cfg.VideoBitrate = 500_000
		cfg.Progress = &progress
	})
	t.Logf("progress:\n%s", progress.String())
	if rep.Joined != 7 || rep.LostPackets != 0 || rep.Duplicates != 0 {
		t.Errorf("joined %d, lost %d, duplicates %d; want 7, 0, 0", rep.Joined, rep.LostPackets, rep.Duplicates)
	}
	// Each publisher's packets reach the 5 subscribers and the other
	// publisher: 6 receivers each. Joining takes a moment, so allow the
	// first second's packets to be missed. The rate is what the publishers
	// sent (50 audio + 60 video packets/s each, less on a busy machine).
	perSecond := float64(rep.SentPackets) / rep.MediaSeconds
	want := int64(6 * (float64(rep.SentPackets) - perSecond))
	if rep.ReceivedPackets < want || rep.ReceivedPackets > 6*rep.SentPackets {
		t.Errorf("received %d packets, want between %d and %d (sent %d)", rep.ReceivedPackets, want, 6*rep.SentPackets, rep.SentPackets)
	}
	if rep.Latency.Count != rep.ReceivedPackets || rep.Latency.P99 <= 0 {
		t.Errorf("latency %+v for %d packets", rep.Latency, rep.ReceivedPackets)
	}
	if rep.FirstMedia.Count != 7 || rep.KeyframeWait.Count != 7 {
		t.Errorf("first media %+v, keyframe wait %+v: want 7 each", rep.FirstMedia, rep.KeyframeWait)
	}
	if strings.Count(progress.String(), "\n") < 3 || !strings.Contains(progress.String(), "joined 7/7") {
		t.Errorf("progress lines missing:\n%s", progress.String())
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}
}

// With --max-subscriptions 1 every participant, publishers included,
// receives exactly one publisher's audio, whole.
func TestMaxSubscriptionsLimitsWhatEachReceives(t *testing.T) {
	rep := runChecked(t, nil, func(cfg *Config) {
		cfg.Publishers, cfg.Subscribers = 3, 2
		cfg.MaxSubscriptions = 1
		cfg.Video = false
		cfg.Duration = 3 * time.Second
	})
	// Every participant received something (Check counts those that did
	// not), and five received five tracks in all: one each. Without the
	// limit it would be 3×2 + 2×3 = 12.
	if rep.Joined != 5 || rep.MediaFailed != 0 || rep.ReceivedTracks != 5 {
		t.Errorf("joined %d, without media %d, tracks received %d; want 5, 0, 5", rep.Joined, rep.MediaFailed, rep.ReceivedTracks)
	}
	if rep.LostPackets != 0 || rep.Duplicates != 0 || rep.ReceivedPackets == 0 {
		t.Errorf("received %d packets, lost %d, duplicates %d; want some, 0, 0", rep.ReceivedPackets, rep.LostPackets, rep.Duplicates)
	}
	if len(rep.Errors) != 0 {
		t.Errorf("errors: %v", rep.Errors)
	}
}

// A server that goes away mid-run fails the run: every participant is
// disconnected, and the packets the publishers sent after it went count as
// lost. (Before, the run passed: 0 failures and 0% loss, counted over the
// sequence numbers the receivers happened to see.)
func TestServerGoneMidRunFails(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	cfg := testConfig(srv, func(cfg *Config) {
		cfg.Publishers, cfg.Subscribers = 2, 3
		cfg.Duration = 8 * time.Second
		cfg.VideoBitrate = 300_000
	})
	stop := time.AfterFunc(2*time.Second, srv.Stop)
	defer stop.Stop()
	rep := runLogged(t, cfg)
	err := rep.Check()
	t.Logf("check: %v", err)
	if err == nil {
		t.Error("the run passed its checks though the server stopped 2 s into 8 s")
	}
	// Mostly the server's leave; its closing the media first may win.
	if rep.Disconnected != 5 || rep.DisconnectReasons["server sent leave: server_shutdown"] == 0 {
		t.Errorf("disconnected %d %v; want all 5, most for the server's leave", rep.Disconnected, rep.DisconnectReasons)
	}
	// Each publisher's tracks have 4 receivers, so about 4 times what was
	// sent was expected (less what went before each receiver's first
	// packet), and what was sent in the 6 s after the server stopped is
	// lost.
	if rep.ExpectedPackets < 3*rep.SentPackets || rep.ExpectedPackets > 4*rep.SentPackets {
		t.Errorf("expected %d packets at receivers, want 3 to 4 times the %d sent", rep.ExpectedPackets, rep.SentPackets)
	}
	if rep.Loss < 0.4 || rep.LostPackets != rep.ExpectedPackets-(rep.ReceivedPackets-rep.Duplicates) {
		t.Errorf("lost %d of %d expected (%.1f%%), received %d; want over 40%% lost, and lost = expected - received",
			rep.LostPackets, rep.ExpectedPackets, rep.Loss*100, rep.ReceivedPackets)
	}
}

// Media that stops while signaling stays up disconnects the participants
// expecting it, after mediaStallTimeout.
func TestMediaStopFails(t *testing.T) {
	var cut atomic.Bool
	srv := testserver.Start(t, testserver.Options{WrapUDP: func(c net.PacketConn) net.PacketConn {
		return &cuttableConn{PacketConn: c, cut: &cut}
	}})
	cfg := testConfig(srv, func(cfg *Config) {
		cfg.Publishers, cfg.Subscribers = 1, 2
		cfg.Duration = mediaStallTimeout + 4*time.Second
		cfg.VideoBitrate = 300_000
	})
	cutMedia := time.AfterFunc(2*time.Second, func() { cut.Store(true) })
	defer cutMedia.Stop()
	rep := runLogged(t, cfg)
	reason := fmt.Sprintf("no media for %v", mediaStallTimeout)
	if rep.Check() == nil || rep.Disconnected != 2 || rep.DisconnectReasons[reason] != 2 {
		t.Errorf("check %v, disconnected %d %v; want a failure, both subscribers for %q",
			rep.Check(), rep.Disconnected, rep.DisconnectReasons, reason)
	}
}

// cuttableConn drops every datagram once cut is set, as a dead media path
// would.
type cuttableConn struct {
	net.PacketConn
	cut *atomic.Bool
}

func (c *cuttableConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || !c.cut.Load() {
			return n, addr, err
		}
	}
}

func (c *cuttableConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.cut.Load() {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr)
}

// After a run every participant has left the server politely: none is
// parked waiting for a resume that will never come.
func TestRunLeavesNoGhosts(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	for range 3 { // back to back, as in a churn soak
		runChecked(t, srv, func(cfg *Config) {
			cfg.Publishers, cfg.Subscribers = 2, 6
			cfg.Duration = 3 * time.Second
			cfg.VideoBitrate = 300_000
		})
		if n := participantsLeft(srv); n != 0 {
			t.Fatalf("%d participants still in the server's rooms after the run", n)
		}
	}
}

func participantsLeft(srv *testserver.Server) int {
	n := 0
	for _, r := range srv.Rooms().List() {
		n += r.Participants
	}
	return n
}

// runChecked runs a load test against srv (a fresh in-process server if
// nil), logs its summary and fails the test if the report's own checks
// fail.
func runChecked(t *testing.T, srv *testserver.Server, adjust func(*Config)) *Report {
	t.Helper()
	if srv == nil {
		srv = testserver.Start(t, testserver.Options{})
	}
	rep := runLogged(t, testConfig(srv, adjust))
	if err := rep.Check(); err != nil {
		t.Fatalf("check: %v", err)
	}
	return rep
}

// testConfig is the default configuration against srv, adjusted.
func testConfig(srv *testserver.Server, adjust func(*Config)) Config {
	cfg := Defaults()
	cfg.URL = srv.URL()
	cfg.APIKey, cfg.APISecret = auth.DevAPIKey, auth.DevAPISecret
	adjust(&cfg)
	return cfg
}

// runLogged runs a load test and logs its summary.
func runLogged(t *testing.T, cfg Config) *Report {
	t.Helper()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var summary strings.Builder
	if err := rep.WriteSummary(&summary); err != nil {
		t.Fatal(err)
	}
	t.Logf("summary:\n%s", summary.String())
	return rep
}

// With simulcast and the quality spread, the subscribers asking for low,
// medium and high each receive that layer alone, and nothing is lost over
// the server's renumbered streams.
func TestSimulcastQualitySpread(t *testing.T) {
	rep := runChecked(t, nil, func(cfg *Config) {
		cfg.Publishers, cfg.Subscribers = 1, 6
		cfg.Simulcast, cfg.QualitySpread = true, true
		cfg.Duration = 6 * time.Second
	})
	if !rep.Simulcast || len(rep.LayerPackets) != 3 || rep.Joined != 7 || rep.LostPackets != 0 {
		t.Fatalf("simulcast %v, layer packets %v, joined %d, lost %d; want three layers, 7 joined, nothing lost",
			rep.Simulcast, rep.LayerPackets, rep.Joined, rep.LostPackets)
	}
	// Two subscribers per quality (the publisher, the 0th participant,
	// receives nothing). Per second each gets a frame of one packet at
	// 30 fps on the low layer, 2 on the medium and 7 on the high one:
	// about 1:2:7, except that the server holds a new subscriber's first
	// second within its initial estimate (the medium layer for those
	// asking for high).
	low, med, high := float64(rep.LayerPackets[0]), float64(rep.LayerPackets[1]), float64(rep.LayerPackets[2])
	if low == 0 || med < 1.5*low || med > 3.5*low || high < 3.5*low || high < 1.8*med {
		t.Errorf("packets by layer %v: want about 1:2:7", rep.LayerPackets)
	}
	if rep.PausedStreams != 0 {
		t.Errorf("%d streams paused on loopback", rep.PausedStreams)
	}
}
