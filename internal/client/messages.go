package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

func (c *Client) readLoop(conn *websocket.Conn, done chan struct{}) {
	defer c.wg.Done()
	defer close(done)
	var readErr error
	defer func() {
		c.mu.Lock()
		current := c.conn == conn // not replaced by a resume
		if current {
			c.messages = append(c.messages, Message{Type: "closed"})
			close(c.changed)
			c.changed = make(chan struct{})
		}
		c.mu.Unlock()
		if current && !c.closing.Load() && c.opts.OnDisconnect != nil {
			c.opts.OnDisconnect(readErr)
		}
	}()
	for {
		_, data, err := conn.Read(c.ctx)
		if err != nil {
			readErr = fmt.Errorf("client: signaling connection ended: %w", err)
			return
		}
		var head struct {
			Type   string `json:"type"`
			Target string `json:"target"`
		}
		if err := json.Unmarshal(data, &head); err != nil {
			c.log.Error("client: bad server message", "err", err)
			continue
		}
		c.handle(head.Type, head.Target, data)
		if c.opts.OnEvent != nil {
			c.opts.OnEvent(Message{Type: head.Type, Raw: data})
		}
		if c.opts.NoHistory {
			continue
		}
		c.mu.Lock()
		c.messages = append(c.messages, Message{Type: head.Type, Raw: data})
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

func (c *Client) handle(typ, target string, data []byte) {
	if typ == "stream_state" {
		c.onStreamState(data)
		return
	}
	if c.pub == nil {
		return // signaling only: no peer connection to negotiate
	}
	var err error
	switch {
	case typ == "subscribed_layers":
		err = c.onSubscribedLayers(data)
	case typ == "offer" && target == room.TargetSubscriber:
		err = c.onSubscriberOffer(data)
	case typ == "answer" && target == room.TargetPublisher:
		err = c.onPublisherAnswer(data)
	case typ == "candidate":
		err = c.onCandidate(target, data)
	}
	if err != nil {
		c.log.Error("client: handling server message", "type", typ, "err", err)
	}
}

func (c *Client) onSubscriberOffer(data []byte) error {
	var m struct {
		SDP    string                    `json:"sdp"`
		Tracks map[string]room.TrackInfo `json:"tracks"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	c.mu.Lock()
	for _, t := range m.Tracks {
		c.subTracks[t.SID] = t
	}
	c.mu.Unlock()
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
		return err
	}
	answer, err := c.sub.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := c.sub.SetLocalDescription(answer); err != nil {
		return err
	}
	return c.send(map[string]any{"type": "answer", "target": room.TargetSubscriber, "sdp": answer.SDP})
}

func (c *Client) onPublisherAnswer(data []byte) error {
	var m struct {
		SDP    string           `json:"sdp"`
		Tracks []room.TrackInfo `json:"tracks"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	c.mu.Lock()
	for _, t := range m.Tracks {
		c.pubSIDs[t.TrackID] = t.SID
	}
	c.mu.Unlock()
	err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP})
	select {
	case c.answerCh <- m.SDP:
	default:
	}
	return err
}

func (c *Client) onCandidate(target string, data []byte) error {
	var m struct {
		Candidate *webrtc.ICECandidateInit `json:"candidate"`
	}
	if err := json.Unmarshal(data, &m); err != nil || m.Candidate == nil {
		return err
	}
	pc := c.pub
	if target == room.TargetSubscriber {
		pc = c.sub
	}
	return pc.AddICECandidate(*m.Candidate)
}

// Messages returns a copy of every message received so far.
func (c *Client) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.messages...)
}

// WaitFor returns the first message (received before or after the call)
// that matches, or an error when ctx ends or the connection closes.
func (c *Client) WaitFor(ctx context.Context, match func(Message) bool) (Message, error) {
	return c.waitFrom(ctx, 0, match)
}

// waitFrom is WaitFor over the messages from index seen on.
func (c *Client) waitFrom(ctx context.Context, seen int, match func(Message) bool) (Message, error) {
	for {
		c.mu.Lock()
		msgs, changed := c.messages[seen:], c.changed
		seen = len(c.messages)
		c.mu.Unlock()
		for _, m := range msgs {
			if match(m) {
				return m, nil
			}
			if m.Type == "closed" {
				return Message{}, errClosed
			}
		}
		select {
		case <-ctx.Done():
			return Message{}, fmt.Errorf("client: waiting for a message: %w", ctx.Err())
		case <-changed:
		}
	}
}

// StreamState is one stream_state message: a video track the server
// forwards to this client was paused (State "paused", with a Reason) or
// resumed ("active").
type StreamState struct {
	At       time.Time
	TrackSID string `json:"trackSid"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
}

func (c *Client) onStreamState(data []byte) {
	var s StreamState
	if err := json.Unmarshal(data, &s); err != nil {
		c.log.Error("client: bad stream_state", "err", err)
		return
	}
	s.At = time.Now()
	c.mu.Lock()
	c.streamStates = append(c.streamStates, s)
	c.mu.Unlock()
	if c.opts.OnStreamState != nil {
		c.opts.OnStreamState(s)
	}
}

// StreamStates returns the stream_state messages received so far, oldest
// first.
func (c *Client) StreamStates() []StreamState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]StreamState(nil), c.streamStates...)
}

// StreamStateOf is the last state the server gave a received track:
// "paused" or "active"; "" before any (the track is active).
func (c *Client) StreamStateOf(trackSID string) (state, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.streamStates) - 1; i >= 0; i-- {
		if s := c.streamStates[i]; s.TrackSID == trackSID {
			return s.State, s.Reason
		}
	}
	return "", ""
}

// TrackSettings are a subscriber's preferences for tracks it receives
// (the track_settings message).
type TrackSettings struct {
	TrackSIDs []string
	// Disabled asks for nothing of these tracks (enabled: false).
	Disabled bool
	// Quality caps the layer: "low", "medium" or "high"; "" for no cap.
	Quality string
	// Width and Height are the rendered size in device pixels; 0 unknown.
	Width, Height int
}

// SetTrackSettings sends track_settings. A refusal arrives as an error
// message.
func (c *Client) SetTrackSettings(s TrackSettings) error {
	m := map[string]any{"type": "track_settings", "trackSids": s.TrackSIDs, "enabled": !s.Disabled}
	if s.Quality != "" {
		m["quality"] = s.Quality
	}
	if s.Width != 0 {
		m["width"] = s.Width
	}
	if s.Height != 0 {
		m["height"] = s.Height
	}
	return c.send(m)
}
