package turn

import (
	"encoding/binary"
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
//     to it (pion only caps at one hour).
//
// ChannelData, indications and responses pass untouched.
type guard struct {
	creds       *Credentials
	realm       string
	policy      *Policy
	maxLifetime time.Duration
	sources     *sourceLimiter
	m           *transportMetrics
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
	switch msg.Type.Method {
	case stun.MethodChannelBind:
		if g.refusedPeer(msg) {
			g.m.deniedPermission.Inc()
			reply(errorResponse(msg, stun.CodeForbidden, key))
			return nil, replied
		}
	case stun.MethodAllocate, stun.MethodRefresh:
		if out, rewritten := g.capLifetime(msg, key); rewritten {
			return out, pass
		}
	}
	return b, pass
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

func (g *guard) refusedPeer(msg *stun.Message) bool {
	var peer stun.XORMappedAddress // XOR-PEER-ADDRESS has the same encoding
	if err := peer.GetFromAs(msg, stun.AttrXORPeerAddress); err != nil {
		return false // pion answers 400
	}
	ip, ok := netip.AddrFromSlice(peer.IP)
	return ok && !g.policy.PermitIP(ip)
}

// capLifetime rewrites a LIFETIME above the maximum and signs the message
// again with the client's key.
func (g *guard) capLifetime(msg *stun.Message, key []byte) ([]byte, bool) {
	raw, err := msg.Get(stun.AttrLifetime)
	if err != nil || len(raw) != 4 {
		return nil, false
	}
	maxSecs := uint32(g.maxLifetime / time.Second)
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

	mu      sync.Mutex
	sources map[netip.Addr]*rate.Limiter
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
			s.prune()
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
