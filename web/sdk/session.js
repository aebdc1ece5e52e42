// @ts-check
/**
 * A Room's connection to the server, kept alive: the join, the resume
 * after a signaling drop (keeping the peer connections and their media),
 * the rejoin when a resume is not possible, retries with backoff, and the
 * two peer connections with their ICE monitors. What the room looks like
 * is the Room's business; the session tells it through hooks.
 * @module quartet/session
 */

import { QuartetError, errorText } from './errors.js';
import { IceMonitor, selectIceServers } from './ice.js';
import { FATAL_JOIN_CODES, resumeRequestFrom } from './protocol.js';
import { Publisher } from './publisher.js';
import { SignalingConnection } from './signaling.js';
import { Subscriber } from './subscriber.js';
import { retryWithBackoff } from './util.js';

/**
 * @typedef {import('./protocol.js').Target} Target
 * @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo
 * @typedef {import('./protocol.js').ResumeRequest} ResumeRequest
 * @typedef {import('./local-tracks.js').LocalTracks} LocalTracks
 * @typedef {import('./local-tracks.js').LocalEntry} LocalEntry
 * @typedef {import('./remote-track.js').RemoteTrack} RemoteTrack
 * @typedef {import('./remote-track.js').RemoteTrackHooks} RemoteTrackHooks
 * @typedef {'connecting'|'connected'|'reconnecting'|'disconnected'} ConnectionState
 */

/**
 * @typedef {Object} SessionOptions
 * @property {string} url
 * @property {RTCIceServer[]|null} iceServers used instead of the server's
 * @property {RTCIceTransportPolicy} iceTransportPolicy
 * @property {'udp'|'tcp'|null} turnTransport
 */

/**
 * What the session tells the Room, and asks of it.
 * @typedef {Object} SessionHooks
 * @property {(state: ConnectionState) => void} setState
 * @property {(type: string, detail: any) => void} emit
 * @property {(msg: any) => void} onMessage every message on the joined socket
 * @property {(refresh: boolean) => Promise<string>} getToken
 * @property {(token: string) => Record<string, any>} joinMessage
 * @property {(msg: any) => void} joined a fresh `joined`, before the
 *   new peer connections are made
 * @property {(msg: any) => void} resumed a `joined` that resumed our session
 * @property {() => ParticipantInfo|null} localParticipant
 * @property {(sid: string) => ParticipantInfo|undefined} participant
 * @property {RemoteTrackHooks} trackHooks for the remote tracks
 */

// Backoff of reconnection attempts, and when to give up.
const RECONNECT = { firstDelayMs: 500, maxDelayMs: 5_000, giveUpAfterMs: 60_000 };

/** @type {readonly Target[]} */
const TARGETS = ['publisher', 'subscriber'];

export class Session {
  /**
   * @param {SessionOptions} opts
   * @param {LocalTracks} tracks the Room's published tracks
   * @param {SessionHooks} hooks
   */
  constructor(opts, tracks, hooks) {
    /** @private */
    this._opts = opts;
    /** @private */
    this._tracks = tracks;
    /** @private */
    this._hooks = hooks;
    /** ICE servers in use (from `joined` unless overridden). @type {RTCIceServer[]} */
    this.iceServers = [];
    /** @private */
    this._signal = new SignalingConnection(opts.url, {
      onMessage: (msg) => hooks.onMessage(msg),
      onDrop: () => { if (!this._closed) this._reconnect({ resume: true }); },
      // Only signaling is in doubt: keep the media, resume the session.
      onPongTimeout: () => this._dropConnection('no pong from server', { resume: true }),
    });
    /** @type {Publisher|null} */
    this.pub = null;
    /** @type {Subscriber|null} */
    this.sub = null;
    /** @private */
    this._ice = { publisher: this._newIceMonitor('publisher'), subscriber: this._newIceMonitor('subscriber') };
    /**
     * @private what a `join` needs to resume this session after a drop,
     * from the last `joined`; null when there is nothing to resume
     * @type {ResumeRequest|null}
     */
    this._resume = null;
    /** @private set by leave (ours or the server's): no more reconnection */
    this._closed = false;
    /** @private */
    this._reconnecting = false;
  }

  /** The joined signaling socket, or null. */
  get ws() { return this._signal.ws; }

  /** @param {object} msg @returns {boolean} whether it was handed to an open socket */
  send(msg) { return this._signal.send(msg); }

  /** Whether messages can be sent on a joined socket now. */
  isOpen() { return this._signal.isOpen(); }

  /** @param {Target} target @returns {RTCPeerConnection|null} */
  pcFor(target) {
    const side = target === 'publisher' ? this.pub : this.sub;
    return side ? side.pc : null;
  }

  /**
   * Joins: token, socket, join, peer connections.
   * @returns {Promise<void>}
   */
  async connect() {
    if (this._signal.ws || this._reconnecting) throw new QuartetError('bad_state', 'already connected');
    this._closed = false;
    this._hooks.setState('connecting');
    try {
      const token = await this._hooks.getToken(false);
      await this._establish(token);
    } catch (err) {
      this._teardown();
      this._hooks.setState('disconnected');
      throw err;
    }
    this._hooks.setState('connected');
  }

  /**
   * Says goodbye to the server and closes everything.
   * @returns {boolean} false if there was nothing to leave
   */
  leave() {
    if (this._closed && !this._signal.ws) return false;
    this._closed = true;
    this._signal.send({ type: 'leave' });
    // close() sends buffered frames (the leave) before the close frame.
    this._teardown();
    return true;
  }

  /** Closes everything, for good: the server ended the session. */
  close() {
    this._closed = true;
    this._teardown();
  }

  /** @param {LocalEntry} entry */
  sendMute(entry) {
    if (this._signal.send({ type: 'mute', trackSid: entry.sid, muted: entry.muted })) entry.serverMuted = entry.muted;
  }

  // --------------------------------------------------------- messages

  /**
   * Handles the messages about the connections themselves (offer,
   * answer, candidate, subscribed_layers, error, pong); the Room passes
   * them on from its own dispatcher.
   * @param {any} msg
   */
  handleMessage(msg) {
    switch (msg.type) {
      case 'offer': if (msg.target === 'subscriber' && this.sub) this.sub.onOffer(msg); break;
      case 'answer': if (msg.target === 'publisher' && this.pub) this.pub.onAnswer(msg); break;
      case 'subscribed_layers': this._onSubscribedLayers(msg); break;
      case 'candidate': this._onRemoteCandidate(msg); break;
      case 'error': this._onServerError(msg); break;
      case 'pong': this._signal.pong(); break;
      default: break;
    }
  }

  /**
   * Dynacast: the server says which encodings of one of our tracks anyone
   * needs. A sid we do not know (an older session's, a track unpublished
   * meanwhile) is ignored.
   * @private @param {any} msg
   */
  _onSubscribedLayers(msg) {
    const entry = typeof msg.trackSid === 'string' && msg.trackSid ? this._tracks.bySid(msg.trackSid) : undefined;
    if (!entry || !this.pub) return;
    this.pub.setSubscribedLayers(entry, msg.layers);
  }

  /** @private @param {any} msg */
  _onRemoteCandidate(msg) {
    const c = msg.candidate;
    // End-of-candidates needs no action in browsers.
    if (!c || !c.candidate) return;
    if (msg.target === 'publisher' && this.pub) this.pub.addRemoteCandidate(c);
    else if (msg.target === 'subscriber' && this.sub) this.sub.addRemoteCandidate(c);
  }

  /** @private @param {any} msg */
  _onServerError(msg) {
    const err = new QuartetError(msg.code || 'error', msg.message || '', msg.requestType);
    // An error about our offer ends the wait for its answer; the
    // negotiation loop emits it.
    if (msg.requestType === 'offer' && this.pub && this.pub.failPendingAnswer(err)) return;
    this._hooks.emit('error', err);
  }

  // ------------------------------------------------- join and resume

  /**
   * Opens a socket and joins on it, resuming the kept session if there is
   * one (after a drop). Resolves once the `joined` has been handled.
   * @private
   * @param {string} token
   * @returns {Promise<void>}
   */
  _establish(token) {
    const resume = this._resume && this.pub ? this._resume : null;
    return this._signal.establish(this._hooks.joinMessage(token), resume, {
      onJoined: (msg) => this._onJoined(msg),
      onResumeAnswer: (msg) => this._onResumeAnswer(msg),
      onResumeFailed: () => {
        // The server no longer holds the session (it timed out or was
        // ended): the kept connections serve nothing any more.
        console.info('quartet: session could not be resumed; joining afresh');
        this._closePeers();
      },
    });
  }

  /**
   * Handles the `joined` that answers a resume request. Only `resumed:
   * true` for our own sid resumes; anything else (a server that ignores
   * `resume` answers with a new participant) is a fresh session.
   * @private @param {any} msg
   */
  _onResumeAnswer(msg) {
    const self = this._hooks.localParticipant();
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
    this.iceServers = selectIceServers(this._opts.iceServers, msg.iceServers, this._opts.turnTransport);
    this._hooks.joined(msg);
    const pub = this._createPeerConnections();
    this._resume = resumeRequestFrom(msg);
    this._signal.startPing();
    // Republish (after a reconnection, or tracks published before connect).
    if (this._tracks.size > 0) {
      for (const entry of this._tracks.values()) {
        entry.sid = null;
        entry.serverMuted = null;
        pub.addTrack(entry);
      }
      pub.negotiate().catch(() => {}); // errors are emitted by the loop
    }
  }

  /**
   * Applies a `joined` that resumed our session. The peer connections and
   * local tracks stay as they are (the Room brings its view of the room up
   * to date), and ICE restarts on both connections, since the network path
   * may have changed: the server offers the subscriber side itself, we
   * offer the publisher side.
   * @private @param {any} msg
   */
  _onResumed(msg) {
    this._hooks.resumed(msg);
    this._updateIceServers(msg.iceServers);
    // Resume tokens are single-use: the next resume needs this one.
    this._resume = resumeRequestFrom(msg);
    if (!this._resume) console.warn('quartet: resumed joined carries no resumeToken; the next drop will rejoin afresh');
    this._signal.startPing();
    // Watch both restarts like any ICE restart: the state returns to
    // connected once both are up, and media that does not come back
    // rebuilds the session. A connection never negotiated has nothing to
    // restart.
    for (const target of TARGETS) {
      this._ice[target].reset();
      const pc = this.pcFor(target);
      if (pc && pc.remoteDescription) this._ice[target].watchRecovery();
    }
    // Mute changes made while away never reached the server.
    for (const entry of this._tracks.values()) {
      if (entry.sid && entry.serverMuted !== entry.muted) this.sendMute(entry);
    }
    if (this.pub) this.pub.restartIce().catch(() => {}); // errors are emitted by the loop
  }

  /**
   * ICE servers may come with fresh credentials in a resumed `joined`; the
   * kept connections use them from their ICE restart on.
   * @private @param {unknown} list
   */
  _updateIceServers(list) {
    if (this._opts.iceServers) return;
    this.iceServers = selectIceServers(null, list, this._opts.turnTransport);
    for (const target of TARGETS) {
      const pc = this.pcFor(target);
      if (!pc) continue;
      try {
        pc.setConfiguration({ ...pc.getConfiguration(), iceServers: this.iceServers });
      } catch (err) {
        console.debug('quartet: ICE servers not updated:', errorText(err));
      }
    }
  }

  /** @private @returns {Publisher} */
  _createPeerConnections() {
    /** @type {RTCConfiguration} */
    const config = {
      iceServers: this.iceServers, iceTransportPolicy: this._opts.iceTransportPolicy,
      bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require',
    };
    const send = (/** @type {object} */ msg) => this._signal.send(msg);
    const emit = this._hooks.emit;
    const pub = new Publisher(config, this._tracks, {
      send,
      signalingOpen: () => this._signal.isOpen(),
      onAnswer: (tracks) => this._tracks.applySids(tracks, (entry, isNew) => this._onTrackNamed(entry, isNew)),
      onIceRestarted: () => this._ice.publisher.checkRecovered(),
      onIceStateChange: () => this._ice.publisher.onStateChange(),
      onError: (err) => emit('error', err),
    });
    const sub = new Subscriber(config, {
      send,
      participant: this._hooks.participant,
      trackHooks: this._hooks.trackHooks,
      onTrack: (rt) => emit('track', rt),
      onTrackEnded: (rt) => emit('trackEnded', rt),
      onNegotiated: () => this._ice.subscriber.checkRecovered(),
      onIceStateChange: () => this._ice.subscriber.onStateChange(),
      onError: (err) => emit('error', err),
    });
    this.pub = pub;
    this.sub = sub;
    return pub;
  }

  /**
   * A publisher answer named a local track: catch the server up on mute
   * changes made while the offer was out, and tell the app a new sid.
   * @private @param {LocalEntry} entry @param {boolean} isNew
   */
  _onTrackNamed(entry, isNew) {
    if (entry.serverMuted !== entry.muted) this.sendMute(entry);
    if (isNew) this._hooks.emit('localTrackSid', { track: entry.track, sid: entry.sid, source: entry.source });
  }

  // ----------------------------------------------------- ending things

  /**
   * Closes the socket and both peer connections and forgets per-session
   * state. Local tracks are kept, to be republished.
   * @private
   */
  _teardown() {
    this._closePeers();
    this._signal.close();
  }

  /**
   * Closes both peer connections and forgets their state, including the
   * means to resume the session (which would need them).
   * @private
   */
  _closePeers() {
    this._resume = null;
    for (const target of TARGETS) this._ice[target].reset();
    const pub = this.pub;
    const sub = this.sub;
    this.pub = null;
    this.sub = null;
    if (pub) pub.close();
    if (sub) sub.close(); // ends the remote tracks
    this._tracks.forgetConnection();
  }

  /**
   * Drops the signaling socket but keeps the peer connections, whose media
   * may well keep flowing, for a resume.
   * @private
   */
  _suspend() {
    this._signal.close();
    // The answer to an offer still out was lost with the socket. Failing
    // the wait lets the negotiation loop roll the offer back and redo it
    // once the session resumes.
    if (this.pub) this.pub.failPendingAnswer(new QuartetError('closed', 'signaling connection lost'));
  }

  /** Reconnection failed for good. @private @param {unknown} lastError */
  _giveUp(lastError) {
    this.close();
    this._hooks.setState('disconnected');
    const reason = lastError ? `: ${errorText(lastError)}` : '';
    this._hooks.emit('error', new QuartetError('reconnect_failed', `could not reconnect${reason}`));
    this._hooks.emit('leave', { reason: 'reconnect_failed' });
  }

  // ------------------------------------------------------ reconnection

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
    if (resume && this._resume && this.pub) this._suspend();
    else this._teardown();
    this._hooks.setState('reconnecting');
    const { done, lastError } = await retryWithBackoff(() => this._reconnectOnce(), {
      ...RECONNECT,
      stop: () => this._closed,
      fatal: (err) => err instanceof QuartetError && FATAL_JOIN_CODES.has(err.code),
    });
    this._reconnecting = false;
    if (done) {
      // After a resume, ICE restarts are still under way: their end
      // (_onIceRecovered) reports connected.
      if (!this._ice.publisher.recovering && !this._ice.subscriber.recovering) this._hooks.setState('connected');
      return;
    }
    if (this._closed) return;
    this._giveUp(lastError);
  }

  /**
   * One reconnection attempt.
   * @private
   * @returns {Promise<boolean>} whether a session is joined
   */
  async _reconnectOnce() {
    const token = await this._hooks.getToken(true);
    if (this._closed) return false;
    try {
      await this._establish(token);
    } catch (err) {
      // A session that failed half-way through its join is rebuilt from
      // scratch; connections kept for a resume still are worth keeping.
      if (this._signal.ws) this._teardown();
      throw err;
    }
    return !!this._signal.ws;
  }

  // -------------------------------------------------------------- ICE

  /** @private @param {Target} target */
  _newIceMonitor(target) {
    return new IceMonitor({
      pc: () => this.pcFor(target),
      restart: () => this.restartIce(target),
      giveUp: () => this._dropConnection(`${target} ICE did not recover`),
      recovered: () => this._onIceRecovered(),
    });
  }

  /**
   * Publisher: offer with iceRestart. Subscriber: ask the server to offer.
   * If media is not back in time, the monitor rebuilds the session.
   * @param {Target} target
   */
  restartIce(target) {
    this._ice[target].watchRecovery();
    this._hooks.setState('reconnecting');
    if (target === 'publisher') {
      if (this.pub) this.pub.negotiate({ iceRestart: true }).catch(() => {});
    } else {
      this._signal.send({ type: 'restart_ice' });
    }
  }

  /** @private */
  _onIceRecovered() {
    if (!this._ice.publisher.recovering && !this._ice.subscriber.recovering && !this._reconnecting && this._signal.ws) {
      this._hooks.setState('connected');
    }
  }
}
