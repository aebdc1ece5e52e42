package signal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/quartet-rtc/quartet/internal/room"
)

// ProtocolVersion is the native protocol version this server speaks.
const ProtocolVersion = 1

// maxChatBytes limits one chat message.
const maxChatBytes = 4096

// Limits of one subscribe or unsubscribe message: enough for a large
// room's worth of tracks, small enough that one message stays cheap.
const (
	maxTrackSIDs     = 64
	maxTrackSIDBytes = 64
)

// Error codes of the native protocol (docs/protocol.md).
const (
	CodeBadJSON             = "bad_json"
	CodeBadRequest          = "bad_request"
	CodeUnknownType         = "unknown_type"
	CodeNotJoined           = "not_joined"
	CodeAlreadyJoined       = "already_joined"
	CodeUnauthorized        = "unauthorized"
	CodeUnsupportedProtocol = "unsupported_protocol"
	CodeForbidden           = "forbidden"
	CodeBadSDP              = "bad_sdp"
	CodeRateLimited         = "rate_limited"
	CodeRoomFull            = "room_full"
	CodeResumeFailed        = "resume_failed"
	CodeInternal            = "internal"
)

// clientMessage is any message a client sends; which fields matter depends
// on Type.
type clientMessage struct {
	Type      string           `json:"type"`
	ID        string           `json:"id,omitempty"`
	Protocol  int              `json:"protocol,omitempty"`
	Token     string           `json:"token,omitempty"`
	Target    string           `json:"target,omitempty"`
	SDP       string           `json:"sdp,omitempty"`
	Tracks    []room.TrackMeta `json:"tracks,omitempty"`
	Candidate *room.Candidate  `json:"candidate,omitempty"`
	TrackSID  string           `json:"trackSid,omitempty"`
	Muted     bool             `json:"muted,omitempty"`
	Text      string           `json:"text,omitempty"`
	Resume    *resumeRequest   `json:"resume,omitempty"`
	// AutoSubscribe (join) is nil when absent, which means true.
	AutoSubscribe *bool    `json:"autoSubscribe,omitempty"`
	TrackSIDs     []string `json:"trackSids,omitempty"`
	// track_settings; Enabled is nil when absent, which means true.
	Enabled *bool  `json:"enabled,omitempty"`
	Quality string `json:"quality,omitempty"`
	Width   int    `json:"width,omitempty"`
	Height  int    `json:"height,omitempty"`
}

// resumeRequest names the session a join resumes.
type resumeRequest struct {
	ParticipantSID string `json:"participantSid"`
	ResumeToken    string `json:"resumeToken"`
}

// protoError is an error a client may see.
type protoError struct {
	Code    string
	Message string
	// Fatal errors close the connection after being sent.
	Fatal bool
}

func (e *protoError) Error() string { return e.Code + ": " + e.Message }

func newError(code, format string, args ...any) *protoError {
	return &protoError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// validators check the fields each message type needs.
var validators = map[string]func(m *clientMessage) *protoError{
	"join":           validateJoin,
	"offer":          validateOffer,
	"answer":         validateAnswer,
	"candidate":      validateCandidate,
	"restart_ice":    func(*clientMessage) *protoError { return nil },
	"mute":           validateMute,
	"subscribe":      validateTrackSIDs,
	"unsubscribe":    validateTrackSIDs,
	"track_settings": validateTrackSettings,
	"chat":           validateChat,
	"ping":           func(*clientMessage) *protoError { return nil },
	"leave":          func(*clientMessage) *protoError { return nil },
}

// decode parses and validates one client frame.
func decode(data []byte) (*clientMessage, *protoError) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, newError(CodeBadJSON, "a message must be a JSON object")
	}
	var m clientMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, newError(CodeBadJSON, "invalid JSON: %s", jsonProblem(err))
	}
	if m.Type == "" {
		return nil, newError(CodeBadRequest, "type is required")
	}
	validate, ok := validators[m.Type]
	if !ok {
		return &m, newError(CodeUnknownType, "unknown message type %q", truncate(m.Type, 32))
	}
	if len(m.ID) > 64 {
		return &m, newError(CodeBadRequest, "id is longer than 64 bytes")
	}
	return &m, validate(&m)
}

// jsonProblem describes a JSON error without echoing the client's input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s must be %s", truncate(typ.Field, 32), typ.Type.Kind())
	default:
		return "malformed"
	}
}

func validateJoin(m *clientMessage) *protoError {
	if m.Token == "" {
		return &protoError{Code: CodeUnauthorized, Message: "join: token is required", Fatal: true}
	}
	if m.Protocol == 0 {
		return &protoError{Code: CodeUnsupportedProtocol, Message: "join: protocol is required (this server speaks 1)", Fatal: true}
	}
	if r := m.Resume; r != nil && (r.ParticipantSID == "" || r.ResumeToken == "" || len(r.ResumeToken) > 128) {
		return newError(CodeBadRequest, "join: resume needs participantSid and resumeToken")
	}
	return nil
}

func validateOffer(m *clientMessage) *protoError {
	if m.Target != room.TargetPublisher {
		return newError(CodeBadRequest, "offer: target must be %q", room.TargetPublisher)
	}
	if m.SDP == "" {
		return newError(CodeBadRequest, "offer: sdp is required")
	}
	for _, t := range m.Tracks {
		if t.TrackID == "" || len(t.TrackID) > 128 {
			return newError(CodeBadRequest, "offer: every track needs a trackId of at most 128 bytes")
		}
	}
	return nil
}

func validateAnswer(m *clientMessage) *protoError {
	if m.Target != room.TargetSubscriber {
		return newError(CodeBadRequest, "answer: target must be %q", room.TargetSubscriber)
	}
	if m.SDP == "" {
		return newError(CodeBadRequest, "answer: sdp is required")
	}
	return nil
}

func validateCandidate(m *clientMessage) *protoError {
	if m.Target != room.TargetPublisher && m.Target != room.TargetSubscriber {
		return newError(CodeBadRequest, "candidate: target must be %q or %q", room.TargetPublisher, room.TargetSubscriber)
	}
	if m.Candidate != nil && len(m.Candidate.Candidate) > 1024 {
		return newError(CodeBadRequest, "candidate: candidate is longer than 1024 bytes")
	}
	return nil
}

func validateMute(m *clientMessage) *protoError {
	if m.TrackSID == "" {
		return newError(CodeBadRequest, "mute: trackSid is required")
	}
	return nil
}

func validateTrackSIDs(m *clientMessage) *protoError {
	if len(m.TrackSIDs) == 0 || len(m.TrackSIDs) > maxTrackSIDs {
		return newError(CodeBadRequest, "%s: trackSids must list 1 to %d track sids", m.Type, maxTrackSIDs)
	}
	for _, sid := range m.TrackSIDs {
		if sid == "" || len(sid) > maxTrackSIDBytes {
			return newError(CodeBadRequest, "%s: every track sid must be 1 to %d bytes", m.Type, maxTrackSIDBytes)
		}
	}
	return nil
}

// maxRenderedSize bounds track_settings' width and height: well above any
// screen, small enough that arithmetic on it cannot overflow.
const maxRenderedSize = 16384

func validateTrackSettings(m *clientMessage) *protoError {
	if err := validateTrackSIDs(m); err != nil {
		return err
	}
	if m.Quality != "" && room.QualityRank(m.Quality) < 0 {
		return newError(CodeBadRequest, "track_settings: quality must be low, medium or high")
	}
	if m.Width < 0 || m.Height < 0 || m.Width > maxRenderedSize || m.Height > maxRenderedSize {
		return newError(CodeBadRequest, "track_settings: width and height must be 0 to %d", maxRenderedSize)
	}
	return nil
}

func validateChat(m *clientMessage) *protoError {
	switch {
	case strings.TrimSpace(m.Text) == "":
		return newError(CodeBadRequest, "chat: text is required")
	case len(m.Text) > maxChatBytes:
		return newError(CodeBadRequest, "chat: text is longer than %d bytes", maxChatBytes)
	case !utf8.ValidString(m.Text):
		return newError(CodeBadRequest, "chat: text is not valid UTF-8")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Server messages.

type roomRef struct {
	SID  string `json:"sid"`
	Name string `json:"name"`
}

type joinedMessage struct {
	Type          string                 `json:"type"`
	Protocol      int                    `json:"protocol"`
	ServerVersion string                 `json:"serverVersion"`
	Room          roomRef                `json:"room"`
	Participant   room.ParticipantInfo   `json:"participant"`
	Participants  []room.ParticipantInfo `json:"participants"`
	ICEServers    []ICEServer            `json:"iceServers"`
	ResumeToken   string                 `json:"resumeToken"`
	Resumed       bool                   `json:"resumed"`
}

// ICEServer is one entry of RTCConfiguration.iceServers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

type sdpMessage struct {
	Type   string `json:"type"`
	Target string `json:"target"`
	SDP    string `json:"sdp"`
	Tracks any    `json:"tracks"`
}

type streamStateMessage struct {
	Type     string `json:"type"`
	TrackSID string `json:"trackSid"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
}

type subscribedLayersMessage struct {
	Type     string            `json:"type"`
	TrackSID string            `json:"trackSid"`
	Layers   []room.LayerState `json:"layers"`
}

type candidateMessage struct {
	Type      string          `json:"type"`
	Target    string          `json:"target"`
	Candidate *room.Candidate `json:"candidate"`
}

type errorMessage struct {
	Type        string `json:"type"`
	Code        string `json:"code"`
	Message     string `json:"message"`
	RequestType string `json:"requestType,omitempty"`
}

type leaveMessage struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

type pongMessage struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}
