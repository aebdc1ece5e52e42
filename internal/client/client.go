// Package client is a Go client of Quartet's native signaling protocol on
// pion: it joins a room, publishes tracks and receives everyone else's. The
// integration tests and the load generator use it.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/pionlog"
	"github.com/quartet-rtc/quartet/internal/room"
)

// Options configure a client.
type Options struct {
	URL   string // ws://host:port/ws
	Token string
	Log   *slog.Logger
	// OnTrack is called for every remote track, with the server's info.
	OnTrack func(t *webrtc.TrackRemote, info room.TrackInfo)
	// NoNACK disables NACK generation, to measure raw loss.
	NoNACK bool
	// Relay sends all media through the TURN servers the server names in
	// joined.iceServers (ICE transport policy "relay").
	Relay bool
	// SignalingOnly joins without peer connections: the participant holds
	// only its WebSocket (idle-connection benchmarks). Media calls fail.
	SignalingOnly bool
	// OnKeyframeRequest is called when the server asks for a keyframe
	// (PLI or FIR) of a published track, by the track's local id.
	OnKeyframeRequest func(trackID string)
	// OnConnectionState is called when the publisher or subscriber peer
	// connection changes state.
	OnConnectionState func(target string, s webrtc.PeerConnectionState)
	// OnRTCPSent sees every RTCP packet the client sends, e.g. NACKs.
	OnRTCPSent func(pkts []rtcp.Packet)
	// ManualSubscribe joins with autoSubscribe false: the client receives
	// only the tracks it asks for with Subscribe.
	ManualSubscribe bool
	// OnEvent sees every server message as it arrives, joined included, on
	// the reading goroutine (before Dial returns, for joined). With
	// NoHistory it is how a client learns the room's tracks.
	OnEvent func(Message)
	// NoHistory keeps no copy of the server's messages, nor the joined
	// message's participant list, so clients in a big room stay small;
	// Messages and WaitFor see nothing.
	NoHistory bool
	// OnDisconnect is called, on the reading goroutine, when the signaling
	// connection ends without Close or Abort: the server closed it or the
	// network failed. err says how (websocket.CloseStatus reads its code).
	// A connection replaced by DropAndResume does not count.
	OnDisconnect func(err error)
	// Net, if set, is the network the peer connections use instead of the
	// host's, e.g. a pion/transport vnet for shaped links. ICE then takes
	// the addresses of it but loopback, not only loopback ones. Signaling
	// stays on the host.
	Net transport.Net
	// OnStreamState is called, on the reading goroutine, for each
	// stream_state the server sends (a received video track paused for
	// bandwidth, or resumed).
	OnStreamState func(StreamState)
}

// Message is a server message as received.
type Message struct {
	Type string
	Raw  json.RawMessage
}

// Client is one participant.
type Client struct {
	opts Options
	log  *slog.Logger
	pub  *webrtc.PeerConnection
	sub  *webrtc.PeerConnection
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
	// closing is set by Close and Abort: the connection ending after it is
	// no surprise, so OnDisconnect is not called.
	closing atomic.Bool

	// Joined is the server's last joined message.
	Joined struct {
		Room         struct{ SID, Name string }
		Participant  room.ParticipantInfo
		Participants []room.ParticipantInfo
		ResumeToken  string
		Resumed      bool
		ICEServers   []webrtc.ICEServer
	}

	mu       sync.Mutex
	conn     *websocket.Conn // the signaling connection; replaced on resume
	readDone chan struct{}   // closed when conn's reader returns; nil before it starts

	candMu    sync.Mutex // orders publisher candidates after their offer
	holding   bool
	held      []map[string]any
	messages  []Message
	changed   chan struct{} // closed and replaced whenever messages grows
	subTracks map[string]room.TrackInfo
	pubSIDs   map[string]string // client track id -> server sid
	sources   map[string]string // client track id -> source
	senders   map[string]*webrtc.RTPSender
	simulcast map[string]*SimulcastTrack // client track id -> simulcast track
	answerCh  chan string
	// streamStates are the server's stream_state messages, kept even
	// with NoHistory.
	streamStates []StreamState
}

// Dial connects, joins and returns once the server answered joined.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	conn, _, err := websocket.Dial(ctx, opts.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", opts.URL, err)
	}
	conn.SetReadLimit(1 << 20)
	c := &Client{opts: opts, log: opts.Log, conn: conn, changed: make(chan struct{}),
		subTracks: map[string]room.TrackInfo{}, pubSIDs: map[string]string{}, sources: map[string]string{}, senders: map[string]*webrtc.RTPSender{},
		simulcast: map[string]*SimulcastTrack{}, answerCh: make(chan string, 1)}
	c.ctx, c.stop = context.WithCancel(context.Background())
	join := map[string]any{"type": "join", "protocol": 1, "token": opts.Token}
	if opts.ManualSubscribe {
		join["autoSubscribe"] = false
	}
	if err := c.send(join); err != nil {
		conn.CloseNow()
		return nil, err
	}
	// Read joined before creating the peer connections: they need its ICE
	// servers, and no offer can come before it.
	if err := c.readJoined(ctx, conn); err != nil {
		conn.CloseNow()
		return nil, err
	}
	if !opts.SignalingOnly {
		if err := c.newPeerConnections(); err != nil {
			c.Close()
			return nil, err
		}
	}
	c.startReader(conn)
	return c, nil
}

// startReader reads conn until it ends; c.conn must already be conn.
func (c *Client) startReader(conn *websocket.Conn) {
	done := make(chan struct{})
	c.mu.Lock()
	c.readDone = done
	c.mu.Unlock()
	c.wg.Add(1)
	go c.readLoop(conn, done)
}

func (c *Client) readJoined(ctx context.Context, conn *websocket.Conn) error {
	_, data, err := conn.Read(ctx)
	if err != nil {
		return fmt.Errorf("client: read joined: %w", err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return fmt.Errorf("client: decode joined: %w", err)
	}
	if !c.opts.NoHistory {
		c.messages = append(c.messages, Message{Type: head.Type, Raw: data})
	}
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(Message{Type: head.Type, Raw: data})
	}
	if head.Type != "joined" {
		return fmt.Errorf("client: join refused: %s", data)
	}
	if err := json.Unmarshal(data, &c.Joined); err != nil {
		return fmt.Errorf("client: decode joined: %w", err)
	}
	if c.opts.NoHistory {
		c.Joined.Participants = nil // in a room of N, N clients holding N entries each
	}
	return nil
}

// NewAPI returns a pion API that keeps ICE on loopback, as every test and
// benchmark here must.
func NewAPI(log *slog.Logger, noNACK bool) (*webrtc.API, error) {
	return newAPI(log, noNACK, nil, nil)
}

// newAPI is NewAPI with an optional tap on outgoing RTCP and an optional
// network in place of the host's.
func newAPI(log *slog.Logger, noNACK bool, onRTCP func([]rtcp.Packet), network transport.Net) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	audioLevel := webrtc.RTPHeaderExtensionCapability{URI: AudioLevelURI}
	if err := me.RegisterHeaderExtension(audioLevel, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if onRTCP != nil {
		reg.Add(rtcpTapFactory(onRTCP))
	}
	if !noNACK {
		// Includes the mid, rid and repaired-rid extensions simulcast
		// sends, and transport-cc feedback for the server's estimator.
		if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
			return nil, err
		}
	} else if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{LoggerFactory: pionlog.Factory{Log: log}}
	if network != nil {
		se.SetNet(network)
		// A virtual network's loopback leads nowhere the server is.
		notLoopback := func(ip net.IP) bool { return !ip.IsLoopback() }
		se.SetIPFilter(notLoopback)
		se.SetRemoteIPFilter(notLoopback)
	} else {
		loopback := func(ip net.IP) bool { return ip.IsLoopback() }
		se.SetIPFilter(loopback)
		se.SetRemoteIPFilter(loopback)
	}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

func (c *Client) newPeerConnections() error {
	api, err := newAPI(c.log, c.opts.NoNACK, c.opts.OnRTCPSent, c.opts.Net)
	if err != nil {
		return fmt.Errorf("client: webrtc api: %w", err)
	}
	var cfg webrtc.Configuration
	if c.opts.Relay {
		cfg = webrtc.Configuration{ICEServers: c.Joined.ICEServers, ICETransportPolicy: webrtc.ICETransportPolicyRelay}
	}
	if c.pub, err = api.NewPeerConnection(cfg); err != nil {
		return err
	}
	if c.sub, err = api.NewPeerConnection(cfg); err != nil {
		return err
	}
	c.pub.OnICECandidate(func(cand *webrtc.ICECandidate) { c.sendCandidate(room.TargetPublisher, cand) })
	c.sub.OnICECandidate(func(cand *webrtc.ICECandidate) { c.sendCandidate(room.TargetSubscriber, cand) })
	if on := c.opts.OnConnectionState; on != nil {
		c.pub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { on(room.TargetPublisher, s) })
		c.sub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { on(room.TargetSubscriber, s) })
	}
	c.sub.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.mu.Lock()
		info := c.subTracks[t.ID()]
		c.mu.Unlock()
		if c.opts.OnTrack != nil {
			c.opts.OnTrack(t, info)
		}
	})
	return nil
}

func (c *Client) sendCandidate(target string, cand *webrtc.ICECandidate) {
	if cand == nil {
		return
	}
	msg := map[string]any{"type": "candidate", "target": target, "candidate": cand.ToJSON()}
	c.candMu.Lock()
	defer c.candMu.Unlock()
	if target == room.TargetPublisher && c.holding {
		c.held = append(c.held, msg) // the server needs the offer first
		return
	}
	_ = c.send(msg)
}

// holdCandidates holds publisher candidates while an offer is being made;
// releasing sends the held ones.
func (c *Client) holdCandidates(hold bool) {
	c.candMu.Lock()
	defer c.candMu.Unlock()
	c.holding = hold
	if !hold {
		for _, msg := range c.held {
			_ = c.send(msg)
		}
		c.held = nil
	}
}

func (c *Client) send(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.SendRaw(data)
}

// Send sends a raw message (tests use it for bad input).
func (c *Client) Send(v any) error { return c.send(v) }

// SendRaw sends raw bytes as one text frame.
func (c *Client) SendRaw(data []byte) error {
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	return c.write(ctx, data)
}

func (c *Client) write(ctx context.Context, data []byte) error {
	conn := c.currentConn()
	if conn == nil {
		return errClosed // between connections while resuming
	}
	return conn.Write(ctx, websocket.MessageText, data)
}

// Subscribe asks to receive other participants' tracks, by sid. The
// server renegotiates the subscriber connection; a refusal arrives as an
// error message.
func (c *Client) Subscribe(trackSIDs ...string) error {
	return c.send(map[string]any{"type": "subscribe", "trackSids": trackSIDs})
}

// Unsubscribe stops receiving tracks, by sid.
func (c *Client) Unsubscribe(trackSIDs ...string) error {
	return c.send(map[string]any{"type": "unsubscribe", "trackSids": trackSIDs})
}

// leaveTimeout bounds how long Close waits for the server to end the
// connection after the leave.
const leaveTimeout = 5 * time.Second

// Close leaves the room and releases everything, waiting up to 5 s for the
// server to take the leave (see CloseContext).
func (c *Client) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	c.CloseContext(ctx)
}

// CloseContext sends leave and waits until the server, having handled it,
// closes the connection, or ctx ends; then it releases everything. Closing
// right after the write is not enough: the server may fail a write to this
// client on the dead socket first and drop the session before it reads the
// leave, and then it parks the participant for a resume (a ghost in the
// room for the resume timeout). Measured: 1 of 24 loadtest participants on
// loopback, 47 in a churn soak.
func (c *Client) CloseContext(ctx context.Context) {
	c.closing.Store(true)
	data, _ := json.Marshal(map[string]any{"type": "leave"})
	if c.write(ctx, data) == nil {
		c.waitReader(ctx)
	}
	c.Abort()
}

// waitReader waits for the current connection's reader to return.
func (c *Client) waitReader(ctx context.Context) {
	c.mu.Lock()
	done := c.readDone
	c.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Abort drops the connection without leaving, as a crashed client would.
func (c *Client) Abort() {
	c.closing.Store(true)
	c.stop()
	if conn := c.currentConn(); conn != nil {
		conn.CloseNow()
	}
	if c.pub != nil {
		_ = c.pub.Close()
		_ = c.sub.Close()
	}
	c.wg.Wait()
}

var errClosed = errors.New("client: connection closed")

// AudioLevelURI is the RTP header extension carrying audio levels (RFC 6464).
const AudioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

func (c *Client) currentConn() *websocket.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}
