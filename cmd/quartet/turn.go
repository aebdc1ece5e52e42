package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/server"
	"github.com/quartet-rtc/quartet/internal/turn"
)

// turnOnly runs `quartet turn`: the STUN/TURN role alone.
func turnOnly(args []string, stderr io.Writer) error {
	fs := newFlagSet("turn")
	load := serverFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	cfg, err := load(func(o *configOverrides) { o.role = config.RoleTURN })
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log.Level, cfg.Log.Format, stderr)
	node, err := server.NewTURNNode(cfg, log, server.Options{Version: version})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return node.Run(ctx)
}

// turnCredentials prints a credential and the URIs it works with, as
// GET /api/turn-credentials returns them.
func turnCredentials(args []string, stdout io.Writer) error {
	fs := newFlagSet("turn-credentials")
	configPath := fs.String("config", os.Getenv("QUARTET_CONFIG"), "")
	user := fs.String("user", "anonymous", "")
	ttl := fs.Duration("ttl", 0, "")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if *ttl < 0 {
		return fmt.Errorf("--ttl must be positive (see quartet --help)")
	}
	cfg, err := loadConfig(*configPath, configOverrides{udpPort: -1, turnPort: -1, role: config.RoleTURN})
	if err != nil {
		return err
	}
	if *ttl > 0 {
		cfg.TURN.CredentialTTL = *ttl
	}
	var own []string
	if cfg.TURN.Enabled {
		own = turn.URIsFor(cfg.TURN, cfg.TURNRelayIP(), cfg.TURN.Port, cfg.TURN.TLSPort)
	}
	dir, err := turn.NewDirectory(cfg.TURN, turn.NewCredentials(cfg.TURN, cfg.TURNSecret()), own)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(dir.REST(*user, nil))
}
