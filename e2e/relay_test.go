package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quartet-rtc/quartet/internal/testserver"
)

// TestBrowserRelay: two tabs with relay forced (?relay=1) and one TURN
// transport kept (?turn=udp or ?turn=tcp) complete a call through
// Quartet's own TURN server, in its dev-mode policy (relays refuse
// loopback peers except the SFU's exact address and port):
//   - each decodes video and receives audio from the other;
//   - on each tab both connections (publisher and subscriber) run on a
//     selected candidate pair whose local candidate is a relay candidate,
//     allocated over the wanted transport (relayProtocol), from our TURN
//     server, and the tabs gathered no other kind of local candidate;
//   - the server holds at least one allocation per connection, all on the
//     wanted transport, and relays packets both ways on it while video
//     keeps being decoded.
func TestBrowserRelay(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) { testRelayCall(t, transport) })
	}
}

func testRelayCall(t *testing.T, transport string) {
	srv := testserver.Start(t, testserver.Options{})
	if srv.TURN() == nil {
		t.Fatal("the test server runs no TURN server (turn.enabled is on by default)")
	}
	turnPort := srv.TURN().UDPAddr().Port // the same port for UDP and TCP
	other := map[string]string{"udp": "tcp", "tcp": "udp"}[transport]

	b := startBrowser(t)
	query := url.Values{"relay": {"1"}, "turn": {transport}}
	room := "e2e-relay-" + transport
	pages := []*browserPage{
		b.openPageQuery(t, srv.URL(), room, "Alice", query),
		b.openPageQuery(t, srv.URL(), room, "Bob", query),
	}
	sids := map[*browserPage]string{}
	for _, p := range pages {
		sids[p] = waitJoined(t, p)
		t.Logf("%s joined as %s", p.name, sids[p])
	}
	// The page handed the SDK the forced policy and narrowed the server's
	// ICE servers to one turn: URL of the wanted transport.
	for _, p := range pages {
		cfg := evalOK[string](t, p, "RTCConfiguration", `(() => {
  const room = window.quartet.room;
  return JSON.stringify(['publisherPC', 'subscriberPC'].map((k) => {
    const c = room[k].getConfiguration();
    return { policy: c.iceTransportPolicy, urls: c.iceServers.flatMap((s) => [s.urls].flat()) };
  }));
})()`)
		want := fmt.Sprintf(`{"policy":"relay","urls":["turn:127.0.0.1:%d?transport=%s"]}`, turnPort, transport)
		if cfg != "["+want+","+want+"]" {
			t.Fatalf("%s: publisher and subscriber configurations are %s, want each %s", p.name, cfg, want)
		}
	}

	waitForMedia(t, pages, sids)

	for _, p := range pages {
		checkRelayed(t, p, transport, turnPort)
	}

	// Server side: one allocation per connection at least (2 tabs x
	// publisher and subscriber), every one on the wanted transport.
	if n := srv.TURN().Allocations(); n < 4 {
		t.Fatalf("TURN server holds %d allocations during the call, want at least 4 (2 tabs x 2 connections)", n)
	}
	m := scrapeMetrics(t, srv.URL())
	t.Logf("TURN: %d allocations; metrics: %s", srv.TURN().Allocations(), m.summary())
	if n := m.get("quartet_turn_allocations", "transport", transport); n < 4 {
		t.Fatalf("quartet_turn_allocations{transport=%q} = %v, want at least 4", transport, n)
	}
	if n := m.get("quartet_turn_allocations", "transport", other); n != 0 {
		t.Fatalf("quartet_turn_allocations{transport=%q} = %v, want 0: the tabs were told to use only %s", other, n, transport)
	}
	// Media keeps flowing through the relays: both directions' packet
	// counters grow while each side decodes more video.
	toPeer := m.get("quartet_turn_relayed_packets_total", "transport", transport, "direction", "to_peer")
	toClient := m.get("quartet_turn_relayed_packets_total", "transport", transport, "direction", "to_client")
	waitVideoIncrease(t, pages[0], sids[pages[1]], 10, mediaTimeout)
	waitVideoIncrease(t, pages[1], sids[pages[0]], 10, mediaTimeout)
	m = scrapeMetrics(t, srv.URL())
	toPeer2 := m.get("quartet_turn_relayed_packets_total", "transport", transport, "direction", "to_peer")
	toClient2 := m.get("quartet_turn_relayed_packets_total", "transport", transport, "direction", "to_client")
	t.Logf("TURN %s relayed packets: to_peer %v -> %v, to_client %v -> %v", transport, toPeer, toPeer2, toClient, toClient2)
	if toPeer2 <= toPeer || toClient2 <= toClient {
		t.Fatalf("TURN %s relayed packets did not grow while video was decoded: to_peer %v -> %v, to_client %v -> %v",
			transport, toPeer, toPeer2, toClient, toClient2)
	}
	if n := m.get("quartet_turn_relayed_packets_total", "transport", other); n != 0 {
		t.Fatalf("quartet_turn_relayed_packets_total{transport=%q} = %v, want 0", other, n)
	}
}

// selectedPairsJS describes, for the publisher and subscriber connections,
// the selected candidate pair (the transport's selectedCandidatePairId, or
// else a nominated succeeded pair) and every local candidate's type.
const selectedPairsJS = `(async () => {
  const room = window.quartet.room;
  const out = {};
  for (const k of ['publisherPC', 'subscriberPC']) {
    const stats = await room[k].getStats();
    let pair = null;
    const localTypes = [];
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId) || pair;
      if (s.type === 'local-candidate') localTypes.push(s.candidateType);
    });
    if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    const cand = (id) => {
      const c = id && stats.get(id);
      return c ? { type: c.candidateType, protocol: c.protocol, relayProtocol: c.relayProtocol || '',
        address: c.address || c.ip || '', port: c.port, url: c.url || '' } : null;
    };
    out[k] = { state: pair ? pair.state : '', nominated: !!(pair && pair.nominated),
      local: pair ? cand(pair.localCandidateId) : null, remote: pair ? cand(pair.remoteCandidateId) : null, localTypes };
  }
  return out;
})()`

type candidateStats struct {
	Type          string `json:"type"`
	Protocol      string `json:"protocol"`
	RelayProtocol string `json:"relayProtocol"`
	Address       string `json:"address"`
	Port          int    `json:"port"`
	URL           string `json:"url"`
}

type pairStats struct {
	State      string          `json:"state"`
	Nominated  bool            `json:"nominated"`
	Local      *candidateStats `json:"local"`
	Remote     *candidateStats `json:"remote"`
	LocalTypes []string        `json:"localTypes"`
}

// checkRelayed asserts that both of p's connections run through a relay
// candidate allocated on our TURN server over transport.
func checkRelayed(t *testing.T, p *browserPage, transport string, turnPort int) {
	t.Helper()
	var pairs map[string]pairStats
	// Media is flowing, so each connection has a selected pair; the
	// getStats view of it may lag by a moment.
	deadline := time.Now().Add(uiTimeout)
	for {
		var err error
		pairs, err = evalJS[map[string]pairStats](p, selectedPairsJS)
		ready := err == nil
		for _, k := range []string{"publisherPC", "subscriberPC"} {
			ready = ready && pairs[k].State == "succeeded" && pairs[k].Local != nil && pairs[k].Remote != nil
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no succeeded selected candidate pair on both connections after %v: %+v (%v)", p.name, uiTimeout, pairs, err)
		}
		time.Sleep(pollInterval)
	}
	for _, k := range []string{"publisherPC", "subscriberPC"} {
		pair := pairs[k]
		l, r := pair.Local, pair.Remote
		t.Logf("%s %s: selected pair (nominated %v): local %s %s:%d relayProtocol=%s url=%s -> remote %s %s %s:%d",
			p.name, k, pair.Nominated, l.Type, l.Address, l.Port, l.RelayProtocol, l.URL, r.Type, r.Protocol, r.Address, r.Port)
		if l.Type != "relay" {
			t.Fatalf("%s %s: selected local candidate is %q, want relay", p.name, k, l.Type)
		}
		if l.RelayProtocol != transport {
			t.Fatalf("%s %s: selected relay candidate was allocated over %q, want %q", p.name, k, l.RelayProtocol, transport)
		}
		// The relay address is on our TURN server (dev mode: 127.0.0.1),
		// and the allocation came from its URL.
		if l.Address != "127.0.0.1" {
			t.Fatalf("%s %s: relay address %s, want 127.0.0.1 (turn.relay_ip)", p.name, k, l.Address)
		}
		if wantURL := fmt.Sprintf("turn:127.0.0.1:%d?transport=%s", turnPort, transport); l.URL != "" && l.URL != wantURL {
			t.Fatalf("%s %s: relay candidate from %q, want %q", p.name, k, l.URL, wantURL)
		}
		// The peer is the SFU on loopback, over UDP from the relay.
		if r.Address != "127.0.0.1" || r.Protocol != "udp" {
			t.Fatalf("%s %s: remote candidate %s %s:%d, want the SFU on udp 127.0.0.1", p.name, k, r.Protocol, r.Address, r.Port)
		}
		if r.Port == turnPort {
			t.Fatalf("%s %s: remote candidate is the TURN server's own port %d", p.name, k, turnPort)
		}
		for _, typ := range pair.LocalTypes {
			if typ != "relay" {
				t.Fatalf("%s %s: gathered a %q local candidate with relay forced (all: %v)", p.name, k, typ, pair.LocalTypes)
			}
		}
	}
}

// ================================================================ metrics

// metricSamples are the samples of a Prometheus text exposition.
type metricSamples []metricSample

type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrapeMetrics reads the server's /metrics.
func scrapeMetrics(t *testing.T, baseURL string) metricSamples {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), evalTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain") // the text format, not protobuf
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		t.Fatalf("GET /metrics: %s: %s", resp.Status, body)
	}
	var out metricSamples
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// name{k="v",...} value, or name value. Label values here never
		// hold commas, quotes or braces.
		head, val, ok := strings.Cut(line, " ")
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			head, val, ok = line[:i+1], strings.TrimSpace(line[i+1:]), true
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(val)[0], 64)
		if err != nil {
			continue
		}
		s := metricSample{name: head, labels: map[string]string{}, value: v}
		if name, labels, found := strings.Cut(head, "{"); found {
			s.name = name
			for _, kv := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					s.labels[k] = strings.Trim(v, `"`)
				}
			}
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return out
}

// get sums the samples of name whose labels match the key, value pairs.
func (m metricSamples) get(name string, labelPairs ...string) float64 {
	sum := 0.0
outer:
	for _, s := range m {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(labelPairs); i += 2 {
			if s.labels[labelPairs[i]] != labelPairs[i+1] {
				continue outer
			}
		}
		sum += s.value
	}
	return sum
}

// summary lists the nonzero quartet_turn_* samples.
func (m metricSamples) summary() string {
	var parts []string
	for _, s := range m {
		if strings.HasPrefix(s.name, "quartet_turn_") && s.value != 0 {
			parts = append(parts, fmt.Sprintf("%s%v=%v", s.name, s.labels, s.value))
		}
	}
	return strings.Join(parts, " ")
}
