// Package loadtest runs synthetic participants (pion clients) against a
// Quartet server over the native protocol and measures what they receive:
// packets, loss, reordering, NACKs, time to first media and one-way latency.
// `quartet loadtest` and the scenarios under bench/ use it.
package loadtest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/quartet-rtc/quartet/internal/client"
)

// Config describes one load test run.
type Config struct {
	URL         string // ws://host:port, with or without the /ws path
	Room        string
	Publishers  int // participants that publish (and receive the others)
	Subscribers int // participants that only receive
	Duration    time.Duration
	// JoinRate is how many participants join per second; 0 joins all at once.
	JoinRate float64
	// MaxParticipants caps Publishers+Subscribers, so a typo can't start
	// a hundred thousand clients.
	MaxParticipants int

	Video            bool
	VideoBitrate     int // bits per second
	FPS              int
	KeyframeInterval time.Duration
	Audio            bool
	AudioPayload     int // bytes per 20 ms packet

	// Simulcast publishes video as simulcast: the layers of
	// SimulcastLayers, lowest first (client.DefaultSimulcastLayers when
	// empty), each at its MaxBitrate; VideoBitrate is then unused.
	Simulcast       bool
	SimulcastLayers []client.SimulcastLayer
	// TemporalLayers 3 sends every video layer as VP8 L1T3.
	TemporalLayers int
	// QualitySpread makes the receivers ask, with track_settings, for
	// quality low, medium and high of every simulcast track in turn: the
	// i-th participant to join (publishers first) asks for
	// [low, medium, high][i%3].
	QualitySpread bool

	// MaxSubscriptions, when positive, makes every participant join with
	// autoSubscribe false and subscribe to the tracks of the first
	// MaxSubscriptions other publishers it learns of; 0 receives everyone.
	MaxSubscriptions int

	// SignalingOnly joins without peer connections (idle signaling).
	SignalingOnly bool

	APIKey, APISecret string

	// MaxLoss is the loss fraction above which the run fails.
	MaxLoss float64
	// Progress receives a live line every ProgressInterval; nil for none.
	Progress         io.Writer
	ProgressInterval time.Duration
	Log              *slog.Logger
}

// Defaults returns a configuration for one publisher and one subscriber on
// the local dev server for 30 seconds.
func Defaults() Config {
	return Config{
		URL: "ws://127.0.0.1:8080", Room: "loadtest",
		Publishers: 1, Subscribers: 1, Duration: 30 * time.Second,
		MaxParticipants: 500,
		Video:           true, VideoBitrate: 1_500_000, FPS: 30, KeyframeInterval: 3 * time.Second,
		Audio: true, AudioPayload: 120,
		MaxLoss:          0.01,
		ProgressInterval: time.Second,
	}
}

// validate checks the configuration and returns the WebSocket URL to dial.
func (c Config) validate() (string, error) {
	n := c.Publishers + c.Subscribers
	switch {
	case c.Publishers < 0 || c.Subscribers < 0:
		return "", errors.New("loadtest: participant counts must not be negative")
	case n == 0:
		return "", errors.New("loadtest: no participants: set publishers or subscribers")
	case n > c.MaxParticipants:
		return "", fmt.Errorf("loadtest: %d participants exceed the cap of %d (raise it with --max-participants)", n, c.MaxParticipants)
	case c.Duration <= 0:
		return "", errors.New("loadtest: duration must be positive")
	case c.Room == "":
		return "", errors.New("loadtest: room is empty")
	case c.JoinRate < 0:
		return "", errors.New("loadtest: join rate must not be negative")
	case c.MaxSubscriptions < 0:
		return "", errors.New("loadtest: max subscriptions must not be negative (0 receives every publisher)")
	case c.Publishers > 0 && !c.Video && !c.Audio && !c.SignalingOnly:
		return "", errors.New("loadtest: publishers need video or audio")
	case c.Video && (c.VideoBitrate <= 0 || c.FPS <= 0 || c.KeyframeInterval <= 0):
		return "", errors.New("loadtest: video bitrate, fps and keyframe interval must be positive")
	case c.Simulcast && !c.Video:
		return "", errors.New("loadtest: simulcast needs video")
	case c.QualitySpread && !c.Simulcast:
		return "", errors.New("loadtest: the quality spread needs simulcast")
	case c.TemporalLayers != 0 && c.TemporalLayers != 1 && c.TemporalLayers != 3:
		return "", errors.New("loadtest: temporal layers must be 1 or 3")
	case c.MaxLoss < 0 || c.MaxLoss > 1:
		return "", errors.New("loadtest: max loss must be a fraction between 0 and 1")
	case c.Simulcast && !validLayers(c.layers()):
		return "", errors.New("loadtest: simulcast layers need distinct rids and positive bitrates")
	case c.APIKey == "" || c.APISecret == "":
		return "", errors.New("loadtest: an API key and secret are needed to mint tokens")
	}
	return wsURL(c.URL)
}

// wsURL accepts ws://, wss://, http:// or https:// and adds the /ws path
// when none is given.
func wsURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("loadtest: url: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("loadtest: url %q: want ws://, wss://, http:// or https://", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("loadtest: url %q has no host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws"
	}
	return u.String(), nil
}

// layers are the simulcast layers to publish.
func (c Config) layers() []client.SimulcastLayer {
	if len(c.SimulcastLayers) > 0 {
		return c.SimulcastLayers
	}
	return client.DefaultSimulcastLayers()
}

func validLayers(layers []client.SimulcastLayer) bool {
	seen := map[string]bool{}
	for _, l := range layers {
		if l.RID == "" || seen[l.RID] || l.MaxBitrate <= 0 {
			return false
		}
		seen[l.RID] = true
	}
	return len(layers) > 0
}
