package e2e

// Interop of Quartet's STUN/TURN server with coturn's client tools
// (Debian package coturn): turnutils_stunclient, turnutils_uclient and
// turnutils_peer, run as separate processes against an in-process server
// on random loopback ports.
//
// The tools are found in QUARTET_COTURN_DIR if set, else in PATH. Without
// them the tests skip, except with CI=true where they fail.
//
// turnutils_uclient waits a random 1-6 s before it starts sending, and when
// messages are missing at the end it waits 10 s more for them; the runs of
// a test therefore go concurrently, each against its own server or peer so
// that every count is attributable.

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the TURN REST credential scheme is HMAC-SHA1
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/pionlog"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

const (
	// toolTimeout bounds one run of a coturn tool: start delay (up to
	// 6 s), sending, and uclient's 10 s wait for missing messages.
	toolTimeout = 45 * time.Second
	// uclientMessages is how many messages each uclient session sends.
	uclientMessages = 50
	// settleTime lets packets still in flight on loopback arrive at a
	// peer before the test asserts that none did.
	settleTime = 300 * time.Millisecond
	// turnTestSecret is the REST secret of servers that set one.
	turnTestSecret = "e2e-turn-secret-0123456789"
	loopbackPeers  = "127.0.0.0/8"
	// tcpRelayRefusedTimeout is how long uclient -T runs when its Connect
	// is refused: it allocates within a second, then waits forever.
	tcpRelayRefusedTimeout = 10 * time.Second
)

// ================================================================= tools

// coturnTool finds one of coturn's tools, or skips the test (fails it on
// CI, where a silently skipped interop test would hide a broken setup).
func coturnTool(t *testing.T, name string) string {
	t.Helper()
	if dir := os.Getenv("QUARTET_COTURN_DIR"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("QUARTET_COTURN_DIR=%s: %v", dir, err)
		}
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := name + " not found (set QUARTET_COTURN_DIR, or install coturn: apt-get install -y coturn)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runTool runs a tool to completion within timeout and returns its
// combined output and exit error.
func runTool(timeout time.Duration, path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s did not finish within %v: %w", filepath.Base(path), timeout, ctx.Err())
	}
	return string(out), err
}

// uclientResult is what one turnutils_uclient run reported.
type uclientResult struct {
	args     []string
	out      string
	err      error
	took     time.Duration
	finished bool // it printed its final counts
	sent     int  // tot_send_msgs
	recv     int  // tot_recv_msgs
	lost     int  // "Total lost packets"
}

var (
	uclientTotals = regexp.MustCompile(`start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`)
	uclientLost   = regexp.MustCompile(`Total lost packets (\d+)`)
)

func parseUclient(args []string, out string, err error) uclientResult {
	r := uclientResult{args: args, out: out, err: err}
	m := uclientTotals.FindAllStringSubmatch(out, -1)
	l := uclientLost.FindAllStringSubmatch(out, -1)
	if len(m) > 0 && len(l) > 0 {
		last := m[len(m)-1]
		r.sent, _ = strconv.Atoi(last[1])
		r.recv, _ = strconv.Atoi(last[2])
		r.lost, _ = strconv.Atoi(l[len(l)-1][1])
		r.finished = true
	}
	return r
}

func (r uclientResult) String() string {
	return fmt.Sprintf("turnutils_uclient %s\nexit: %v after %v\n%s", strings.Join(r.args, " "), r.err,
		r.took.Round(time.Millisecond), tail(r.out, 3000))
}

// restArgs are uclient's credential arguments for user with REST
// credentials it computes from secret.
func restArgs(secret, user string) []string { return []string{"-W", secret, "-u", user} }

// uclientArgs are the arguments of a run against the TURN server on
// 127.0.0.1:port with credential arguments cred, peer at peer (nil for -T,
// which talks client to client), and extra flags. -m 2 makes two sessions
// (RTP and RTCP, or the two ends of -T), each sending uclientMessages.
func uclientArgs(port int, cred []string, peer *net.UDPAddr, extra ...string) []string {
	args := append([]string{"-p", strconv.Itoa(port)}, cred...)
	args = append(args, "-n", strconv.Itoa(uclientMessages), "-m", "2", "-l", "200", "-z", "5", "-X")
	if peer != nil {
		args = append(args, "-e", peer.IP.String(), "-r", strconv.Itoa(peer.Port))
	}
	args = append(args, extra...)
	return append(args, "127.0.0.1")
}

// uclientJob is one run: its arguments and how long it may take.
type uclientJob struct {
	args    []string
	timeout time.Duration
}

// startUclients starts the jobs, all concurrently (each mostly waits on
// timers); wait returns the results in order.
func startUclients(t *testing.T, jobs ...uclientJob) (wait func() []uclientResult) {
	t.Helper()
	path := coturnTool(t, "turnutils_uclient")
	results := make([]uclientResult, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Go(func() {
			start := time.Now()
			out, err := runTool(job.timeout, path, job.args...)
			results[i] = parseUclient(job.args, out, err)
			results[i].took = time.Since(start)
		})
	}
	// Even a failing test waits for its processes.
	t.Cleanup(wg.Wait)
	return func() []uclientResult {
		wg.Wait()
		for _, r := range results {
			t.Logf("turnutils_uclient %s: exit %v after %v, sent %d, received %d",
				strings.Join(r.args, " "), r.err, r.took.Round(time.Millisecond), r.sent, r.recv)
		}
		return results
	}
}

// jobs are runs of each argument list with the default timeout.
func jobs(argLists ...[]string) []uclientJob {
	out := make([]uclientJob, len(argLists))
	for i, args := range argLists {
		out[i] = uclientJob{args: args, timeout: toolTimeout}
	}
	return out
}

// restCredential computes a TURN REST credential the way coturn's
// use-auth-secret does: username "EXPIRY:USER", password
// base64(HMAC-SHA1(secret, username)). It is written here independently
// of Quartet's own code on purpose.
func restCredential(secret, user string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ================================================================ server

// startTURNServer runs a dev-mode server (TURN on a random port, the SFU on
// 127.0.0.1) with the given relay allow list and REST secret ("" = the dev
// secret). It returns the server and its TURN port (UDP and TCP).
func startTURNServer(t *testing.T, allow []string, secret string) (*testserver.Server, int) {
	t.Helper()
	srv := testserver.Start(t, testserver.Options{Config: func(c *config.Config) {
		c.TURN.AllowPeers = allow
		c.TURN.Secret = secret
	}})
	if srv.TURN() == nil {
		t.Fatal("the test server runs no TURN server (turn.enabled is on by default)")
	}
	return srv, srv.TURN().UDPAddr().Port
}

// turnMetric sums the samples of a metric on the server's /metrics whose
// labels include every k="v" of labels (given as "k", "v", ...).
func turnMetric(t *testing.T, srv *testserver.Server, name string, labels ...string) float64 {
	t.Helper()
	return scrapeMetrics(t, srv.URL()).get(name, labels...)
}

// ================================================================= peers

// udpPeer is a UDP peer on a loopback address that counts the datagrams it
// receives and, like turnutils_peer, echoes each one to its sender.
type udpPeer struct {
	conn *net.UDPConn
	got  atomic.Int64
}

// startUDPPeer listens on ip (127.0.0.2 and the like work on Linux; other
// systems may skip).
func startUDPPeer(t *testing.T, ip string) *udpPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Skipf("listen on %s: %v", ip, err)
	}
	p := &udpPeer{conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p.got.Add(1)
			_, _ = conn.WriteToUDP(buf[:n], from)
		}
	}()
	t.Cleanup(func() { _ = conn.Close(); <-done })
	return p
}

func (p *udpPeer) addr() *net.UDPAddr { return p.conn.LocalAddr().(*net.UDPAddr) }

// tcpPeer is a TCP peer that counts accepted connections and echoes what
// it reads.
type tcpPeer struct {
	ln    net.Listener
	conns atomic.Int64
}

func startTCPPeer(t *testing.T, ip string) *tcpPeer {
	t.Helper()
	ln, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("listen on %s: %v", ip, err)
	}
	p := &tcpPeer{ln: ln}
	var accepting, echoing sync.WaitGroup
	var open []net.Conn // owned by the accepting goroutine until it ends
	accepting.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			open = append(open, c)
			echoing.Go(func() { _, _ = io.Copy(c, c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		accepting.Wait()
		for _, c := range open {
			_ = c.Close()
		}
		echoing.Wait()
	})
	return p
}

func (p *tcpPeer) addr() *net.TCPAddr { return p.ln.Addr().(*net.TCPAddr) }

// startCoturnPeer runs turnutils_peer on a free UDP port of 127.0.0.1 until
// the test ends and waits until it echoes. (It also echoes on the next
// port, where uclient's RTCP sessions send.)
func startCoturnPeer(t *testing.T) *net.UDPAddr {
	t.Helper()
	path := coturnTool(t, "turnutils_peer")
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.LocalAddr().(*net.UDPAddr)
	_ = probe.Close() // free for turnutils_peer (a small race with other tests)

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, path, "-L", "127.0.0.1", "-p", strconv.Itoa(addr.Port))
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start turnutils_peer: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })

	c, err := net.DialUDP("udp4", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		_, _ = c.Write([]byte("ping"))
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && string(buf[:n]) == "ping" {
			return addr
		}
	}
	t.Fatalf("turnutils_peer on %v does not echo:\n%s", addr, tail(out.String(), 2000))
	return nil
}

// =================================================================== tests

// TestTurnSTUNBinding: turnutils_stunclient gets a binding response from
// Quartet's STUN server, whose XOR-MAPPED-ADDRESS is the client's own
// loopback address 127.0.0.1:PORT.
func TestTurnSTUNBinding(t *testing.T) {
	t.Parallel()
	path := coturnTool(t, "turnutils_stunclient")
	_, port := startTURNServer(t, nil, "")
	out, err := runTool(toolTimeout, path, "-p", strconv.Itoa(port), "127.0.0.1")
	if err != nil {
		t.Fatalf("turnutils_stunclient: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`UDP reflexive addr: 127\.0\.0\.1:(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no reflexive address 127.0.0.1:PORT in the output:\n%s", out)
	}
	if p, _ := strconv.Atoi(m[1]); p <= 0 || p > 65535 {
		t.Fatalf("reflexive port %s is no port:\n%s", m[1], out)
	}
}

// TestTurnRelayCoturnPeer: with 127.0.0.0/8 allowed, turnutils_uclient with
// REST credentials (-W, an explicit turn.secret) relays through Quartet to
// turnutils_peer and gets every message back: over UDP with channels and
// with Send indications (-s), over TCP to the server (-t), and with TCP
// relay allocations (-T, RFC 6062, client to client). Each run reports 0
// lost and receives all it sent, and the server's relay counters saw the
// traffic.
func TestTurnRelayCoturnPeer(t *testing.T) {
	t.Parallel()
	coturnTool(t, "turnutils_uclient") // skip or fail before starting anything
	srv, port := startTURNServer(t, []string{loopbackPeers}, turnTestSecret)
	peer := startCoturnPeer(t)

	cases := []struct {
		name      string
		transport string // the server's metrics label
		args      []string
	}{
		{"udp", "udp", uclientArgs(port, restArgs(turnTestSecret, "udp"), peer)},
		{"udp-send-indication", "udp", uclientArgs(port, restArgs(turnTestSecret, "udpsend"), peer, "-s")},
		{"tcp", "tcp", uclientArgs(port, restArgs(turnTestSecret, "tcp"), peer, "-t")},
		{"tcp-relay", "tcp", uclientArgs(port, restArgs(turnTestSecret, "tcprelay"), nil, "-T")},
	}
	argLists := make([][]string, len(cases))
	for i, c := range cases {
		argLists[i] = c.args
	}
	results := startUclients(t, jobs(argLists...)...)()
	sentOverUDP := 0
	for i, c := range cases {
		r := results[i]
		t.Run(c.name, func(t *testing.T) {
			if r.err != nil || !r.finished {
				t.Fatalf("uclient failed\n%v", r)
			}
			// -m 2: two sessions (RTP and RTCP, or the two ends of -T).
			if want := 2 * uclientMessages; r.sent != want {
				t.Errorf("sent %d messages, want %d\n%v", r.sent, want, r)
			}
			if r.lost != 0 || r.recv != r.sent {
				t.Errorf("lost %d, received %d of %d\n%v", r.lost, r.recv, r.sent, r)
			}
		})
		if c.transport == "udp" {
			sentOverUDP += r.sent
		}
	}
	if got := turnMetric(t, srv, "quartet_turn_relayed_packets_total", "transport", "udp",
		"direction", "to_peer"); got < float64(sentOverUDP) {
		t.Errorf("quartet_turn_relayed_packets_total{transport=udp,direction=to_peer} = %v, want >= %d",
			got, sentOverUDP)
	}
	for _, dir := range []string{"to_peer", "to_client"} {
		if got := turnMetric(t, srv, "quartet_turn_relayed_packets_total", "transport", "tcp",
			"direction", dir); got == 0 {
			t.Errorf("quartet_turn_relayed_packets_total{transport=tcp,direction=%s} = 0", dir)
		}
	}
}

// TestTurnDefaultConfigRefusesLoopbackPeers: with the default relay policy
// not one packet reaches a loopback peer, counted at the peer itself (a Go
// socket that echoes like turnutils_peer). In dev mode the SFU listens on
// 127.0.0.1, so a permission for 127.0.0.1 is granted (a relay may reach
// the SFU's exact address and port) and the packets to the peer's port are
// dropped at the relay socket; a permission for 127.0.0.2 is refused
// (403). Both show in quartet_turn_denied_peers_total with their stage.
// The same runs against a server with 127.0.0.0/8 allowed deliver every
// message to the same kind of peer, so the zero means refused, not broken.
// Covered: uclient over UDP with channels and with Send indications (-s),
// over TCP (-t), with TCP relays (-T, whose peers are relay addresses on
// 127.0.0.1), and a pion client's RFC 6062 Connect to a Go TCP listener.
func TestTurnDefaultConfigRefusesLoopbackPeers(t *testing.T) {
	t.Parallel()
	coturnTool(t, "turnutils_uclient") // skip or fail before starting anything
	secret := config.DevTURNSecret
	type udpCase struct {
		name      string
		peerIP    string
		flags     []string
		transport string // metrics label
		stage     string // where the default policy refuses
	}
	cases := []udpCase{
		{"udp/sfu-ip-other-port", "127.0.0.1", nil, "udp", "relay"},
		{"udp/other-loopback", "127.0.0.2", nil, "udp", "permission"},
		{"udp-send-indication/sfu-ip-other-port", "127.0.0.1", []string{"-s"}, "udp", "relay"},
		{"udp-send-indication/other-loopback", "127.0.0.2", []string{"-s"}, "udp", "permission"},
		{"tcp/sfu-ip-other-port", "127.0.0.1", []string{"-t"}, "tcp", "relay"},
		{"tcp/other-loopback", "127.0.0.2", []string{"-t"}, "tcp", "permission"},
	}
	type run struct {
		srv  *testserver.Server
		peer *udpPeer
		idx  int // into results
	}
	var todo []uclientJob
	start := func(allow []string, peerIP string, flags ...string) run {
		srv, port := startTURNServer(t, allow, "")
		r := run{srv: srv, idx: len(todo)}
		var peerAddr *net.UDPAddr
		if peerIP != "" {
			r.peer = startUDPPeer(t, peerIP)
			peerAddr = r.peer.addr()
		}
		// The Go peer has one port; -c keeps uclient from sending RTCP
		// sessions to the next one (-m 2 is then two RTP sessions).
		todo = append(todo, uclientJob{timeout: toolTimeout,
			args: uclientArgs(port, restArgs(secret, "alice"), peerAddr, append(flags, "-c")...)})
		return r
	}
	refused := make([]run, len(cases))
	allowed := make([]run, len(cases))
	for i, c := range cases {
		refused[i] = start(nil, c.peerIP, c.flags...)
		allowed[i] = start([]string{loopbackPeers}, c.peerIP, c.flags...)
	}
	tcpRelayRefused := start(nil, "", "-T")
	// uclient -T ignores the error answer (447) to its Connect and waits
	// for a data connection that never comes, without end: give it time
	// to try, then stop it.
	todo[tcpRelayRefused.idx].timeout = tcpRelayRefusedTimeout
	tcpRelayAllowed := start([]string{loopbackPeers}, "", "-T")

	wait := startUclients(t, todo...)
	// The pion client's Connect runs while the uclients wait to start.
	t.Run("tcp-connect", testTURNConnectRefused)
	results := wait()
	time.Sleep(settleTime)

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			neg, pos := refused[i], allowed[i]
			rn, rp := results[neg.idx], results[pos.idx]
			if got := neg.peer.got.Load(); got != 0 {
				t.Errorf("default policy: the peer %v received %d packets\n%v", neg.peer.addr(), got, rn)
			}
			if rn.recv != 0 {
				t.Errorf("default policy: uclient got %d echoes back\n%v", rn.recv, rn)
			}
			switch c.stage {
			case "permission":
				if !strings.Contains(rn.out, "403") {
					t.Errorf("default policy: want a 403 answer to the permission\n%v", rn)
				}
			case "relay": // the permission is granted and uclient sends all
				if rn.sent != 2*uclientMessages {
					t.Errorf("default policy: uclient sent %d messages, want %d\n%v", rn.sent, 2*uclientMessages, rn)
				}
			}
			if got := turnMetric(t, neg.srv, "quartet_turn_denied_peers_total", "transport", c.transport,
				"stage", c.stage); got == 0 {
				t.Errorf("quartet_turn_denied_peers_total{transport=%s,stage=%s} = 0", c.transport, c.stage)
			}
			// Positive control: same command, 127.0.0.0/8 allowed.
			if rp.err != nil || !rp.finished || rp.sent != 2*uclientMessages || rp.recv != rp.sent || rp.lost != 0 {
				t.Fatalf("allowed: want %d messages sent and echoed\n%v", 2*uclientMessages, rp)
			}
			if got := pos.peer.got.Load(); got != int64(rp.sent) {
				t.Errorf("allowed: the peer received %d packets, uclient sent %d", got, rp.sent)
			}
		})
	}
	t.Run("tcp-relay", func(t *testing.T) {
		rn, rp := results[tcpRelayRefused.idx], results[tcpRelayAllowed.idx]
		if rn.recv != 0 {
			t.Errorf("default policy: uclient -T got %d messages through\n%v", rn.recv, rn)
		}
		// The permission for 127.0.0.1 (the SFU's IP) is granted; the
		// Connect to the other client's relay port is refused.
		if got := turnMetric(t, tcpRelayRefused.srv, "quartet_turn_denied_peers_total",
			"transport", "tcp", "stage", "relay"); got == 0 {
			t.Errorf("quartet_turn_denied_peers_total{transport=tcp,stage=relay} = 0\n%v", rn)
		}
		if got := turnMetric(t, tcpRelayRefused.srv, "quartet_turn_relayed_bytes_total"); got != 0 {
			t.Errorf("default policy: quartet_turn_relayed_bytes_total = %v, want 0", got)
		}
		if rp.err != nil || !rp.finished || rp.sent != 2*uclientMessages || rp.recv != rp.sent || rp.lost != 0 {
			t.Errorf("allowed: want %d messages sent and received\n%v", 2*uclientMessages, rp)
		}
	})
}

// testTURNConnectRefused: a pion client's Connect (RFC 6062) from a TCP
// allocation to a Go TCP listener: refused by the default policy at the
// SFU's IP (relay stage: the port is not the SFU's) and at another
// loopback address (permission stage), with no connection reaching the
// listener; accepted with 127.0.0.0/8 allowed, where bytes echo back.
func testTURNConnectRefused(t *testing.T) {
	for _, c := range []struct {
		peerIP string
		stage  string
	}{{"127.0.0.1", "relay"}, {"127.0.0.2", "permission"}} {
		t.Run(c.peerIP, func(t *testing.T) {
			srv, _ := startTURNServer(t, nil, "")
			peer := startTCPPeer(t, c.peerIP)
			if err := turnConnect(t, srv, peer.addr(), nil); err == nil {
				t.Error("Connect to a loopback peer succeeded with the default policy")
			}
			time.Sleep(settleTime)
			if n := peer.conns.Load(); n != 0 {
				t.Errorf("default policy: the peer accepted %d connections", n)
			}
			if got := turnMetric(t, srv, "quartet_turn_denied_peers_total", "transport", "tcp",
				"stage", c.stage); got == 0 {
				t.Errorf("quartet_turn_denied_peers_total{transport=tcp,stage=%s} = 0", c.stage)
			}

			srv, _ = startTURNServer(t, []string{loopbackPeers}, "")
			peer = startTCPPeer(t, c.peerIP)
			msg := []byte("hello through a TCP relay")
			if err := turnConnect(t, srv, peer.addr(), msg); err != nil {
				t.Fatalf("allowed: Connect: %v", err)
			}
			if n := peer.conns.Load(); n != 1 {
				t.Errorf("allowed: the peer accepted %d connections, want 1", n)
			}
		})
	}
}

// turnConnect allocates a TCP relay over TCP with fresh dev credentials,
// connects it to peer, and when msg is not nil sends it and reads the echo.
func turnConnect(t *testing.T, srv *testserver.Server, peer *net.TCPAddr, msg []byte) error {
	t.Helper()
	conn, err := net.Dial("tcp4", srv.TURN().TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	user, pass := restCredential(config.DevTURNSecret, "pion", time.Now().Add(time.Hour))
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: srv.TURN().TCPAddr().String(), TURNServerAddr: srv.TURN().TCPAddr().String(),
		Conn: pionturn.NewSTUNConn(conn), Username: user, Password: pass, Realm: "quartet",
		LoggerFactory: pionlog.Factory{Log: testserver.Logger()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatalf("allocate a TCP relay: %v", err)
	}
	defer alloc.Close()
	data, err := alloc.Dial("tcp", peer.String())
	if err != nil {
		return err
	}
	defer data.Close()
	if msg == nil {
		return nil
	}
	_ = data.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := data.Write(msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	echo := make([]byte, len(msg))
	if _, err := io.ReadFull(data, echo); err != nil {
		return fmt.Errorf("read the echo: %w", err)
	}
	if string(echo) != string(msg) {
		return errors.New("the echo differs from what was sent")
	}
	return nil
}

// TestTurnExpiredCredentials: REST credentials whose expiry has passed
// (username "EXPIRY:USER" with EXPIRY in the past, password computed as
// coturn does from the server's turn.secret) are refused over UDP and TCP:
// uclient cannot allocate, the peer receives nothing, the server holds no
// allocation, relays nothing and counts auth failures. The same credential
// with a future expiry, on a server with the same settings, relays every
// message: the computation is right and only the expiry is refused.
func TestTurnExpiredCredentials(t *testing.T) {
	t.Parallel()
	coturnTool(t, "turnutils_uclient") // skip or fail before starting anything
	// One server per run: the refused runs draw many 401 answers, and the
	// per-source budget for them (turn.unauth_burst) is per server.
	expiredUDP, expiredUDPPort := startTURNServer(t, []string{loopbackPeers}, turnTestSecret)
	expiredTCP, expiredTCPPort := startTURNServer(t, []string{loopbackPeers}, turnTestSecret)
	_, okPort := startTURNServer(t, []string{loopbackPeers}, turnTestSecret)
	refusedPeer := startUDPPeer(t, "127.0.0.1")
	okPeer := startUDPPeer(t, "127.0.0.1")

	withCredential := func(port int, peer *net.UDPAddr, expiry time.Time, flags ...string) []string {
		user, pass := restCredential(turnTestSecret, "alice", expiry)
		return uclientArgs(port, []string{"-u", user, "-w", pass}, peer, append(flags, "-c")...)
	}
	expired := time.Now().Add(-time.Hour)
	results := startUclients(t, jobs(
		withCredential(expiredUDPPort, refusedPeer.addr(), expired),
		withCredential(expiredTCPPort, refusedPeer.addr(), expired, "-t"),
		withCredential(okPort, okPeer.addr(), time.Now().Add(time.Hour)),
	)...)()
	time.Sleep(settleTime)

	for i, c := range []struct {
		transport string
		srv       *testserver.Server
	}{{"udp", expiredUDP}, {"tcp", expiredTCP}} {
		t.Run("expired/"+c.transport, func(t *testing.T) {
			r := results[i]
			if r.err == nil || r.finished {
				t.Errorf("uclient ran with an expired credential\n%v", r)
			}
			if r.recv != 0 {
				t.Errorf("uclient got %d messages back\n%v", r.recv, r)
			}
			if got := turnMetric(t, c.srv, "quartet_turn_auth_failures_total", "transport", c.transport); got == 0 {
				t.Errorf("quartet_turn_auth_failures_total{transport=%s} = 0\n%v", c.transport, r)
			}
			if got := turnMetric(t, c.srv, "quartet_turn_allocations"); got != 0 {
				t.Errorf("quartet_turn_allocations = %v, want 0", got)
			}
			if got := turnMetric(t, c.srv, "quartet_turn_relayed_packets_total"); got != 0 {
				t.Errorf("quartet_turn_relayed_packets_total = %v, want 0", got)
			}
		})
	}
	if got := refusedPeer.got.Load(); got != 0 {
		t.Errorf("expired: the peer received %d packets", got)
	}
	t.Run("valid", func(t *testing.T) {
		r := results[2]
		if r.err != nil || !r.finished || r.sent != 2*uclientMessages || r.recv != r.sent || r.lost != 0 {
			t.Fatalf("want %d messages sent and echoed\n%v", 2*uclientMessages, r)
		}
		if got := okPeer.got.Load(); got != int64(r.sent) {
			t.Errorf("the peer received %d packets, uclient sent %d", got, r.sent)
		}
	})
}
