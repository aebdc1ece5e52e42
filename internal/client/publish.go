package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// Publish adds local tracks with their sources (camera, microphone, ...),
// negotiates the publisher connection and waits for the server's answer.
func (c *Client) Publish(ctx context.Context, tracks map[webrtc.TrackLocal]string) error {
	if c.pub == nil {
		return errSignalingOnly
	}
	for t, source := range tracks {
		sender, err := c.pub.AddTrack(t)
		if err != nil {
			return fmt.Errorf("client: add track: %w", err)
		}
		c.mu.Lock()
		c.sources[t.ID()] = source
		c.senders[t.ID()] = sender
		c.mu.Unlock()
		go c.readSenderRTCP(sender, t.ID())
	}
	return c.negotiate(ctx)
}

// Unpublish stops sending a track and renegotiates.
func (c *Client) Unpublish(ctx context.Context, t webrtc.TrackLocal) error {
	c.mu.Lock()
	sender := c.senders[t.ID()]
	delete(c.senders, t.ID())
	delete(c.sources, t.ID())
	delete(c.simulcast, t.ID())
	c.mu.Unlock()
	if sender == nil {
		return fmt.Errorf("client: track %s is not published", t.ID())
	}
	if err := c.pub.RemoveTrack(sender); err != nil {
		return fmt.Errorf("client: remove track: %w", err)
	}
	return c.negotiate(ctx)
}

// RestartICE asks the server for a subscriber offer with new ICE
// credentials, and restarts ICE on the publisher connection.
func (c *Client) RestartICE(ctx context.Context) error {
	if c.pub == nil {
		return errSignalingOnly
	}
	if err := c.send(map[string]any{"type": "restart_ice"}); err != nil {
		return err
	}
	if c.pub.LocalDescription() == nil {
		return nil // nothing published: no publisher connection to restart
	}
	return c.negotiateWith(ctx, &webrtc.OfferOptions{ICERestart: true})
}

// HeaderExtensionID is the id negotiated for a header extension on the
// publisher connection, or 0.
func (c *Client) HeaderExtensionID(uri string) uint8 {
	for _, tr := range c.pub.GetTransceivers() {
		if tr.Sender() == nil {
			continue
		}
		for _, ext := range tr.Sender().GetParameters().HeaderExtensions {
			if ext.URI == uri {
				return uint8(ext.ID)
			}
		}
	}
	return 0
}

// readSenderRTCP reads a sender's RTCP, so pion's interceptors see it, and
// passes keyframe requests on.
func (c *Client) readSenderRTCP(s *webrtc.RTPSender, trackID string) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		if c.opts.OnKeyframeRequest == nil {
			continue
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.opts.OnKeyframeRequest(trackID)
			}
		}
	}
}

var errSignalingOnly = errors.New("client: a signaling-only client has no media")

func (c *Client) negotiate(ctx context.Context) error { return c.negotiateWith(ctx, nil) }

func (c *Client) negotiateWith(ctx context.Context, opts *webrtc.OfferOptions) error {
	// Held from before CreateOffer: on an ICE restart pion gathers the new
	// candidates inside it, and one sent before its offer is dropped.
	c.holdCandidates(true)
	defer c.holdCandidates(false) // sends what was held, after the offer
	offer, err := c.pub.CreateOffer(opts)
	if err != nil {
		return err
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return err
	}
	c.mu.Lock()
	metas := make([]room.TrackMeta, 0, len(c.sources))
	for id, source := range c.sources {
		m := room.TrackMeta{TrackID: id, Source: source}
		if st := c.simulcast[id]; st != nil {
			m.Layers = st.metas()
		}
		metas = append(metas, m)
	}
	c.mu.Unlock()
	if err := c.send(map[string]any{"type": "offer", "target": room.TargetPublisher, "sdp": offer.SDP, "tracks": metas}); err != nil {
		return err
	}
	c.holdCandidates(false)
	select {
	case <-c.answerCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("client: waiting for the publisher answer: %w", ctx.Err())
	}
}

// TrackSID returns the server's sid of a published track, by its local id.
func (c *Client) TrackSID(localID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pubSIDs[localID]
}

// SID is this participant's server id.
func (c *Client) SID() string { return c.Joined.Participant.SID }
