package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
)

// DropAndResume cuts the signaling connection without leaving, as a network
// failure would, then opens a new one and resumes the session: the peer
// connections stay, and ICE restarts on both.
func (c *Client) DropAndResume(ctx context.Context) error {
	c.mu.Lock()
	old := c.conn
	c.conn = nil // the old reader must not mark the client closed
	c.mu.Unlock()
	old.CloseNow()

	conn, _, err := websocket.Dial(ctx, c.opts.URL, nil)
	if err != nil {
		return fmt.Errorf("client: redial %s: %w", c.opts.URL, err)
	}
	conn.SetReadLimit(1 << 20)
	c.mu.Lock()
	c.conn = conn
	from := len(c.messages)
	c.mu.Unlock()
	c.startReader(conn)

	// No autoSubscribe: a resumed session keeps the mode it was opened with.
	resume := map[string]string{"participantSid": c.SID(), "resumeToken": c.Joined.ResumeToken}
	if err := c.send(map[string]any{"type": "join", "protocol": 1, "token": c.opts.Token, "resume": resume}); err != nil {
		return err
	}
	msg, err := c.waitFrom(ctx, from, func(m Message) bool { return m.Type == "joined" || m.Type == "error" })
	if err != nil {
		return err
	}
	if msg.Type == "error" {
		return fmt.Errorf("client: resume refused: %s", msg.Raw)
	}
	if err := json.Unmarshal(msg.Raw, &c.Joined); err != nil {
		return fmt.Errorf("client: decode joined: %w", err)
	}
	if !c.Joined.Resumed {
		return fmt.Errorf("client: the server did not resume the session")
	}
	if c.pub.LocalDescription() == nil {
		return nil
	}
	if c.pub.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		// The answer to our last offer may have been lost with the connection.
		if err := c.pub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err != nil {
			return fmt.Errorf("client: roll back the unanswered offer: %w", err)
		}
	}
	return c.negotiateWith(ctx, &webrtc.OfferOptions{ICERestart: true})
}
