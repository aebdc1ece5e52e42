package server_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/quartet-rtc/quartet/internal/client"
)

// TestLeavingReleasesGoroutines checks that a participant who joined,
// published, subscribed and left leaves no goroutine behind: not on the
// server, and not in the others' clients. It is not parallel so that the
// goroutine snapshot sees only this test.
func TestLeavingReleasesGoroutines(t *testing.T) {
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Alice and Bob are in a call already, so both their connections are up
	// before the snapshot; only Carol's coming and going is measured.
	aliceCnt, bobCnt := newCounter(), newCounter()
	alice := srv.join(t, ctx, "leak", "alice", aliceCnt, true)
	defer alice.Close()
	bob := srv.join(t, ctx, "leak", "bob", bobCnt, true)
	defer bob.Close()
	publishSynth(t, ctx, alice, true, true)
	publishSynth(t, ctx, bob, true, true)
	waitUntil(t, 20*time.Second, "alice and bob in a call", func() bool {
		return aliceCnt.get(bob.SID(), "video") > 30 && bobCnt.get(alice.SID(), "video") > 30
	})
	before := goleak.IgnoreCurrent()

	carolCtx, stopCarol := context.WithCancel(ctx)
	carolCnt := newCounter()
	carol := srv.join(t, carolCtx, "leak", "carol", carolCnt, true)
	wait := publishSynth(t, carolCtx, carol, true, true)
	waitUntil(t, 20*time.Second, "media both ways", func() bool {
		return aliceCnt.get(carol.SID(), "video") > 30 && carolCnt.get(alice.SID(), "video") > 30
	})
	stopCarol()
	wait()
	carol.Close()
	if _, err := alice.WaitFor(ctx, func(m client.Message) bool {
		return m.Type == "participant_left" && containsSID(m, carol.SID())
	}); err != nil {
		t.Fatal(err)
	}
	// Alice's subscriber connection renegotiates carol's tracks away.
	waitUntil(t, 10*time.Second, "carol's tracks to be gone", func() bool {
		return srv.Media().TrackCount() == 4
	})
	goleak.VerifyNone(t, before)
}
