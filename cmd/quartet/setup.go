package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/server"
	"github.com/quartet-rtc/quartet/web"
)

// configOverrides are command-line flags that override the configuration;
// zero values (and -1 for the port) mean "not given".
type configOverrides struct {
	httpAddr   string
	udpPort    int
	logLevel   string
	turnPort   int
	allowPeers []string
	role       config.Role
}

// loadConfig reads defaults, the file and the environment, applies the
// flags that were given, and validates the result.
func loadConfig(path string, o configOverrides) (config.Config, error) {
	return config.LoadWith(path, os.Environ(), func(cfg *config.Config) {
		if o.httpAddr != "" {
			cfg.HTTP.Addr = o.httpAddr
		}
		if o.udpPort >= 0 {
			cfg.Media.UDPPort = o.udpPort
		}
		if o.logLevel != "" {
			cfg.Log.Level = o.logLevel
		}
		if o.turnPort >= 0 {
			cfg.TURN.Port = o.turnPort
		}
		cfg.TURN.AllowPeers = append(cfg.TURN.AllowPeers, o.allowPeers...)
		cfg.Role = o.role
	})
}

func newLogger(level, format string, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(strings.ToUpper(level))) // validated by config
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serverFlags defines the flags `serve` and `turn` share on fs. After
// parsing, the returned function loads the configuration with them;
// adjust sets what only one command has.
func serverFlags(fs *flag.FlagSet) func(adjust func(*configOverrides)) (config.Config, error) {
	configPath := fs.String("config", os.Getenv("QUARTET_CONFIG"), "")
	httpAddr := fs.String("http", "", "")
	logLevel := fs.String("log-level", "", "")
	turnPort := fs.Int("turn-port", -1, "")
	var allowPeers stringList
	fs.Var(&allowPeers, "turn-allow-peer", "")
	return func(adjust func(*configOverrides)) (config.Config, error) {
		o := configOverrides{httpAddr: *httpAddr, udpPort: -1, logLevel: *logLevel, turnPort: *turnPort,
			allowPeers: allowPeers}
		adjust(&o)
		return loadConfig(*configPath, o)
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

func runServer(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	srv, err := server.New(cfg, log, server.Options{Version: version, Web: web.FS})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\n  Quartet %s is running. Open %s/r/demo in two browser tabs.\n\n", version, srv.URL())
	return srv.Run(ctx)
}
