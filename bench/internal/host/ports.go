package host

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// FreePorts returns n distinct ports free on 127.0.0.1 for both UDP and
// TCP at the time of the call. A server given one of them may still lose
// the race to another program; benchmarks accept that.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var closers []io.Closer
	// Hold every port until all are found, so none is returned twice.
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for tries := 0; len(ports) < n && tries < 50; tries++ {
		t, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free ports: %w", err)
		}
		closers = append(closers, t)
		port := t.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken for UDP: try another
		}
		closers = append(closers, u)
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, errors.New("no free ports on 127.0.0.1")
	}
	return ports, nil
}

// FreePortRange returns the first of n consecutive ports free on 127.0.0.1
// for UDP and TCP, for servers that also listen on the ports after the one
// they are given (or take a range, like a TURN server's relay ports).
func FreePortRange(n int) (int, error) {
	for range 50 {
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("free port range: %w", err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		ok := port+n-1 <= 65535
		closers := []io.Closer{u}
		for p := port; ok && p < port+n; p++ {
			if p != port {
				if c, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
					closers = append(closers, c)
				} else {
					ok = false
				}
			}
			if t, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
				closers = append(closers, t)
			} else {
				ok = false
			}
		}
		for _, c := range closers {
			_ = c.Close()
		}
		if ok {
			return port, nil
		}
	}
	return 0, errors.New("no free port range on 127.0.0.1")
}
