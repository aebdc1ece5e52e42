package turn

import (
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v4"
	"golang.org/x/time/rate"
)

// guard looks at every STUN request before pion does. It adds what pion
// lacks:
//   - unauthenticated requests over UDP (which draw a 401 or a binding
//     response) get answers at a limited rate per source address, so the
//     server is a poor reflector for amplification with spoofed sources;
//   - a ChannelBind to a refused peer gets 403 Forbidden (pion answers
//     401, which makes clients retry with the same credentials);
//   - a requested LIFETIME above turn.max_allocation_lifetime is lowered
//     to it (pion ignores requests of an hour or more);
//   - an Allocate pion would mishandle gets the RFC's answer: a TCP relay
//     asked for over UDP gets 400 (RFC 6062 section 5.1; pion would grant
//     it, and a later Connect would block the UDP listener while it dials),
//     an IPv6 relay without turn.relay_ip6 gets 440 (RFC 6156; pion: 508);
//   - Refresh, CreatePermission, ChannelBind and Connect from a client
//     without an allocation get 437 (RFC 8656 section 5; pion sends
//     nothing, and the client retransmits until it gives up);
//   - a ChannelBind for a channel outside 0x4000-0x7FFF gets 400 (RFC 8656
//     section 11.2, with RFC 5766's upper bound kept for coturn's clients;
//     pion binds any number).
//
// ChannelData, indications and responses pass untouched.
type guard struct {
	creds       *Credentials
	realm       string
	policy      *Policy
	maxLifetime time.Duration
	sources     *sourceLimiter // nil for TCP and TLS: no answer is limited
	udp         bool           // the listener is UDP
	ipv6        bool           // IPv6 relays are configured
	allocs      *allocTable    // the clients pion holds an allocation for
	m           *transportMetrics
	log         *slog.Logger
}

// verdict is what to do with an incoming frame.
type verdict int

const (
	pass    verdict = iota // hand to pion (possibly rewritten)
	drop                   // discard silently
	replied                // the guard answered; discard
)

// inspect decides about frame b from src. reply sends a response to src.
// The returned frame is b or its rewrite.
func (g *guard) inspect(b []byte, src net.Addr, reply func([]byte)) ([]byte, verdict) {
	if len(b) < 20 || !stun.IsMessage(b) {
		return b, pass
	}
	if classOf(b) != stun.ClassRequest {
		return b, pass
	}
	msg := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := msg.Decode(); err != nil {
		g.m.malformed.Inc()
		return nil, drop
	}
	ip := addrPort(src).Addr().Unmap()
	if !msg.Contains(stun.AttrMessageIntegrity) {
		if !g.sources.allow(ip) {
			g.m.throttled.Inc()
			return nil, drop
		}
		return b, pass
	}
	key, ok := g.key(msg)
	if !ok || stun.MessageIntegrity(key).Check(msg) != nil {
		// pion will answer 401; that answer is rate limited like others.
		g.m.authFailures.Inc()
		if !g.sources.allow(ip) {
			g.m.throttled.Inc()
			return nil, drop
		}
		return b, pass
	}
	if code, refuse := g.refuse(msg, src); refuse {
		reply(errorResponse(msg, code, key))
		return nil, replied
	}
	if m := msg.Type.Method; m == stun.MethodAllocate || m == stun.MethodRefresh {
		if out, rewritten := g.capLifetime(msg, key); rewritten {
			return out, pass
		}
	}
	return b, pass
}

// refuse returns the error for an authenticated request the guard answers
// itself. A request that needs an allocation is checked for one first, as
// RFC 8656 section 5 orders it. ConnectionBind needs none: it comes on a
// new connection (RFC 6062 section 5.4).
func (g *guard) refuse(msg *stun.Message, src net.Addr) (stun.ErrorCode, bool) {
	switch msg.Type.Method {
	case stun.MethodAllocate:
		return g.refuseAllocate(msg)
	case stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodConnect:
		return stun.CodeAllocMismatch, !g.allocs.has(src)
	case stun.MethodChannelBind:
		if !g.allocs.has(src) {
			return stun.CodeAllocMismatch, true
		}
		return g.refuseChannelBind(msg, src)
	}
	return 0, false
}

// refuseChannelBind answers a channel number out of range with 400, then
// a peer the policy refuses with 403: malformed before forbidden, as in
// RFC 8656 section 11.2.
func (g *guard) refuseChannelBind(msg *stun.Message, src net.Addr) (stun.ErrorCode, bool) {
	if badChannel(msg) {
		return stun.CodeBadRequest, true
	}
	if peer, refused := g.refusedPeer(msg); refused {
		g.m.deniedPermission.Inc()
		g.log.Info("peer refused by relay policy", "transport", g.m.name, "client", src, "peer", peer)
		return stun.CodeForbidden, true
	}
	return 0, false
}

// The channel numbers a ChannelBind may ask for. RFC 8656 section 12
// narrows RFC 5766's 0x4000-0x7FFF to 0x4000-0x4FFF, so that ChannelData
// keeps to the first bytes RFC 7983 gives TURN where it shares a socket
// with DTLS and SRTP. A TURN server's client sockets carry only STUN and
// ChannelData, and coturn's own turnutils_uclient (Debian's 4.6) binds
// channels above 0x4FFF: refusing them failed every one of its runs with
// 400. So the RFC 5766 range is kept; what lies outside it (0x3FFF and
// below, 0x8000 and above, which pion would not even read as ChannelData)
// gets 400.
const (
	minChannel = 0x4000
	maxChannel = 0x7fff
)

// badChannel reports a CHANNEL-NUMBER outside the allowed range. pion
// binds any number; below 0x4000 or above 0x7FFF it would not even take
// the client's ChannelData for ChannelData. A missing or malformed
// attribute is left to pion, which answers 400.
func badChannel(msg *stun.Message) bool {
	v, err := msg.Get(stun.AttrChannelNumber)
	if err != nil || len(v) != 4 {
		return false
	}
	n := binary.BigEndian.Uint16(v)
	return n < minChannel || n > maxChannel
}

func classOf(b []byte) stun.MessageClass {
	var t stun.MessageType
	t.ReadValue(binary.BigEndian.Uint16(b[0:2]))
	return t.Class
}

func (g *guard) key(msg *stun.Message) ([]byte, bool) {
	var user stun.Username
	var realm stun.Realm
	if user.GetFrom(msg) != nil || realm.GetFrom(msg) != nil {
		return nil, false
	}
	_, key, ok := g.creds.Key(user.String(), realm.String())
	return key, ok
}

func (g *guard) refusedPeer(msg *stun.Message) (net.IP, bool) {
	var peer stun.XORMappedAddress // XOR-PEER-ADDRESS has the same encoding
	if err := peer.GetFromAs(msg, stun.AttrXORPeerAddress); err != nil {
		return nil, false // pion answers 400
	}
	ip, ok := netip.AddrFromSlice(peer.IP)
	return peer.IP, ok && !g.policy.PermitIP(ip)
}

// refuseAllocate returns the error for an Allocate the server cannot
// serve as asked, where pion's own answer would be wrong.
func (g *guard) refuseAllocate(msg *stun.Message) (stun.ErrorCode, bool) {
	if transport, err := msg.Get(stun.AttrRequestedTransport); err == nil && len(transport) == 4 &&
		transport[0] == protoTCP && g.udp {
		return stun.CodeBadRequest, true
	}
	if family, err := msg.Get(stun.AttrRequestedAddressFamily); err == nil && len(family) == 4 &&
		family[0] == familyIPv6 && !g.ipv6 {
		return stun.CodeAddrFamilyNotSupported, true
	}
	return 0, false
}

// Values of REQUESTED-TRANSPORT (RFC 8656) and REQUESTED-ADDRESS-FAMILY
// (RFC 6156).
const (
	protoTCP   = 6
	familyIPv6 = 0x02
)

// pionMaxLifetime is the longest LIFETIME pion honours: it replaces one
// hour or more by its default.
const pionMaxLifetime = time.Hour - time.Second

// capLifetime rewrites a LIFETIME above the maximum and signs the message
// again with the client's key.
func (g *guard) capLifetime(msg *stun.Message, key []byte) ([]byte, bool) {
	raw, err := msg.Get(stun.AttrLifetime)
	if err != nil || len(raw) != 4 {
		return nil, false
	}
	maxSecs := uint32(min(g.maxLifetime, pionMaxLifetime) / time.Second)
	if binary.BigEndian.Uint32(raw) <= maxSecs {
		return nil, false
	}
	out := &stun.Message{Type: msg.Type, TransactionID: msg.TransactionID}
	out.WriteHeader()
	for _, a := range msg.Attributes {
		switch a.Type {
		case stun.AttrMessageIntegrity, stun.AttrFingerprint:
			continue
		case stun.AttrLifetime:
			out.Add(stun.AttrLifetime, binary.BigEndian.AppendUint32(nil, maxSecs))
		default:
			out.Add(a.Type, a.Value)
		}
	}
	if err := stun.MessageIntegrity(key).AddTo(out); err != nil {
		return nil, false
	}
	if msg.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.AddTo(out); err != nil {
			return nil, false
		}
	}
	return out.Raw, true
}

// errorResponse builds an authenticated error response to req.
func errorResponse(req *stun.Message, code stun.ErrorCode, key []byte) []byte {
	res, err := stun.Build(&stun.Message{TransactionID: req.TransactionID},
		stun.NewType(req.Type.Method, stun.ClassErrorResponse),
		&stun.ErrorCodeAttribute{Code: code}, stun.MessageIntegrity(key), stun.Fingerprint)
	if err != nil {
		return nil
	}
	return res.Raw
}

// sourceLimiter bounds unauthenticated answers per source IP. The table is
// bounded too: spoofed sources cannot grow it without limit, and when it
// is full of active sources, new ones get no answer (fail closed).
type sourceLimiter struct {
	rate    rate.Limit
	burst   int
	maxSize int

	mu        sync.Mutex
	sources   map[netip.Addr]*rate.Limiter
	lastPrune time.Time
}

func newSourceLimiter(perSecond float64, burst, maxSize int) *sourceLimiter {
	return &sourceLimiter{rate: rate.Limit(perSecond), burst: burst, maxSize: maxSize,
		sources: map[netip.Addr]*rate.Limiter{}}
}

// allow reports whether ip may get one more answer. A nil limiter (TCP
// and TLS) allows everything.
func (s *sourceLimiter) allow(ip netip.Addr) bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.sources[ip]
	if l == nil {
		if len(s.sources) >= s.maxSize {
			// A full scan per new source would let a flood of spoofed
			// sources stall the UDP listener; once a second is enough.
			if now := time.Now(); now.Sub(s.lastPrune) >= time.Second {
				s.lastPrune = now
				s.prune()
			}
			if len(s.sources) >= s.maxSize {
				return false
			}
		}
		l = rate.NewLimiter(s.rate, s.burst)
		s.sources[ip] = l
	}
	return l.Allow()
}

// prune forgets sources whose bucket has refilled: they hold no state.
func (s *sourceLimiter) prune() {
	now := time.Now()
	for ip, l := range s.sources {
		if l.TokensAt(now) >= float64(s.burst) {
			delete(s.sources, ip)
		}
	}
}
