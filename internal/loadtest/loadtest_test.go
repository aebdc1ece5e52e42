package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
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
	rep := runChecked(t, func(cfg *Config) {
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
	// first second's packets to be missed.
	audioPerSecond, videoPerSecond := 50.0, 30.0*2 // 500 kbit/s at 30 fps: 2 packets a frame
	perPublisher := (audioPerSecond + videoPerSecond) * rep.MediaSeconds
	want := int64(2 * 6 * (perPublisher - audioPerSecond - videoPerSecond))
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
	rep := runChecked(t, func(cfg *Config) {
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

// runChecked runs a load test against a fresh in-process server, logs its
// summary and fails the test if the report's own checks fail.
func runChecked(t *testing.T, adjust func(*Config)) *Report {
	t.Helper()
	srv := testserver.Start(t, testserver.Options{})
	cfg := Defaults()
	cfg.URL = srv.URL()
	cfg.APIKey, cfg.APISecret = auth.DevAPIKey, auth.DevAPISecret
	adjust(&cfg)
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var summary strings.Builder
	if err := rep.WriteSummary(&summary); err != nil {
		t.Fatal(err)
	}
	t.Logf("summary:\n%s", summary.String())
	if err := rep.Check(); err != nil {
		t.Fatalf("check: %v", err)
	}
	return rep
}
