package signal

import (
	"fmt"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		code     string // "" means valid
	}{
		{"join", `{"type":"join","protocol":1,"token":"t"}`, ""},
		{"join manual", `{"type":"join","protocol":1,"token":"t","autoSubscribe":false}`, ""},
		{"join autoSubscribe not bool", `{"type":"join","protocol":1,"token":"t","autoSubscribe":"no"}`, CodeBadJSON},
		{"subscribe", `{"type":"subscribe","trackSids":["TR_a","TR_b"]}`, ""},
		{"unsubscribe", `{"type":"unsubscribe","trackSids":["TR_a"]}`, ""},
		{"subscribe without sids", `{"type":"subscribe"}`, CodeBadRequest},
		{"subscribe empty list", `{"type":"subscribe","trackSids":[]}`, CodeBadRequest},
		{"subscribe empty sid", `{"type":"unsubscribe","trackSids":["TR_a",""]}`, CodeBadRequest},
		{"subscribe long sid", `{"type":"subscribe","trackSids":["` + strings.Repeat("x", maxTrackSIDBytes+1) + `"]}`, CodeBadRequest},
		{"subscribe 64 sids", `{"type":"subscribe","trackSids":[` + sids(maxTrackSIDs) + `]}`, ""},
		{"subscribe 65 sids", `{"type":"subscribe","trackSids":[` + sids(maxTrackSIDs+1) + `]}`, CodeBadRequest},
		{"subscribe sids not a list", `{"type":"subscribe","trackSids":"TR_a"}`, CodeBadJSON},
		{"subscribe sid not a string", `{"type":"subscribe","trackSids":[1]}`, CodeBadJSON},
		{"track_settings", `{"type":"track_settings","trackSids":["TR_a"],"enabled":true,"quality":"medium","width":640,"height":360}`, ""},
		{"track_settings bad quality", `{"type":"track_settings","trackSids":["TR_a"],"quality":"best"}`, CodeBadRequest},
		{"track_settings negative size", `{"type":"track_settings","trackSids":["TR_a"],"width":-1}`, CodeBadRequest},
		{"track_settings huge size", `{"type":"track_settings","trackSids":["TR_a"],"height":100000}`, CodeBadRequest},
		{"track_settings without sids", `{"type":"track_settings","enabled":false}`, CodeBadRequest},
		{"track_settings enabled not bool", `{"type":"track_settings","trackSids":["TR_a"],"enabled":1}`, CodeBadJSON},
		{"join without token", `{"type":"join","protocol":1}`, CodeUnauthorized},
		{"join without protocol", `{"type":"join","token":"t"}`, CodeUnsupportedProtocol},
		{"offer", `{"type":"offer","target":"publisher","sdp":"v=0","tracks":[{"trackId":"a","source":"camera"}]}`, ""},
		{"offer wrong target", `{"type":"offer","target":"subscriber","sdp":"v=0"}`, CodeBadRequest},
		{"offer no sdp", `{"type":"offer","target":"publisher"}`, CodeBadRequest},
		{"offer track without id", `{"type":"offer","target":"publisher","sdp":"v=0","tracks":[{}]}`, CodeBadRequest},
		{"answer", `{"type":"answer","target":"subscriber","sdp":"v=0"}`, ""},
		{"answer wrong target", `{"type":"answer","target":"publisher","sdp":"v=0"}`, CodeBadRequest},
		{"candidate", `{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0"}}`, ""},
		{"end of candidates", `{"type":"candidate","target":"subscriber","candidate":null}`, ""},
		{"candidate bad target", `{"type":"candidate","target":"x"}`, CodeBadRequest},
		{"mute", `{"type":"mute","trackSid":"TR_1","muted":true}`, ""},
		{"mute without sid", `{"type":"mute","muted":true}`, CodeBadRequest},
		{"chat", `{"type":"chat","text":"hello"}`, ""},
		{"chat empty", `{"type":"chat","text":"  "}`, CodeBadRequest},
		{"chat too long", `{"type":"chat","text":"` + strings.Repeat("x", maxChatBytes+1) + `"}`, CodeBadRequest},
		{"ping", `{"type":"ping","id":"7"}`, ""},
		{"long id", `{"type":"ping","id":"` + strings.Repeat("x", 65) + `"}`, CodeBadRequest},
		{"leave", `{"type":"leave"}`, ""},
		{"restart", `{"type":"restart_ice"}`, ""},
		{"unknown", `{"type":"dance"}`, CodeUnknownType},
		{"no type", `{"id":"1"}`, CodeBadRequest},
		{"array", `[]`, CodeBadJSON},
		{"string", `"join"`, CodeBadJSON},
		{"truncated", `{"type":"join"`, CodeBadJSON},
		{"wrong field type", `{"type":"join","protocol":"one","token":"t"}`, CodeBadJSON},
		{"empty", ``, CodeBadJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := decode([]byte(tt.in))
			switch {
			case tt.code == "" && err != nil:
				t.Fatalf("decode(%s) = %v, want valid", tt.in, err)
			case tt.code != "" && (err == nil || err.Code != tt.code):
				t.Fatalf("decode(%s) = %v, want code %s", tt.in, err, tt.code)
			case err != nil && err.Message == "":
				t.Fatalf("decode(%s): error without a message", tt.in)
			}
		})
	}
}

// sids is a JSON list body of n track sids.
func sids(n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%q", fmt.Sprintf("TR_%d", i))
	}
	return strings.Join(out, ",")
}

func TestDecodeErrorsDoNotEchoInput(t *testing.T) {
	t.Parallel()
	_, err := decode([]byte(`{"type":"join","protocol":"SECRET-TOKEN-VALUE"}`))
	if err == nil || strings.Contains(err.Message, "SECRET") {
		t.Fatalf("error %v echoes client input", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"type":"join","protocol":1,"token":"t"}`,
		`{"type":"offer","target":"publisher","sdp":"v=0","tracks":[{"trackId":"a","source":"camera"}]}`,
		`{"type":"candidate","target":"publisher","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"chat","text":"\u00e9"}`, `{"type":`, `[]`, `{"type":"mute","trackSid":"x","muted":true}`,
		`{"type":"join","protocol":1,"token":"t","autoSubscribe":false}`,
		`{"type":"join","protocol":1,"token":"t","autoSubscribe":true,"resume":{"participantSid":"PA_a","resumeToken":"k"}}`,
		`{"type":"subscribe","trackSids":["TR_a","TR_b"]}`, `{"type":"unsubscribe","trackSids":[""]}`,
		`{"type":"subscribe","trackSids":[]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decode(data)
		if err == nil && (m == nil || validators[m.Type] == nil) {
			t.Fatalf("decode accepted %q without a known type", data)
		}
		if err != nil && (err.Code == "" || err.Message == "") {
			t.Fatalf("decode(%q) gave an error without code or message", data)
		}
		if err == nil && (m.Type == "subscribe" || m.Type == "unsubscribe") && !boundedSIDs(m.TrackSIDs) {
			t.Fatalf("decode accepted %q with unbounded track sids", data)
		}
	})
}

func boundedSIDs(sids []string) bool {
	if len(sids) == 0 || len(sids) > maxTrackSIDs {
		return false
	}
	for _, s := range sids {
		if s == "" || len(s) > maxTrackSIDBytes {
			return false
		}
	}
	return true
}

func TestEveryMessageTypeHasAHandler(t *testing.T) {
	t.Parallel()
	for typ := range validators {
		if _, ok := joinedHandlers[typ]; !ok && typ != "join" {
			t.Errorf("message type %q is validated but has no handler", typ)
		}
	}
}
