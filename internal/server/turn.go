package server

import (
	"fmt"
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
		tcfg, err := turn.FromConfig(cfg, s.mediaAddrs(cfg))
		if err != nil {
			return nil, err
		}
		if s.turn, err = turn.Start(tcfg, s.log, reg); err != nil {
			return nil, fmt.Errorf("start TURN server: %w", err)
		}
		own = turn.ClientURIs(cfg, s.turn)
	}
	if len(own) == 0 && len(cfg.TURN.Servers) == 0 {
		return nil, nil
	}
	dir, err := turn.NewDirectory(cfg.TURN, turn.NewCredentials(cfg), own)
	if err != nil {
		s.closeTURN()
		return nil, err
	}
	return dir, nil
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
