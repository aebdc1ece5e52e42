// Command quartet runs the Quartet WebRTC server: application, signaling,
// STUN/TURN and media servers in one process, or the TURN role alone.
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

const usage = `Quartet: a WebRTC server in one binary: application, signaling, STUN/TURN
and media (SFU) servers.

Usage:
  quartet [serve] [flags]          run the server (the default command)
  quartet turn [flags]             run only the STUN/TURN server (for nodes near users)
  quartet token [flags]            print an access token for a room
  quartet turn-credentials [flags] print TURN credentials and URIs as JSON
  quartet loadtest [flags]         run synthetic participants against a server and
                                   measure delivery, loss and latency
  quartet version                  print the version
  quartet help                     show this help

With no configuration Quartet runs in dev mode on localhost: open
http://127.0.0.1:8080/r/demo in two browser tabs to make a call. STUN/TURN
listens on 127.0.0.1:3478 (UDP and TCP) and the app's calls use it.

Serve flags (turn takes the same, minus --udp-port; its HTTP address serves
only /healthz and /metrics):
  --config FILE          YAML configuration file (also QUARTET_CONFIG)
  --http ADDR            application and signaling address (http.addr, default 127.0.0.1:8080)
  --udp-port N           media UDP port, ICE-muxed (media.udp_port, default 7882)
  --turn-port N          STUN/TURN port, UDP and TCP (turn.port, default 3478)
  --turn-allow-peer CIDR let relays reach this range despite the built-in deny
                         list of loopback, private and link-local addresses
                         (turn.allow_peers; repeatable)
  --log-level LEVEL      debug, info, warn or error (log.level)

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

Turn-credentials flags:
  --user U           user the credential is for (default "anonymous")
  --ttl D            lifetime, e.g. 1h (default turn.credential_ttl, 12h)
  --config FILE      configuration file holding turn.secret

Loadtest flags (every run stops at --duration and closes its participants;
it exits 1 when a participant failed or loss exceeded --max-loss):
  --url URL              server to load (default ws://127.0.0.1:8080)
  --room R               room to join (default "loadtest")
  --publishers P         participants that publish and receive the others (default 1)
  --subscribers S        participants that only receive (default 1)
  --duration D           length of the run, joins included (default 30s)
  --join-rate N          participants joining per second (default 0: all at once)
  --max-participants N   refuse runs larger than this (default 500)
  --video, --audio       publish video, audio (default true; --video=false for audio only)
  --video-bitrate B      video bits per second, e.g. 800k or 1.5M (default 1.5M)
  --fps N                video frames per second (default 30)
  --keyframe-interval D  video keyframe period, besides answering PLIs (default 3s)
  --simulcast            publish video as simulcast: three VP8 layers, rids q/h/f,
                         320x180 150k, 640x360 500k, 1280x720 1.7M (--video-bitrate
                         is then unused)
  --simulcast-layers L   the layers, lowest first, as rid:WIDTHxHEIGHT:BITRATE,...
                         (e.g. q:320x180:150k,f:1280x720:1.7M; implies --simulcast)
  --temporal-layers N    3: every video layer as VP8 L1T3 (default 1)
  --quality-spread       receivers ask (track_settings) for quality low, medium
                         and high of each simulcast track in turn
  --max-subscriptions N  each participant joins with autoSubscribe false and
                         receives only the first N other publishers it learns
                         of (default 0: every publisher)
  --signaling-only       join without peer connections (idle-connection tests)
  --api-key K            key that signs the tokens (default the dev key; also
                         QUARTET_LOADTEST_API_KEY)
  --api-secret S         its secret (also QUARTET_LOADTEST_API_SECRET)
  --max-loss PCT         fail above this loss, in percent (default 1)
  --json FILE            also write the report as JSON
  --quiet                no live progress line
  --log-level LEVEL      client log level (default warn)

Every setting is also an environment variable, e.g. QUARTET_HTTP_ADDR,
QUARTET_MEDIA_UDP_PORT, QUARTET_AUTH_KEYS=key:secret, QUARTET_TURN_SECRET.
See docs/configuration.md.
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
	case "turn":
		err = turnOnly(args, stderr)
	case "token":
		err = token(args, stdout)
	case "loadtest":
		err = loadTest(args, stdout, stderr)
	case "turn-credentials":
		err = turnCredentials(args, stdout)
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
	load := serverFlags(fs)
	udpPort := fs.Int("udp-port", -1, "")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	cfg, err := load(func(o *configOverrides) { o.udpPort = *udpPort })
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
