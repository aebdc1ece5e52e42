package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/turn"
)

// TURNNode is a process that runs only the STUN/TURN role, for servers
// placed close to users. Its HTTP listener serves /healthz and /metrics.
type TURNNode struct {
	cfg      config.Config
	log      *slog.Logger
	turn     *turn.Server
	http     *http.Server
	listener net.Listener
}

// NewTURNNode opens the TURN listeners and the HTTP listener.
func NewTURNNode(cfg config.Config, log *slog.Logger, opts Options) (*TURNNode, error) {
	reg := registry(opts)
	n := &TURNNode{cfg: cfg, log: log}
	var err error
	if n.turn, err = turn.Start(cfg.TURN, turnDeps(cfg, log, reg, nil)); err != nil {
		return nil, fmt.Errorf("start TURN server: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	n.http = newHTTPServer(mux, log)
	n.listener = opts.HTTPListener
	if n.listener == nil {
		if n.listener, err = net.Listen("tcp", cfg.HTTP.Addr); err != nil {
			_ = n.turn.Close()
			return nil, fmt.Errorf("listen on %s (http.addr): %w", cfg.HTTP.Addr, err)
		}
	}
	return n, nil
}

// TURN is the running STUN/TURN server.
func (n *TURNNode) TURN() *turn.Server { return n.turn }

// URL is the base URL of /healthz and /metrics.
func (n *TURNNode) URL() string { return "http://" + n.listener.Addr().String() }

// Run serves until ctx ends, then closes every allocation.
func (n *TURNNode) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- n.http.Serve(n.listener) }()
	n.log.Info("quartet turn is ready", "turn_udp_tcp", n.turn.UDPAddr().String(),
		"uris", n.turn.ClientURIs(), "metrics", n.URL()+"/metrics")
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	n.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), n.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	_ = n.http.Shutdown(sctx)
	if err := n.turn.Close(); err != nil {
		n.log.Warn("turn shutdown", "err", err)
	}
	n.log.Info("stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", serveErr)
	}
	return nil
}
