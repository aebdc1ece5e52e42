package e2e

import (
	"fmt"
	"testing"
)

// TestBrowserSelectiveSubscription: a Room made with the SDK's
// autoSubscribe: false receives nothing until it subscribes, then only the
// tracks it named, and an unsubscribed track goes away.
func TestBrowserSelectiveSubscription(t *testing.T) {
	baseURL := startServer(t)
	const room = "e2e-subscribe"
	pages, sids := joinAll(t, baseURL, room, "Alice", "Bob")
	alice, bob := pages[0], pages[1]
	waitForMedia(t, pages, sids)

	// A second, manual participant in Bob's tab, straight from the SDK.
	_, err := evalJS[bool](bob, fmt.Sprintf(`(async () => {
  const { Room } = await import('/sdk/quartet.js');
  const res = await fetch('/api/dev/token?' + new URLSearchParams({ room: %s, identity: 'watcher', name: 'Watcher' }));
  const { token } = await res.json();
  window.watcher = new Room({ token, autoSubscribe: false });
  await window.watcher.connect();
  return true;
})()`, jsString(room)))
	if err != nil {
		t.Fatalf("watcher: connect: %v", err)
	}
	t.Cleanup(func() { _, _ = evalJS[bool](bob, `window.watcher.leave(), true`) })
	aliceSid, bobSid := jsString(sids[alice]), jsString(sids[bob])
	tracksOf := func(sid string) string {
		return fmt.Sprintf(`window.watcher.participants.get(%s).tracks`, sid)
	}
	waitJS(t, bob, uiTimeout, "the watcher to know both publishers' tracks",
		fmt.Sprintf(`%s.length === 2 && %s.length === 2`, tracksOf(aliceSid), tracksOf(bobSid)))
	if n, err := evalJS[int](bob, `window.watcher.remoteTracks.length`); err != nil || n != 0 {
		t.Fatalf("watcher has %d remote tracks before subscribing (%v)", n, err)
	}

	if _, err := evalJS[bool](bob, fmt.Sprintf(`window.watcher.subscribe(%s.map((t) => t.sid)), true`, tracksOf(aliceSid))); err != nil {
		t.Fatal(err)
	}
	onlyAlice := func(n int) string {
		return fmt.Sprintf(`(() => {
  const rts = window.watcher.remoteTracks;
  return rts.length === %d && rts.every((rt) => rt.participantSid === %s && rt.track.readyState === 'live');
})()`, n, aliceSid)
	}
	waitJS(t, bob, mediaTimeout, "the watcher to receive Alice's two tracks, and only those", onlyAlice(2))

	video := fmt.Sprintf(`%s.find((t) => t.kind === 'video').sid`, tracksOf(aliceSid))
	if _, err := evalJS[bool](bob, fmt.Sprintf(`window.watcher.unsubscribe(%s), true`, video)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, bob, mediaTimeout, "Alice's video to leave the watcher", onlyAlice(1)+
		` && window.watcher.remoteTracks[0].kind === 'audio'`)
}
