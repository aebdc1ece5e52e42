// Package logsample keeps log lines that outside input can repeat at will
// (a malformed packet, a client's error) from flooding the log: each kind
// of line, named by a key, is written at most a burst at once and then at
// a slow steady rate, and the next line written says how many were left
// out.
package logsample

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults for New: the first 10 lines of a kind are written, then one
// every 10 s while they keep coming. A flood of 10,000 identical lines a
// second then costs 10 lines, then 0.1 a second.
const (
	DefaultBurst = 10
	DefaultEvery = 10 * time.Second
)

// maxKeys bounds the memory a stream of ever-new keys can take; beyond it
// new keys share one allowance.
const maxKeys = 512

// overflowKey is the allowance of keys beyond maxKeys.
const overflowKey = "\x00overflow"

// Sampler decides which lines to write. It is safe for concurrent use.
type Sampler struct {
	burst int
	every time.Duration

	mu        sync.Mutex
	keys      map[string]*allowance
	lastSweep time.Time // of forgetIdle
}

type allowance struct {
	tokens     *rate.Limiter
	suppressed int // since the last line written
}

// New returns a Sampler that writes burst lines of each key at once, then
// one per every.
func New(burst int, every time.Duration) *Sampler {
	return &Sampler{burst: burst, every: every, keys: map[string]*allowance{}}
}

// Allow reports whether a line of kind key may be written at now and, if
// so, how many lines of that kind were suppressed since the last one
// written.
func (s *Sampler) Allow(key string, now time.Time) (ok bool, suppressed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.allowance(key, now)
	if !a.tokens.AllowN(now, 1) {
		a.suppressed++
		return false, 0
	}
	suppressed, a.suppressed = a.suppressed, 0
	return true, suppressed
}

// allowance returns key's allowance, making room for it if needed.
func (s *Sampler) allowance(key string, now time.Time) *allowance {
	if a, ok := s.keys[key]; ok {
		return a
	}
	if len(s.keys) >= maxKeys && now.Sub(s.lastSweep) >= s.every {
		s.forgetIdle(now) // not on every new key: a sweep costs maxKeys steps
	}
	if len(s.keys) >= maxKeys {
		key = overflowKey
		if a, ok := s.keys[key]; ok {
			return a
		}
	}
	a := &allowance{tokens: rate.NewLimiter(rate.Every(s.every), s.burst)}
	s.keys[key] = a
	return a
}

// forgetIdle drops the allowances that are full again and owe no
// suppressed count: forgetting them changes nothing.
func (s *Sampler) forgetIdle(now time.Time) {
	s.lastSweep = now
	for k, a := range s.keys {
		if a.suppressed == 0 && a.tokens.TokensAt(now) >= float64(s.burst) {
			delete(s.keys, k)
		}
	}
}
