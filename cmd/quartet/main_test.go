package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
		if code != 0 || !strings.Contains(out, "quartet token") || !strings.Contains(out, "--udp-port") {
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
	bin := filepath.Join(t.TempDir(), "quartet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--http", "127.0.0.1:0", "--udp-port", "0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	var log strings.Builder
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "quartet is ready") {
			break
		}
	}
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
