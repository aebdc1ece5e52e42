// Command turn compares Quartet's TURN relay with coturn's under the same
// load: coturn's turnutils_uclient relaying UDP through each server to one
// turnutils_peer, all on 127.0.0.1, in one run. For each server and packet
// size it reports messages sent and received, loss, wall time, the
// server's CPU seconds (utime+stime from /proc/PID/stat) and relayed
// packets per CPU second, then the ratio Quartet/coturn.
//
//	go run ./bench/turn                 # from the repository root
//	go run ./bench/turn -n 10000 -rounds 5
//
// It needs coturn (turnserver, turnutils_uclient, turnutils_peer; Debian
// package coturn) and Linux (/proc). Everything it starts runs on loopback
// ports it picks, is bounded in count and time, and is stopped at the end,
// on error and on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pion/stun/v4"

	"github.com/quartet-rtc/quartet/bench/internal/host"
)

const secret = "bench-turn-secret-0123456789"

type options struct {
	messages  int
	clients   int
	sizes     []int
	rounds    int
	interval  int
	quartet   string
	timeout   time.Duration
	keepFiles bool
}

func main() {
	var o options
	var sizes string
	flag.IntVar(&o.messages, "n", 5000, "messages each client session sends (uclient -n)")
	flag.IntVar(&o.clients, "m", 10, "client sessions, one allocation each (uclient -m, with -c)")
	flag.StringVar(&sizes, "sizes", "200,1200", "payload sizes in bytes (uclient -l), comma-separated")
	flag.IntVar(&o.rounds, "rounds", 3, "runs per server and size; servers alternate within a round")
	flag.IntVar(&o.interval, "z", 0, "uclient packet interval in ms per session (-z); 0 sends as fast as uclient can")
	flag.StringVar(&o.quartet, "quartet", "", "quartet binary to use (default: go build ./cmd/quartet)")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "bound on the whole run")
	flag.BoolVar(&o.keepFiles, "keep", false, "keep the work directory (binaries and server logs)")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 32 || n > 65000 {
			fatalf("-sizes: %q is not a payload size between 32 and 65000", s)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.messages < 1 || o.clients < 1 || o.rounds < 1 {
		fatalf("-n, -m and -rounds must be at least 1")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		stop()
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/turn: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "# "+format+"\n", args...)
}

// server is a TURN server under test.
type server struct {
	name string
	port int
	proc *host.Process
}

func run(ctx context.Context, o options) (err error) {
	if runtime.GOOS != "linux" {
		return errors.New("needs Linux: CPU time is read from /proc")
	}
	tools := map[string]string{}
	for _, name := range []string{"turnserver", "turnutils_uclient", "turnutils_peer"} {
		p, err := exec.LookPath(name)
		if err != nil {
			return fmt.Errorf("%s not found: install coturn (apt-get install -y coturn)", name)
		}
		tools[name] = p
	}
	work, err := os.MkdirTemp("", "quartet-bench-turn-")
	if err != nil {
		return err
	}
	if o.keepFiles {
		logf("work directory: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	if o.quartet == "" {
		o.quartet = filepath.Join(work, "quartet")
		logf("building quartet")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.quartet, "github.com/quartet-rtc/quartet/cmd/quartet")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build (run from the repository): %w", err)
		}
	}

	var procs []*host.Process
	defer func() {
		for _, p := range procs {
			p.Stop(5 * time.Second)
		}
	}()
	start := func(name string, env []string, path string, args ...string) (*host.Process, error) {
		p, err := host.Start(name, filepath.Join(work, name+".log"), env, path, args...)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		return p, nil
	}

	// Quartet's TURN-only node, with the limits that would throttle a
	// load test lifted: no bandwidth cap, no 401 rate limit, no
	// per-user allocation quota (uclient uses one user for all).
	qPort, err := host.FreePortRange(2)
	if err != nil {
		return err
	}
	quartet, err := start("quartet", []string{
		"QUARTET_TURN_SECRET=" + secret,
		"QUARTET_TURN_MAX_BITRATE=0",
		"QUARTET_TURN_UNAUTH_RATE=1000000",
		"QUARTET_TURN_UNAUTH_BURST=1000000",
		"QUARTET_TURN_MAX_ALLOCATIONS=100000",
		"QUARTET_TURN_MAX_ALLOCATIONS_PER_USER=100000",
	}, o.quartet, "turn", "--http", "127.0.0.1:0", "--turn-port", strconv.Itoa(qPort),
		"--turn-allow-peer", "127.0.0.0/8", "--log-level", "warn")
	if err != nil {
		return err
	}

	// coturn with the same secret (TURN REST, use-auth-secret), loopback
	// peers allowed, nothing but UDP/TCP listeners, no config file.
	cPort, err := host.FreePortRange(2)
	if err != nil {
		return err
	}
	relayMin, err := host.FreePortRange(1)
	if err != nil {
		return err
	}
	relayMin = min(max(relayMin, 20000), 60000)
	coturn, err := start("coturn", nil, tools["turnserver"], "-n",
		"--use-auth-secret", "--static-auth-secret="+secret, "--realm=quartet",
		"--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--no-rfc5780",
		"-L", "127.0.0.1", "--listening-port", strconv.Itoa(cPort), "--relay-ip", "127.0.0.1",
		"--min-port", strconv.Itoa(relayMin), "--max-port", strconv.Itoa(relayMin+2000),
		"--db", filepath.Join(work, "turndb"), "--pidfile", filepath.Join(work, "turnserver.pid"),
		"--log-file", "stdout", "--simple-log")
	if err != nil {
		return err
	}

	peerPort, err := host.FreePortRange(1)
	if err != nil {
		return err
	}
	if _, err := start("turnutils_peer", nil, tools["turnutils_peer"], "-L", "127.0.0.1",
		"-p", strconv.Itoa(peerPort)); err != nil {
		return err
	}

	servers := []*server{{"Quartet", qPort, quartet}, {"coturn", cPort, coturn}}
	for _, s := range servers {
		if err := waitSTUN(ctx, s.port, s.proc); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if err := waitEcho(ctx, peerPort); err != nil {
		return fmt.Errorf("turnutils_peer: %w", err)
	}
	ticks, err := host.ClockTicks()
	if err != nil {
		return err
	}

	qVer, _ := exec.CommandContext(ctx, o.quartet, "version").Output()
	cVer, _ := exec.CommandContext(ctx, tools["turnserver"], "--version").Output()
	logf("%s on 127.0.0.1:%d, coturn %s on 127.0.0.1:%d, turnutils_peer on 127.0.0.1:%d",
		strings.TrimSpace(string(qVer)), qPort, strings.TrimSpace(string(cVer)), cPort, peerPort)
	logf("machine: %s", host.Machine())

	totals := map[string]*total{}
	for round := range o.rounds {
		for _, size := range o.sizes {
			order := servers
			if round%2 == 1 {
				order = []*server{servers[1], servers[0]}
			}
			for _, s := range order {
				r, err := load(ctx, o, tools["turnutils_uclient"], s, peerPort, size, ticks)
				if err != nil {
					return err
				}
				logf("round %d, %s, %d bytes: sent %d, received %d, lost %d, %.2f s, server CPU %.2f s, "+
					"host UDP receive-buffer drops %d",
					round+1, s.name, size, r.sent, r.recv, r.lost, r.wall.Seconds(), r.cpu, r.bufDrops)
				key := fmt.Sprintf("%s/%d", s.name, size)
				if totals[key] == nil {
					totals[key] = &total{}
				}
				totals[key].add(r)
			}
		}
	}
	report(os.Stdout, o, servers, totals)
	return nil
}

// ================================================================== load

// result is one uclient run against one server.
type result struct {
	sent, recv, lost int
	wall             time.Duration
	cpu              float64 // server CPU seconds during the run
	bufDrops         int64   // datagrams the host's UDP sockets dropped, full receive buffers
}

type total struct {
	runs             int
	sent, recv, lost int
	wall             time.Duration
	cpu              float64
	bufDrops         int64
}

func (t *total) add(r result) {
	t.runs++
	t.sent += r.sent
	t.recv += r.recv
	t.lost += r.lost
	t.wall += r.wall
	t.cpu += r.cpu
	t.bufDrops += r.bufDrops
}

// relayed counts both directions: every echo that came back crossed the
// relay twice (client to peer, peer to client).
func (t *total) relayed() int { return 2 * t.recv }

var (
	totalsRe = regexp.MustCompile(`start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`)
	lostRe   = regexp.MustCompile(`Total lost packets (\d+)`)
)

// load runs one uclient against s and measures the server's CPU time.
func load(ctx context.Context, o options, uclient string, s *server, peerPort, size int, ticks float64) (result, error) {
	args := []string{"-p", strconv.Itoa(s.port), "-W", secret, "-u", "bench",
		"-n", strconv.Itoa(o.messages), "-m", strconv.Itoa(o.clients), "-l", strconv.Itoa(size),
		"-z", strconv.Itoa(o.interval), "-c", "-X",
		"-e", "127.0.0.1", "-r", strconv.Itoa(peerPort), "127.0.0.1"}
	// uclient starts sending after a random 1-6 s, paces itself, and waits
	// up to 10 s for missing echoes; the bound leaves room for all that.
	budget := 60*time.Second + time.Duration(o.messages)*time.Duration(max(o.interval, 1))*time.Millisecond
	runCtx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	before, err := host.ProcCPU(s.proc.Pid(), ticks)
	if err != nil {
		return result{}, err
	}
	dropsBefore := host.UDPRcvbufErrors()
	cmd := exec.CommandContext(runCtx, uclient, args...)
	cmd.WaitDelay = 2 * time.Second
	begin := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(begin)
	after, cerr := host.ProcCPU(s.proc.Pid(), ticks)
	if cerr != nil {
		return result{}, fmt.Errorf("%s: %w (did it exit? see its log)", s.name, cerr)
	}
	if runCtx.Err() != nil {
		return result{}, fmt.Errorf("turnutils_uclient against %s did not finish within %v", s.name, budget)
	}
	if err != nil {
		return result{}, fmt.Errorf("turnutils_uclient %s (against %s): %w\n%s",
			strings.Join(args, " "), s.name, err, host.LastLines(string(out), 20))
	}
	t := totalsRe.FindAllStringSubmatch(string(out), -1)
	l := lostRe.FindAllStringSubmatch(string(out), -1)
	if len(t) == 0 || len(l) == 0 {
		return result{}, fmt.Errorf("turnutils_uclient against %s printed no totals:\n%s", s.name,
			host.LastLines(string(out), 20))
	}
	r := result{wall: wall, cpu: after - before, bufDrops: host.UDPRcvbufErrors() - dropsBefore}
	r.sent, _ = strconv.Atoi(t[len(t)-1][1])
	r.recv, _ = strconv.Atoi(t[len(t)-1][2])
	r.lost, _ = strconv.Atoi(l[len(l)-1][1])
	return r, nil
}

// ================================================================ report

func report(w io.Writer, o options, servers []*server, totals map[string]*total) {
	fmt.Fprintf(w, "\nturnutils_uclient -m %d -c -n %d -z %d, UDP, one turnutils_peer; %d round(s), totals over rounds\n\n",
		o.clients, o.messages, o.interval, o.rounds)
	fmt.Fprintln(w, "| server | payload bytes | messages sent | echoes received | loss | "+
		"UDP receive-buffer drops (host) | wall s | relayed packets | server CPU s | relayed packets per CPU-second |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, size := range o.sizes {
		for _, s := range servers {
			t := totals[fmt.Sprintf("%s/%d", s.name, size)]
			fmt.Fprintf(w, "| %s | %d | %s | %s | %.3f%% | %d | %.1f | %s | %.2f | %s |\n",
				s.name, size, thousands(t.sent), thousands(t.recv), pct(t.lost, t.sent), t.bufDrops,
				t.wall.Seconds(), thousands(t.relayed()), t.cpu, perCPU(t))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| payload bytes | Quartet packets per CPU-second | coturn packets per CPU-second | ratio Quartet/coturn |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|")
	for _, size := range o.sizes {
		q := totals[fmt.Sprintf("%s/%d", servers[0].name, size)]
		c := totals[fmt.Sprintf("%s/%d", servers[1].name, size)]
		ratio := "n/a"
		if q.cpu > 0 && c.cpu > 0 && c.relayed() > 0 {
			ratio = fmt.Sprintf("%.2f", (float64(q.relayed())/q.cpu)/(float64(c.relayed())/c.cpu))
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s |\n", size, perCPU(q), perCPU(c), ratio)
	}
}

func perCPU(t *total) string {
	if t.cpu <= 0 {
		return "n/a (CPU time below the clock tick)"
	}
	return thousands(int(float64(t.relayed()) / t.cpu))
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// waitSTUN waits until the server on port answers a STUN binding request.
func waitSTUN(ctx context.Context, port int, p *host.Process) error {
	conn, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 1500)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if p.Exited() {
			return fmt.Errorf("exited: %v\n%s", p.Err(), p.LogTail())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
		if _, err := conn.Write(req.Raw); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		res := &stun.Message{Raw: buf[:n]}
		if res.Decode() == nil && res.Type == stun.BindingSuccess && res.TransactionID == req.TransactionID {
			return nil
		}
	}
	return fmt.Errorf("no STUN answer on 127.0.0.1:%d\n%s", port, p.LogTail())
}

// waitEcho waits until turnutils_peer echoes a datagram.
func waitEcho(ctx context.Context, port int) error {
	conn, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 64)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_, _ = conn.Write([]byte("ping"))
		_ = conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && string(buf[:n]) == "ping" {
			return nil
		}
	}
	return fmt.Errorf("no echo on 127.0.0.1:%d", port)
}
