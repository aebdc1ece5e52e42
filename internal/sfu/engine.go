// Package sfu is the media server: a selective forwarding unit on pion. Each
// participant has a Peer with a publisher half (its connection and up
// tracks) and a subscriber half (its connection and a subscription, one
// kind of DownTrack, per track of the others). In-process consumers attach
// to an up track as sinks, the other kind of DownTrack. Packets flow UpTrack
// reader → DownTrack → its writer's bounded queue → writer goroutine →
// destination; no publisher ever waits for a subscriber or a sink.
//
// Lock order: Engine.mu → Router.mu → a Peer's publisher.mu or
// subscriber.mu (never both at once) → candidates.mu → UpTrack.downsMu.
// DownTrack.mu (a down track's layer selection and rewrite) comes last:
// the up track's layer readers, NACK handling, probes and the subscriber's
// allocator (after its own allocator.run) take it alone, pion's Bind of a
// subscription under subscriber.mu; nothing takes another lock under it.
// The engine calls room.Reports and room.MediaEvents holding none of
// Engine.mu or Router.mu; MediaEvents may be called with subscriber.mu or
// publisher.mu and candidates.mu held (so descriptions and candidates keep
// their order), and Sink methods on the sink's writer goroutine with no
// lock held. Neither may call back into the engine: a front door queues
// such work. pion callbacks that pion may run under its own locks (ICE
// candidates) take only candidates.mu; OnTrack runs on a goroutine of its
// own and takes publisher.mu, and so does the subscriber connection's
// state handler (pion starts one goroutine per call), which takes
// subscriber.mu.
package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quartet-rtc/quartet/internal/bwe"
	"github.com/quartet-rtc/quartet/internal/pionlog"
	"github.com/quartet-rtc/quartet/internal/room"
)

// Config is the media server's configuration (the media section of the
// configuration file; see docs/configuration.md).
type Config struct {
	// UDPHost and UDPPort are where the single ICE UDP socket listens. An
	// unspecified host ("" or "0.0.0.0") listens on every interface.
	UDPHost string `yaml:"udp_host"`
	UDPPort int    `yaml:"udp_port"` // 0 = random
	// PublicIPs are advertised instead of local addresses (1:1 NAT).
	PublicIPs []string `yaml:"public_ips"`
	// LoopbackOnly keeps ICE on loopback: only loopback candidates are
	// gathered and only loopback remote candidates are used.
	LoopbackOnly bool `yaml:"loopback_only"`
	// PacketCache is how many packets each video track keeps for NACKs.
	PacketCache int `yaml:"packet_cache"`
	// SubscriberQueue is how many packets may wait for one subscriber (or
	// one sink).
	SubscriberQueue int `yaml:"subscriber_queue"`
}

// Deps are what the media server works with.
type Deps struct {
	Log *slog.Logger
	// Reports gets each room's track and speaker changes.
	Reports room.Reports
	// Metrics, if set, gets the media counters.
	Metrics prometheus.Registerer
	// UDPConn, if set, is used instead of opening UDPHost:UDPPort (tests).
	UDPConn net.PacketConn
}

// Engine is the media server. It implements room.Media.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	reports room.Reports
	api     *webrtc.API // of publisher connections
	me      *webrtc.MediaEngine
	se      webrtc.SettingEngine
	mux     ice.UDPMux
	udpAddr net.Addr
	closeFn func() error
	stats   *stats
	sinks   sync.WaitGroup // the sinks' writer goroutines

	pionLog pionlog.Factory // one log rate limit for all of pion's loggers

	mu      sync.Mutex
	routers map[string]*Router // by room name
	closed  bool
}

var errEngineClosed = errors.New("sfu: media server is shutting down")

// New opens the media UDP socket and prepares the WebRTC stack.
func New(cfg Config, deps Deps) (*Engine, error) {
	if cfg.PacketCache <= 0 || cfg.SubscriberQueue <= 0 {
		return nil, errors.New("sfu: packet cache and subscriber queue sizes must be positive")
	}
	if deps.Reports == nil {
		return nil, errors.New("sfu: Deps.Reports is required")
	}
	log, reg := deps.Log, deps.Metrics
	e := &Engine{cfg: cfg, log: log, reports: deps.Reports, routers: map[string]*Router{},
		pionLog: pionlog.Factory{Log: log, Limit: pionlog.NewLimit()}}
	if err := e.openMux(deps.UDPConn); err != nil {
		return nil, err
	}
	api, err := e.newAPI()
	if err != nil {
		_ = e.closeFn()
		return nil, err
	}
	e.api = api
	e.stats = newStats(e)
	if reg != nil {
		if err := errors.Join(reg.Register(e.stats), reg.Register(e.pionLog.Limit)); err != nil {
			_ = e.closeFn()
			return nil, fmt.Errorf("sfu: register metrics: %w", err)
		}
	}
	log.Info("media server listening", "udp", e.udpAddr.String())
	return e, nil
}

// UDPAddr is the address the media UDP socket listens on.
func (e *Engine) UDPAddr() net.Addr { return e.udpAddr }

func (e *Engine) openMux(injected net.PacketConn) error {
	logger := e.pionLog.NewLogger("udpmux")
	if injected != nil {
		mux := webrtc.NewICEUDPMux(logger, injected)
		e.mux, e.udpAddr, e.closeFn = mux, injected.LocalAddr(), mux.Close
		return nil
	}
	host := e.cfg.UDPHost
	if host == "" || host == "0.0.0.0" || host == "::" {
		mux, err := ice.NewMultiUDPMuxFromPort(e.cfg.UDPPort, ice.UDPMuxFromPortWithLogger(logger))
		if err != nil {
			return fmt.Errorf("sfu: listen on UDP port %d: %w", e.cfg.UDPPort, err)
		}
		e.mux, e.closeFn = mux, mux.Close
		e.udpAddr = &net.UDPAddr{Port: e.cfg.UDPPort}
		return nil
	}
	conn, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(e.cfg.UDPPort)))
	if err != nil {
		return fmt.Errorf("sfu: listen on UDP %s:%d: %w", host, e.cfg.UDPPort, err)
	}
	e.growBuffers(conn)
	// Writes are not batched (pion's udp.BatchConn, sendmmsg): measured
	// with BenchmarkForwardLoopback/Paced, sendmmsg cost the same per packet
	// as sendto (the kernel's per-packet work dominates, the syscall saves
	// ~150 ns of ~2.7 µs of server CPU per forwarded packet), while the
	// flush interval raised p50 latency at 10 k packets/s from ~75 µs to
	// ~1.2 ms, and one flusher goroutine would serialise every send.
	mux := webrtc.NewICEUDPMux(logger, conn)
	e.mux, e.udpAddr, e.closeFn = mux, conn.LocalAddr(), mux.Close
	return nil
}

// socketBuffer is the UDP buffer size asked for: every participant's media
// shares one socket, and a default buffer (~200 KB) overflows on bursts.
const socketBuffer = 4 << 20

// growBuffers enlarges the socket's buffers; the kernel caps them at
// net.core.rmem_max and wmem_max (see docs/deployment.md).
func (e *Engine) growBuffers(conn net.PacketConn) {
	udp, ok := conn.(*net.UDPConn)
	if !ok {
		return
	}
	if err := udp.SetReadBuffer(socketBuffer); err != nil {
		e.log.Warn("could not enlarge the media socket's receive buffer", "err", err)
	}
	if err := udp.SetWriteBuffer(socketBuffer); err != nil {
		e.log.Warn("could not enlarge the media socket's send buffer", "err", err)
	}
}

// newAPI prepares the media engine and settings every connection shares,
// and the API of publisher connections.
func (e *Engine) newAPI() (*webrtc.API, error) {
	me, err := newMediaEngine()
	if err != nil {
		return nil, err
	}
	reg, err := publisherInterceptors()
	if err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{LoggerFactory: e.pionLog}
	se.SetICEUDPMux(e.mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.DisableActiveTCP(true)
	if e.cfg.LoopbackOnly {
		loopback := func(ip net.IP) bool { return ip.IsLoopback() }
		se.SetIPFilter(loopback)
		se.SetRemoteIPFilter(loopback)
	}
	if len(e.cfg.PublicIPs) > 0 {
		se.SetNAT1To1IPs(e.cfg.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	e.me, e.se = me, se
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(se)), nil
}

// subscriberAPI is the API of one subscriber connection: its interceptors
// feed est, the connection's own bandwidth estimator, which pion's
// registry has no way to hand out per connection.
func (e *Engine) subscriberAPI(est *bwe.Estimator) (*webrtc.API, error) {
	reg, err := subscriberInterceptors(est)
	if err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(e.me), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(e.se)), nil
}

// Open implements room.Media: it creates a participant's media session.
func (e *Engine) Open(roomName, participantSID string, opts room.SessionOptions, events room.MediaEvents) (room.MediaSession, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errEngineClosed
	}
	r, ok := e.routers[roomName]
	if !ok {
		r = newRouter(e, roomName)
		e.routers[roomName] = r
	}
	p := newPeer(e, r, participantSID, opts, events)
	r.addPeer(p)
	return p, nil
}

// removePeer forgets p and closes its room's router when it was the last.
func (e *Engine) removePeer(r *Router, p *Peer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.removePeer(p) && e.routers[r.name] == r {
		delete(e.routers, r.name)
		r.stop()
	}
}

// Close closes every session and sink, then the UDP socket.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	var peers []*Peer
	var sinks []*sinkAttachment
	for _, r := range e.routers {
		peers = append(peers, r.allPeers()...)
		sinks = append(sinks, r.allSinks()...)
	}
	e.mu.Unlock()
	for _, a := range sinks {
		a.Detach()
	}
	for _, p := range peers {
		p.Close()
	}
	e.sinks.Wait()
	return e.closeFn()
}

func (e *Engine) allRouters() []*Router {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Router, 0, len(e.routers))
	for _, r := range e.routers {
		out = append(out, r)
	}
	return out
}
