package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/config"
)

// token prints an access token signed with a configured API key (or the dev
// key in dev mode).
func token(args []string, stdout io.Writer) error {
	fs := newFlagSet("token")
	configPath := fs.String("config", os.Getenv("QUARTET_CONFIG"), "")
	roomName := fs.String("room", "", "")
	identity := fs.String("identity", "", "")
	name := fs.String("name", "", "")
	ttl := fs.Duration("ttl", 0, "")
	admin := fs.Bool("admin", false, "")
	noPublish := fs.Bool("no-publish", false, "")
	noSubscribe := fs.Bool("no-subscribe", false, "")
	apiKey := fs.String("api-key", "", "")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if *identity == "" || (*roomName == "" && !*admin) {
		return fmt.Errorf("token: --identity and --room are required (--room may be left out with --admin)")
	}
	cfg, err := config.Load(*configPath, os.Environ())
	if err != nil {
		return err
	}
	key, secret, err := signingKey(cfg, *apiKey)
	if err != nil {
		return err
	}
	if *ttl == 0 {
		*ttl = cfg.Auth.TokenTTL
	}
	tok, err := auth.Mint(key, secret, auth.TokenSpec{Identity: *identity, Name: *name, Room: *roomName,
		CanPublish: !*noPublish, CanSubscribe: !*noSubscribe, Admin: *admin, TTL: *ttl}, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// signingKey picks the named API key, or the only one, or the dev key.
func signingKey(cfg config.Config, name string) (string, string, error) {
	if cfg.DevMode() {
		return auth.DevAPIKey, auth.DevAPISecret, nil
	}
	if name != "" {
		secret, ok := cfg.Auth.Keys[name]
		if !ok {
			return "", "", fmt.Errorf("token: no API key %q in auth.keys", name)
		}
		return name, secret, nil
	}
	names := make([]string, 0, len(cfg.Auth.Keys))
	for k := range cfg.Auth.Keys {
		names = append(names, k)
	}
	slices.Sort(names)
	if len(names) > 1 {
		return "", "", fmt.Errorf("token: several API keys are configured; choose one with --api-key (%v)", names)
	}
	return names[0], cfg.Auth.Keys[names[0]], nil
}
