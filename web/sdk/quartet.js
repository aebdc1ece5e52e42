// @ts-check
/**
 * Quartet browser SDK: a client for the Quartet native signaling protocol,
 * version 1 (docs/protocol.md). It has no UI; web/app/ is built on it.
 *
 * A participant uses two RTCPeerConnections: "publisher" (the client offers,
 * carries the local tracks) and "subscriber" (the server offers, carries
 * everyone else's tracks). Signaling is JSON over one WebSocket.
 *
 * Usage:
 *   const room = new Room({url: 'wss://host/ws', token});
 *   room.on('track', ({track, participantSid, info}) => { ... });
 *   await room.connect();
 *   await room.publish(micTrack, 'microphone');
 *
 * In a large room, choose what to receive:
 *   const room = new Room({url, token, autoSubscribe: false});
 *   room.on('trackPublished', ({track, local}) => { if (!local && wanted(track)) room.subscribe([track.sid]); });
 *   await room.connect();
 *   for (const p of room.participants.values()) room.subscribe(p.tracks.filter(wanted).map((t) => t.sid));
 *
 * @module quartet
 */

/** Version of the signaling protocol this SDK speaks. */
export const PROTOCOL_VERSION = 1;

/** Sources a published track may declare. */
export const TRACK_SOURCES = Object.freeze(['camera', 'microphone', 'screen', 'screen_audio', 'unknown']);

const PING_INTERVAL_MS = 10_000;
// Two missed pongs in a row mean the socket is half-open (laptop sleep, NAT
// rebinding): the browser may not notice for minutes, so we drop it ourselves.
const PONG_TIMEOUT_MS = 2 * PING_INTERVAL_MS + 5_000;
const JOIN_TIMEOUT_MS = 15_000;
const ANSWER_TIMEOUT_MS = 15_000;
// Chromium often reports "disconnected" for a moment on a network blip; only
// restart ICE if it lasts.
const ICE_DISCONNECTED_GRACE_MS = 3_000;
// If ICE restarts have not brought media back by then, rebuild the session.
const ICE_RESTART_GIVE_UP_MS = 15_000;
const RECONNECT_FIRST_DELAY_MS = 500;
const RECONNECT_MAX_DELAY_MS = 5_000;
const RECONNECT_GIVE_UP_MS = 60_000;
const CHAT_MAX_BYTES = 4096;
// Track sids one subscribe or unsubscribe message may carry.
const SUBSCRIBE_MAX_SIDS = 64;
// Join errors that retrying cannot fix.
const FATAL_JOIN_CODES = new Set(['unsupported_protocol']);

/**
 * @typedef {'camera'|'microphone'|'screen'|'screen_audio'|'unknown'} TrackSource
 * @typedef {'connecting'|'connected'|'reconnecting'|'disconnected'} ConnectionState
 * @typedef {'publisher'|'subscriber'} Target
 */

/**
 * A published track as the server describes it.
 * @typedef {Object} TrackInfo
 * @property {string} sid
 * @property {string} participantSid
 * @property {'audio'|'video'} kind
 * @property {TrackSource} source
 * @property {boolean} muted
 * @property {string} [mimeType]
 */

/**
 * @typedef {Object} Permissions
 * @property {boolean} canPublish
 * @property {boolean} canSubscribe
 * @property {boolean} admin
 */

/**
 * A participant as the server describes it. `tracks` is kept current by the
 * SDK from track_published / track_unpublished / mute_changed.
 * @typedef {Object} ParticipantInfo
 * @property {string} sid
 * @property {string} identity
 * @property {string} name
 * @property {TrackInfo[]} tracks
 * @property {Permissions} [permissions]
 */

/**
 * @typedef {Object} RoomOptions
 * @property {string} [url] WebSocket URL of the signaling server; defaults to
 *   `/ws` on the page's own host. http(s) URLs are turned into ws(s).
 * @property {string} [token] access token (JWT) for `join`.
 * @property {() => Promise<string>} [tokenProvider] called for a fresh token
 *   before each reconnection (and at connect() when `token` is empty).
 * @property {RTCIceServer[]} [iceServers] when given, used instead of the
 *   ICE servers the server sends in `joined`.
 * @property {RTCIceTransportPolicy} [iceTransportPolicy] `relay` forces all
 *   media through TURN (to debug or test TURN); default `all`.
 * @property {'udp'|'tcp'} [turnTransport] keeps only the `turn:` URLs with
 *   that `?transport=` (none means udp), dropping `stun:`, `turns:` and the
 *   other transport, to test one way of reaching TURN; default: every URL.
 * @property {boolean} [autoSubscribe] receive every other participant's
 *   tracks without asking (default true); false receives only the tracks
 *   passed to `room.subscribe()`.
 */

/**
 * Detail of the `track` event: a remote track is playing on the subscriber
 * connection.
 * @typedef {Object} RemoteTrack
 * @property {MediaStreamTrack} track
 * @property {MediaStream} stream all current tracks of that participant
 * @property {string} participantSid
 * @property {ParticipantInfo|undefined} participant
 * @property {TrackInfo} info
 * @property {string} trackSid
 * @property {TrackSource} source
 * @property {'audio'|'video'} kind
 * @property {string} mid transceiver mid on the subscriber connection
 */

/**
 * Events (listen with `room.on(type, fn)`, which passes `event.detail`, or
 * `room.addEventListener(type, e => e.detail)`):
 *
 * | type | detail |
 * |---|---|
 * | connectionState | {state: ConnectionState} |
 * | participantJoined / participantLeft | {participant: ParticipantInfo} |
 * | trackPublished / trackUnpublished | {track: TrackInfo, participant?: ParticipantInfo, local: boolean} |
 * | muteChanged | {participantSid, trackSid, muted, local: boolean} |
 * | activeSpeakers | {speakers: {sid, level}[], sids: string[]} |
 * | chat | {from: {sid, identity, name}, text, time, local: boolean} |
 * | track | RemoteTrack |
 * | trackEnded | RemoteTrack |
 * | error | QuartetError |
 * | leave | {reason: string} (client, removed, room_closed, server_shutdown, duplicate_identity, timeout, reconnect_failed) |
 * | localTrackSid | {track: MediaStreamTrack, sid: string, source} when the server names a published track |
 * @typedef {string} RoomEventType
 */

/** An error from the server (`error` message) or from the SDK itself. */
export class QuartetError extends Error {
  /**
   * @param {string} code protocol error code, or an SDK code such as
   *   `closed`, `timeout`, `negotiation_failed`, `reconnect_failed`
   * @param {string} message
   * @param {string} [requestType] type of the message that caused it
   */
  constructor(code, message, requestType) {
    super(message || code);
    this.name = 'QuartetError';
    this.code = code;
    this.requestType = requestType;
  }
}

/**
 * Local bookkeeping for one published track.
 * @typedef {Object} LocalEntry
 * @property {MediaStreamTrack} track
 * @property {TrackSource} source
 * @property {boolean} muted
 * @property {boolean|null} serverMuted the mute state the server last heard
 * @property {string|null} sid
 * @property {string|null} offeredId msid track id sent in the last offer
 * @property {RTCRtpTransceiver|null} transceiver
 */

/**
 * Publisher negotiation state; one per publisher connection so that a loop
 * left over from a closed connection cannot touch the new one.
 * @typedef {Object} PublisherState
 * @property {RTCPeerConnection} pc
 * @property {boolean} running
 * @property {boolean} dirty
 * @property {boolean} iceRestart
 * @property {boolean} closed
 * @property {{resolve: () => void, reject: (e: any) => void}[]} waiters
 * @property {{resolve: (m: any) => void, reject: (e: any) => void, timer: any}|null} pendingAnswer
 * @property {RTCIceCandidateInit[]} heldCandidates remote candidates held while an offer is out
 */

export class Room extends EventTarget {
  /** @param {RoomOptions} [options] */
  constructor(options = {}) {
    super();
    /** @type {string} */
    this.url = resolveWsUrl(options.url);
    /** @type {string} */
    this.token = options.token || '';
    /** @type {(() => Promise<string>)|null} */
    this.tokenProvider = options.tokenProvider || null;
    /** @private */
    this._iceServersOption = options.iceServers || null;
    /** @private @type {RTCIceTransportPolicy} */
    this._iceTransportPolicy = options.iceTransportPolicy || 'all';
    /** @private */
    this._turnTransport = options.turnTransport || null;
    /** Whether the server sends every track without asking. @type {boolean} */
    this.autoSubscribe = options.autoSubscribe !== false;
    /**
     * @private the app's subscribe (true) and unsubscribe (false) choices
     * by track sid, sent again when a reconnection has to join afresh
     * @type {Map<string, boolean>}
     */
    this._choices = new Map();

    /** @type {ConnectionState} */
    this.connectionState = 'disconnected';
    /** Remote participants by sid. @type {Map<string, ParticipantInfo>} */
    this.participants = new Map();
    /** @type {ParticipantInfo|null} */
    this.localParticipant = null;
    /** @type {{sid: string, name: string}|null} */
    this.roomInfo = null;
    /** @type {string} */
    this.serverVersion = '';
    /** ICE servers in use (from `joined` unless overridden). @type {RTCIceServer[]} */
    this.iceServers = [];
    /** @type {RTCPeerConnection|null} */
    this.publisherPC = null;
    /** @type {RTCPeerConnection|null} */
    this.subscriberPC = null;
    /** Loudest first. @type {{sid: string, level: number}[]} */
    this.activeSpeakers = [];

    /** @private @type {Map<string, LocalEntry>} by MediaStreamTrack.id */
    this._published = new Map();
    /** @private one stream for all local tracks, so they share an msid stream id */
    this._localStream = new MediaStream();
    /** @private @type {Map<string, RemoteTrack>} by subscriber mid */
    this._remoteTracks = new Map();
    /** @private @type {Map<string, MediaStream>} by participant sid */
    this._remoteStreams = new Map();
    /** @private @type {Map<string, TrackInfo>} mid -> info from the last subscriber offer */
    this._midInfo = new Map();
    /** @private @type {WebSocket|null} */
    this._ws = null;
    /** @private @type {PublisherState|null} */
    this._pub = null;
    /** @private serializes everything done on the subscriber connection */
    this._subChain = Promise.resolve();
    /** @private @type {RTCIceCandidateInit[]} */
    this._subHeldCandidates = [];
    /**
     * @private what a `join` needs to resume this session after a drop,
     * from the last `joined`; null when there is nothing to resume
     * @type {{participantSid: string, resumeToken: string}|null}
     */
    this._resume = null;
    /** @private set by leave (ours or the server's): no more reconnection */
    this._closed = false;
    /** @private */
    this._reconnecting = false;
    /** @private */
    this._pingTimer = null;
    /** @private */
    this._pingSeq = 0;
    /** @private time the oldest unanswered ping was sent, 0 if none */
    this._pingOutstandingSince = 0;
    /** @private @type {Record<Target, {graceTimer: any, giveUpTimer: any, recovering: boolean}>} */
    this._ice = { publisher: newIceMonitor(), subscriber: newIceMonitor() };
  }

  // ---------------------------------------------------------------- events

  /**
   * Listens to an event; the callback gets the event's detail.
   * @param {RoomEventType} type
   * @param {(detail: any) => void} fn
   * @returns {() => void} call it to stop listening
   */
  on(type, fn) {
    const listener = (/** @type {Event} */ e) => fn(/** @type {CustomEvent} */ (e).detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /** @private @param {string} type @param {any} detail */
  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @private @param {any} err */
  _emitError(err) {
    const e = err instanceof QuartetError ? err : new QuartetError('internal', String(err && err.message || err));
    this._emit('error', e);
  }

  /** @private @param {ConnectionState} state */
  _setState(state) {
    if (this.connectionState === state) return;
    this.connectionState = state;
    this._emit('connectionState', { state });
  }

  // ------------------------------------------------------------ public API

  /**
   * Opens the WebSocket, joins the room and sets up both peer connections.
   * Tracks published before connect() are published once joined.
   * @returns {Promise<ParticipantInfo>} the local participant
   */
  async connect() {
    if (this._ws || this._reconnecting) throw new QuartetError('bad_state', 'already connected');
    this._closed = false;
    this._setState('connecting');
    try {
      const token = await this._getToken(false);
      await this._establishSession(token);
    } catch (err) {
      this._teardownSession();
      this._setState('disconnected');
      throw err;
    }
    this._setState('connected');
    return /** @type {ParticipantInfo} */ (this.localParticipant);
  }

  /**
   * Publishes a local track. Resolves when the server has answered the
   * renegotiation, with the track's server sid (undefined if not connected
   * yet: the track is then published when the connection comes up).
   * @param {MediaStreamTrack} track
   * @param {TrackSource} source
   * @returns {Promise<string|undefined>}
   */
  async publish(track, source) {
    if (!TRACK_SOURCES.includes(source)) throw new TypeError(`unknown track source: ${source}`);
    const perms = this.localParticipant && this.localParticipant.permissions;
    if (perms && perms.canPublish === false) throw new QuartetError('forbidden', 'this token may not publish');
    let entry = this._published.get(track.id);
    if (!entry) {
      entry = {
        track, source, muted: !track.enabled, serverMuted: null,
        sid: null, offeredId: null, transceiver: null,
      };
      this._published.set(track.id, entry);
      this._localStream.addTrack(track);
      if (this.publisherPC) this._addTransceiver(this.publisherPC, entry);
    }
    if (this.publisherPC) await this._negotiatePublisher();
    return entry.sid || undefined;
  }

  /**
   * Stops sending a track (the track itself is not stopped: the caller owns it).
   * @param {MediaStreamTrack} track
   * @returns {Promise<void>}
   */
  async unpublish(track) {
    const entry = this._published.get(track.id);
    if (!entry) return;
    this._published.delete(track.id);
    this._localStream.removeTrack(track);
    const pc = this.publisherPC;
    if (!pc || !entry.transceiver || pc.signalingState === 'closed') return;
    // removeTrack makes the m-line inactive; the server then ends the track.
    // (Stopping the transceiver would give a port-0 m-line, which some
    // servers handle less well.)
    if (pc.getTransceivers().includes(entry.transceiver)) {
      pc.removeTrack(entry.transceiver.sender);
      entry.transceiver.direction = 'inactive';
    }
    entry.transceiver = null;
    await this._negotiatePublisher();
  }

  /**
   * Mutes or unmutes a published track: disables it locally (silence or
   * black frames, so no renegotiation) and tells the server.
   * @param {MediaStreamTrack} track
   * @param {boolean} muted
   */
  setMuted(track, muted) {
    track.enabled = !muted;
    const entry = this._published.get(track.id);
    if (!entry) return;
    entry.muted = muted;
    if (entry.sid) this._sendMute(entry);
    // If the sid is not known yet, the pending offer or the answer handler
    // reports the state (see _applyTrackSids).
    const info = this.localParticipant && this.localParticipant.tracks.find((t) => t.sid === entry.sid);
    if (info) info.muted = muted;
    this._emit('muteChanged', { participantSid: this.localParticipant ? this.localParticipant.sid : '', trackSid: entry.sid || '', muted, local: true });
  }

  /**
   * Whether a published track is muted.
   * @param {MediaStreamTrack} track
   * @returns {boolean}
   */
  isMuted(track) {
    const entry = this._published.get(track.id);
    return entry ? entry.muted : !track.enabled;
  }

  /**
   * The local tracks currently published.
   * @returns {{track: MediaStreamTrack, source: TrackSource, sid: string|null, muted: boolean}[]}
   */
  get localTracks() {
    return [...this._published.values()].map((e) => ({ track: e.track, source: e.source, sid: e.sid, muted: e.muted }));
  }

  /**
   * Remote tracks currently received.
   * @returns {RemoteTrack[]}
   */
  get remoteTracks() {
    return [...this._remoteTracks.values()];
  }

  /**
   * Sends a chat message to everyone in the room (the server echoes it back
   * as a `chat` event, so the sender shows it from there).
   * @param {string} text
   */
  sendChat(text) {
    if (typeof text !== 'string' || text.length === 0) return;
    if (new TextEncoder().encode(text).length > CHAT_MAX_BYTES) {
      throw new RangeError(`chat message longer than ${CHAT_MAX_BYTES} bytes`);
    }
    if (!this._send({ type: 'chat', text })) throw new QuartetError('closed', 'not connected');
  }

  /**
   * Starts receiving other participants' tracks, by sid (from
   * `participants` or the `trackPublished` event). With `autoSubscribe:
   * false` this is how anything is received; otherwise it brings back a
   * track turned off with unsubscribe(). The tracks arrive as `track`
   * events; a refusal (unknown or own sid, no canSubscribe grant) as an
   * `error` event.
   * @param {string|string[]} trackSids
   */
  subscribe(trackSids) {
    this._choose(trackSids, true);
  }

  /**
   * Stops receiving tracks, by sid. A track stays off until subscribe()d
   * again, even with `autoSubscribe`.
   * @param {string|string[]} trackSids
   */
  unsubscribe(trackSids) {
    this._choose(trackSids, false);
  }

  /** @private @param {string|string[]} trackSids @param {boolean} on */
  _choose(trackSids, on) {
    const sids = [trackSids].flat();
    if (sids.length === 0) return;
    if (!sids.every((sid) => typeof sid === 'string' && sid !== '')) throw new TypeError('track sids must be non-empty strings');
    if (!this._signalingOpen()) throw new QuartetError('closed', 'not connected');
    for (const sid of sids) this._choices.set(sid, on);
    this._sendChoices(sids, on);
  }

  /** @private @param {string[]} sids @param {boolean} on */
  _sendChoices(sids, on) {
    for (let i = 0; i < sids.length; i += SUBSCRIBE_MAX_SIDS) {
      this._send({ type: on ? 'subscribe' : 'unsubscribe', trackSids: sids.slice(i, i + SUBSCRIBE_MAX_SIDS) });
    }
  }

  /**
   * After joining afresh the server knows none of the app's choices: sends
   * them again for the tracks still in the room.
   * @private
   */
  _resendChoices() {
    const present = new Set([...this.participants.values()].flatMap((p) => p.tracks.map((t) => t.sid)));
    /** @type {string[]} */ const on = [];
    /** @type {string[]} */ const off = [];
    for (const [sid, choice] of this._choices) {
      if (!present.has(sid)) this._choices.delete(sid);
      else (choice ? on : off).push(sid);
    }
    this._sendChoices(on, true);
    this._sendChoices(off, false);
  }

  /** Leaves the room and closes everything. The Room cannot be reused. */
  leave() {
    if (this._closed && !this._ws) return;
    this._closed = true;
    this._send({ type: 'leave' });
    // close() sends buffered frames (the leave) before the close frame.
    this._teardownSession();
    this.participants.clear();
    this._setState('disconnected');
    this._emit('leave', { reason: 'client' });
  }

  // ------------------------------------------------------ session lifecycle

  /** @private @param {boolean} refresh */
  async _getToken(refresh) {
    if (this.tokenProvider && (refresh || !this.token)) {
      const token = await this.tokenProvider();
      if (token) this.token = token;
    }
    if (!this.token) throw new QuartetError('unauthorized', 'no access token');
    return this.token;
  }

  /**
   * Opens a WebSocket and joins on it. When a session is kept for resuming
   * (after a drop), it first asks the server to resume it; if the server
   * cannot (`resume_failed`), it joins afresh on the same socket, as the
   * protocol allows. Resolves once the `joined` has been handled.
   * @private
   * @param {string} token
   * @returns {Promise<void>}
   */
  async _establishSession(token) {
    const ws = await this._openSocket();
    try {
      const resume = this._resume;
      if (resume && this._pub) {
        try {
          await this._join(ws, { ...this._joinMessage(token), resume }, (msg) => this._onResumeAnswer(msg));
          return;
        } catch (err) {
          if (!(err instanceof QuartetError && err.code === 'resume_failed')) throw err;
          // The server no longer holds the session (it timed out or was
          // ended): the kept connections serve nothing any more.
          console.info('quartet: session could not be resumed; joining afresh');
          this._closePeers();
        }
      }
      await this._join(ws, this._joinMessage(token), (msg) => this._onJoined(msg));
    } catch (err) {
      // Not joined: the socket is still ours to close. (Once joined it is
      // this._ws, and the caller's teardown closes it.)
      if (this._ws !== ws) { detachSocket(ws); ws.close(1000); }
      throw err;
    }
  }

  /** @private @param {string} token */
  _joinMessage(token) {
    /** @type {Record<string, any>} */
    const join = { type: 'join', protocol: PROTOCOL_VERSION, token };
    // On a resume the server keeps the session's first choice anyway.
    if (!this.autoSubscribe) join.autoSubscribe = false;
    return join;
  }

  /**
   * Opens a WebSocket; resolves with it once open.
   * @private
   * @returns {Promise<WebSocket>}
   */
  _openSocket() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      const fail = (/** @type {QuartetError} */ err) => {
        clearTimeout(timer);
        detachSocket(ws);
        ws.close();
        reject(err);
      };
      const timer = setTimeout(() => fail(new QuartetError('timeout', 'could not open the signaling connection')), JOIN_TIMEOUT_MS);
      ws.onerror = () => {}; // a close event always follows
      ws.onclose = (ev) => fail(new QuartetError('closed', `connection closed before joining (code ${ev.code})`));
      ws.onopen = () => { clearTimeout(timer); resolve(ws); };
    });
  }

  /**
   * Sends `join` on an open socket and waits for the answer. On `joined`
   * the socket becomes the session's and `onJoined` runs at once, in the
   * same task: the server may send a subscriber offer right behind the
   * `joined`, and it must find the session ready. Rejects with a
   * QuartetError on `error`, `leave`, close or timeout; after an error the
   * server does not close on (`resume_failed`) the socket may be joined on
   * again.
   * @private
   * @param {WebSocket} ws
   * @param {object} join the `join` message
   * @param {(msg: any) => void} onJoined
   * @returns {Promise<void>}
   */
  _join(ws, join, onJoined) {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (/** @type {any} */ err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err); else resolve(undefined);
      };
      const timer = setTimeout(() => settle(new QuartetError('timeout', 'no answer to join')), JOIN_TIMEOUT_MS);
      ws.onclose = (ev) => settle(new QuartetError('closed', `connection closed before joining (code ${ev.code})`));
      ws.onmessage = (ev) => {
        const msg = parseMessage(ev.data);
        if (!msg || settled) return;
        if (msg.type === 'joined') {
          this._ws = ws;
          ws.onmessage = (e) => { const m = parseMessage(e.data); if (m) this._onMessage(m); };
          ws.onclose = () => this._onSocketClosed(ws);
          try {
            onJoined(msg);
            settle(null);
          } catch (err) {
            settle(err);
          }
        } else if (msg.type === 'error') {
          settle(new QuartetError(msg.code || 'error', msg.message || 'join failed', msg.requestType));
        } else if (msg.type === 'leave') {
          settle(new QuartetError(msg.reason || 'closed', `left: ${msg.reason}`));
        }
      };
      ws.send(JSON.stringify(join));
    });
  }

  /**
   * Handles the `joined` that answers a resume request. Only `resumed:
   * true` for our own sid resumes; anything else (a server that ignores
   * `resume` answers with a new participant) is a fresh session.
   * @private @param {any} msg
   */
  _onResumeAnswer(msg) {
    const self = this.localParticipant;
    const sid = msg.participant && msg.participant.sid;
    if (msg.resumed === true && self && sid === self.sid) {
      this._onResumed(msg);
      return;
    }
    if (msg.resumed === true) console.warn(`quartet: server resumed participant ${sid}, not ${self && self.sid}; rejoining`);
    this._closePeers();
    this._onJoined(msg);
  }

  /**
   * Applies a fresh `joined`: new peer connections, local tracks
   * published again.
   * @private @param {any} msg
   */
  _onJoined(msg) {
    this.roomInfo = msg.room || null;
    this.serverVersion = msg.serverVersion || '';
    this.localParticipant = normalizeParticipant(msg.participant);
    this.iceServers = this._iceServersFrom(msg.iceServers);
    this._replaceParticipants((msg.participants || []).map(normalizeParticipant));
    this._createPeerConnections();
    this._resendChoices();
    this._resume = resumeRequestFrom(msg);
    this._startPing();
    // Republish (after a reconnection, or tracks published before connect).
    if (this._published.size > 0) {
      for (const entry of this._published.values()) {
        entry.sid = null;
        entry.serverMuted = null;
        this._addTransceiver(/** @type {RTCPeerConnection} */ (this.publisherPC), entry);
      }
      this._negotiatePublisher().catch(() => {}); // errors are emitted by the loop
    }
  }

  /**
   * Applies a `joined` that resumed our session. The peer connections and
   * local tracks stay as they are; the room view is brought up to date
   * (events sent while we were away are lost), and ICE restarts on both
   * connections, since the network path may have changed: the server
   * offers the subscriber side itself, we offer the publisher side.
   * @private @param {any} msg
   */
  _onResumed(msg) {
    this.roomInfo = msg.room || this.roomInfo;
    this.serverVersion = msg.serverVersion || this.serverVersion;
    this.localParticipant = normalizeParticipant(msg.participant);
    this._replaceParticipants((msg.participants || []).map(normalizeParticipant));
    this._updateIceServers(msg.iceServers);
    // Resume tokens are single-use: the next resume needs this one.
    this._resume = resumeRequestFrom(msg);
    if (!this._resume) console.warn('quartet: resumed joined carries no resumeToken; the next drop will rejoin afresh');
    this._startPing();
    // Watch both restarts like any ICE restart: the state returns to
    // connected once both are up, and media that does not come back
    // rebuilds the session. A connection never negotiated has nothing to
    // restart.
    for (const target of /** @type {Target[]} */ (['publisher', 'subscriber'])) {
      this._clearIceMonitor(target);
      const pc = this._pcFor(target);
      if (pc && pc.remoteDescription) this._watchIceRecovery(target);
    }
    // Mute changes made while away never reached the server.
    for (const entry of this._published.values()) {
      if (entry.sid && entry.serverMuted !== entry.muted) this._sendMute(entry);
    }
    this._restartPublisherIce().catch(() => {}); // errors are emitted by the loop
  }

  /**
   * ICE servers may come with fresh credentials in a resumed `joined`; the
   * kept connections use them from their ICE restart on.
   * @private @param {any} list
   */
  _updateIceServers(list) {
    if (this._iceServersOption) return;
    this.iceServers = this._iceServersFrom(list);
    for (const pc of [this.publisherPC, this.subscriberPC]) {
      if (!pc) continue;
      try {
        pc.setConfiguration({ ...pc.getConfiguration(), iceServers: this.iceServers });
      } catch (err) {
        console.debug('quartet: ICE servers not updated:', err && /** @type {any} */ (err).message);
      }
    }
  }

  /**
   * The ICE servers to use: the `iceServers` option, else the server's
   * list, narrowed to one TURN transport if `turnTransport` says so.
   * @private @param {any} list @returns {RTCIceServer[]}
   */
  _iceServersFrom(list) {
    /** @type {RTCIceServer[]} */
    const servers = this._iceServersOption || (Array.isArray(list) ? list : []);
    const transport = this._turnTransport;
    if (!transport) return servers;
    const keep = (/** @type {string} */ u) =>
      u.startsWith('turn:') && (new URLSearchParams(u.split('?')[1] || '').get('transport') || 'udp') === transport;
    return servers
      .map((s) => ({ ...s, urls: [s.urls].flat().filter(keep) }))
      .filter((s) => s.urls.length > 0);
  }

  /**
   * Replaces the participant list (on join, rejoin or resume), emitting
   * events for the differences so that listeners stay in sync.
   * @private @param {ParticipantInfo[]} list
   */
  _replaceParticipants(list) {
    const next = new Map(list.map((p) => [p.sid, p]));
    for (const [sid, old] of this.participants) {
      if (!next.has(sid)) this._onParticipantLeft(old);
    }
    for (const p of list) {
      const old = this.participants.get(p.sid);
      this.participants.set(p.sid, p);
      if (!old) {
        this._emit('participantJoined', { participant: p });
        continue;
      }
      const newSids = new Set(p.tracks.map((t) => t.sid));
      for (const t of old.tracks) {
        if (!newSids.has(t.sid)) this._emit('trackUnpublished', { track: t, participant: p, local: false });
      }
      const oldTracks = new Map(old.tracks.map((t) => [t.sid, t]));
      for (const t of p.tracks) {
        const was = oldTracks.get(t.sid);
        if (!was) this._emit('trackPublished', { track: t, participant: p, local: false });
        else if (!!was.muted !== !!t.muted) {
          this._emit('muteChanged', { participantSid: p.sid, trackSid: t.sid, muted: !!t.muted, local: false });
        }
      }
    }
  }

  /** @private */
  _createPeerConnections() {
    /** @type {RTCConfiguration} */
    const config = {
      iceServers: this.iceServers, iceTransportPolicy: this._iceTransportPolicy,
      bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require',
    };
    const pub = new RTCPeerConnection(config);
    const sub = new RTCPeerConnection(config);
    this.publisherPC = pub;
    this.subscriberPC = sub;
    this._pub = {
      pc: pub, running: false, dirty: false, iceRestart: false, closed: false,
      waiters: [], pendingAnswer: null, heldCandidates: [],
    };
    this._subChain = Promise.resolve();
    this._subHeldCandidates = [];
    this._wirePeerConnection(pub, 'publisher');
    this._wirePeerConnection(sub, 'subscriber');
  }

  /** @private @param {RTCPeerConnection} pc @param {Target} target */
  _wirePeerConnection(pc, target) {
    pc.onicecandidate = (e) => {
      if (pc !== this._pcFor(target)) return;
      this._send({ type: 'candidate', target, candidate: e.candidate ? e.candidate.toJSON() : null });
    };
    pc.oniceconnectionstatechange = () => this._onIceState(pc, target);
  }

  /** @private @param {Target} target */
  _pcFor(target) {
    return target === 'publisher' ? this.publisherPC : this.subscriberPC;
  }

  /**
   * Closes the socket and both peer connections and forgets per-session
   * state. Local tracks stay in `_published` to be republished.
   * @private
   */
  _teardownSession() {
    this._stopPing();
    this._closePeers();
    const ws = this._ws;
    this._ws = null;
    if (ws) { detachSocket(ws); ws.close(1000); }
  }

  /**
   * Closes both peer connections and forgets their state, including the
   * means to resume the session (which would need them).
   * @private
   */
  _closePeers() {
    this._resume = null;
    for (const target of /** @type {Target[]} */ (['publisher', 'subscriber'])) this._clearIceMonitor(target);
    if (this._pub) {
      const st = this._pub;
      st.closed = true;
      const pending = st.pendingAnswer;
      st.pendingAnswer = null;
      if (pending) { clearTimeout(pending.timer); pending.reject(new QuartetError('closed', 'session closed')); }
      // A loop paused while signaling was down will not run again: release
      // its callers (the tracks are republished on the next session).
      if (!st.running) st.waiters.splice(0).forEach((w) => w.resolve());
      this._pub = null;
    }
    for (const pc of [this.publisherPC, this.subscriberPC]) {
      if (pc) { pc.onicecandidate = null; pc.oniceconnectionstatechange = null; pc.close(); }
    }
    this.publisherPC = null;
    this.subscriberPC = null;
    for (const mid of [...this._remoteTracks.keys()]) this._endRemoteTrack(mid);
    this._midInfo.clear();
    this._subHeldCandidates = [];
    this._subChain = Promise.resolve();
    for (const entry of this._published.values()) { entry.transceiver = null; entry.sid = null; }
  }

  /**
   * Drops the signaling socket but keeps the peer connections, whose media
   * may well keep flowing, for a resume.
   * @private
   */
  _suspendSession() {
    this._stopPing();
    const ws = this._ws;
    this._ws = null;
    if (ws) { detachSocket(ws); ws.close(1000); }
    // The answer to an offer still out was lost with the socket. Failing
    // the wait lets the negotiation loop roll the offer back and redo it
    // once the session resumes (see _runPublisherLoop).
    const st = this._pub;
    const pending = st && st.pendingAnswer;
    if (st && pending) {
      st.pendingAnswer = null;
      clearTimeout(pending.timer);
      pending.reject(new QuartetError('closed', 'signaling connection lost'));
    }
  }

  /** @private @param {WebSocket} ws */
  _onSocketClosed(ws) {
    if (ws !== this._ws) return;
    this._ws = null;
    if (!this._closed) this._reconnect({ resume: true });
  }

  /**
   * Drops the current socket (if any) and starts reconnecting.
   * @private
   * @param {string} why
   * @param {{resume?: boolean}} [opts] resume: the peer connections are
   *   fine (only signaling failed), so try to keep them
   */
  _dropConnection(why, opts = {}) {
    if (this._closed || this._reconnecting) return;
    console.warn(`quartet: reconnecting: ${why}`);
    this._reconnect({ resume: !!opts.resume });
  }

  /**
   * Restores the session, retrying with backoff. With `resume` (and a
   * session the server may still hold) the peer connections and their
   * media stay up while a new socket resumes the session. Otherwise, or
   * when the server cannot resume it, the session is rebuilt: new token
   * (tokenProvider), new socket, join, fresh peer connections, same local
   * tracks.
   * @private
   * @param {{resume: boolean}} opts
   */
  async _reconnect({ resume }) {
    if (this._reconnecting || this._closed) return;
    this._reconnecting = true;
    if (resume && this._resume && this._pub) this._suspendSession();
    else this._teardownSession();
    this._setState('reconnecting');
    const deadline = Date.now() + RECONNECT_GIVE_UP_MS;
    let delay = RECONNECT_FIRST_DELAY_MS;
    /** @type {any} */
    let lastError = null;
    while (!this._closed) {
      await sleep(delay);
      if (this._closed) break;
      try {
        const token = await this._getToken(true);
        if (this._closed) break;
        await this._establishSession(token);
        if (this._ws) {
          this._reconnecting = false;
          // After a resume, ICE restarts are still under way: their end
          // (_iceRecovered) reports connected.
          if (!this._ice.publisher.recovering && !this._ice.subscriber.recovering) this._setState('connected');
          return;
        }
      } catch (err) {
        lastError = err;
        // A session that failed half-way through its join is rebuilt from
        // scratch; connections kept for a resume still are worth keeping.
        if (this._ws) this._teardownSession();
        if (err instanceof QuartetError && FATAL_JOIN_CODES.has(err.code)) break;
      }
      if (Date.now() + delay >= deadline) break;
      delay = Math.min(delay * 2, RECONNECT_MAX_DELAY_MS);
    }
    this._reconnecting = false;
    if (this._closed) return;
    this._closed = true;
    this._teardownSession();
    this._setState('disconnected');
    const reason = lastError ? `: ${lastError.message}` : '';
    this._emit('error', new QuartetError('reconnect_failed', `could not reconnect${reason}`));
    this._emit('leave', { reason: 'reconnect_failed' });
  }

  // --------------------------------------------------------------- signaling

  /** @private whether messages can be sent on a joined socket now */
  _signalingOpen() {
    return !!this._ws && this._ws.readyState === WebSocket.OPEN;
  }

  /**
   * @private
   * @param {object} msg
   * @returns {boolean} whether it was handed to an open socket
   */
  _send(msg) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  /** @private @param {any} msg */
  _onMessage(msg) {
    switch (msg.type) {
      case 'offer': if (msg.target === 'subscriber') this._onSubscriberOffer(msg); break;
      case 'answer': if (msg.target === 'publisher') this._onPublisherAnswer(msg); break;
      case 'candidate': this._onRemoteCandidate(msg); break;
      case 'participant_joined': this._onParticipantJoined(msg.participant); break;
      case 'participant_left': this._onParticipantLeft(msg.participant); break;
      case 'track_published': this._onTrackPublished(msg.track); break;
      case 'track_unpublished': this._onTrackUnpublished(msg.track); break;
      case 'mute_changed': this._onMuteChanged(msg); break;
      case 'active_speakers': this._onActiveSpeakers(msg.speakers); break;
      case 'chat': this._onChat(msg); break;
      case 'error': this._onServerError(msg); break;
      case 'leave': this._onServerLeave(msg.reason); break;
      case 'pong': this._pingOutstandingSince = 0; break;
      default: break; // newer minor versions may add types
    }
  }

  /** @private @param {any} msg */
  _onServerError(msg) {
    const err = new QuartetError(msg.code || 'error', msg.message || '', msg.requestType);
    if (msg.requestType === 'offer' && this._pub && this._pub.pendingAnswer) {
      const pending = this._pub.pendingAnswer;
      this._pub.pendingAnswer = null;
      clearTimeout(pending.timer);
      pending.reject(err); // the negotiation loop emits it
      return;
    }
    this._emit('error', err);
  }

  /** @private @param {string} reason */
  _onServerLeave(reason) {
    this._closed = true;
    this._teardownSession();
    this.participants.clear();
    this._setState('disconnected');
    this._emit('leave', { reason: reason || 'unknown' });
  }

  /** @private */
  _startPing() {
    this._stopPing();
    this._pingOutstandingSince = 0;
    this._pingTimer = setInterval(() => {
      if (this._pingOutstandingSince && Date.now() - this._pingOutstandingSince > PONG_TIMEOUT_MS) {
        // Only signaling is in doubt: keep the media, resume the session.
        this._dropConnection('no pong from server', { resume: true });
        return;
      }
      if (this._send({ type: 'ping', id: String(++this._pingSeq) }) && !this._pingOutstandingSince) {
        this._pingOutstandingSince = Date.now();
      }
    }, PING_INTERVAL_MS);
  }

  /** @private */
  _stopPing() {
    if (this._pingTimer) clearInterval(this._pingTimer);
    this._pingTimer = null;
  }

  // ------------------------------------------------------ room state events

  /** @private @param {any} raw */
  _onParticipantJoined(raw) {
    if (!raw || !raw.sid) return;
    const p = normalizeParticipant(raw);
    if (this.localParticipant && p.sid === this.localParticipant.sid) return;
    // A rejoin with the same identity replaces the old session; drop the old
    // entry even if its participant_left is late or missing.
    for (const [sid, old] of this.participants) {
      if (old.identity === p.identity && sid !== p.sid) this._onParticipantLeft(old);
    }
    const existing = this.participants.get(p.sid);
    this.participants.set(p.sid, p);
    if (!existing) this._emit('participantJoined', { participant: p });
  }

  /** @private @param {any} raw */
  _onParticipantLeft(raw) {
    if (!raw || !raw.sid) return;
    const p = this.participants.get(raw.sid);
    if (!p) return;
    this.participants.delete(raw.sid);
    this.activeSpeakers = this.activeSpeakers.filter((s) => s.sid !== raw.sid);
    this._emit('participantLeft', { participant: p });
  }

  /** @private @param {string} sid */
  _participantOrLocal(sid) {
    if (this.localParticipant && this.localParticipant.sid === sid) return { p: this.localParticipant, local: true };
    const p = this.participants.get(sid);
    return p ? { p, local: false } : null;
  }

  /** @private @param {TrackInfo} track */
  _onTrackPublished(track) {
    if (!track || !track.sid) return;
    const found = this._participantOrLocal(track.participantSid);
    if (found) {
      const i = found.p.tracks.findIndex((t) => t.sid === track.sid);
      if (i >= 0) found.p.tracks[i] = track; else found.p.tracks.push(track);
    }
    this._emit('trackPublished', { track, participant: found ? found.p : undefined, local: found ? found.local : false });
  }

  /** @private @param {TrackInfo} track */
  _onTrackUnpublished(track) {
    if (!track || !track.sid) return;
    const found = this._participantOrLocal(track.participantSid);
    if (found) found.p.tracks = found.p.tracks.filter((t) => t.sid !== track.sid);
    this._choices.delete(track.sid);
    this._emit('trackUnpublished', { track, participant: found ? found.p : undefined, local: found ? found.local : false });
  }

  /** @private @param {any} msg */
  _onMuteChanged(msg) {
    const muted = !!msg.muted;
    const found = this._participantOrLocal(msg.participantSid);
    if (found) {
      const info = found.p.tracks.find((t) => t.sid === msg.trackSid);
      if (info) info.muted = muted;
    }
    for (const rt of this._remoteTracks.values()) {
      if (rt.trackSid === msg.trackSid) rt.info.muted = muted;
    }
    this._emit('muteChanged', { participantSid: msg.participantSid, trackSid: msg.trackSid, muted, local: found ? found.local : false });
  }

  /** @private @param {any} speakers */
  _onActiveSpeakers(speakers) {
    this.activeSpeakers = Array.isArray(speakers) ? speakers : [];
    this._emit('activeSpeakers', { speakers: this.activeSpeakers, sids: this.activeSpeakers.map((s) => s.sid) });
  }

  /** @private @param {any} msg */
  _onChat(msg) {
    const from = msg.from || { sid: '', identity: '', name: '' };
    const local = !!this.localParticipant && from.sid === this.localParticipant.sid;
    this._emit('chat', { from, text: String(msg.text ?? ''), time: msg.time || new Date().toISOString(), local });
  }

  // -------------------------------------------------------------------- ICE

  /** @private @param {any} msg */
  _onRemoteCandidate(msg) {
    const c = msg.candidate;
    // End-of-candidates needs no action in browsers.
    if (!c || !c.candidate) return;
    if (msg.target === 'publisher') {
      const st = this._pub;
      if (!st) return;
      // While an offer is out (first one, or an ICE restart) candidates may
      // belong to the answer we have not applied yet: hold them until then.
      if (!st.pc.remoteDescription || st.pc.signalingState === 'have-local-offer') {
        st.heldCandidates.push(c);
        return;
      }
      addCandidate(st.pc, c);
    } else if (msg.target === 'subscriber') {
      const pc = this.subscriberPC;
      if (!pc) return;
      // Chained after any offer still being applied, so a candidate never
      // reaches the connection before the description it belongs to.
      this._subChain = this._subChain.then(() => {
        if (pc !== this.subscriberPC) return;
        if (!pc.remoteDescription) this._subHeldCandidates.push(c);
        else addCandidate(pc, c);
      });
    }
  }

  /** @private @param {RTCPeerConnection} pc @param {Target} target */
  _onIceState(pc, target) {
    if (pc !== this._pcFor(target)) return;
    const mon = this._ice[target];
    const state = pc.iceConnectionState;
    if (state === 'connected' || state === 'completed') {
      clearTimeout(mon.graceTimer);
      mon.graceTimer = null;
      this._iceRecovered(target);
    } else if (state === 'failed') {
      this._restartIce(target);
    } else if (state === 'disconnected' && !mon.graceTimer) {
      mon.graceTimer = setTimeout(() => {
        mon.graceTimer = null;
        if (pc === this._pcFor(target) && pc.iceConnectionState === 'disconnected') this._restartIce(target);
      }, ICE_DISCONNECTED_GRACE_MS);
    }
  }

  /**
   * Publisher: offer with iceRestart. Subscriber: ask the server to offer.
   * If media is not back within ICE_RESTART_GIVE_UP_MS, rebuild the session.
   * @private @param {Target} target
   */
  _restartIce(target) {
    this._watchIceRecovery(target);
    this._setState('reconnecting');
    if (target === 'publisher') this._negotiatePublisher({ iceRestart: true }).catch(() => {});
    else this._send({ type: 'restart_ice' });
  }

  /**
   * Marks an ICE restart as under way on a connection: connectionState
   * stays `reconnecting` until it is over (_iceRecovered), and if it is not
   * over within ICE_RESTART_GIVE_UP_MS the session is rebuilt.
   * @private @param {Target} target
   */
  _watchIceRecovery(target) {
    const mon = this._ice[target];
    if (mon.recovering) return;
    mon.recovering = true;
    mon.giveUpTimer = setTimeout(() => this._dropConnection(`${target} ICE did not recover`), ICE_RESTART_GIVE_UP_MS);
  }

  /**
   * Ends an ICE recovery once the connection is up again. Also called after
   * each restart negotiation: a restart that begins while ICE still reports
   * "connected" brings no state change event.
   * @private @param {Target} target
   */
  _iceRecovered(target) {
    const mon = this._ice[target];
    const pc = this._pcFor(target);
    if (!mon.recovering || !pc) return;
    if (pc.iceConnectionState !== 'connected' && pc.iceConnectionState !== 'completed') return;
    clearTimeout(mon.giveUpTimer);
    mon.giveUpTimer = null;
    mon.recovering = false;
    if (!this._ice.publisher.recovering && !this._ice.subscriber.recovering && !this._reconnecting && this._ws) {
      this._setState('connected');
    }
  }

  /** @private @param {Target} target */
  _clearIceMonitor(target) {
    const mon = this._ice[target];
    clearTimeout(mon.graceTimer);
    clearTimeout(mon.giveUpTimer);
    this._ice[target] = newIceMonitor();
  }

  // --------------------------------------------------------------- publisher

  /** @private @param {RTCPeerConnection} pc @param {LocalEntry} entry */
  _addTransceiver(pc, entry) {
    // Screen content: favour sharp text over frame rate when bandwidth drops.
    if (entry.source === 'screen' && entry.track.kind === 'video' && !entry.track.contentHint) {
      entry.track.contentHint = 'detail';
    }
    entry.transceiver = pc.addTransceiver(entry.track, { direction: 'sendonly', streams: [this._localStream] });
  }

  /**
   * Requests a publisher negotiation. Only one runs at a time; requests made
   * meanwhile are coalesced into one more round after it. Resolves when a
   * round that started after this call has finished.
   * @private
   * @param {{iceRestart?: boolean}} [opts]
   * @returns {Promise<void>}
   */
  _negotiatePublisher(opts = {}) {
    const st = this._pub;
    if (!st) return Promise.resolve();
    st.dirty = true;
    if (opts.iceRestart) st.iceRestart = true;
    const done = new Promise((resolve, reject) => { st.waiters.push({ resolve: () => resolve(undefined), reject }); });
    if (!st.running) this._runPublisherLoop(st);
    return done;
  }

  /** @private @param {PublisherState} st */
  async _runPublisherLoop(st) {
    st.running = true;
    try {
      while (st.dirty && !st.closed) {
        // Signaling is down while a resume is under way: leave the request
        // pending; the resume negotiates again (_restartPublisherIce).
        if (!this._signalingOpen()) break;
        st.dirty = false;
        const waiters = st.waiters.splice(0);
        const iceRestart = st.iceRestart;
        st.iceRestart = false;
        try {
          await this._publisherRound(st, iceRestart);
          waiters.forEach((w) => w.resolve());
        } catch (err) {
          if (st.closed) {
            // The session went away; the tracks will be republished on the
            // next one, so this is not the caller's failure.
            waiters.forEach((w) => w.resolve());
          } else if (err instanceof QuartetError && err.code === 'closed') {
            // The socket dropped during the round (which rolled its offer
            // back): redo it for the same callers. While signaling is down
            // the loop stops at its top; the resume starts it again.
            st.waiters.unshift(...waiters);
            st.dirty = true;
          } else {
            const e = err instanceof QuartetError ? err : new QuartetError('negotiation_failed', String(err && err.message || err), 'offer');
            waiters.forEach((w) => w.reject(e));
            this._emit('error', e);
          }
        }
      }
    } finally {
      st.running = false;
      // Anyone who asked while the loop was closing down is done too.
      if (st.closed) st.waiters.splice(0).forEach((w) => w.resolve());
    }
  }

  /**
   * One offer/answer round on the publisher connection.
   * @private @param {PublisherState} st @param {boolean} iceRestart
   */
  async _publisherRound(st, iceRestart) {
    const pc = st.pc;
    // Nothing was ever published: an offer without m-lines is useless.
    if (pc.getTransceivers().length === 0) return;
    const offer = await pc.createOffer({ iceRestart });
    if (st.closed) return;
    await pc.setLocalDescription(offer);
    if (st.closed) return;
    const sdp = /** @type {RTCSessionDescription} */ (pc.localDescription).sdp;
    const tracks = this._describeLocalTracks(pc, sdp);
    if (!this._send({ type: 'offer', target: 'publisher', sdp, tracks })) {
      await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
      if (iceRestart) st.iceRestart = true; // still needed next round
      throw new QuartetError('closed', 'not connected');
    }
    // Messages are handled in later tasks, so the answer cannot be missed.
    const answerPromise = this._expectAnswer(st);
    let answer;
    try {
      answer = await answerPromise;
    } catch (err) {
      // Go back to stable so that the next round can offer again.
      if (!st.closed && pc.signalingState === 'have-local-offer') {
        await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
      }
      // Candidates held for the answer that never came belong to ICE
      // credentials we will never use; added after a later answer, Chrome
      // pairs them with the new ones and rejects the server's checks.
      st.heldCandidates.length = 0;
      if (iceRestart) st.iceRestart = true; // still needed next round
      throw err;
    }
    if (st.closed) return;
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    for (const c of st.heldCandidates.splice(0)) addCandidate(pc, c);
    this._applyTrackSids(answer.tracks);
    if (iceRestart) this._iceRecovered('publisher');
  }

  /**
   * After a resume: restarts ICE on the publisher connection with a new
   * offer. An offer whose answer was lost with the old socket is rolled
   * back first (normally the negotiation loop has done so already; this
   * covers one left behind by a loop that stopped).
   * @private
   */
  async _restartPublisherIce() {
    const st = this._pub;
    if (!st) return;
    if (!st.running && st.pc.signalingState === 'have-local-offer') {
      await st.pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
    }
    if (st !== this._pub || st.closed) return;
    await this._negotiatePublisher({ iceRestart: true });
  }

  /** @private @param {PublisherState} st @returns {Promise<any>} */
  _expectAnswer(st) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (st.pendingAnswer && st.pendingAnswer.timer === timer) st.pendingAnswer = null;
        reject(new QuartetError('timeout', 'no answer to publisher offer', 'offer'));
      }, ANSWER_TIMEOUT_MS);
      st.pendingAnswer = { resolve, reject, timer };
    });
  }

  /** @private @param {any} msg */
  _onPublisherAnswer(msg) {
    const st = this._pub;
    if (!st || !st.pendingAnswer) return; // late answer after a timeout: ignore
    const pending = st.pendingAnswer;
    st.pendingAnswer = null;
    clearTimeout(pending.timer);
    pending.resolve(msg);
  }

  /**
   * Builds the offer's `tracks` list. The protocol keys tracks by their msid
   * track id, which Chromium takes from the sender (equal to the track id for
   * a fresh transceiver, but not after replaceTrack), so read it from the SDP.
   * @private @param {RTCPeerConnection} pc @param {string} sdp
   */
  _describeLocalTracks(pc, sdp) {
    const msidByMid = msidTrackIdsByMid(sdp);
    const live = new Set(pc.getTransceivers());
    const tracks = [];
    for (const entry of this._published.values()) {
      const tr = entry.transceiver;
      if (!tr || !live.has(tr) || tr.mid == null) continue;
      entry.offeredId = msidByMid.get(tr.mid) || entry.track.id;
      entry.serverMuted = entry.muted;
      tracks.push({ trackId: entry.offeredId, source: entry.source, muted: entry.muted });
    }
    return tracks;
  }

  /**
   * Records server sids from the publisher answer and catches the server up
   * on mute changes made while the offer was out.
   * @private @param {any} tracks
   */
  _applyTrackSids(tracks) {
    if (!Array.isArray(tracks)) return;
    for (const t of tracks) {
      for (const entry of this._published.values()) {
        if (entry.offeredId !== t.trackId || !t.sid) continue;
        const isNew = entry.sid !== t.sid;
        entry.sid = t.sid;
        if (entry.serverMuted !== entry.muted) this._sendMute(entry);
        if (isNew) this._emit('localTrackSid', { track: entry.track, sid: t.sid, source: entry.source });
      }
    }
  }

  /** @private @param {LocalEntry} entry */
  _sendMute(entry) {
    if (this._send({ type: 'mute', trackSid: entry.sid, muted: entry.muted })) entry.serverMuted = entry.muted;
  }

  // -------------------------------------------------------------- subscriber

  /** @private @param {any} msg */
  _onSubscriberOffer(msg) {
    const pc = this.subscriberPC;
    if (!pc) return;
    this._subChain = this._subChain
      .then(() => this._answerSubscriber(pc, msg))
      .catch((err) => {
        if (pc === this.subscriberPC) this._emitError(new QuartetError('negotiation_failed', `subscriber offer: ${err && err.message || err}`, 'offer'));
      });
  }

  /** @private @param {RTCPeerConnection} pc @param {any} msg */
  async _answerSubscriber(pc, msg) {
    if (pc !== this.subscriberPC) return;
    // We only ever answer on this connection, so an offer of ours cannot be
    // pending; should one be, the server's offer replaces it. (In
    // have-remote-offer a new remote offer simply replaces the old one.)
    if (pc.signalingState === 'have-local-offer' || pc.signalingState === 'have-local-pranswer') {
      await pc.setLocalDescription({ type: 'rollback' });
    }
    if (pc !== this.subscriberPC) return;
    // Set before applying the offer so the mapping is ready for ontrack.
    this._midInfo = new Map(Object.entries(msg.tracks || {}));
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    for (const c of this._subHeldCandidates.splice(0)) addCandidate(pc, c);
    const answer = await pc.createAnswer();
    if (pc !== this.subscriberPC) return;
    await pc.setLocalDescription(answer);
    if (pc !== this.subscriberPC) return;
    this._send({ type: 'answer', target: 'subscriber', sdp: /** @type {RTCSessionDescription} */ (pc.localDescription).sdp });
    this._reconcileRemoteTracks(pc);
    this._iceRecovered('subscriber');
  }

  /**
   * Brings the set of announced remote tracks in line with the subscriber
   * connection after a negotiation. Working from the transceivers rather
   * than from ontrack also covers a server reusing an m-line for another
   * track (ontrack does not fire again then).
   * @private @param {RTCPeerConnection} pc
   */
  _reconcileRemoteTracks(pc) {
    const seen = new Set();
    for (const tr of pc.getTransceivers()) {
      const mid = tr.mid;
      if (mid == null) continue;
      const info = this._midInfo.get(mid);
      const receiving = tr.currentDirection === 'recvonly' || tr.currentDirection === 'sendrecv';
      if (!info || !receiving) continue;
      seen.add(mid);
      const prev = this._remoteTracks.get(mid);
      if (prev && prev.trackSid === info.sid && prev.track === tr.receiver.track) {
        prev.info = info;
        continue;
      }
      if (prev) this._endRemoteTrack(mid);
      this._startRemoteTrack(mid, tr.receiver.track, info);
    }
    for (const mid of [...this._remoteTracks.keys()]) {
      if (!seen.has(mid)) this._endRemoteTrack(mid);
    }
  }

  /** @private @param {string} mid @param {MediaStreamTrack} track @param {TrackInfo} info */
  _startRemoteTrack(mid, track, info) {
    const psid = info.participantSid;
    let stream = this._remoteStreams.get(psid);
    if (!stream) { stream = new MediaStream(); this._remoteStreams.set(psid, stream); }
    stream.addTrack(track);
    /** @type {RemoteTrack} */
    const rt = {
      track, stream, participantSid: psid, participant: this.participants.get(psid),
      info, trackSid: info.sid, source: info.source, kind: info.kind || /** @type {any} */ (track.kind), mid,
    };
    this._remoteTracks.set(mid, rt);
    this._emit('track', rt);
  }

  /** @private @param {string} mid */
  _endRemoteTrack(mid) {
    const rt = this._remoteTracks.get(mid);
    if (!rt) return;
    this._remoteTracks.delete(mid);
    rt.stream.removeTrack(rt.track);
    if (rt.stream.getTracks().length === 0) this._remoteStreams.delete(rt.participantSid);
    this._emit('trackEnded', rt);
  }
}

// ------------------------------------------------------------------ helpers

/** @param {string} [url] */
function resolveWsUrl(url) {
  if (!url) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws`;
  }
  const u = new URL(url, typeof location !== 'undefined' ? location.href : undefined);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.toString();
}

/** @param {any} data @returns {any} */
function parseMessage(data) {
  if (typeof data !== 'string') return null;
  try {
    const msg = JSON.parse(data);
    return msg && typeof msg === 'object' && typeof msg.type === 'string' ? msg : null;
  } catch {
    return null;
  }
}

/** @param {any} raw @returns {ParticipantInfo} */
function normalizeParticipant(raw) {
  const p = raw || {};
  return {
    ...p,
    sid: String(p.sid || ''),
    identity: String(p.identity || ''),
    name: String(p.name || p.identity || ''),
    tracks: Array.isArray(p.tracks) ? p.tracks.slice() : [],
  };
}

/**
 * What a `join` needs to resume the session a `joined` describes, or null
 * if the server offers no resume (an older server sends no token).
 * @param {any} msg the `joined` message
 * @returns {{participantSid: string, resumeToken: string}|null}
 */
function resumeRequestFrom(msg) {
  const participantSid = msg.participant && msg.participant.sid;
  const resumeToken = msg.resumeToken;
  if (typeof participantSid !== 'string' || !participantSid) return null;
  if (typeof resumeToken !== 'string' || !resumeToken) return null;
  return { participantSid, resumeToken };
}

/** @param {WebSocket} ws */
function detachSocket(ws) {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}

/** @param {RTCPeerConnection} pc @param {RTCIceCandidateInit} c */
function addCandidate(pc, c) {
  // A stale candidate (old ICE generation) is harmless: log and move on.
  pc.addIceCandidate(c).catch((err) => console.debug('quartet: candidate ignored:', err.message));
}

/**
 * Maps each m-line's mid to its msid track id.
 * @param {string} sdp
 * @returns {Map<string, string>}
 */
export function msidTrackIdsByMid(sdp) {
  const out = new Map();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const mid = /^a=mid:(\S+)/m.exec(section);
    const msid = /^a=msid:\S+ (\S+)/m.exec(section);
    if (mid && msid) out.set(mid[1], msid[1]);
  }
  return out;
}

function newIceMonitor() {
  return { graceTimer: /** @type {any} */ (null), giveUpTimer: /** @type {any} */ (null), recovering: false };
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
