package room

import (
	"context"
	"errors"
)

// Candidate is an ICE candidate in the browser's RTCIceCandidateInit shape.
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// Targets of negotiation: each participant has a publisher connection (the
// client offers) and a subscriber connection (the server offers).
const (
	TargetPublisher  = "publisher"
	TargetSubscriber = "subscriber"
)

// TrackMeta is what a client declares about a track it publishes.
type TrackMeta struct {
	TrackID string `json:"trackId"`
	Source  string `json:"source"`
	Muted   bool   `json:"muted"`
	// Layers are the simulcast layers the client sends, lowest first.
	Layers []LayerMeta `json:"layers,omitempty"`
}

// LayerMeta is what a client declares about one simulcast layer.
type LayerMeta struct {
	RID        string `json:"rid"`
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	MaxBitrate int    `json:"maxBitrate,omitempty"`
}

// TrackSettings are a subscriber's preferences for tracks it receives.
type TrackSettings struct {
	// Disabled stops the tracks' media (the subscriber hides them).
	Disabled bool
	// MaxQuality caps the layer ("low", "medium", "high"; empty = high).
	MaxQuality string
	// Width and Height are the rendered size in device pixels; zero means
	// unknown. The smallest layer at least that big is enough.
	Width, Height int
}

// Stream states of a video track toward one subscriber.
const (
	StreamActive = "active"
	StreamPaused = "paused"
	// ReasonBandwidth: even the lowest layer does not fit the subscriber's
	// estimated bandwidth.
	ReasonBandwidth = "bandwidth"
)

// LayerState says whether a publisher should send one simulcast layer.
type LayerState struct {
	RID    string `json:"rid"`
	Active bool   `json:"active"`
}

// SessionOptions are fixed for the life of a media session. They are given
// to Open rather than set afterwards so that no track published between
// Open and Start can be subscribed under the wrong mode.
type SessionOptions struct {
	Permissions Permissions
	// ManualSubscribe makes the participant receive only the tracks it asks
	// for with Subscribe (or AcceptSubscriberOffer); the zero value
	// subscribes it to every track of the others, as they are published.
	ManualSubscribe bool
}

// Media is the media server as the room sees it.
type Media interface {
	// Open creates the media session of one participant in a room.
	Open(roomName, participantSID string, opts SessionOptions, events MediaEvents) (MediaSession, error)
	// Attach makes sink receive every packet of one published track, from
	// its next keyframe for video, until the track is unpublished or the
	// attachment is detached (see Sink).
	Attach(roomName, trackSID string, sink Sink) (Attachment, error)
}

// Answer is a complete session description: its candidates are in it, so
// a client needs no trickle (WHIP, WHEP). Tracks describes the media
// sections it carries, by mid for a subscriber answer.
type Answer struct {
	SDP    string
	Tracks []TrackInfo
	// Mids maps each media section of a subscriber answer to its track.
	Mids map[string]TrackInfo
}

// MediaSession is one participant's media: its publisher and subscriber
// connections. Methods are called from the front door's owning goroutine.
type MediaSession interface {
	// Publish applies the client's publisher offer; the answer comes back
	// through MediaEvents.PublisherAnswer, ordered before any candidate.
	Publish(offerSDP string, tracks []TrackMeta) error
	// PublishGathered applies a publisher offer and returns the answer once
	// its candidates are gathered (or ctx ends), for clients that take one
	// complete answer (WHIP). No PublisherAnswer event is sent for it.
	PublishGathered(ctx context.Context, offerSDP string, tracks []TrackMeta) (Answer, error)
	// SubscriberAnswer applies the client's answer to the last subscriber offer.
	SubscriberAnswer(sdp string) error
	// AcceptSubscriberOffer answers a subscriber connection the client
	// offered (WHEP's recvonly offer): each offered media section carries
	// the next of trackSIDs of its kind, and the complete answer says which
	// track is on which mid. Later changes are offered by the server as usual.
	AcceptSubscriberOffer(ctx context.Context, offerSDP string, trackSIDs []string) (Answer, error)
	// AddCandidate adds a remote ICE candidate; nil means end of candidates.
	AddCandidate(target string, c *Candidate) error
	// RestartICE makes a new subscriber offer with fresh ICE credentials.
	RestartICE() error
	// Resync is RestartICE for a client that reconnected: an offer still
	// waiting for its answer may never have reached it, so it is replaced.
	Resync() error
	// SetMuted records the mute state of one of the participant's tracks.
	SetMuted(trackSID string, muted bool) error
	// Subscribe starts (subscribe true) or stops receiving other
	// participants' tracks, by sid, and renegotiates. Tracks already in the
	// asked state are left alone. Nothing changes when any sid is unknown
	// (ErrUnknownTrack) or the participant's own (ErrOwnTrack).
	Subscribe(trackSIDs []string, subscribe bool) error
	// SetTrackSettings records the subscriber's preferences for tracks it
	// receives or may receive later, by sid. Unknown sids are an error
	// (ErrUnknownTrack), and nothing changes then.
	SetTrackSettings(trackSIDs []string, s TrackSettings) error
	// Start subscribes the participant to the room's existing tracks.
	Start()
	// Close releases every connection, goroutine and track of the session.
	Close()
}

// MediaEvents is how the media plane reports to the participant's front
// door. Calls come from media goroutines and must not block; they may come
// before Manager.Join returns. Offers, answers and candidates arrive in the
// order the client must see them.
type MediaEvents interface {
	PublisherAnswer(sdp string, tracks []TrackInfo)
	SubscriberOffer(sdp string, tracks map[string]TrackInfo)
	LocalCandidate(target string, c *Candidate)
	// StreamState says a video track sent to this participant was paused
	// (state StreamPaused, with a reason) or resumed (StreamActive).
	StreamState(trackSID, state, reason string)
	// SubscribedLayers tells the publisher which layers of one of its
	// tracks anyone needs (dynacast).
	SubscribedLayers(trackSID string, layers []LayerState)
}

// Reports is how the media plane tells the rooms what happened to their
// tracks and speakers; the Manager implements it. The media plane calls it
// from its own goroutines, holding none of its locks.
type Reports interface {
	TrackPublished(roomName string, t TrackInfo)
	TrackUnpublished(roomName string, t TrackInfo)
	ActiveSpeakers(roomName string, speakers []Speaker)
}

// Errors a MediaSession returns that a front door may show to its client.
var (
	ErrForbidden    = errors.New("publishing is not allowed by the access token")
	ErrNoSubscribe  = errors.New("subscribing is not allowed by the access token")
	ErrOwnTrack     = errors.New("a participant cannot subscribe to its own tracks")
	ErrBadSDP       = errors.New("the session description could not be applied")
	ErrNoOffer      = errors.New("no subscriber offer is waiting for an answer")
	ErrTooMany      = errors.New("too many tracks")
	ErrUnknownTrack = errors.New("no such track")
	ErrUnknownRoom  = errors.New("no such room")
)
