package sfu

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// These tests drive a Peer with a pion client on loopback, the front door
// replaced by a recorder of what the media session tells it, in order.

// sessionEvent is one thing a media session told its front door.
type sessionEvent struct {
	kind   string // "offer", "answer" or "candidate"
	target string
	sdp    string
	cand   *room.Candidate
	// For an offer: the state of the subscriber connection as it was made.
	state webrtc.PeerConnectionState
}

// ufrag is the ICE username fragment of a description or a candidate.
func (ev sessionEvent) ufrag() string {
	re := sdpUfrag
	text := ev.sdp
	if ev.kind == "candidate" {
		re, text = candidateUfrag, ev.cand.Candidate
	}
	if m := re.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return ""
}

var (
	sdpUfrag       = regexp.MustCompile(`a=ice-ufrag:(\S+)`)
	candidateUfrag = regexp.MustCompile(`\sufrag (\S+)`)
)

// recorder is a front door that records, and passes each target's events
// on in order, as a signaling connection would.
type recorder struct {
	peer atomic.Pointer[Peer]
	mu   sync.Mutex
	all  []sessionEvent
	subs chan sessionEvent
	pubs chan sessionEvent
	done bool // the channels are closed
	once sync.Once
}

func newRecorder() *recorder {
	return &recorder{subs: make(chan sessionEvent, 256), pubs: make(chan sessionEvent, 256)}
}

// add records ev and passes it on; the channels hold far more than a test
// makes, so this never blocks.
func (r *recorder) add(ev sessionEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	r.all = append(r.all, ev)
	switch {
	case ev.kind == "stream_state" || ev.kind == "subscribed_layers":
		// Not negotiation: recorded only.
	case ev.target == room.TargetSubscriber:
		r.subs <- ev
	default:
		r.pubs <- ev
	}
}

// stop ends the clients' loops; later events are dropped.
func (r *recorder) stop() {
	r.once.Do(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.done = true
		close(r.subs)
		close(r.pubs)
	})
}

func (r *recorder) PublisherAnswer(sdp string, _ []room.TrackInfo) {
	r.add(sessionEvent{kind: "answer", target: room.TargetPublisher, sdp: sdp})
}

// SubscriberOffer is called with subscriber.mu held, so reading the
// connection is safe.
func (r *recorder) SubscriberOffer(sdp string, _ map[string]room.TrackInfo) {
	r.add(sessionEvent{kind: "offer", target: room.TargetSubscriber, sdp: sdp,
		state: r.peer.Load().sub.pc.ConnectionState()})
}

func (r *recorder) LocalCandidate(target string, c *room.Candidate) {
	if c != nil {
		r.add(sessionEvent{kind: "candidate", target: target, cand: c})
	}
}

func (r *recorder) StreamState(trackSID, state, reason string) {
	r.add(sessionEvent{kind: "stream_state", target: trackSID + " " + state})
}

func (r *recorder) SubscribedLayers(trackSID string, layers []room.LayerState) {
	r.add(sessionEvent{kind: "subscribed_layers", target: trackSID})
}

func (r *recorder) events() []sessionEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sessionEvent(nil), r.all...)
}

type nopReports struct{}

func (nopReports) TrackPublished(string, room.TrackInfo)   {}
func (nopReports) TrackUnpublished(string, room.TrackInfo) {}
func (nopReports) ActiveSpeakers(string, []room.Speaker)   {}

// newTestPeer opens a media session on an engine of its own, on loopback.
func newTestPeer(t *testing.T, perms room.Permissions) (*Peer, *recorder) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("QUARTET_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e, err := New(Config{UDPHost: "127.0.0.1", LoopbackOnly: true, PacketCache: 64, SubscriberQueue: 256},
		Deps{Log: log, Reports: nopReports{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	rec := newRecorder()
	s, err := e.Open("room", "PA_test", room.SessionOptions{Permissions: perms}, rec)
	if err != nil {
		t.Fatal(err)
	}
	p := s.(*Peer)
	rec.peer.Store(p)
	p.Start()
	return p, rec
}

var opusCodec = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
		SDPFmtpLine: "minptime=10;useinbandfec=1"},
	PayloadType: 111,
}

// newAudioUp is an audio up track without a publisher: the test plays its
// reader, calling send.
func newAudioUp(sid string) *UpTrack {
	return testUpTrack(room.TrackInfo{SID: sid, ParticipantSID: "PA_other", Kind: "audio"}, opusCodec, newPacketPool())
}

// send fans out one audio packet.
func (u *UpTrack) send(seq uint16) {
	h := rtp.Header{Version: 2, PayloadType: 111, SSRC: 7, SequenceNumber: seq, Timestamp: uint32(seq) * 960}
	b, _ := h.Marshal()
	pkt := getPacket(u.pool)
	n := copy(pkt.buf[:], append(b, make([]byte, 40)...))
	u.layers[0].fanOut(pkt, n)
}

// play sends packets on every up track every 10 ms until the test ends.
func play(t *testing.T, ups ...*UpTrack) {
	stop, done := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, up := range ups {
				up.send(seq)
			}
		}
	}()
}

// newClientPC is a client's PeerConnection kept on loopback.
func newClientPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	loopback := func(ip net.IP) bool { return ip.IsLoopback() }
	se.SetIPFilter(loopback)
	se.SetRemoteIPFilter(loopback)
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// subscriberClient answers the server's subscriber offers and counts the
// packets it receives, per track.
type subscriberClient struct {
	pc      *webrtc.PeerConnection
	p       *Peer
	mu      sync.Mutex
	packets map[string]int // by track id (the up track's sid)
	// blind: the client uses none of the server's candidates (it strips
	// them from offers and ignores the trickled ones) and sends its own
	// before its answer, and not in it, so the connection depends on the
	// server using the candidates sent before the answer.
	blind bool
}

func newSubscriberClient(t *testing.T, p *Peer, rec *recorder, blind bool) *subscriberClient {
	c := &subscriberClient{pc: newClientPC(t), p: p, packets: map[string]int{}, blind: blind}
	c.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			c.mu.Lock()
			c.packets[tr.ID()]++
			c.mu.Unlock()
		}
	})
	if !blind {
		c.pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand != nil {
				c.addCandidate(t, cand)
			}
		})
	}
	done := make(chan struct{})
	t.Cleanup(func() { rec.stop(); <-done })
	go func() {
		defer close(done)
		for ev := range rec.subs {
			c.handle(t, ev)
		}
	}()
	return c
}

func (c *subscriberClient) addCandidate(t *testing.T, cand *webrtc.ICECandidate) {
	init := cand.ToJSON()
	if err := c.p.AddCandidate(room.TargetSubscriber, &room.Candidate{Candidate: init.Candidate,
		SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex}); err != nil {
		t.Errorf("add candidate: %v", err)
	}
}

var candidateLine = regexp.MustCompile(`(?m)^a=(candidate|end-of-candidates).*\r\n`)

// handle answers an offer (its candidates first when blind) and adds the
// server's candidates (unless blind), in the order they came.
func (c *subscriberClient) handle(t *testing.T, ev sessionEvent) {
	switch {
	case ev.kind == "candidate" && !c.blind:
		init := webrtc.ICECandidateInit{Candidate: ev.cand.Candidate, SDPMid: ev.cand.SDPMid, SDPMLineIndex: ev.cand.SDPMLineIndex}
		if err := c.pc.AddICECandidate(init); err != nil {
			t.Errorf("client: add server candidate: %v", err)
		}
	case ev.kind == "offer":
		sdp := ev.sdp
		if c.blind {
			sdp = candidateLine.ReplaceAllString(sdp, "")
		}
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
			t.Errorf("client: apply offer: %v", err)
			return
		}
		answer, err := c.pc.CreateAnswer(nil)
		if err != nil {
			t.Errorf("client: answer: %v", err)
			return
		}
		gathered := webrtc.GatheringCompletePromise(c.pc)
		if err := c.pc.SetLocalDescription(answer); err != nil {
			t.Errorf("client: set answer: %v", err)
			return
		}
		if c.blind {
			<-gathered
			for _, line := range strings.Split(c.pc.LocalDescription().SDP, "\r\n") {
				if strings.HasPrefix(line, "a=candidate:") {
					mid := "0"
					if err := c.p.AddCandidate(room.TargetSubscriber, &room.Candidate{
						Candidate: strings.TrimPrefix(line, "a="), SDPMid: &mid}); err != nil {
						t.Errorf("add candidate: %v", err)
					}
				}
			}
		}
		sdp = answer.SDP
		if c.blind { // pion may have put early candidates in it: they were sent
			sdp = candidateLine.ReplaceAllString(sdp, "")
		}
		if err := c.p.SubscriberAnswer(sdp); err != nil {
			t.Errorf("server: apply answer: %v", err)
		}
	}
}

func (c *subscriberClient) received(trackID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets[trackID]
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second) // a failure bound, not a performance target
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A track subscribed right after the first answer is offered only once
// the subscriber connection has come up: an offer before that races pion's
// start of ICE on both sides, which left 1 of ~40 fan-out subscribers
// without any media (issue 9). Both tracks then arrive.
func TestOfferAfterTheFirstWaitsForTheConnection(t *testing.T) {
	t.Parallel()
	p, rec := newTestPeer(t, room.Permissions{CanSubscribe: true})
	a, b := newAudioUp("TR_a"), newAudioUp("TR_b")
	play(t, a, b)
	c := newSubscriberClient(t, p, rec, false)
	p.sub.subscribe(a)
	waitUntil(t, "the first answer", func() bool { return !p.sub.awaitingAnswerNow() })
	p.sub.subscribe(b)
	waitUntil(t, "both tracks", func() bool { return c.received("TR_a") > 10 && c.received("TR_b") > 10 })
	var offers []sessionEvent
	for _, ev := range rec.events() {
		if ev.kind == "offer" {
			offers = append(offers, ev)
		}
	}
	if len(offers) != 2 {
		t.Fatalf("%d offers, want 2", len(offers))
	}
	if offers[1].state != webrtc.PeerConnectionStateConnected {
		t.Fatalf("the second offer was made on a %s connection, want connected", offers[1].state)
	}
}

// awaitingAnswerNow reads awaitingAnswer under the lock.
func (sub *subscriber) awaitingAnswerNow() bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.awaitingAnswer
}

// A client may send the candidates of its answer before the answer. After
// an ICE restart they carry new credentials; applied before the answer
// pion drops them ("doesn't match the current ufrags"). The server queues
// them until the answer, so a client that uses none of the server's
// candidates gets its media back after the restart.
func TestCandidatesBeforeTheRestartAnswerAreUsed(t *testing.T) {
	t.Parallel()
	p, rec := newTestPeer(t, room.Permissions{CanSubscribe: true})
	a := newAudioUp("TR_a")
	play(t, a)
	c := newSubscriberClient(t, p, rec, true)
	p.sub.subscribe(a)
	waitUntil(t, "media", func() bool { return c.received("TR_a") > 10 })
	for i := range 3 {
		offers := len(rec.events())
		if err := p.RestartICE(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the restart's offer and answer", func() bool {
			return len(rec.events()) > offers && !p.sub.awaitingAnswerNow()
		})
		before := c.received("TR_a")
		waitUntil(t, fmt.Sprintf("media after ICE restart %d", i+1), func() bool { return c.received("TR_a") > before+20 })
	}
}

// After an ICE restart pion gathers at once (in CreateOffer for the
// subscriber connection, in SetRemoteDescription for the publisher
// connection), before the description with the new credentials exists. A
// candidate sent before that description is dropped by the client, so
// every candidate must follow a description with its credentials.
func TestCandidatesFollowTheirDescriptionThroughICERestarts(t *testing.T) {
	t.Parallel()
	p, rec := newTestPeer(t, room.Permissions{CanSubscribe: true, CanPublish: true})
	a := newAudioUp("TR_a")
	play(t, a)
	c := newSubscriberClient(t, p, rec, false)
	p.sub.subscribe(a)
	waitUntil(t, "media", func() bool { return c.received("TR_a") > 10 })
	const restarts = 10
	for range restarts {
		offers := len(rec.events())
		if err := p.RestartICE(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the restart's offer and answer", func() bool {
			return len(rec.events()) > offers && !p.sub.awaitingAnswerNow()
		})
	}

	pub := newPublisherClient(t, p, rec)
	pub.negotiate(t, false)
	for range restarts {
		pub.negotiate(t, true)
	}

	described := map[string]map[string]bool{room.TargetSubscriber: {}, room.TargetPublisher: {}}
	checked := map[string]int{}
	for _, ev := range rec.events() {
		switch ev.kind {
		case "offer", "answer":
			described[ev.target][ev.ufrag()] = true
		case "candidate":
			u := ev.ufrag()
			if u == "" {
				t.Fatalf("candidate without its ufrag: %q", ev.cand.Candidate)
			}
			checked[ev.target]++
			if !described[ev.target][u] {
				t.Errorf("%s candidate with ufrag %s sent before the description with it", ev.target, u)
			}
		}
	}
	// The publisher's answers may carry all their candidates (gathering on
	// the one muxed port can finish before the answer is sent, about one
	// run in ten): then there is nothing trickled to check for it.
	if checked[room.TargetSubscriber] == 0 || checked[room.TargetSubscriber]+checked[room.TargetPublisher] < restarts {
		t.Errorf("checked %v candidates, want some for every subscriber restart", checked)
	}
}

// publisherClient offers a track on the publisher connection.
type publisherClient struct {
	pc      *webrtc.PeerConnection
	p       *Peer
	answers chan string
	holdMu  sync.Mutex
	holding bool
	held    []webrtc.ICECandidateInit
}

func newPublisherClient(t *testing.T, p *Peer, rec *recorder) *publisherClient {
	c := &publisherClient{pc: newClientPC(t), p: p, answers: make(chan string, 1)}
	track, err := webrtc.NewTrackLocalStaticRTP(opusCodec.RTPCodecCapability, "mic", "stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	c.pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		c.holdMu.Lock()
		defer c.holdMu.Unlock()
		if c.holding {
			c.held = append(c.held, cand.ToJSON())
			return
		}
		c.send(t, cand.ToJSON())
	})
	done := make(chan struct{})
	t.Cleanup(func() { rec.stop(); <-done })
	go func() {
		defer close(done)
		for ev := range rec.pubs {
			switch ev.kind {
			case "answer":
				if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ev.sdp}); err != nil {
					t.Errorf("client: apply answer: %v", err)
				}
				c.answers <- ev.sdp
			case "candidate":
				init := webrtc.ICECandidateInit{Candidate: ev.cand.Candidate, SDPMid: ev.cand.SDPMid, SDPMLineIndex: ev.cand.SDPMLineIndex}
				if err := c.pc.AddICECandidate(init); err != nil {
					t.Errorf("client: add server candidate: %v", err)
				}
			}
		}
	}()
	return c
}

func (c *publisherClient) send(t *testing.T, init webrtc.ICECandidateInit) {
	if err := c.p.AddCandidate(room.TargetPublisher, &room.Candidate{Candidate: init.Candidate,
		SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex}); err != nil {
		t.Errorf("add publisher candidate: %v", err)
	}
}

// negotiate offers (with an ICE restart if restart) and waits for the
// answer; its own candidates wait for the offer, however early pion
// gathers them.
func (c *publisherClient) negotiate(t *testing.T, restart bool) {
	t.Helper()
	c.holdMu.Lock()
	c.holding = true
	c.holdMu.Unlock()
	offer, err := c.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if err := c.p.Publish(offer.SDP, nil); err != nil {
		t.Fatal(err)
	}
	c.holdMu.Lock()
	for _, init := range c.held {
		c.send(t, init)
	}
	c.held, c.holding = nil, false
	c.holdMu.Unlock()
	select {
	case <-c.answers:
	case <-time.After(15 * time.Second):
		t.Fatal("no publisher answer")
	}
}
