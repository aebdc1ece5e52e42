package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/signal"
	"github.com/quartet-rtc/quartet/internal/turn"
)

// startTURN runs the STUN/TURN server if enabled, and returns the
// directory of TURN servers clients are told about (nil if there are none).
func (s *Server) startTURN(cfg config.Config, reg prometheus.Registerer) (*turn.Directory, error) {
	var own []string
	if cfg.TURN.Enabled {
		var err error
		if s.turn, err = turn.Start(cfg.TURN, turnDeps(cfg, s.log, reg, s.mediaAddrs(cfg))); err != nil {
			return nil, fmt.Errorf("start TURN server: %w", err)
		}
		own = s.turn.ClientURIs()
	}
	if len(own) == 0 && len(cfg.TURN.Servers) == 0 {
		return nil, nil
	}
	dir, err := turn.NewDirectory(cfg.TURN, turn.NewCredentials(cfg.TURN, cfg.TURNSecret()), own)
	if err != nil {
		s.closeTURN()
		return nil, err
	}
	return dir, nil
}

// turnDeps are the TURN role's Deps. The secret and relay address in
// effect are worked out here from the whole configuration, so that the
// turn package reads only its own section.
func turnDeps(cfg config.Config, log *slog.Logger, reg prometheus.Registerer, media []netip.AddrPort) turn.Deps {
	return turn.Deps{Log: log, Metrics: reg, Secret: cfg.TURNSecret(), RelayIP: cfg.TURNRelayIP(), MediaAddrs: media}
}

// mediaAddrs are the addresses where the media server receives: a relay
// may always reach them, even when they are private or loopback.
func (s *Server) mediaAddrs(cfg config.Config) []netip.AddrPort {
	udp, ok := s.media.UDPAddr().(*net.UDPAddr)
	if !ok {
		return nil
	}
	addrs := []netip.AddrPort{udp.AddrPort()}
	for _, ip := range cfg.Media.PublicIPs {
		if a, err := netip.ParseAddr(ip); err == nil {
			addrs = append(addrs, netip.AddrPortFrom(a, uint16(udp.Port)))
		}
	}
	return addrs
}

func (s *Server) closeTURN() {
	if s.turn == nil {
		return
	}
	if err := s.turn.Close(); err != nil {
		s.log.Warn("turn shutdown", "err", err)
	}
}

// TURN is the STUN/TURN server, or nil when this node runs none.
func (s *Server) TURN() *turn.Server { return s.turn }

func iceServers(dir *turn.Directory) func(string, *http.Request) []signal.ICEServer {
	if dir == nil {
		return nil
	}
	return func(identity string, r *http.Request) []signal.ICEServer {
		servers := dir.ICEServers(identity, r)
		out := make([]signal.ICEServer, len(servers))
		for i, sv := range servers {
			out[i] = signal.ICEServer{URLs: sv.URLs, Username: sv.Username, Credential: sv.Credential}
		}
		return out
	}
}
