package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/loadtest"
)

// loadTest runs synthetic participants against a server and prints what
// they measured. It fails when participants failed or loss was too high.
func loadTest(args []string, stdout, stderr io.Writer) error {
	cfg := loadtest.Defaults()
	cfg.APIKey, cfg.APISecret = envOr("QUARTET_LOADTEST_API_KEY", auth.DevAPIKey), envOr("QUARTET_LOADTEST_API_SECRET", auth.DevAPISecret)
	fs := newFlagSet("loadtest")
	fs.StringVar(&cfg.URL, "url", cfg.URL, "")
	fs.StringVar(&cfg.Room, "room", cfg.Room, "")
	fs.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "")
	fs.IntVar(&cfg.Subscribers, "subscribers", cfg.Subscribers, "")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "")
	fs.Float64Var(&cfg.JoinRate, "join-rate", cfg.JoinRate, "")
	fs.IntVar(&cfg.MaxParticipants, "max-participants", cfg.MaxParticipants, "")
	fs.BoolVar(&cfg.Video, "video", cfg.Video, "")
	bitrate := fs.String("video-bitrate", "1.5M", "")
	fs.IntVar(&cfg.FPS, "fps", cfg.FPS, "")
	fs.DurationVar(&cfg.KeyframeInterval, "keyframe-interval", cfg.KeyframeInterval, "")
	fs.BoolVar(&cfg.Audio, "audio", cfg.Audio, "")
	fs.BoolVar(&cfg.Simulcast, "simulcast", false, "")
	layers := fs.String("simulcast-layers", "", "")
	fs.IntVar(&cfg.TemporalLayers, "temporal-layers", 1, "")
	fs.BoolVar(&cfg.QualitySpread, "quality-spread", false, "")
	fs.IntVar(&cfg.MaxSubscriptions, "max-subscriptions", 0, "")
	fs.BoolVar(&cfg.SignalingOnly, "signaling-only", false, "")
	fs.StringVar(&cfg.APIKey, "api-key", cfg.APIKey, "")
	fs.StringVar(&cfg.APISecret, "api-secret", cfg.APISecret, "")
	maxLoss := fs.Float64("max-loss", cfg.MaxLoss*100, "")
	jsonPath := fs.String("json", "", "")
	quiet := fs.Bool("quiet", false, "")
	logLevel := fs.String("log-level", "warn", "")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return flagError(fmt.Errorf("loadtest: unexpected argument %q", fs.Arg(0)))
	}
	var err error
	if cfg.VideoBitrate, err = parseBitrate(*bitrate); err != nil {
		return flagError(err)
	}
	if *layers != "" {
		if cfg.SimulcastLayers, err = parseLayers(*layers); err != nil {
			return flagError(err)
		}
		cfg.Simulcast = true
	}
	cfg.MaxLoss = *maxLoss / 100
	cfg.Log = newLogger(*logLevel, "text", stderr)
	if !*quiet {
		cfg.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := rep.WriteSummary(stdout); err != nil {
		return err
	}
	if *jsonPath != "" {
		if err := writeJSON(*jsonPath, rep); err != nil {
			return err
		}
	}
	if err := rep.Check(); err != nil {
		return fmt.Errorf("loadtest failed: %w", err)
	}
	return nil
}

// parseLayers reads simulcast layers, lowest first, as
// rid:WIDTHxHEIGHT:BITRATE,... (e.g. q:320x180:150k,h:640x360:500k).
func parseLayers(s string) ([]client.SimulcastLayer, error) {
	var layers []client.SimulcastLayer
	for _, spec := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(spec), ":")
		bad := fmt.Errorf("loadtest: --simulcast-layers %q: want rid:WIDTHxHEIGHT:BITRATE,..., e.g. q:320x180:150k,h:640x360:500k,f:1280x720:1.7M", s)
		if len(parts) != 3 || parts[0] == "" {
			return nil, bad
		}
		w, h, ok := strings.Cut(parts[1], "x")
		width, err1 := strconv.Atoi(w)
		height, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || width <= 0 || height <= 0 {
			return nil, bad
		}
		rate, err := parseBitrate(parts[2])
		if err != nil {
			return nil, bad
		}
		layers = append(layers, client.SimulcastLayer{RID: parts[0], Width: width, Height: height, MaxBitrate: rate})
	}
	return layers, nil
}

// parseBitrate reads bits per second, with an optional k or M suffix.
func parseBitrate(s string) (int, error) {
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1e3, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, strings.TrimSuffix(s, "M")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("loadtest: --video-bitrate %q: want bits per second, e.g. 1500000, 800k or 1.5M", s)
	}
	return int(v * mult), nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("loadtest: write %s: %w", path, err)
	}
	return nil
}

// envOr lets secrets come from the environment rather than the command
// line, where other users of the machine can read them.
func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
