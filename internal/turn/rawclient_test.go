package turn

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// rawClient speaks STUN/TURN by hand, so tests can send what the pion
// client would not (IPv4-mapped peers, huge lifetimes, no integrity) and
// read the exact response.
type rawClient struct {
	t      testing.TB
	conn   net.Conn
	stream bool // TCP or TLS: frames are read from a byte stream

	username, password string
	realm              stun.Realm
	nonce              stun.Nonce
	key                stun.MessageIntegrity
}

// dialRaw connects to addr over network ("udp4" or "tcp4") from 127.0.0.1
// (or from local, if valid) with credentials for user.
func dialRaw(t testing.TB, network string, addr net.Addr, user string) *rawClient {
	t.Helper()
	return dialRawFrom(t, network, addr, user, netip.Addr{})
}

func dialRawFrom(t testing.TB, network string, addr net.Addr, user string, local netip.Addr) *rawClient {
	t.Helper()
	var d net.Dialer
	if local.IsValid() {
		if network == "udp4" {
			d.LocalAddr = &net.UDPAddr{IP: local.AsSlice()}
		} else {
			d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
		}
	}
	conn, err := d.Dial(network, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	cred := testCreds().Mint(user)
	return &rawClient{t: t, conn: conn, stream: network != "udp4", username: cred.Username, password: cred.Password}
}

func (c *rawClient) send(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read returns the next STUN message from the server, or an error at the
// deadline or when the server closes the connection.
func (c *rawClient) read(timeout time.Duration) (*stun.Message, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	var raw []byte
	if c.stream {
		hdr := make([]byte, 20)
		if _, err := io.ReadFull(c.conn, hdr); err != nil {
			return nil, err
		}
		raw = make([]byte, 20+int(binary.BigEndian.Uint16(hdr[2:4])))
		copy(raw, hdr)
		if _, err := io.ReadFull(c.conn, raw[20:]); err != nil {
			return nil, err
		}
	} else {
		buf := make([]byte, 1500)
		n, err := c.conn.Read(buf)
		if err != nil {
			return nil, err
		}
		raw = buf[:n]
	}
	m := &stun.Message{Raw: raw}
	if err := m.Decode(); err != nil {
		return nil, errNotSTUN
	}
	return m, nil
}

var errNotSTUN = errors.New("not a STUN message")

// roundTrip sends m and returns the response with its transaction ID, or
// nil if none arrives.
func (c *rawClient) roundTrip(m *stun.Message) *stun.Message {
	c.t.Helper()
	c.send(m.Raw)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		res, err := c.read(time.Until(deadline))
		if errors.Is(err, errNotSTUN) {
			continue
		}
		if err != nil {
			return nil // timeout, or the server closed the connection
		}
		if res.TransactionID == m.TransactionID {
			return res
		}
	}
	return nil
}

func build(t testing.TB, setters ...stun.Setter) *stun.Message {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{stun.TransactionID}, setters...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// requestedTransport is REQUESTED-TRANSPORT with protocol (17 = UDP, 6 = TCP).
func requestedTransport(protocol byte) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{protocol, 0, 0, 0}}
}

func lifetime(secs uint32) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrLifetime, Value: binary.BigEndian.AppendUint32(nil, secs)}
}

func channelNumber(n uint16) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(n >> 8), byte(n), 0, 0}}
}

const magicCookie = 0x2112A442 // RFC 5389

// peerAddress is XOR-PEER-ADDRESS for ap, encoded exactly as given: an
// IPv4-mapped address keeps its 16-byte IPv6 form, which pion/stun's own
// encoder would shorten to IPv4.
type peerAddress netip.AddrPort

func (p peerAddress) AddTo(m *stun.Message) error {
	ap := netip.AddrPort(p)
	family, ip := uint16(1), ap.Addr().AsSlice()
	if ap.Addr().Is6() {
		family = 2
	}
	v := make([]byte, 4+len(ip))
	binary.BigEndian.PutUint16(v[0:2], family)
	binary.BigEndian.PutUint16(v[2:4], ap.Port()^uint16(magicCookie>>16))
	var xor [16]byte
	binary.BigEndian.PutUint32(xor[0:4], magicCookie)
	copy(xor[4:], m.TransactionID[:])
	for i := range ip {
		v[4+i] = ip[i] ^ xor[i]
	}
	m.Add(stun.AttrXORPeerAddress, v)
	return nil
}

func peer(s string) peerAddress { return peerAddress(netip.MustParseAddrPort(s)) }

func udpPeerAddr(a net.Addr) peerAddress { return peerAddress(addrPort(a)) }

// start sends an unauthenticated Allocate and keeps the realm and nonce of
// the 401 answer. It returns false if no answer came.
func (c *rawClient) start() bool {
	c.t.Helper()
	res := c.roundTrip(build(c.t, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedTransport(17)))
	if res == nil {
		return false
	}
	if code := errorCode(res); code != stun.CodeUnauthorized {
		c.t.Fatalf("unauthenticated Allocate: code %d, want 401", code)
	}
	if err := c.realm.GetFrom(res); err != nil {
		c.t.Fatalf("401 without REALM: %v", err)
	}
	if err := c.nonce.GetFrom(res); err != nil {
		c.t.Fatalf("401 without NONCE: %v", err)
	}
	c.key = stun.NewLongTermIntegrity(c.username, c.realm.String(), c.password)
	return true
}

// authed builds an authenticated request; key is the client's unless
// another is given.
func (c *rawClient) authed(method stun.Method, key stun.MessageIntegrity, attrs ...stun.Setter) *stun.Message {
	c.t.Helper()
	if key == nil {
		key = c.key
	}
	setters := append([]stun.Setter{stun.NewType(method, stun.ClassRequest)}, attrs...)
	setters = append(setters, stun.NewUsername(c.username), c.realm, c.nonce, key, stun.Fingerprint)
	return build(c.t, setters...)
}

// request sends an authenticated request and returns the response; it
// fails the test if none arrives.
func (c *rawClient) request(method stun.Method, attrs ...stun.Setter) *stun.Message {
	c.t.Helper()
	for range 2 {
		res := c.roundTrip(c.authed(method, nil, attrs...))
		if res == nil {
			c.t.Fatalf("no response to %v", method)
		}
		if errorCode(res) == stun.CodeStaleNonce {
			_ = c.nonce.GetFrom(res)
			continue
		}
		return res
	}
	c.t.Fatalf("%v: nonce stale twice", method)
	return nil
}

func (c *rawClient) allocate(attrs ...stun.Setter) *stun.Message {
	c.t.Helper()
	return c.request(stun.MethodAllocate, append([]stun.Setter{requestedTransport(17)}, attrs...)...)
}

// errorCode is the response's error code, or 0 for a success response.
func errorCode(m *stun.Message) stun.ErrorCode {
	if m.Type.Class != stun.ClassErrorResponse {
		return 0
	}
	var e stun.ErrorCodeAttribute
	if err := e.GetFrom(m); err != nil {
		return -1
	}
	return e.Code
}

func lifetimeOf(t testing.TB, m *stun.Message) uint32 {
	t.Helper()
	v, err := m.Get(stun.AttrLifetime)
	if err != nil || len(v) != 4 {
		t.Fatalf("%v has no LIFETIME", m)
	}
	return binary.BigEndian.Uint32(v)
}

// relayedAddr is the XOR-RELAYED-ADDRESS of an Allocate success response.
func relayedAddr(t testing.TB, m *stun.Message) *net.UDPAddr {
	t.Helper()
	var a stun.XORMappedAddress
	if err := a.GetFromAs(m, stun.AttrXORRelayedAddress); err != nil {
		t.Fatalf("no XOR-RELAYED-ADDRESS in %v: %v", m, err)
	}
	return &net.UDPAddr{IP: a.IP, Port: a.Port}
}

// channelData frames payload for channel n (RFC 8656 section 12.4).
func channelData(n uint16, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, n)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
