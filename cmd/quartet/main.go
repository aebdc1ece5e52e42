// Command quartet runs the Quartet WebRTC server: application, signaling
// and media servers in one process (NAT traversal comes next).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `Quartet: a WebRTC server in one binary: application, signaling and media
(SFU) servers. The built-in STUN/TURN server is not part of this version yet.

Usage:
  quartet [serve] [flags]     run the server (the default command)
  quartet token [flags]       print an access token for a room
  quartet version             print the version
  quartet help                show this help

With no configuration Quartet runs in dev mode on localhost: open
http://127.0.0.1:8080/r/demo in two browser tabs to make a call.

Serve flags:
  --config FILE      YAML configuration file (also QUARTET_CONFIG)
  --http ADDR        application and signaling address (http.addr, default 127.0.0.1:8080)
  --udp-port N       media UDP port, ICE-muxed (media.udp_port, default 7882)
  --log-level LEVEL  debug, info, warn or error (log.level)

Token flags:
  --room R           room the token may join (required unless --admin)
  --identity I       participant identity (required)
  --name N           display name
  --ttl D            lifetime, e.g. 1h (default auth.token_ttl, 6h)
  --admin            grant the admin REST API
  --no-publish       forbid publishing
  --no-subscribe     forbid subscribing
  --api-key K        which configured API key signs the token
  --config FILE      configuration file holding the API keys

Every setting is also an environment variable, e.g. QUARTET_HTTP_ADDR,
QUARTET_MEDIA_UDP_PORT, QUARTET_AUTH_KEYS=key:secret. See docs/configuration.md.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args, stderr)
	case "token":
		err = token(args, stdout)
	case "version":
		fmt.Fprintln(stdout, "quartet", version)
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "quartet: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "quartet:", err)
		return 1
	}
	return 0
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints the whole usage for --help.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func serve(args []string, stderr io.Writer) error {
	fs := newFlagSet("serve")
	configPath := fs.String("config", os.Getenv("QUARTET_CONFIG"), "")
	httpAddr := fs.String("http", "", "")
	udpPort := fs.Int("udp-port", -1, "")
	logLevel := fs.String("log-level", "", "")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	cfg, err := loadConfig(*configPath, configOverrides{httpAddr: *httpAddr, udpPort: *udpPort, logLevel: *logLevel})
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log.Level, cfg.Log.Format, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runServer(ctx, cfg, log)
}

func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w (see quartet --help)", err)
}
