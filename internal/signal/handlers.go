package signal

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/room"
)

// maxRoomName limits room names taken from tokens.
const maxRoomName = 128

func (s *session) handleJoin(m *clientMessage) *protoError {
	if s.p != nil {
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
	if m.Resume != nil {
		return s.resume(m.Resume, claims)
	}
	info := s.participantInfo(claims)
	p := &participant{h: s.h, sid: info.SID, identity: info.Identity, roomName: roomName, info: info,
		conn: s, resumeToken: newResumeToken(), holding: true,
		log: s.log.With("room", roomName, "participant", info.SID, "identity", info.Identity)}
	s.log = p.log
	// Absent means true; a resume keeps the session's original choice, as
	// the media session it returns to was opened with it.
	manual := m.AutoSubscribe != nil && !*m.AutoSubscribe
	mem, err := s.h.deps.Rooms.Join(s.h.ctx, room.JoinRequest{Room: roomName, Info: info, Participant: p, Events: p,
		ManualSubscribe: manual})
	if errors.Is(err, room.ErrEnded) {
		return nil // ended while joining: its connection has the reason and is closing
	}
	if err != nil {
		return joinError(err, s.log)
	}
	s.h.register(p) // before joined, so that a Close racing with it unregisters
	if !p.joined(mem) {
		return nil // ended meanwhile: its connection has the reason and is closing
	}
	s.p = p
	s.joined.Store(true)
	s.send(s.joinedMessage(p, info, mem.Others(), p.resumeToken, false))
	p.release()
	return nil
}

// joinError is what the client is told when joining the room failed.
func joinError(err error, log *slog.Logger) *protoError {
	switch {
	case errors.Is(err, room.ErrRoomFull):
		return &protoError{Code: CodeRoomFull, Message: "join: the room is full", Fatal: true}
	case errors.Is(err, room.ErrClosed), errors.Is(err, context.Canceled):
		return &protoError{Code: CodeInternal, Message: "join: the room is closing, try again", Fatal: true}
	default:
		log.Error("join failed", "err", err)
		return &protoError{Code: CodeInternal, Message: "join: media server unavailable", Fatal: true}
	}
}

// resume attaches this connection to a participant whose connection
// dropped, and restarts ICE so its media finds the way again.
func (s *session) resume(req *resumeRequest, claims *auth.Claims) *protoError {
	p := s.h.participant(req.ParticipantSID)
	if p == nil {
		return newError(CodeResumeFailed, "join: no session to resume; join afresh")
	}
	token, old, ok := p.resume(s, req.ResumeToken, claims.Identity(), claims.Grants.Room)
	if !ok {
		return newError(CodeResumeFailed, "join: no session to resume; join afresh")
	}
	if old != nil {
		old.Close("") // superseded: its end no longer concerns the participant
	}
	s.log = p.log
	s.p = p
	s.joined.Store(true)
	self, others := p.info, []room.ParticipantInfo{}
	for _, x := range p.member.Load().Participants() {
		if x.SID == p.sid {
			self.Tracks = x.Tracks
		} else {
			others = append(others, x)
		}
	}
	s.send(s.joinedMessage(p, self, others, token, true))
	p.release()
	if err := p.media().Resync(); err != nil {
		p.log.Warn("ICE restart after resume failed", "err", err)
	}
	p.log.Info("session resumed")
	return nil
}

func (s *session) joinedMessage(p *participant, self room.ParticipantInfo, others []room.ParticipantInfo,
	token string, resumed bool,
) joinedMessage {
	if others == nil {
		others = []room.ParticipantInfo{}
	}
	mem := p.member.Load()
	return joinedMessage{
		Type: "joined", Protocol: ProtocolVersion, ServerVersion: s.h.deps.ServerVersion,
		Room:        roomRef{SID: mem.RoomSID(), Name: mem.RoomName()},
		Participant: self, Participants: others, ICEServers: s.iceServers(p.identity),
		ResumeToken: token, Resumed: resumed,
	}
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
	return mediaError("offer", s.p.media().Publish(m.SDP, m.Tracks))
}

func (s *session) handleAnswer(m *clientMessage) *protoError {
	return mediaError("answer", s.p.media().SubscriberAnswer(m.SDP))
}

func (s *session) handleCandidate(m *clientMessage) *protoError {
	c := m.Candidate
	if c != nil && c.Candidate == "" {
		c = nil // an empty candidate string also means end of candidates
	}
	if err := s.p.media().AddCandidate(m.Target, c); err != nil {
		return newError(CodeBadRequest, "candidate: %v", err)
	}
	return nil
}

func (s *session) handleRestartICE(*clientMessage) *protoError {
	return mediaError("restart_ice", s.p.media().RestartICE())
}

func (s *session) handleMute(m *clientMessage) *protoError {
	if err := s.p.member.Load().SetMuted(m.TrackSID, m.Muted); err != nil {
		return newError(CodeBadRequest, "mute: no published track %q", truncate(m.TrackSID, 40))
	}
	return nil
}

func (s *session) handleSubscribe(m *clientMessage) *protoError {
	return mediaError(m.Type, s.p.media().Subscribe(m.TrackSIDs, m.Type == "subscribe"))
}

func (s *session) handleTrackSettings(m *clientMessage) *protoError {
	settings := room.TrackSettings{Disabled: m.Enabled != nil && !*m.Enabled, MaxQuality: m.Quality,
		Width: m.Width, Height: m.Height}
	return mediaError(m.Type, s.p.media().SetTrackSettings(m.TrackSIDs, settings))
}

func (s *session) handleChat(m *clientMessage) *protoError {
	s.p.member.Load().Chat(m.Text)
	return nil
}

func (s *session) handlePing(m *clientMessage) *protoError {
	s.send(pongMessage{Type: "pong", ID: m.ID})
	return nil
}

func (s *session) handleLeave(*clientMessage) *protoError {
	s.left = true
	s.log.Info("client left")
	return nil
}

// mediaError turns a media session error into what the client sees.
func mediaError(req string, err error) *protoError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, room.ErrForbidden), errors.Is(err, room.ErrNoSubscribe):
		return newError(CodeForbidden, "%s: %v", req, err)
	case errors.Is(err, room.ErrBadSDP):
		return newError(CodeBadSDP, "%s: %v", req, err)
	case errors.Is(err, room.ErrNoOffer), errors.Is(err, room.ErrTooMany), errors.Is(err, room.ErrUnknownTrack),
		errors.Is(err, room.ErrOwnTrack):
		return newError(CodeBadRequest, "%s: %v", req, err)
	default:
		return newError(CodeInternal, "%s: the media server failed", req)
	}
}
