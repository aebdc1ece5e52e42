package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/quartet-rtc/quartet/internal/auth"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"token", "--help"}} {
		code, out, _ := runCmd(t, nil, args...)
		if code != 0 || !strings.Contains(out, "quartet token") || !strings.Contains(out, "--udp-port") ||
			!strings.Contains(out, "quartet turn-credentials") || !strings.Contains(out, "--turn-allow-peer") {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
	if code, out, _ := runCmd(t, nil, "version"); code != 0 || !strings.HasPrefix(out, "quartet ") {
		t.Errorf("version: exit %d, output %q", code, out)
	}
	if code, _, errOut := runCmd(t, nil, "fly"); code != 2 || !strings.Contains(errOut, `unknown command "fly"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, nil, "--htp", "x"); code != 1 || !strings.Contains(errOut, "htp") {
		t.Errorf("unknown flag: exit %d, %q", code, errOut)
	}
}

func TestTokenCommand(t *testing.T) {
	code, out, errOut := runCmd(t, nil, "token", "--room", "demo", "--identity", "alice", "--name", "Alice", "--ttl", "1m")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	claims, err := auth.NewVerifier(auth.Keys{auth.DevAPIKey: auth.DevAPISecret}).Verify(strings.TrimSpace(out), time.Now())
	if err != nil {
		t.Fatalf("printed token does not verify: %v", err)
	}
	if claims.Identity() != "alice" || claims.Grants.Room != "demo" || claims.Name != "Alice" {
		t.Fatalf("claims = %+v", claims)
	}
	if code, _, errOut := runCmd(t, nil, "token", "--room", "demo"); code != 1 || !strings.Contains(errOut, "--identity") {
		t.Fatalf("missing identity: exit %d, %q", code, errOut)
	}
}

func TestInvalidConfigNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "q.yaml")
	if err := os.WriteFile(file, []byte("media:\n  udp_port: 70000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd(t, nil, "--config", file)
	if code != 1 || !strings.Contains(errOut, "media.udp_port") {
		t.Fatalf("exit %d, %q: want an error naming media.udp_port", code, errOut)
	}
	code, _, errOut = runCmd(t, map[string]string{"QUARTET_HTTP_ADDR": "0.0.0.0:8080"})
	if code != 1 || !strings.Contains(errOut, "auth.keys") {
		t.Fatalf("dev mode on a public address: exit %d, %q", code, errOut)
	}
}

// TestSIGTERMShutsDownGracefully runs the real binary and stops it as an
// init system would.
func TestSIGTERMShutsDownGracefully(t *testing.T) {
	stopGracefully(t, startBinary(t, "quartet is ready", "--http", "127.0.0.1:0", "--udp-port", "0", "--turn-port", "0"))
}

// TestTURNOnlyNode runs `quartet turn`: STUN answers on the port it logs,
// /healthz and /metrics are served, and SIGTERM stops it.
func TestTURNOnlyNode(t *testing.T) {
	p := startBinary(t, "quartet turn is ready", "turn", "--http", "127.0.0.1:0", "--turn-port", "0")
	addr := logValue(p.log.String(), "turn_udp_tcp=")
	conn, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no STUN answer from %s: %v", addr, err)
	}
	res := &stun.Message{Raw: buf[:n]}
	var mapped stun.XORMappedAddress
	if err := res.Decode(); err != nil || mapped.GetFrom(res) != nil || mapped.String() != conn.LocalAddr().String() {
		t.Fatalf("binding response %v maps %v, want %v", res, mapped, conn.LocalAddr())
	}
	metrics := logValue(p.log.String(), "metrics=")
	resp, err := http.Get(metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "quartet_turn_") {
		t.Fatalf("GET %s: %d, no quartet_turn_ metrics", metrics, resp.StatusCode)
	}
	stopGracefully(t, p)
}

func TestTURNCredentialsCommand(t *testing.T) {
	code, out, errOut := runCmd(t, map[string]string{"QUARTET_TURN_SECRET": "cli-test-secret-0123"},
		"turn-credentials", "--user", "dora", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Username, Password string
		TTL                int64
		URIs               []string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	mac := hmac.New(sha1.New, []byte("cli-test-secret-0123"))
	mac.Write([]byte(got.Username))
	if got.Password != base64.StdEncoding.EncodeToString(mac.Sum(nil)) || !strings.HasSuffix(got.Username, ":dora") ||
		got.TTL != 3600 || len(got.URIs) != 3 || got.URIs[1] != "turn:127.0.0.1:3478?transport=udp" {
		t.Fatalf("credential = %+v", got)
	}
}

// process is a running quartet binary and what it logged so far.
type process struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
	log   *strings.Builder
}

// startBinary builds and starts quartet with args and waits for ready.
func startBinary(t *testing.T, ready string, args ...string) *process {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "quartet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, lines: bufio.NewScanner(stderr), log: &strings.Builder{}}
	for p.lines.Scan() {
		p.log.WriteString(p.lines.Text() + "\n")
		if strings.Contains(p.lines.Text(), ready) {
			return p
		}
	}
	_ = cmd.Wait()
	t.Fatalf("never ready:\n%s", p.log.String())
	return nil
}

// logValue returns the value of key= in a text log line.
func logValue(log, key string) string {
	_, rest, _ := strings.Cut(log, key)
	v, _, _ := strings.Cut(rest, " ")
	return strings.Trim(strings.TrimSpace(v), `"[]`)
}

func stopGracefully(t *testing.T, p *process) {
	t.Helper()
	cmd, lines, log := p.cmd, p.lines, p.log
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "msg=stopped") {
		t.Fatalf("no clean stop in the log:\n%s", log.String())
	}
}

// TestLoadtestCommand runs `quartet loadtest` against the real binary: the
// report shows media delivered without loss, and the JSON file holds it.
func TestLoadtestCommand(t *testing.T) {
	p := startBinary(t, "quartet is ready", "--http", "127.0.0.1:0", "--udp-port", "0", "--turn-port", "0")
	defer stopGracefully(t, p)
	url := logValue(p.log.String(), "url=")
	out := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := runCmd(t, nil, "loadtest", "--url", url, "--publishers", "1", "--subscribers", "2",
		"--duration", "3s", "--video-bitrate", "300k", "--json", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "joined 3/3") || !strings.Contains(stdout, "latency") {
		t.Errorf("no progress or summary:\n%s\n%s", stderr, stdout)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Joined          int     `json:"joined"`
		ReceivedPackets int64   `json:"received_packets"`
		Loss            float64 `json:"loss"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	// 2 receivers × (50 audio + 30 video packets/s) × ~2 s at least.
	if rep.Joined != 3 || rep.ReceivedPackets < 2*80*2 || rep.Loss != 0 {
		t.Errorf("report %+v", rep)
	}
}

// `quartet loadtest --simulcast --quality-spread` publishes three layers,
// and its three subscribers receive one each.
func TestLoadtestSimulcastCommand(t *testing.T) {
	p := startBinary(t, "quartet is ready", "--http", "127.0.0.1:0", "--udp-port", "0", "--turn-port", "0")
	defer stopGracefully(t, p)
	url := logValue(p.log.String(), "url=")
	out := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := runCmd(t, nil, "loadtest", "--url", url, "--publishers", "1", "--subscribers", "3",
		"--duration", "4s", "--simulcast", "--quality-spread", "--quiet", "--json", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Simulcast    bool    `json:"simulcast"`
		Layers       []int   `json:"simulcast_layers_bps"`
		LayerPackets []int64 `json:"layer_packets"`
		Loss         float64 `json:"loss"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Simulcast || len(rep.Layers) != 3 || len(rep.LayerPackets) != 3 || rep.Loss != 0 ||
		rep.LayerPackets[0] == 0 || rep.LayerPackets[1] == 0 || rep.LayerPackets[2] == 0 {
		t.Errorf("report %+v: want three layers, each received, no loss", rep)
	}
	if !strings.Contains(stdout, "simulcast") {
		t.Errorf("no simulcast line in the summary:\n%s", stdout)
	}
}

// A run whose participants cannot join fails with a non-zero exit.
func TestLoadtestFailsWhenNobodyJoins(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	code, _, stderr := runCmd(t, nil, "loadtest", "--url", "ws://"+addr, "--duration", "1s", "--quiet")
	if code != 1 || !strings.Contains(stderr, "2 participants failed to join") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	for _, bad := range [][]string{
		{"loadtest", "--subscribers", "600"},
		{"loadtest", "--video-bitrate", "fast"},
		{"loadtest", "--url", "ftp://x"},
		{"loadtest", "--max-subscriptions", "-1"},
		{"loadtest", "--simulcast-layers", "q:320:150k"},
		{"loadtest", "--quality-spread"},
		{"loadtest", "--simulcast", "--temporal-layers", "2"},
	} {
		if code, _, stderr := runCmd(t, nil, bad...); code != 1 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", bad, code, stderr)
		}
	}
}
