package signal

import (
	"errors"
	"strings"
	"time"
	"unicode"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/room"
)

// maxRoomName limits room names taken from tokens.
const maxRoomName = 128

func (s *session) handleJoin(m *clientMessage) *protoError {
	if s.media != nil {
		return newError(CodeAlreadyJoined, "join: already joined")
	}
	if m.Protocol != ProtocolVersion {
		return &protoError{Code: CodeUnsupportedProtocol, Fatal: true,
			Message: "join: this server speaks protocol 1"}
	}
	claims, err := s.h.deps.Verifier.Verify(m.Token, time.Now())
	if err != nil {
		return &protoError{Code: CodeUnauthorized, Message: "join: " + err.Error(), Fatal: true}
	}
	roomName := claims.Grants.Room
	if perr := checkRoomName(roomName); perr != nil {
		return perr
	}
	info := s.participantInfo(claims)
	s.log = s.log.With("room", roomName, "participant", info.SID, "identity", info.Identity)
	media, err := s.h.deps.Media.Open(roomName, info.SID, *info.Permissions, s)
	if err != nil {
		s.log.Error("open media session", "err", err)
		return &protoError{Code: CodeInternal, Message: "join: media server unavailable", Fatal: true}
	}
	r, others, err := s.h.deps.Rooms.Join(roomName, s, info)
	if err != nil {
		media.Close()
		if errors.Is(err, room.ErrRoomFull) {
			return &protoError{Code: CodeRoomFull, Message: "join: the room is full", Fatal: true}
		}
		return &protoError{Code: CodeInternal, Message: "join: the room is closing, try again", Fatal: true}
	}
	s.sid, s.media = info.SID, media
	s.rm.Store(r)
	s.joined.Store(true)
	if others == nil {
		others = []room.ParticipantInfo{}
	}
	s.send(joinedMessage{
		Type: "joined", Protocol: ProtocolVersion, ServerVersion: s.h.cfg.ServerVersion,
		Room:        roomRef{SID: r.SID(), Name: r.Name()},
		Participant: info, Participants: others, ICEServers: s.iceServers(claims.Identity()),
	})
	media.Start()
	return nil
}

func (s *session) participantInfo(c *auth.Claims) room.ParticipantInfo {
	name := c.Name
	if name == "" {
		name = c.Identity()
	}
	return room.ParticipantInfo{
		SID: room.NewSID("PA_"), Identity: c.Identity(), Name: name, Tracks: []room.TrackInfo{},
		Permissions: &room.Permissions{CanPublish: c.CanPublish(), CanSubscribe: c.CanSubscribe(), Admin: c.Grants.Admin},
		JoinedAt:    time.Now().UTC(),
	}
}

func checkRoomName(name string) *protoError {
	bad := name == "" || len(name) > maxRoomName || strings.ContainsFunc(name, unicode.IsControl)
	if bad {
		return &protoError{Code: CodeUnauthorized, Fatal: true,
			Message: "join: the token must grant one room, named in 1-128 printable characters"}
	}
	return nil
}

func (s *session) iceServers(identity string) []ICEServer {
	if s.h.deps.ICEServers == nil {
		return []ICEServer{}
	}
	return s.h.deps.ICEServers(identity, s.req)
}

func (s *session) handleOffer(m *clientMessage) *protoError {
	return mediaError("offer", s.media.Publish(m.SDP, m.Tracks))
}

func (s *session) handleAnswer(m *clientMessage) *protoError {
	return mediaError("answer", s.media.SubscriberAnswer(m.SDP))
}

func (s *session) handleCandidate(m *clientMessage) *protoError {
	c := m.Candidate
	if c != nil && c.Candidate == "" {
		c = nil // an empty candidate string also means end of candidates
	}
	if err := s.media.AddCandidate(m.Target, c); err != nil {
		return newError(CodeBadRequest, "candidate: %v", err)
	}
	return nil
}

func (s *session) handleRestartICE(*clientMessage) *protoError {
	return mediaError("restart_ice", s.media.RestartICE())
}

func (s *session) handleMute(m *clientMessage) *protoError {
	if err := s.media.SetMuted(m.TrackSID, m.Muted); err != nil {
		return newError(CodeBadRequest, "mute: no published track %q", truncate(m.TrackSID, 40))
	}
	s.rm.Load().SetMuted(s.sid, m.TrackSID, m.Muted)
	return nil
}

func (s *session) handleChat(m *clientMessage) *protoError {
	s.rm.Load().Chat(s.sid, m.Text)
	return nil
}

func (s *session) handlePing(m *clientMessage) *protoError {
	s.send(pongMessage{Type: "pong", ID: m.ID})
	return nil
}

func (s *session) handleLeave(*clientMessage) *protoError {
	s.log.Info("client left")
	return nil
}

// mediaError turns a media session error into what the client sees.
func mediaError(req string, err error) *protoError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, room.ErrForbidden):
		return newError(CodeForbidden, "%s: %v", req, room.ErrForbidden)
	case errors.Is(err, room.ErrBadSDP):
		return newError(CodeBadSDP, "%s: %v", req, err)
	case errors.Is(err, room.ErrNoOffer), errors.Is(err, room.ErrTooMany), errors.Is(err, room.ErrUnknownTrack):
		return newError(CodeBadRequest, "%s: %v", req, err)
	default:
		return newError(CodeInternal, "%s: the media server failed", req)
	}
}

// MediaEvents, called from media goroutines: they only queue messages or
// update the room.

func (s *session) PublisherAnswer(sdp string, tracks []room.TrackInfo) {
	s.send(sdpMessage{Type: "answer", Target: room.TargetPublisher, SDP: sdp, Tracks: tracks})
}

func (s *session) SubscriberOffer(sdp string, tracks map[string]room.TrackInfo) {
	s.send(sdpMessage{Type: "offer", Target: room.TargetSubscriber, SDP: sdp, Tracks: tracks})
}

func (s *session) LocalCandidate(target string, c *room.Candidate) {
	s.send(candidateMessage{Type: "candidate", Target: target, Candidate: c})
}

func (s *session) TrackPublished(t room.TrackInfo) {
	if r := s.rm.Load(); r != nil {
		r.AddTrack(t)
	}
}

func (s *session) TrackUnpublished(t room.TrackInfo) {
	if r := s.rm.Load(); r != nil {
		r.RemoveTrack(t)
	}
}
