package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// The forwarder runs in a child process so that its CPU time is its own.
// The parent talks to it over the child's stdin and stdout, one line each
// way per step:
//
//	child:  addr 127.0.0.1:PORT   (forwarding from now on)
//	parent: start                 child: started   (CPU clock read)
//	parent: stop                  child: {JSON report}, then it exits

// roleFlag, given first with the value "forwarder", turns the program into
// the child. It is not in -help: only the parent passes it.
const roleFlag = "-role"

// report is what the child tells the parent at "stop".
type report struct {
	forwardStats
	CPUSeconds float64 `json:"cpu_seconds"` // between start and stop
}

// forwarderMain is the child's main; it returns the exit code.
func forwarderMain(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("role", "forwarder")
	fs := flag.NewFlagSet("forwarder", flag.ContinueOnError)
	role := fs.String("role", "", "must be forwarder")
	mode := fs.String("mode", modeBatch, "perpacket, batch or gso")
	dests := fs.String("dests", "", "comma-separated 127.0.0.1:port destinations")
	timeout := fs.Duration("timeout", time.Minute, "exit after this long whatever happens")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *role != "forwarder" {
		log.Error("unknown role", "role", *role)
		return 2
	}
	addrs, err := parseDests(*dests)
	if err != nil {
		log.Error("bad -dests", "err", err)
		return 2
	}
	// The parent may die without closing our stdin; stop by ourselves.
	time.AfterFunc(*timeout, func() {
		log.Error("forwarder timed out", "timeout", *timeout)
		os.Exit(1)
	})
	if err := serveForwarder(*mode, addrs, os.Stdin, os.Stdout, log); err != nil {
		log.Error("forwarder failed", "err", err)
		return 1
	}
	return 0
}

func parseDests(s string) ([]netip.AddrPort, error) {
	var addrs []netip.AddrPort
	for _, f := range strings.Split(s, ",") {
		a, err := netip.ParseAddrPort(f)
		if err != nil {
			return nil, err
		}
		if !a.Addr().IsLoopback() {
			return nil, fmt.Errorf("%s is not a loopback address", a)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// serveForwarder runs one forwarder under the control protocol above.
func serveForwarder(mode string, dests []netip.AddrPort, in io.Reader, out io.Writer, log *slog.Logger) (err error) {
	conn, err := listenLoopback()
	if err != nil {
		return err
	}
	f, err := newForwarder(mode, conn, dests, log)
	if err != nil {
		conn.Close()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- f.run() }()
	running := true
	stop := func() error {
		if !running {
			return nil
		}
		running = false
		conn.Close()
		return <-done
	}
	defer func() { err = errors.Join(err, stop()) }()

	if _, err := fmt.Fprintf(out, "addr %s\n", conn.LocalAddr()); err != nil {
		return err
	}
	var startCPU float64
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		switch lines.Text() {
		case "start":
			if startCPU, err = cpuSeconds(); err != nil {
				return err
			}
			if _, err := fmt.Fprintln(out, "started"); err != nil {
				return err
			}
		case "stop":
			// Read the clock first: closing and joining is not forwarding.
			cpu, err := cpuSeconds()
			if err := errors.Join(err, stop()); err != nil {
				return err
			}
			return json.NewEncoder(out).Encode(report{forwardStats: f.stats, CPUSeconds: cpu - startCPU})
		default:
			log.Warn("unknown control command", "line", lines.Text())
		}
	}
	if err := lines.Err(); err != nil {
		return fmt.Errorf("read control input: %w", err)
	}
	return errors.New("control input closed before stop")
}

// controller is the parent's side of the control protocol.
type controller struct {
	addr netip.AddrPort // where the forwarder listens
	in   io.WriteCloser
	out  *bufio.Reader
	wait func() error // waits for the forwarder to end once in is closed
}

// launcher starts a forwarder in mode towards dests.
type launcher func(ctx context.Context, mode string, dests []netip.AddrPort) (*controller, error)

// newController reads the forwarder's address, its first line.
func newController(in io.WriteCloser, out io.Reader, wait func() error) (*controller, error) {
	c := &controller{in: in, out: bufio.NewReader(out), wait: wait}
	line, err := c.readLine()
	if err == nil {
		c.addr, err = netip.ParseAddrPort(strings.TrimPrefix(line, "addr "))
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("forwarder address: %w", err)
	}
	return c, nil
}

func (c *controller) readLine() (string, error) {
	line, err := c.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read from forwarder: %w", err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

func (c *controller) send(cmd string) (string, error) {
	if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
		return "", fmt.Errorf("send %q to forwarder: %w", cmd, err)
	}
	return c.readLine()
}

func (c *controller) start() error {
	reply, err := c.send("start")
	if err == nil && reply != "started" {
		err = fmt.Errorf("forwarder answered %q to start", reply)
	}
	return err
}

func (c *controller) stop() (report, error) {
	var r report
	reply, err := c.send("stop")
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(reply), &r); err != nil {
		return r, fmt.Errorf("forwarder report %q: %w", reply, err)
	}
	return r, nil
}

// close ends the forwarder (closing its input stops it if stop did not)
// and waits for it.
func (c *controller) close() error {
	c.in.Close()
	return c.wait()
}

// launchProcess runs the forwarder as a child process: this same program
// with roleFlag. The child exits by itself after childTimeout, and ctx
// kills it earlier.
func launchProcess(childTimeout time.Duration) launcher {
	return func(ctx context.Context, mode string, dests []netip.AddrPort) (*controller, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own executable: %w", err)
		}
		ds := make([]string, len(dests))
		for i, d := range dests {
			ds[i] = d.String()
		}
		cmd := exec.CommandContext(ctx, exe, roleFlag, "forwarder", "-mode", mode,
			"-dests", strings.Join(ds, ","), "-timeout", childTimeout.String())
		cmd.Stderr = os.Stderr
		cmd.WaitDelay = 5 * time.Second
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start forwarder process: %w", err)
		}
		return newController(in, out, cmd.Wait)
	}
}
