// @ts-check
/**
 * The Room, the SDK's one public class: the app's API and the room as we
 * see it. Its parts: the Session (the connection to the server and its
 * peer connections), the RoomState (who is in the room), the LocalTracks
 * (what we publish) and the Subscriptions (what we chose to receive).
 * Every event is dispatched on the Room.
 * @module quartet/room
 */

import { AdaptiveStream } from './adaptive-stream.js';
import { QuartetError } from './errors.js';
import { LocalTracks } from './local-tracks.js';
import { CHAT_MAX_BYTES, PROTOCOL_VERSION, TRACK_SOURCES, normalizeParticipant } from './protocol.js';
import { RoomState } from './room-state.js';
import { Session } from './session.js';
import { resolveWsUrl } from './signaling.js';
import { Subscriptions, choiceMessages } from './subscriptions.js';
import { TrackSettingsStore, normalizeSettings } from './track-settings.js';

/**
 * @typedef {import('./protocol.js').TrackSource} TrackSource
 * @typedef {import('./protocol.js').Target} Target
 * @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo
 * @typedef {import('./protocol.js').StreamState} StreamState
 * @typedef {import('./remote-track.js').RemoteTrack} RemoteTrack
 * @typedef {import('./encodings.js').PublishOptions} PublishOptions
 * @typedef {import('./track-settings.js').TrackSettings} TrackSettings
 * @typedef {import('./session.js').ConnectionState} ConnectionState
 * @typedef {string} RoomEventType one of the event types in quartet.js
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
 * @property {boolean} [adaptiveStream] watch the video elements remote
 *   tracks are attached to (RemoteTrack.attach) and receive what they
 *   show: nothing while hidden (off screen, page in the background), a
 *   layer of their size otherwise (default false)
 * @property {PublishOptions} [publishDefaults] options for every
 *   publish(), under the ones passed to it (e.g. `{simulcast: false}`)
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
    /** Whether the server sends every track without asking. @type {boolean} */
    this.autoSubscribe = options.autoSubscribe !== false;
    /** @type {ConnectionState} */
    this.connectionState = 'disconnected';
    /** @type {{sid: string, name: string}|null} */
    this.roomInfo = null;
    /** @type {string} */
    this.serverVersion = '';
    /** Whether video elements are watched (the `adaptiveStream` option). @type {boolean} */
    this.adaptiveStream = !!options.adaptiveStream;
    /** @private @type {PublishOptions} */
    this._publishDefaults = { ...options.publishDefaults };

    const emit = (/** @type {string} */ type, /** @type {any} */ detail) => this._emit(type, detail);
    /** @private */
    this._state = new RoomState(emit);
    /** @private */
    this._subscriptions = new Subscriptions();
    /** @private */
    this._tracks = new LocalTracks();
    /** @private what we asked of each received track (track_settings) */
    this._settings = new TrackSettingsStore((msg) => this._session.send(msg));
    /** @private */
    this._adaptive = new AdaptiveStream(this.adaptiveStream, (sid, state) => {
      // A track unpublished meanwhile: the server would refuse its sid.
      if (this._state.hasRemoteTrack(sid)) this._settings.setAdaptive(sid, state);
    });
    /** @private */
    this._session = new Session({
      url: this.url,
      iceServers: options.iceServers || null,
      iceTransportPolicy: options.iceTransportPolicy || 'all',
      turnTransport: options.turnTransport || null,
    }, this._tracks, {
      setState: (state) => this._setState(state),
      emit,
      // Looked up at each message, so that a test can wrap room._onMessage.
      onMessage: (msg) => this._onMessage(msg),
      getToken: (refresh) => this._getToken(refresh),
      joinMessage: (token) => this._joinMessage(token),
      joined: (msg) => this._onJoined(msg),
      resumed: (msg) => this._onResumed(msg),
      localParticipant: () => this._state.local,
      participant: (sid) => this._state.participants.get(sid),
      trackHooks: {
        setSettings: (sid, settings) => this.setTrackSettings(sid, settings),
        attached: (rt, el) => this._adaptive.attached(rt, el),
        detached: (rt, el) => this._adaptive.detached(rt, el),
        ended: (rt) => this._adaptive.ended(rt),
      },
    });
  }

  // ------------------------------------------------------------ state

  /** Remote participants by sid. @returns {Map<string, ParticipantInfo>} */
  get participants() { return this._state.participants; }

  /** @returns {ParticipantInfo|null} */
  get localParticipant() { return this._state.local; }

  /** Loudest first. @returns {{sid: string, level: number}[]} */
  get activeSpeakers() { return this._state.activeSpeakers; }

  /** ICE servers in use (from `joined` unless overridden). @returns {RTCIceServer[]} */
  get iceServers() { return this._session.iceServers; }

  /** @returns {RTCPeerConnection|null} */
  get publisherPC() { return this._session.pcFor('publisher'); }

  /** @returns {RTCPeerConnection|null} */
  get subscriberPC() { return this._session.pcFor('subscriber'); }

  /**
   * The local tracks currently published.
   * @returns {{track: MediaStreamTrack, source: TrackSource, sid: string|null, muted: boolean}[]}
   */
  get localTracks() {
    return [...this._tracks.values()].map((e) => ({ track: e.track, source: e.source, sid: e.sid, muted: e.muted }));
  }

  /** Remote tracks currently received. @returns {RemoteTrack[]} */
  get remoteTracks() {
    return this._session.sub ? this._session.sub.remoteTracks : [];
  }

  // ----------------------------------------------------------- events

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

  /** @private @param {ConnectionState} state */
  _setState(state) {
    if (this.connectionState === state) return;
    this.connectionState = state;
    this._emit('connectionState', { state });
  }

  // ------------------------------------------------------- public API

  /**
   * Opens the WebSocket, joins the room and sets up both peer connections.
   * Tracks published before connect() are published once joined.
   * @returns {Promise<ParticipantInfo>} the local participant
   */
  async connect() {
    await this._session.connect();
    return /** @type {ParticipantInfo} */ (this.localParticipant);
  }

  /**
   * Publishes a local track. Resolves when the server has answered the
   * renegotiation, with the track's server sid (undefined if not connected
   * yet: the track is then published when the connection comes up).
   * Camera video goes out as simulcast (three layers for 720p, fewer for
   * smaller captures), screen video as one sharp encoding; `options`
   * changes that (see PublishOptions in encodings.js). Options of a track
   * already published are not changed.
   * @param {MediaStreamTrack} track
   * @param {TrackSource} source
   * @param {PublishOptions} [options]
   * @returns {Promise<string|undefined>}
   */
  async publish(track, source, options = {}) {
    if (!TRACK_SOURCES.includes(source)) throw new TypeError(`unknown track source: ${source}`);
    const perms = this.localParticipant && this.localParticipant.permissions;
    if (perms && perms.canPublish === false) throw new QuartetError('forbidden', 'this token may not publish');
    const pub = this._session.pub;
    let entry = this._tracks.get(track);
    if (!entry) {
      entry = this._tracks.add(track, source, { ...this._publishDefaults, ...options });
      if (pub) pub.addTrack(entry);
    }
    if (pub) await pub.negotiate();
    return entry.sid || undefined;
  }

  /**
   * Stops sending a track (the track itself is not stopped: the caller owns it).
   * @param {MediaStreamTrack} track
   * @returns {Promise<void>}
   */
  async unpublish(track) {
    const entry = this._tracks.remove(track);
    const pub = this._session.pub;
    if (!entry || !pub || !pub.removeTrack(entry)) return;
    await pub.negotiate();
  }

  /**
   * Mutes or unmutes a published track: disables it locally (silence or
   * black frames, so no renegotiation) and tells the server.
   * @param {MediaStreamTrack} track
   * @param {boolean} muted
   */
  setMuted(track, muted) {
    track.enabled = !muted;
    const entry = this._tracks.get(track);
    if (!entry) return;
    entry.muted = muted;
    // If the sid is not known yet, the pending offer or the answer handler
    // reports the state (Session._onTrackNamed).
    if (entry.sid) this._session.sendMute(entry);
    this._state.localMuteChanged(entry.sid, muted);
  }

  /**
   * Whether a published track is muted.
   * @param {MediaStreamTrack} track
   * @returns {boolean}
   */
  isMuted(track) {
    const entry = this._tracks.get(track);
    return entry ? entry.muted : !track.enabled;
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
    if (!this._session.send({ type: 'chat', text })) throw new QuartetError('closed', 'not connected');
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

  /**
   * Says how received tracks are to be received, by sid (from
   * `participants` or `trackPublished`, also for tracks not received
   * yet): see RemoteTrack.setSettings. Fields left out keep their earlier
   * value. Sent now if connected, else once connected; kept across
   * reconnections. A refusal (unknown sid) comes as an `error` event with
   * requestType `track_settings`.
   * @param {string|string[]} trackSids
   * @param {TrackSettings} settings
   */
  setTrackSettings(trackSids, settings) {
    const sids = [trackSids].flat();
    if (!sids.every((sid) => typeof sid === 'string' && sid !== '')) throw new TypeError('track sids must be non-empty strings');
    const s = normalizeSettings(settings);
    if (sids.length > 0) this._settings.setApp(sids, s);
  }

  /** Leaves the room and closes everything. The Room cannot be reused. */
  leave() {
    if (!this._session.leave()) return;
    this._adaptive.dispose();
    this.participants.clear();
    this._setState('disconnected');
    this._emit('leave', { reason: 'client' });
  }

  /** @private @param {string|string[]} trackSids @param {boolean} on */
  _choose(trackSids, on) {
    const sids = [trackSids].flat();
    if (sids.length === 0) return;
    if (!sids.every((sid) => typeof sid === 'string' && sid !== '')) throw new TypeError('track sids must be non-empty strings');
    if (!this._session.isOpen()) throw new QuartetError('closed', 'not connected');
    this._subscriptions.record(sids, on);
    for (const msg of choiceMessages(sids, on)) this._session.send(msg);
  }

  // ------------------------------------------------ joining (hooks)

  /** @private @param {boolean} refresh */
  async _getToken(refresh) {
    if (this.tokenProvider && (refresh || !this.token)) {
      const token = await this.tokenProvider();
      if (token) this.token = token;
    }
    if (!this.token) throw new QuartetError('unauthorized', 'no access token');
    return this.token;
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
   * A fresh session: the room as the server describes it, and the app's
   * subscription choices sent again, since this session knows none.
   * @private @param {any} msg the `joined` message
   */
  _onJoined(msg) {
    this.roomInfo = msg.room || null;
    this.serverVersion = msg.serverVersion || '';
    this._state.local = normalizeParticipant(msg.participant);
    this._state.replace((msg.participants || []).map(normalizeParticipant));
    const present = this._state.remoteTrackSids();
    for (const m of this._subscriptions.replay(present)) this._session.send(m);
    this._settings.newSession(present);
  }

  /**
   * Our session resumed: the room view is brought up to date (events sent
   * while we were away are lost; replace() emits the differences).
   * @private @param {any} msg the `joined` message
   */
  _onResumed(msg) {
    this.roomInfo = msg.room || this.roomInfo;
    this.serverVersion = msg.serverVersion || this.serverVersion;
    this._state.local = normalizeParticipant(msg.participant);
    this._state.replace((msg.participants || []).map(normalizeParticipant));
    // Settings made while away never reached the server.
    this._settings.flushAll();
  }

  // ---------------------------------------------------------- messages

  /**
   * Handles a message on the joined socket. (A test hook too: the e2e
   * tests wrap it to watch what the server sends.)
   * @private @param {any} msg
   */
  _onMessage(msg) {
    switch (msg.type) {
      case 'participant_joined': this._state.participantJoined(msg.participant); break;
      case 'participant_left': this._state.participantLeft(msg.participant); break;
      case 'track_published': this._state.trackPublished(msg.track); break;
      case 'track_unpublished': this._onTrackUnpublished(msg.track); break;
      case 'mute_changed': this._onMuteChanged(msg); break;
      case 'active_speakers': this._state.speakersChanged(msg.speakers); break;
      case 'chat': this._state.chat(msg); break;
      case 'stream_state': this._onStreamState(msg); break;
      case 'error':
        // An older server does not know track_settings: stop sending them.
        if (msg.code === 'unknown_type' && msg.requestType === 'track_settings') this._settings.unsupported();
        else this._session.handleMessage(msg);
        break;
      case 'leave': this._onServerLeave(msg.reason); break;
      default: this._session.handleMessage(msg); break; // and newer minor versions may add types
    }
  }

  /** @private @param {any} track */
  _onTrackUnpublished(track) {
    if (track && track.sid) {
      this._subscriptions.forget(track.sid);
      this._settings.forget(track.sid);
    }
    this._state.trackUnpublished(track);
  }

  /**
   * The server paused a video track it sends us (its lowest layer does
   * not fit our bandwidth) or resumed it.
   * @private @param {any} msg
   */
  _onStreamState(msg) {
    const sub = this._session.sub;
    const sid = msg.trackSid;
    /** @type {StreamState} */
    const state = msg.state === 'paused' ? 'paused' : 'active';
    if (!sub || typeof sid !== 'string' || !sid || (msg.state !== 'paused' && msg.state !== 'active')) return;
    const reason = state === 'paused' ? String(msg.reason || '') : '';
    const { changed, track } = sub.setStreamState(sid, state, reason);
    if (changed) this._emit('trackStreamState', { trackSid: sid, state, reason, track });
  }

  /** @private @param {any} msg */
  _onMuteChanged(msg) {
    const sub = this._session.sub;
    if (sub) sub.setMuted(msg.trackSid, !!msg.muted);
    this._state.muteChanged(msg);
  }

  /** @private @param {string} reason */
  _onServerLeave(reason) {
    this._session.close();
    this._adaptive.dispose();
    this.participants.clear();
    this._setState('disconnected');
    this._emit('leave', { reason: reason || 'unknown' });
  }

  // --------------------------------------------------------- test hooks
  // Not part of the API, but not @private either: e2e/browser_test.go
  // reaches them from page JS, and noUnusedLocals would call them unused.

  /**
   * The joined signaling socket (the e2e tests close it to simulate a
   * network drop).
   * @returns {WebSocket|null}
   */
  get _ws() { return this._session.ws; }

  /**
   * Restarts ICE on one connection, as the SDK does itself when ICE fails
   * or stays disconnected (the e2e tests call it).
   * @param {Target} target
   */
  _restartIce(target) {
    this._session.restartIce(target);
  }
}
