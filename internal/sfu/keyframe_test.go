package sfu

import "testing"

func TestIsKeyframe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mime    string
		payload []byte
		want    bool
	}{
		{"vp8 key no ext", "video/VP8", []byte{0x10, 0x00, 0x9d, 0x01, 0x2a}, true},
		{"vp8 delta no ext", "video/VP8", []byte{0x10, 0x01}, false},
		{"vp8 key 15-bit picture id", "video/VP8", []byte{0x90, 0x80, 0x81, 0x23, 0x10}, true},
		{"vp8 delta 15-bit picture id", "video/VP8", []byte{0x90, 0x80, 0x81, 0x23, 0x11}, false},
		{"vp8 key 7-bit pid tl0 tid", "video/VP8", []byte{0x90, 0xe0, 0x12, 0x01, 0x20, 0x00}, true},
		{"vp8 not partition start", "video/VP8", []byte{0x00, 0x00}, false},
		{"vp8 truncated", "video/VP8", []byte{0x90, 0x80}, false},
		{"vp8 empty", "video/VP8", nil, false},
		{"vp9 key", "video/VP9", []byte{0x08, 0x00}, true},
		{"vp9 inter", "video/VP9", []byte{0x48, 0x00}, false},
		{"vp9 not begin", "video/VP9", []byte{0x00}, false},
		{"vp9 key layer 0", "video/VP9", []byte{0xa8, 0x01, 0x00}, true},
		{"vp9 key layer 1", "video/VP9", []byte{0xa8, 0x01, 0x02}, false},
		{"h264 idr", "video/H264", []byte{0x65, 0x88}, true},
		{"h264 sps", "video/H264", []byte{0x67, 0x42}, true},
		{"h264 non-idr", "video/H264", []byte{0x41, 0x9a}, false},
		{"h264 stap-a with sps", "video/H264", []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68}, true},
		{"h264 stap-a bad size", "video/H264", []byte{0x78, 0x00, 0x09, 0x67}, false},
		{"h264 fu-a idr start", "video/H264", []byte{0x7c, 0x85}, true},
		{"h264 fu-a idr middle", "video/H264", []byte{0x7c, 0x05}, false},
		{"audio", "audio/opus", []byte{0x00}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsKeyframe(tt.mime, tt.payload); got != tt.want {
				t.Fatalf("IsKeyframe(%s, %x) = %v, want %v", tt.mime, tt.payload, got, tt.want)
			}
		})
	}
}

func FuzzIsKeyframe(f *testing.F) {
	for _, seed := range [][]byte{{0x90, 0x80, 0x81, 0x23, 0x10}, {0xa8, 0x01, 0x00}, {0x78, 0x00, 0x02, 0x67, 0x42}, {0x7c, 0x85}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, mime := range []string{"video/VP8", "video/VP9", "video/H264"} {
			IsKeyframe(mime, payload)
		}
	})
}
