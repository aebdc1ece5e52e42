package signal

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quartet-rtc/quartet/internal/room"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// outQueue is how many messages may wait for a slow client before the
// session is dropped.
const outQueue = 256

// readerGrace is how long the reader may go on after a write failed.
const readerGrace = 500 * time.Millisecond

// A client may send maxViolations rate-limited messages, and another one
// per violationWindow/maxViolations, before it is disconnected: a bucket of
// 100 refilled at 10 per second. Counting them in a row instead
// let a steady flooder stay: at 1,000 messages/s the limiter passes one
// every 20 ms, which reset the count (8,508 error replies in 10 s on a
// connection that stayed open).
const (
	maxViolations   = 100
	violationWindow = 10 * time.Second
)

// session is one WebSocket connection, serving at most one participant. The
// reader goroutine (run) owns the fields in the "reader" block; the writer
// goroutine owns conn writes; other goroutines (room broadcasts, media
// events, through the participant) only enqueue messages.
type session struct {
	h       *Handler
	conn    *websocket.Conn
	req     *http.Request
	log     *slog.Logger
	out     chan []byte
	quit    chan struct{} // closed to end the writer after what is queued
	cancel  context.CancelFunc
	closing sync.Once

	joined atomic.Bool

	// reader
	p          *participant // set once joined
	left       bool         // the client said leave
	limiter    *rate.Limiter
	violations *rate.Limiter // allowance of rate-limited messages
}

func newSession(h *Handler, conn *websocket.Conn, r *http.Request) *session {
	return &session{
		h: h, conn: conn, req: r,
		log:        h.deps.Log.With("remote", r.RemoteAddr),
		out:        make(chan []byte, outQueue),
		quit:       make(chan struct{}),
		limiter:    rate.NewLimiter(rate.Limit(h.cfg.RatePerSecond), h.cfg.RateBurst),
		violations: rate.NewLimiter(rate.Every(violationWindow/maxViolations), maxViolations),
	}
}

// run serves the connection until it closes or ctx ends.
func (s *session) run(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	s.cancel = cancel
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); s.writeLoop(ctx) }()
	stopPing := s.startPings(ctx)
	defer stopPing()
	s.readLoop(ctx)
	if s.p != nil {
		s.p.connectionEnded(s, s.left)
	}
	s.Close("")
	<-writerDone
	// The writer closes the connection when it ends, except after a failed
	// write (a reset connection): then nothing else would. The library's
	// finalizer cannot step in, as a websocket.Conn refers to itself and is
	// never collected, so every such connection kept its socket for the
	// life of the process. After a Close this does nothing.
	s.conn.CloseNow()
	cancel()
}

func (s *session) readLoop(ctx context.Context) {
	// A client that does not join in time is closed with a reason; a read
	// deadline would make the library drop the connection without one.
	joinTimer := time.AfterFunc(s.h.cfg.JoinTimeout, func() {
		if !s.joined.Load() {
			s.logClient(slog.LevelInfo, "join_timeout", "client did not join in time")
			s.conn.Close(websocket.StatusPolicyViolation, "join timeout")
		}
	})
	defer joinTimer.Stop()
	for {
		typ, data, err := s.conn.Read(ctx)
		if err != nil {
			s.logReadError(err)
			return
		}
		if s.closed() {
			return // the server is ending this connection: nothing more is served
		}
		s.h.messages.Inc()
		if !s.limiter.Allow() {
			s.sendError("", newError(CodeRateLimited, "too many messages; slow down"))
			if !s.violations.Allow() {
				s.logClient(slog.LevelWarn, "flooding", "client disconnected for flooding")
				s.conn.Close(websocket.StatusPolicyViolation, "rate limit exceeded")
				return
			}
			continue
		}
		if typ != websocket.MessageText {
			s.sendError("", newError(CodeBadRequest, "binary frames are not supported"))
			continue
		}
		if stop := s.handle(data); stop {
			return
		}
	}
}

func (s *session) logReadError(err error) {
	switch {
	// The library itself closes with 1009; the error it returns wraps
	// ErrMessageTooBig and carries no close status.
	case errors.Is(err, websocket.ErrMessageTooBig):
		s.h.countError("too_large")
		s.logClient(slog.LevelInfo, "too_large", "client sent an oversized message", "limit", s.h.cfg.MaxMessageBytes)
	case websocket.CloseStatus(err) != -1:
		s.log.Debug("client closed the connection", "status", websocket.CloseStatus(err))
	default:
		s.log.Debug("connection ended", "err", err)
	}
}

// handle decodes and dispatches one message; true ends the session.
func (s *session) handle(data []byte) bool {
	m, perr := decode(data)
	reqType := ""
	if m != nil {
		reqType = m.Type
	}
	if perr == nil {
		perr = s.dispatch(m)
	}
	if perr != nil {
		s.sendError(reqType, perr)
		if perr.Fatal {
			s.Close("")
			return true
		}
	}
	return m != nil && m.Type == "leave" && perr == nil
}

func (s *session) dispatch(m *clientMessage) *protoError {
	if m.Type == "join" {
		return s.handleJoin(m)
	}
	if s.p == nil {
		if m.Type == "ping" {
			return s.handlePing(m)
		}
		return newError(CodeNotJoined, "%s: join first", m.Type)
	}
	return joinedHandlers[m.Type](s, m)
}

// joinedHandlers serve the messages of a joined session; every type in
// validators except join has one.
var joinedHandlers = map[string]func(*session, *clientMessage) *protoError{
	"offer":          (*session).handleOffer,
	"answer":         (*session).handleAnswer,
	"candidate":      (*session).handleCandidate,
	"restart_ice":    (*session).handleRestartICE,
	"mute":           (*session).handleMute,
	"subscribe":      (*session).handleSubscribe,
	"unsubscribe":    (*session).handleSubscribe,
	"track_settings": (*session).handleTrackSettings,
	"chat":           (*session).handleChat,
	"ping":           (*session).handlePing,
	"leave":          (*session).handleLeave,
}

// send queues a message; a client too slow to take it is dropped.
func (s *session) send(v any) {
	var data []byte
	var err error
	if shared, ok := v.(*room.SharedEvent); ok {
		data, err = shared.JSON() // encoded once for every recipient
	} else {
		data, err = json.Marshal(v)
	}
	if err != nil {
		s.log.Error("marshal message", "err", err)
		return
	}
	select {
	case s.out <- data:
	case <-s.quit:
	default:
		s.logClient(slog.LevelWarn, "too_slow", "client too slow: outgoing queue full, disconnecting")
		s.cancel()
	}
}

// sendError counts every error and logs a sample: a client can cause them
// at will (2,000 rate-limited messages wrote 1,675 lines).
func (s *session) sendError(reqType string, e *protoError) {
	s.h.countError(e.Code)
	s.logClient(slog.LevelInfo, "error "+e.Code, "signaling error", "code", e.Code, "message", e.Message, "request", reqType)
	s.send(errorMessage{Type: "error", Code: e.Code, Message: e.Message, RequestType: reqType})
}

func (s *session) writeLoop(ctx context.Context) {
	write := func(msg []byte) bool {
		wctx, cancel := context.WithTimeout(ctx, s.h.cfg.WriteTimeout)
		defer cancel()
		if err := s.conn.Write(wctx, websocket.MessageText, msg); err != nil {
			s.log.Debug("write failed", "err", err)
			// The reader is stopped a moment later, not at once: a client
			// that sent leave and closed its socket makes this write fail,
			// and its leave may be waiting to be read.
			time.AfterFunc(readerGrace, s.cancel)
			return false
		}
		return true
	}
	for {
		select {
		case msg := <-s.out:
			if !write(msg) {
				return
			}
		case <-s.quit:
			for { // flush what was queued before the close, then close
				select {
				case msg := <-s.out:
					if !write(msg) {
						return
					}
				default:
					s.conn.Close(websocket.StatusNormalClosure, "")
					return
				}
			}
		case <-ctx.Done():
			s.conn.Close(websocket.StatusGoingAway, "")
			return
		}
	}
}

// startPings pings the client every PingInterval. A timer rather than a
// goroutine waits between pings: an idle connection then costs no parked
// stack, which matters with tens of thousands of them. Call the returned
// stop after ctx is cancelled; it waits for a ping in progress.
func (s *session) startPings(ctx context.Context) (stop func()) {
	interval := s.h.cfg.PingInterval
	var (
		mu      sync.Mutex // guards stopped and orders Reset after Stop
		stopped bool
		running sync.WaitGroup
		timer   *time.Timer
	)
	ping := func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		running.Add(1)
		mu.Unlock()
		defer running.Done()
		pctx, cancel := context.WithTimeout(ctx, interval)
		err := s.conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.logClient(slog.LevelInfo, "ping_timeout", "client stopped answering pings")
				s.cancel()
			}
			return
		}
		mu.Lock()
		if !stopped {
			timer.Reset(interval)
		}
		mu.Unlock()
	}
	mu.Lock()
	timer = time.AfterFunc(interval, ping)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
		running.Wait()
	}
}

// Close tells the client why (if reason is set), flushes the queue and
// closes the connection.
func (s *session) Close(reason string) {
	s.closing.Do(func() {
		if reason != "" {
			s.send(leaveMessage{Type: "leave", Reason: reason})
		}
		close(s.quit)
	})
}

// closed reports whether Close was called.
func (s *session) closed() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}
