package host

import "testing"

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// Field 2 may hold spaces and parentheses; utime is 250, stime 50.
	line := "4242 (quartet (x) y) S 1 4242 4242 0 -1 4194560 9000 0 0 0 250 50 0 0 20 0 12 0 100 1759789056 3831 " +
		"18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0\n"
	got, err := parseStatCPU(line, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got != 3.0 {
		t.Errorf("parseStatCPU = %v, want 3.0", got)
	}
	for _, bad := range []string{"", "4242 quartet S 1", "4242 (quartet) S 1 2 3"} {
		if _, err := parseStatCPU(bad, 100); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
}

func TestParseSNMP(t *testing.T) {
	t.Parallel()
	text := "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n" +
		"Udp: 100 2 3 90 17 0\nUdpLite: InDatagrams RcvbufErrors\nUdpLite: 0 5\n"
	if got := parseSNMP(text, "Udp:", "RcvbufErrors"); got != 17 {
		t.Errorf("RcvbufErrors = %d, want 17", got)
	}
	if got := parseSNMP(text, "Udp:", "Missing"); got != 0 {
		t.Errorf("missing counter = %d, want 0", got)
	}
}

func TestLastLines(t *testing.T) {
	t.Parallel()
	if got := LastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("LastLines = %q, want %q", got, "b\nc")
	}
	if got := LastLines("a\n", 5); got != "a" {
		t.Errorf("LastLines = %q, want %q", got, "a")
	}
}

func TestFreePorts(t *testing.T) {
	t.Parallel()
	ports, err := FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 3 || ports[0] == ports[1] || ports[1] == ports[2] || ports[0] == ports[2] {
		t.Errorf("FreePorts(3) = %v, want 3 distinct ports", ports)
	}
	if port, err := FreePortRange(2); err != nil || port < 1 || port+1 > 65535 {
		t.Errorf("FreePortRange(2) = %d, %v", port, err)
	}
}
