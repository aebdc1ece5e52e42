// Package e2e runs the real web app (web/) in headless Chromium against an
// in-process Quartet server. All traffic goes to 127.0.0.1: the server binds
// random loopback ports, its ICE is loopback-only (the default config) so it
// ignores the browser's other host candidates, and Chromium is allowed
// loopback candidates.
//
// Run with: go test -race -count=1 -v ./e2e/
// The browser is QUARTET_CHROMIUM, else /usr/bin/chromium, else chromium in
// PATH. Without one the tests skip, except with CI=true where they fail.
// QUARTET_TEST_LOG=1 prints the server's debug log.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/quartet-rtc/quartet/internal/testserver"
)

// Deadlines are generous failure bounds for a loaded 2-core machine running
// the server under -race, not performance assertions.
const (
	joinTimeout  = 30 * time.Second
	mediaTimeout = 45 * time.Second
	uiTimeout    = 15 * time.Second
	evalTimeout  = 10 * time.Second // one round trip to a tab
	pollInterval = 250 * time.Millisecond
)

// ================================================================ server

// startServer runs a dev-mode server with the default config on random
// loopback ports until the test ends. It returns the base URL.
func startServer(t *testing.T) string {
	t.Helper()
	return testserver.Start(t, testserver.Options{}).URL()
}

// =============================================================== browser

// chromiumPath finds the browser, or skips the test (fails it on CI, where a
// silently skipped end-to-end test would hide a broken setup).
func chromiumPath(t *testing.T) string {
	t.Helper()
	// An explicit setting that points nowhere is a mistake, never a skip.
	if p := os.Getenv("QUARTET_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("QUARTET_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	const msg = "chromium not found (set QUARTET_CHROMIUM, or install it: apt-get install -y chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// lockedBuffer collects the browser's stdout and stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// browser is one headless Chromium; its tabs are the participants.
type browser struct {
	ctx    context.Context
	output *lockedBuffer // Chromium's stdout and stderr
	pages  []*browserPage
}

// startBrowser launches headless Chromium with a fresh profile. At the end
// of the test it dumps every page if the test failed (while all pages are
// still open, so each snapshot shows the full room), then closes the browser.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	execPath := chromiumPath(t)
	// Made before the browser's cleanup is registered, so it is removed
	// after the browser has exited.
	profile := t.TempDir()
	b := &browser{output: &lockedBuffer{}}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(b.output),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true), // containers and root have no user namespaces
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Fake camera and microphone, granted without a prompt.
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		// The server only offers loopback candidates.
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Real host candidates rather than mDNS names the server cannot resolve.
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	b.ctx = browserCtx
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range b.pages {
				p.dump(t)
			}
			t.Logf("chromium output (tail):\n%s", tail(b.output.String(), 3000))
		}
		for _, p := range b.pages {
			p.close()
		}
		// Close gracefully, but never wait long for it.
		ctx, cancel := context.WithTimeout(browserCtx, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(ctx)
		cancelBrowser()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not have a timeout (that
	// would bound the browser's life), so startup is bounded by chromedp's
	// own read timeout for the browser's first answer.
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start chromium (%s): %v\n%s", execPath, err, tail(b.output.String(), 3000))
	}
	return b
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// smallVideoScript asks the fake camera for a small, slow video instead of
// the app's 1280x720@30: a 2-core machine encodes and decodes it in several
// tabs at once, and the test is about media flowing, not quality.
const smallVideoScript = `(() => {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) return;
  const getUserMedia = md.getUserMedia.bind(md);
  md.getUserMedia = (constraints) => {
    if (constraints && constraints.video) {
      constraints = { ...constraints, video: { width: { ideal: 320 }, height: { ideal: 180 }, frameRate: { ideal: 15 } } };
    }
    return getUserMedia(constraints);
  };
})();`

// ================================================================== pages

// browserPage is one tab of the app: one participant. Each tab has its own
// sessionStorage, hence its own identity.
type browserPage struct {
	name  string
	ctx   context.Context
	close context.CancelFunc

	mu   sync.Mutex
	logs []string // console messages and exceptions, printed on failure
}

// openPage opens a tab on the room page as name and records its console.
// The tab lives until the browser closes.
func (b *browser) openPage(t *testing.T, baseURL, room, name string) *browserPage {
	t.Helper()
	return b.openPageQuery(t, baseURL, room, name, nil)
}

// openPageQuery is openPage with more room page URL parameters.
func (b *browser) openPageQuery(t *testing.T, baseURL, room, name string, query url.Values) *browserPage {
	t.Helper()
	return b.openPageScript(t, baseURL, room, name, query, smallVideoScript)
}

// openPageScript is openPageQuery with script, instead of smallVideoScript,
// run in the page before its own.
func (b *browser) openPageScript(t *testing.T, baseURL, room, name string, query url.Values, script string) *browserPage {
	t.Helper()
	// The browser's cleanup closes the tab, after dumping it on failure.
	ctx, cancel := chromedp.NewContext(b.ctx)
	p := &browserPage{name: name, ctx: ctx, close: cancel}
	b.pages = append(b.pages, p)

	// Subscribe before navigating so that no early message is lost; the
	// goroutine ends when the tab's context is canceled.
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			line := m.String()
			if m.URL != "" {
				line += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
			}
			p.addLog(line)
		}
	}()

	q := url.Values{"name": {name}}
	for k, v := range query {
		q[k] = v
	}
	pageURL := fmt.Sprintf("%s/r/%s?%s", baseURL, url.PathEscape(room), q.Encode())
	addScript := chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, page.AddScriptToEvaluateOnNewDocument,
			page.AddScriptToEvaluateOnNewDocumentParams{Source: script})
		return err
	})
	stepCtx, stepCancel := context.WithTimeout(ctx, joinTimeout)
	defer stepCancel()
	if err := chromedp.Do(stepCtx, addScript, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("%s: open %s: %v", name, pageURL, err)
	}
	return p
}

func (p *browserPage) addLog(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logs = append(p.logs, line)
}

// dump logs the page's console and a snapshot of its state, for failures.
func (p *browserPage) dump(t *testing.T) {
	p.mu.Lock()
	logs := strings.Join(p.logs, "\n  ")
	p.mu.Unlock()
	t.Logf("%s: console:\n  %s", p.name, logs)
	snap, err := evalJS[string](p, snapshotJS)
	if err != nil {
		t.Logf("%s: snapshot: %v", p.name, err)
		return
	}
	t.Logf("%s: snapshot: %s", p.name, snap)
}

// snapshotJS describes what a page shows and what the SDK knows.
const snapshotJS = `(() => {
  const room = window.quartet && window.quartet.room;
  const banner = document.getElementById('banner');
  return JSON.stringify({
    state: document.body.dataset.state,
    connection: document.getElementById('connection-state').textContent,
    banner: banner && !banner.hidden ? document.getElementById('banner-text').textContent : '',
    self: room && room.localParticipant ? room.localParticipant.sid : null,
    ice: room ? { publisher: room.publisherPC && room.publisherPC.iceConnectionState,
                  subscriber: room.subscriberPC && room.subscriberPC.iceConnectionState } : null,
    participants: room ? [...room.participants.values()].map((p) => ({ sid: p.sid, name: p.name,
      tracks: p.tracks.map((t) => t.source + (t.muted ? '(muted)' : '')) })) : [],
    remoteTracks: room ? room.remoteTracks.map((r) => ({ mid: r.mid, participantSid: r.participantSid,
      kind: r.kind, readyState: r.track.readyState, muted: r.track.muted })) : [],
    tiles: [...document.querySelectorAll('.tile')].map((t) => (t.dataset.participantSid || '?') + '/' + (t.dataset.source || 'main')),
  });
})()`

// evalJS evaluates expr in the page (awaiting a promise if it returns one)
// and decodes the result.
func evalJS[T any](p *browserPage, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, evalTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// waitJS polls a boolean expression until it is true. Evaluation errors
// (for instance while the page is still loading) are retried and reported
// if the deadline passes.
func waitJS(t *testing.T, p *browserPage, timeout time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := evalJS[bool](p, expr)
		if err == nil && ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out after %v waiting for %s (last error: %v)", p.name, timeout, what, lastErr)
		}
		time.Sleep(pollInterval)
	}
}

// click sends a real mouse click to the element matching a CSS selector.
func click(t *testing.T, p *browserPage, selector string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector))); err != nil {
		t.Fatalf("%s: click %s: %v", p.name, selector, err)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitJoined waits until the app reports it joined, and returns the local
// participant's sid.
func waitJoined(t *testing.T, p *browserPage) string {
	t.Helper()
	waitJS(t, p, joinTimeout, "body[data-state=joined]", `document.body.dataset.state === 'joined'`)
	sid, err := evalJS[string](p, `window.quartet.room.localParticipant.sid`)
	if err != nil || sid == "" {
		t.Fatalf("%s: local participant sid: %q, %v", p.name, sid, err)
	}
	return sid
}

// joinAll opens one page per name in room and waits until each has joined.
// It returns the pages and each page's participant sid.
func joinAll(t *testing.T, baseURL, room string, names ...string) ([]*browserPage, map[*browserPage]string) {
	t.Helper()
	b := startBrowser(t)
	var pages []*browserPage
	for _, name := range names {
		pages = append(pages, b.openPage(t, baseURL, room, name))
	}
	sids := map[*browserPage]string{}
	for _, p := range pages {
		sids[p] = waitJoined(t, p)
		t.Logf("%s joined as %s", p.name, sids[p])
	}
	return pages, sids
}

// ================================================================== media

// mediaStatsJS sums the subscriber connection's inbound-rtp stats per
// publishing participant. An inbound-rtp stat names its transceiver's mid,
// and the SDK's remoteTracks map each mid to a participant (from the
// server's mid -> track map in the subscriber offer), so mid is the key;
// trackIdentifier is the fallback for a stat without mid.
const mediaStatsJS = `(async () => {
  const room = window.quartet && window.quartet.room;
  const out = { video: {}, audio: {}, unmapped: [] };
  if (!room || !room.subscriberPC) return out;
  const byMid = new Map(), byTrackId = new Map();
  for (const rt of room.remoteTracks) {
    byMid.set(rt.mid, rt.participantSid);
    byTrackId.set(rt.track.id, rt.participantSid);
  }
  const stats = await room.subscriberPC.getStats();
  stats.forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    const sid = (s.mid != null && byMid.get(s.mid)) || byTrackId.get(s.trackIdentifier);
    if (!sid) { out.unmapped.push(s.kind + ' mid=' + s.mid); return; }
    if (s.kind === 'video') {
      out.video[sid] = (out.video[sid] || 0) + (s.framesDecoded || 0);
    } else if (s.kind === 'audio') {
      out.audio[sid] = (out.audio[sid] || 0) + Math.max(s.packetsReceived || 0, s.totalSamplesReceived || 0);
    }
  });
  return out;
})()`

type mediaStats struct {
	Video    map[string]float64 `json:"video"`    // participant sid -> frames decoded
	Audio    map[string]float64 `json:"audio"`    // participant sid -> packets (or samples) received
	Unmapped []string           `json:"unmapped"` // inbound-rtp stats of no known remote track
}

// checkMedia reports whether the page gets video frames and audio from every
// sid in others and from nobody else. wrong is set for a result that waiting
// cannot fix (media attributed to someone who should not send it).
func checkMedia(st mediaStats, others []string) (ok bool, wrong bool, why string) {
	for sid, n := range st.Video {
		if n > 0 && !slices.Contains(others, sid) {
			return false, true, fmt.Sprintf("decodes video from unexpected participant %s (expected only %v)", sid, others)
		}
	}
	for sid, n := range st.Audio {
		if n > 0 && !slices.Contains(others, sid) {
			return false, true, fmt.Sprintf("receives audio from unexpected participant %s (expected only %v)", sid, others)
		}
	}
	var missing []string
	for _, sid := range others {
		if st.Video[sid] <= 0 {
			missing = append(missing, "video from "+sid)
		}
		if st.Audio[sid] <= 0 {
			missing = append(missing, "audio from "+sid)
		}
	}
	if len(missing) > 0 {
		return false, false, fmt.Sprintf("missing %s (video=%v audio=%v unmapped=%v)",
			strings.Join(missing, ", "), st.Video, st.Audio, st.Unmapped)
	}
	return true, false, fmt.Sprintf("video=%v audio=%v", st.Video, st.Audio)
}

// othersOf lists the sids of every page except p.
func othersOf(p *browserPage, sids map[*browserPage]string) []string {
	var others []string
	for q, sid := range sids {
		if q != p {
			others = append(others, sid)
		}
	}
	slices.Sort(others)
	return others
}

// waitForMedia polls every page's stats, under one shared deadline, until
// each decodes video and receives audio from exactly the other pages.
func waitForMedia(t *testing.T, pages []*browserPage, sids map[*browserPage]string) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(mediaTimeout)
	status := map[string]string{}
	done := map[*browserPage]bool{}
	for {
		for _, p := range pages {
			if done[p] {
				continue
			}
			st, err := evalJS[mediaStats](p, mediaStatsJS)
			if err != nil {
				status[p.name] = "getStats: " + err.Error()
				continue
			}
			ok, wrong, why := checkMedia(st, othersOf(p, sids))
			if wrong {
				t.Fatalf("%s: %s", p.name, why)
			}
			status[p.name] = why
			if ok {
				done[p] = true
				t.Logf("%s: media from both others after %v: %s", p.name, time.Since(start).Round(time.Millisecond), why)
			}
		}
		if len(done) == len(pages) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for media on every page: %v", mediaTimeout, status)
		}
		time.Sleep(pollInterval)
	}
}

// ================================================================== tests

// TestBrowserGroupCall: three browser tabs join one room, each decodes video
// and receives audio from exactly the two others, then one leaves and the
// two others drop her tile and list entry.
func TestBrowserGroupCall(t *testing.T) {
	baseURL := startServer(t)
	pages, sids := joinAll(t, baseURL, "e2e-group", "Alice", "Bob", "Carol")
	alice, bob, carol := pages[0], pages[1], pages[2]

	// Each page shows one tile per other participant.
	for _, p := range pages {
		waitJS(t, p, uiTimeout, "2 participant tiles",
			`document.querySelectorAll('.tile:not([data-source="screen"])').length === 2`)
	}

	waitForMedia(t, pages, sids)

	click(t, carol, "#leave-btn")
	waitJS(t, carol, uiTimeout, "body[data-state=left]", `document.body.dataset.state === 'left'`)

	carolSid := jsString(sids[carol])
	gone := fmt.Sprintf(`(() => {
  const sid = %s;
  const tile = [...document.querySelectorAll('.tile')].some((el) => el.dataset.participantSid === sid);
  const listed = [...document.querySelectorAll('#participant-list > li')].some((el) => el.dataset.participantSid === sid);
  const tiles = document.querySelectorAll('.tile:not([data-source="screen"])').length;
  return !tile && !listed && tiles === 1;
})()`, carolSid)
	// Her media goes too: the server renegotiates her tracks away and the
	// app drops their <audio> elements.
	mediaGone := fmt.Sprintf(`(() => {
  const sid = %s;
  const audio = [...document.querySelectorAll('#audio-sink audio')].some((el) => el.dataset.participantSid === sid);
  return !audio && window.quartet.room.remoteTracks.every((rt) => rt.participantSid !== sid);
})()`, carolSid)
	for _, p := range []*browserPage{alice, bob} {
		waitJS(t, p, uiTimeout, "Carol's tile and list entry to go (one tile left)", gone)
		waitJS(t, p, uiTimeout, "Carol's remote tracks and audio element to go", mediaGone)
	}
	// The one tile left is the other remaining participant's.
	waitJS(t, alice, uiTimeout, "Bob's tile", fmt.Sprintf(
		`!!document.querySelector('.tile[data-participant-sid=' + CSS.escape(%s) + ']')`, jsString(sids[bob])))
	waitJS(t, bob, uiTimeout, "Alice's tile", fmt.Sprintf(
		`!!document.querySelector('.tile[data-participant-sid=' + CSS.escape(%s) + ']')`, jsString(sids[alice])))
}

// TestBrowserChatAndMute: a chat message from Alice reaches Bob, and Alice
// muting (then unmuting) her microphone shows on Bob's participant list and
// on her tile.
func TestBrowserChatAndMute(t *testing.T) {
	baseURL := startServer(t)
	pages, sids := joinAll(t, baseURL, "e2e-chat", "Alice", "Bob")
	alice, bob := pages[0], pages[1]

	const text = "hello from Alice <b>not bold</b>"
	ctx, cancel := context.WithTimeout(alice.ctx, uiTimeout)
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#chat-input"), text),
		chromedp.Click(chromedp.CSS(`#chat-form button[type="submit"]`)))
	cancel()
	if err != nil {
		t.Fatalf("Alice: send chat: %v", err)
	}
	// The text must arrive as text, attributed to Alice.
	received := fmt.Sprintf(`[...document.querySelectorAll('#chat-messages .chat-message')].some((m) =>
  m.dataset.participantSid === %s && m.querySelector('.chat-text').textContent === %s &&
  !m.querySelector('.chat-text b'))`, jsString(sids[alice]), jsString(text))
	waitJS(t, bob, uiTimeout, "Alice's chat message", received)
	// The server echoes it to the sender, which shows it as her own.
	waitJS(t, alice, uiTimeout, "own chat echo", received+` && !!document.querySelector('#chat-messages .chat-message.own')`)

	micState := func(muted bool) string {
		return fmt.Sprintf(`(() => {
  const sid = %s, want = %q;
  const item = [...document.querySelectorAll('#participant-list > li')].find((el) => el.dataset.participantSid === sid);
  const tile = [...document.querySelectorAll('.tile')].find((el) => el.dataset.participantSid === sid && el.dataset.source !== 'screen');
  return !!item && item.dataset.micMuted === want && !!tile && tile.dataset.micMuted === want;
})()`, jsString(sids[alice]), fmt.Sprint(muted))
	}
	// Alice's microphone is published and live before she mutes it.
	waitJS(t, bob, joinTimeout, "Alice's mic shown unmuted", micState(false))

	click(t, alice, "#mic-btn")
	waitJS(t, alice, uiTimeout, "own mic button muted", `document.getElementById('mic-btn').dataset.muted === 'true'`)
	waitJS(t, bob, uiTimeout, "Alice's mic shown muted", micState(true))

	click(t, alice, "#mic-btn")
	waitJS(t, bob, uiTimeout, "Alice's mic shown unmuted again", micState(false))
}

// iceUfragJS reads the ICE ufrag of one of Alice's connection descriptions
// (pc: publisherPC or subscriberPC; desc: localDescription or
// remoteDescription), or an empty string if there is none yet.
func iceUfragJS(pc, desc string) string {
	return fmt.Sprintf(`(() => {
  const pc = window.quartet.room.%s;
  const d = pc && pc.%s;
  const m = d && /^a=ice-ufrag:(\S+)/m.exec(d.sdp);
  return m ? m[1] : '';
})()`, pc, desc)
}

// evalOK evaluates expr in p and fails the test on an error.
func evalOK[T any](t *testing.T, p *browserPage, what, expr string) T {
	t.Helper()
	v, err := evalJS[T](p, expr)
	if err != nil {
		t.Fatalf("%s: %s: %v", p.name, what, err)
	}
	return v
}

// waitVideoIncrease waits until p has decoded at least minFrames more video
// frames from sid than at its first reading: media keeps flowing, rather
// than a counter left over from before.
func waitVideoIncrease(t *testing.T, p *browserPage, sid string, minFrames float64, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	base, haveBase := 0.0, false
	last := ""
	for {
		st, err := evalJS[mediaStats](p, mediaStatsJS)
		if err == nil {
			n := st.Video[sid]
			if !haveBase {
				base, haveBase = n, true
			} else if n >= base+minFrames {
				t.Logf("%s: video frames from %s %v -> %v after %v", p.name, sid, base, n, time.Since(start).Round(time.Millisecond))
				return
			}
			last = fmt.Sprintf("video=%v audio=%v unmapped=%v", st.Video, st.Audio, st.Unmapped)
		} else {
			last = "getStats: " + err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out after %v waiting for %v more video frames from %s than %v (last: %s)",
				p.name, timeout, minFrames, sid, base, last)
		}
		time.Sleep(pollInterval)
	}
}

// recordStatesJS starts recording, on a joined page, the SDK's connection
// states (window.__states) and the texts #connection-state shows
// (window.__shown). The Room outlives a reconnection, so the listener does.
const recordStatesJS = `(() => {
  const room = window.quartet.room;
  const indicator = document.getElementById('connection-state');
  window.__states = [];
  window.__shown = [indicator.textContent];
  if (!window.__recording) {
    window.__recording = true;
    room.on('connectionState', ({ state }) => window.__states.push(state));
    new MutationObserver(() => {
      const s = indicator.textContent;
      if (window.__shown[window.__shown.length - 1] !== s) window.__shown.push(s);
    }).observe(indicator, { childList: true, characterData: true, subtree: true });
  }
  return true;
})()`

type stateLog struct {
	States []string `json:"states"` // SDK connectionState events
	Shown  []string `json:"shown"`  // #connection-state texts
}

const readStatesJS = `({ states: window.__states, shown: window.__shown })`

// TestBrowserReconnects: Alice and Bob are in a call. Alice's connection
// then fails twice, without a page reload: first her ICE (restarted on
// both connections through the SDK's own restart routine), then her
// signaling WebSocket (closed under the SDK as a network drop would). Each
// time the call must recover in the same session: after the ICE restart
// the same connections, after the WebSocket drop a resumed session (same
// participant sid, same peer connections, nothing seen by Bob).
func TestBrowserReconnects(t *testing.T) {
	baseURL := startServer(t)
	pages, sids := joinAll(t, baseURL, "e2e-reconnect", "Alice", "Bob")
	alice, bob := pages[0], pages[1]
	waitForMedia(t, pages, sids)
	evalOK[bool](t, alice, "record connection states", recordStatesJS)

	connected := `(() => {
  const room = window.quartet.room;
  const ok = (pc) => !!pc && (pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed');
  return document.getElementById('connection-state').textContent === 'connected' &&
    room.connectionState === 'connected' && ok(room.publisherPC) && ok(room.subscriberPC);
})()`

	// ------------------------------------------------------ 1. ICE restart
	//
	// _restartIce is what the SDK runs itself when ICE fails or stays
	// disconnected: the subscriber asks the server for an offer with new
	// credentials (restart_ice), the publisher offers with iceRestart.
	oldSubUfrag := evalOK[string](t, alice, "subscriber remote ufrag", iceUfragJS("subscriberPC", "remoteDescription"))
	oldPubLocal := evalOK[string](t, alice, "publisher local ufrag", iceUfragJS("publisherPC", "localDescription"))
	oldPubRemote := evalOK[string](t, alice, "publisher remote ufrag", iceUfragJS("publisherPC", "remoteDescription"))
	if oldSubUfrag == "" || oldPubLocal == "" || oldPubRemote == "" {
		t.Fatalf("Alice: missing ICE ufrags before the restart: subscriber remote %q, publisher local %q, remote %q",
			oldSubUfrag, oldPubLocal, oldPubRemote)
	}
	evalOK[bool](t, alice, "restart ICE", `(() => {
  const room = window.quartet.room;
  if (typeof room._restartIce !== 'function') throw new Error('the SDK has no _restartIce');
  window.__iceSubPC = room.subscriberPC;
  window.__icePubPC = room.publisherPC;
  room._restartIce('subscriber');
  room._restartIce('publisher');
  return true;
})()`)
	iceStart := time.Now()
	waitJS(t, alice, uiTimeout, "a new subscriber remote ICE ufrag", fmt.Sprintf(
		`(%s) !== '' && (%s) !== %s`, iceUfragJS("subscriberPC", "remoteDescription"),
		iceUfragJS("subscriberPC", "remoteDescription"), jsString(oldSubUfrag)))
	waitJS(t, alice, uiTimeout, "new publisher ICE ufrags (local and remote)", fmt.Sprintf(
		`(%s) !== %s && (%s) !== %s && window.quartet.room.publisherPC.signalingState === 'stable'`,
		iceUfragJS("publisherPC", "localDescription"), jsString(oldPubLocal),
		iceUfragJS("publisherPC", "remoteDescription"), jsString(oldPubRemote)))
	waitJS(t, alice, uiTimeout, "connected again after the ICE restart", connected)
	// A restart, not a rebuild: same session, same connections.
	same := evalOK[bool](t, alice, "same session", fmt.Sprintf(`(() => {
  const room = window.quartet.room;
  return room.localParticipant.sid === %s && room.subscriberPC === window.__iceSubPC && room.publisherPC === window.__icePubPC;
})()`, jsString(sids[alice])))
	if !same {
		t.Fatalf("Alice: the ICE restart rebuilt the session (new sid or new peer connections)")
	}
	// Media runs over the new ICE generation: each connection's selected
	// candidate pair uses the new remote credentials.
	waitJS(t, alice, uiTimeout, "selected candidate pairs on the new remote ufrags", `['publisherPC', 'subscriberPC'].every((k) => {
  const pc = window.quartet.room[k];
  const tr = pc.getTransceivers().find((x) => x.sender.transport || x.receiver.transport);
  const transport = tr && (tr.sender.transport || tr.receiver.transport);
  const pair = transport && transport.iceTransport.getSelectedCandidatePair();
  const m = /^a=ice-ufrag:(\S+)/m.exec(pc.remoteDescription.sdp);
  return !!pair && !!m && pair.remote.usernameFragment === m[1];
})`)
	t.Logf("Alice: ICE restarted and connected after %v", time.Since(iceStart).Round(time.Millisecond))
	iceStates := evalOK[stateLog](t, alice, "connection states", readStatesJS)
	t.Logf("Alice: ICE restart: SDK states %v, #connection-state showed %v", iceStates.States, iceStates.Shown)
	if !slices.Contains(iceStates.States, "reconnecting") || iceStates.States[len(iceStates.States)-1] != "connected" {
		t.Fatalf("Alice: ICE restart: want reconnecting then connected, got SDK states %v", iceStates.States)
	}
	// Media keeps flowing both ways.
	waitVideoIncrease(t, bob, sids[alice], 10, uiTimeout)
	waitVideoIncrease(t, alice, sids[bob], 10, uiTimeout)

	// ---------------------------------------------------- 2. WebSocket drop
	//
	// The SDK detaches its handlers before every close it means (leave,
	// teardown), so a close event on its live socket is a drop to recover
	// from. Code 4000 is an application code, not a normal closure. The
	// server keeps Alice's session for signal.resume_timeout, so the SDK
	// resumes it: same participant, same peer connections, ICE restarted
	// on both, and Bob notices nothing.
	aliceSid := sids[alice]
	evalOK[bool](t, alice, "record connection states", recordStatesJS)
	// Alice's subscriber and publisher ICE credentials before the drop: a
	// resume restarts ICE on both.
	oldSubUfrag = evalOK[string](t, alice, "subscriber remote ufrag", iceUfragJS("subscriberPC", "remoteDescription"))
	oldPubLocal = evalOK[string](t, alice, "publisher local ufrag", iceUfragJS("publisherPC", "localDescription"))
	// Both sides' room events and Bob's raw signaling, to see that nobody
	// was told that anyone left or joined, and that no remote track ended.
	for _, p := range pages {
		evalOK[bool](t, p, "record room events", `(() => {
  const room = window.quartet.room;
  window.__events = [];
  for (const type of ['participantJoined', 'participantLeft']) {
    room.on(type, ({ participant }) => window.__events.push(type + ' ' + participant.sid));
  }
  room.on('trackEnded', ({ participantSid, kind }) => window.__events.push('trackEnded ' + participantSid + ' ' + kind));
  window.__signal = [];
  const onMessage = room._onMessage.bind(room);
  room._onMessage = (msg) => {
    if (msg.type === 'participant_joined' || msg.type === 'participant_left') {
      window.__signal.push(msg.type + ' ' + (msg.participant && msg.participant.sid));
    }
    onMessage(msg);
  };
  return true;
})()`)
	}
	evalOK[bool](t, alice, "drop the WebSocket", `(() => {
  const room = window.quartet.room;
  window.__marker = 1;
  window.__oldSubPC = room.subscriberPC;
  window.__oldPubPC = room.publisherPC;
  const ws = room._ws;
  if (!(ws instanceof WebSocket) || ws.readyState !== WebSocket.OPEN) throw new Error('no open SDK socket in room._ws');
  window.__oldWS = ws;
  ws.close(4000, 'e2e: simulated network drop');
  return true;
})()`)
	wsStart := time.Now()
	waitJS(t, alice, joinTimeout, "a new open socket, connected", fmt.Sprintf(`(() => {
  const room = window.quartet.room;
  return room._ws && room._ws !== window.__oldWS && room._ws.readyState === WebSocket.OPEN;
})() && %s`, connected))
	t.Logf("Alice: connected again %v after the drop", time.Since(wsStart).Round(time.Millisecond))
	// Resumed, not rejoined: same participant, same peer connections.
	session := evalOK[string](t, alice, "session after the drop", `(() => {
  const room = window.quartet.room;
  return JSON.stringify({ sid: room.localParticipant.sid,
    samePublisher: room.publisherPC === window.__oldPubPC, sameSubscriber: room.subscriberPC === window.__oldSubPC });
})()`)
	if want := fmt.Sprintf(`{"sid":%s,"samePublisher":true,"sameSubscriber":true}`, jsString(aliceSid)); session != want {
		t.Fatalf("Alice: after the drop the session is %s, want it resumed: %s", session, want)
	}
	// No reload: same document, same app state.
	noReload := evalOK[string](t, alice, "page state", `JSON.stringify({ state: document.body.dataset.state, marker: window.__marker })`)
	if noReload != `{"state":"joined","marker":1}` {
		t.Fatalf("Alice: after the drop the page is %s, want joined with the marker kept (no reload)", noReload)
	}
	// The resume restarted ICE on both connections: the server offered new
	// subscriber credentials, Alice offered new publisher ones, and both
	// negotiations are over.
	waitJS(t, alice, uiTimeout, "new ICE ufrags on both connections after the resume", fmt.Sprintf(
		`(%s) !== %s && (%s) !== %s && ['publisherPC', 'subscriberPC'].every((k) => window.quartet.room[k].signalingState === 'stable')`,
		iceUfragJS("subscriberPC", "remoteDescription"), jsString(oldSubUfrag),
		iceUfragJS("publisherPC", "localDescription"), jsString(oldPubLocal)))
	wsStates := evalOK[stateLog](t, alice, "connection states", readStatesJS)
	t.Logf("Alice: WebSocket drop: SDK states %v, #connection-state showed %v", wsStates.States, wsStates.Shown)
	if !slices.Contains(wsStates.States, "reconnecting") || wsStates.States[len(wsStates.States)-1] != "connected" {
		t.Fatalf("Alice: WebSocket drop: want reconnecting then connected, got SDK states %v", wsStates.States)
	}

	// Media keeps flowing both ways, attributed to the same sids.
	waitVideoIncrease(t, bob, aliceSid, 10, uiTimeout)
	waitVideoIncrease(t, alice, sids[bob], 10, uiTimeout)
	waitForMedia(t, pages, sids)

	// Each side still has exactly one tile and one participant: the other.
	oneTile := func(sid string) string {
		return fmt.Sprintf(`(() => {
  const sid = %s, room = window.quartet.room;
  const tiles = [...document.querySelectorAll('.tile:not([data-source="screen"])')];
  const listed = [...document.querySelectorAll('#participant-list > li')].map((el) => el.dataset.participantSid);
  return tiles.length === 1 && tiles[0].dataset.participantSid === sid &&
    room.participants.size === 1 && room.participants.has(sid) &&
    listed.length === 2 && listed.includes(sid) &&
    room.remoteTracks.length > 0 && room.remoteTracks.every((rt) => rt.participantSid === sid);
})()`, jsString(sid))
	}
	waitJS(t, bob, uiTimeout, "exactly one tile, participant and remote tracks: Alice's", oneTile(aliceSid))
	waitJS(t, alice, uiTimeout, "exactly one tile, participant and remote tracks: Bob's", oneTile(sids[bob]))
	// Nobody was told that anyone left or joined, and no remote track was
	// torn down and rebuilt.
	for _, p := range pages {
		seen := evalOK[[]string](t, p, "room events", `window.__events.concat(window.__signal)`)
		if len(seen) > 0 {
			t.Fatalf("%s: after Alice's resume, want no participant or track churn, got %v", p.name, seen)
		}
	}

	// Recovery is silent: no error banner on either page.
	for _, p := range pages {
		if banner := evalOK[string](t, p, "banner", `(() => {
  const banner = document.getElementById('banner');
  return banner.hidden ? '' : document.getElementById('banner-text').textContent;
})()`); banner != "" {
			t.Fatalf("%s: error banner after recovering: %q", p.name, banner)
		}
	}
}
