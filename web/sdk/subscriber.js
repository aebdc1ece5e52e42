// @ts-check
/**
 * The subscriber connection: the RTCPeerConnection that carries everyone
 * else's tracks. The server makes the offers; we only answer. One
 * Subscriber per connection, like the Publisher.
 * @module quartet/subscriber
 */

import { QuartetError, errorText } from './errors.js';
import { RemoteTrack } from './remote-track.js';
import { addCandidate } from './util.js';

/**
 * @typedef {import('./protocol.js').TrackInfo} TrackInfo
 * @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo
 * @typedef {import('./protocol.js').StreamState} StreamState
 * @typedef {import('./remote-track.js').RemoteTrackHooks} RemoteTrackHooks
 */

/**
 * What the subscriber needs from the session around it.
 * @typedef {Object} SubscriberHooks
 * @property {(msg: object) => boolean} send
 * @property {(sid: string) => ParticipantInfo|undefined} participant
 * @property {RemoteTrackHooks} trackHooks given to each RemoteTrack
 * @property {(rt: RemoteTrack) => void} onTrack a remote track started
 * @property {(rt: RemoteTrack) => void} onTrackEnded
 * @property {() => void} onNegotiated an offer was answered (which may have
 *   been an ICE restart)
 * @property {() => void} onIceStateChange the connection's ICE state changed
 * @property {(err: QuartetError) => void} onError an offer could not be answered
 */

export class Subscriber {
  /** @param {RTCConfiguration} config @param {SubscriberHooks} hooks */
  constructor(config, hooks) {
    this.pc = new RTCPeerConnection(config);
    /** Set by close(); every await re-checks it. */
    this.closed = false;
    /** @private */
    this._hooks = hooks;
    /** @private serializes everything done on the connection */
    this._chain = Promise.resolve();
    /** @private @type {RTCIceCandidateInit[]} candidates that came before the first offer */
    this._heldCandidates = [];
    /** @private @type {Map<string, TrackInfo>} mid -> info from the last offer */
    this._midInfo = new Map();
    /** @private @type {Map<string, RemoteTrack>} by mid */
    this._remoteTracks = new Map();
    /** @private @type {Map<string, MediaStream>} by participant sid */
    this._remoteStreams = new Map();
    /**
     * @private by track sid: the server's last `stream_state` for a track
     * it sends us; none means active. May come before the track starts.
     * @type {Map<string, {state: StreamState, reason: string}>}
     */
    this._streamStates = new Map();
    this.pc.onicecandidate = (e) => {
      if (this.closed) return;
      hooks.send({ type: 'candidate', target: 'subscriber', candidate: e.candidate ? e.candidate.toJSON() : null });
    };
    this.pc.oniceconnectionstatechange = () => hooks.onIceStateChange();
  }

  /** Remote tracks currently received. @returns {RemoteTrack[]} */
  get remoteTracks() {
    return [...this._remoteTracks.values()];
  }

  /** Closes the connection; every remote track ends (`trackEnded`). */
  close() {
    this.closed = true;
    this.pc.onicecandidate = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.close();
    for (const mid of [...this._remoteTracks.keys()]) this._endRemoteTrack(mid);
    this._midInfo.clear();
    this._streamStates.clear();
    this._heldCandidates = [];
    this._chain = Promise.resolve();
  }

  /** @param {any} msg the server's `offer` */
  onOffer(msg) {
    this._chain = this._chain
      .then(() => this._answer(msg))
      .catch((err) => {
        if (!this.closed) this._hooks.onError(new QuartetError('negotiation_failed', `subscriber offer: ${errorText(err)}`, 'offer'));
      });
  }

  /** @param {RTCIceCandidateInit} c a candidate from the server */
  addRemoteCandidate(c) {
    // Chained after any offer still being applied, so a candidate never
    // reaches the connection before the description it belongs to.
    this._chain = this._chain.then(() => {
      if (this.closed) return;
      if (!this.pc.remoteDescription) this._heldCandidates.push(c);
      else addCandidate(this.pc, c);
    });
  }

  /**
   * Keeps the info of the tracks received current on mute_changed.
   * @param {string} trackSid @param {boolean} muted
   */
  setMuted(trackSid, muted) {
    for (const rt of this._remoteTracks.values()) {
      if (rt.trackSid === trackSid) rt.info.muted = muted;
    }
  }

  /**
   * Records a `stream_state`: the server paused or resumed a video track
   * it sends us.
   * @param {string} trackSid
   * @param {StreamState} state
   * @param {string} reason
   * @returns {{changed: boolean, track: RemoteTrack|undefined}} whether it
   *   differs from what we knew, and the track received under that sid
   */
  setStreamState(trackSid, state, reason) {
    const prev = this._streamStates.get(trackSid);
    const changed = (prev ? prev.state : 'active') !== state || (prev ? prev.reason : '') !== reason;
    if (state === 'active' && !reason) this._streamStates.delete(trackSid);
    else this._streamStates.set(trackSid, { state, reason });
    /** @type {RemoteTrack|undefined} */
    let track;
    for (const rt of this._remoteTracks.values()) {
      if (rt.trackSid !== trackSid) continue;
      rt.streamState = state;
      rt.streamStateReason = reason;
      track = rt;
    }
    return { changed, track };
  }

  /** @private @param {any} msg */
  async _answer(msg) {
    const pc = this.pc;
    if (this.closed) return;
    // We only ever answer on this connection, so an offer of ours cannot be
    // pending; should one be, the server's offer replaces it. (In
    // have-remote-offer a new remote offer simply replaces the old one.)
    if (pc.signalingState === 'have-local-offer' || pc.signalingState === 'have-local-pranswer') {
      await pc.setLocalDescription({ type: 'rollback' });
    }
    if (this.closed) return;
    // Set before applying the offer so the mapping is ready for ontrack.
    this._midInfo = new Map(Object.entries(msg.tracks || {}));
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    for (const c of this._heldCandidates.splice(0)) addCandidate(pc, c);
    const answer = await pc.createAnswer();
    if (this.closed) return;
    await pc.setLocalDescription(answer);
    if (this.closed) return;
    this._hooks.send({ type: 'answer', target: 'subscriber', sdp: /** @type {RTCSessionDescription} */ (pc.localDescription).sdp });
    this._reconcileRemoteTracks();
    this._hooks.onNegotiated();
  }

  /**
   * Brings the set of announced remote tracks in line with the connection
   * after a negotiation. Working from the transceivers rather than from
   * ontrack also covers a server reusing an m-line for another track
   * (ontrack does not fire again then).
   * @private
   */
  _reconcileRemoteTracks() {
    const seen = new Set();
    for (const tr of this.pc.getTransceivers()) {
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
    // A track we no longer receive starts afresh (active) if received again.
    const offered = new Set([...this._midInfo.values()].map((info) => info.sid));
    for (const sid of [...this._streamStates.keys()]) {
      if (!offered.has(sid)) this._streamStates.delete(sid);
    }
  }

  /** @private @param {string} mid @param {MediaStreamTrack} track @param {TrackInfo} info */
  _startRemoteTrack(mid, track, info) {
    const psid = info.participantSid;
    let stream = this._remoteStreams.get(psid);
    if (!stream) { stream = new MediaStream(); this._remoteStreams.set(psid, stream); }
    stream.addTrack(track);
    const rt = new RemoteTrack({
      track, stream, participantSid: psid, participant: this._hooks.participant(psid),
      info, mid, streamState: this._streamStates.get(info.sid),
    }, this._hooks.trackHooks);
    this._remoteTracks.set(mid, rt);
    this._hooks.onTrack(rt);
  }

  /** @private @param {string} mid */
  _endRemoteTrack(mid) {
    const rt = this._remoteTracks.get(mid);
    if (!rt) return;
    this._remoteTracks.delete(mid);
    rt.stream.removeTrack(rt.track);
    if (rt.stream.getTracks().length === 0) this._remoteStreams.delete(rt.participantSid);
    rt.end();
    this._hooks.trackHooks.ended(rt);
    this._hooks.onTrackEnded(rt);
  }
}
