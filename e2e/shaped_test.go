package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/quartet-rtc/quartet/internal/testserver"
)

// inNetnsEnv marks the test binary re-run inside its own network namespace.
const inNetnsEnv = "QUARTET_E2E_IN_NETNS"

// shapedRate is the server's media toward the pages, as in the issue.
const shapedRate = "300kbit"

// TestBrowserShapedLink: a subscriber page whose media from the server is
// shaped to 300 kbit/s keeps decoding video (the low simulcast layer) and
// audio with fewer than 3 freezes a minute. The server and Chromium run in
// a network namespace of their own, so that tc shapes nothing else: the
// test binary runs itself again under unshare -n.
func TestBrowserShapedLink(t *testing.T) {
	if os.Getenv(inNetnsEnv) == "" {
		rerunInNetns(t)
		return
	}
	var mediaPort int
	srv := testserver.Start(t, testserver.Options{WrapUDP: func(c net.PacketConn) net.PacketConn {
		mediaPort = c.LocalAddr().(*net.UDPAddr).Port
		return c
	}})
	shape(t, mediaPort)
	b := startBrowser(t)
	pub := b.openPageScript(t, srv.URL(), "e2e-shaped", "Pub", nil, hdCameraScript)
	waitJoined(t, pub)
	waitJS(t, pub, mediaTimeout, "the camera published", `window.quartet.room.localTracks.some((t) => t.source === 'camera' && t.sid)`)
	cam := evalOK[string](t, pub, "camera sid", `window.quartet.room.localTracks.find((t) => t.source === 'camera').sid`)
	pubSid := evalOK[string](t, pub, "sid", `window.quartet.room.localParticipant.sid`)
	sub := b.openPageScript(t, srv.URL(), "e2e-shaped", "Sub", nil, noCameraScript)
	waitJoined(t, sub)

	// Converging: the first seconds may overshoot the link.
	waitInbound(t, sub, cam, "video over the shaped link", func(v inboundVideo) bool { return v.Width > 0 })
	time.Sleep(15 * time.Second)
	start := evalOK[inboundVideo](t, sub, "video", inboundVideoJS(cam))
	audio0 := evalOK[mediaStats](t, sub, "audio", mediaStatsJS).Audio[pubSid]
	const window = 60 * time.Second
	widths := map[float64]int{}
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(5 * time.Second) {
		v := evalOK[inboundVideo](t, sub, "video", inboundVideoJS(cam))
		widths[v.Width]++
	}
	end := evalOK[inboundVideo](t, sub, "video", inboundVideoJS(cam))
	audio1 := evalOK[mediaStats](t, sub, "audio", mediaStatsJS).Audio[pubSid]
	fps := (end.Frames - start.Frames) / window.Seconds()
	freezes := end.Freezes - start.Freezes
	t.Logf("over %v at %s: %.1f frames/s decoded, %v freezes, frame widths seen %v, audio %v -> %v",
		window, shapedRate, fps, freezes, widths, audio0, audio1)
	if fps < 5 {
		t.Errorf("%.1f frames/s decoded over the shaped link, want the video to keep going", fps)
	}
	if freezes >= 3 {
		t.Errorf("%v freezes in a minute, want fewer than 3", freezes)
	}
	if end.Width > 320 {
		t.Errorf("receiving %v-wide video over %s, want the low layer", end.Width, shapedRate)
	}
	if audio1 <= audio0 {
		t.Errorf("audio stopped: %v then %v", audio0, audio1)
	}
}

// shape limits what the server's media port sends on the namespace's
// loopback to shapedRate (an htb class chosen by a u32 filter on the UDP
// source port), with a short queue as a home router has.
func shape(t *testing.T, port int) {
	t.Helper()
	cmds := [][]string{
		{"qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10"},
		{"class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit"},
		{"class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", shapedRate, "ceil", shapedRate},
		{"qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "pfifo", "limit", "40"},
		{"filter", "add", "dev", "lo", "protocol", "ip", "parent", "1:", "prio", "1", "u32",
			"match", "ip", "protocol", "17", "0xff", "match", "ip", "sport", fmt.Sprint(port), "0xffff", "flowid", "1:20"},
	}
	for _, c := range cmds {
		if out, err := exec.Command("tc", c...).CombinedOutput(); err != nil {
			t.Fatalf("tc %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
}

// rerunInNetns runs this test again in a new network namespace whose only
// interface is its loopback, and fails with it.
func rerunInNetns(t *testing.T) {
	for _, tool := range []string{"unshare", "tc", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			needTool(t, tool+" (util-linux, iproute2)")
		}
	}
	if os.Geteuid() != 0 {
		needTool(t, "root, for unshare -n and tc")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "-n", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`,
		exe, "-test.run", "^TestBrowserShapedLink$", "-test.v", "-test.count", "1")
	cmd.Env = append(os.Environ(), inNetnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in its own network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("the shaped-link test failed: %v", err)
	}
}

// needTool skips a test whose tool is missing, except on CI, where it fails.
func needTool(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("missing %s, which CI must have", what)
	}
	t.Skipf("missing %s", what)
}
