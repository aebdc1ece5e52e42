// @ts-check
/**
 * The publisher connection: the RTCPeerConnection that carries our tracks,
 * on which we make the offers. One Publisher per connection, so that a
 * negotiation loop left over from a closed connection cannot touch the
 * next one.
 * @module quartet/publisher
 */

import { sendEncodingsFor, withoutScalabilityMode } from './encodings.js';
import { QuartetError, asQuartetError, errorText } from './errors.js';
import { addCandidate } from './util.js';

/**
 * @typedef {import('./local-tracks.js').LocalTracks} LocalTracks
 * @typedef {import('./local-tracks.js').LocalEntry} LocalEntry
 * @typedef {import('./encodings.js').SendEncoding} SendEncoding
 */

/**
 * The scalabilityModes this browser refused: later tracks are made
 * without them straight away. (Chromium 148 lists no scalabilityModes in
 * RTCRtpSender.getCapabilities, so trying is the only test there is.)
 * @type {Set<string>}
 */
const refusedScalabilityModes = new Set();

/**
 * Whether the browser lists scalabilityModes for its codecs and none of
 * them has `mode`; false when it does not say.
 * @param {string} mode
 */
function scalabilityModeUnsupported(mode) {
  const caps = typeof RTCRtpSender !== 'undefined' && RTCRtpSender.getCapabilities ? RTCRtpSender.getCapabilities('video') : null;
  const codecs = /** @type {(RTCRtpCodec & {scalabilityModes?: string[]})[]} */ (caps ? caps.codecs : []);
  const listed = codecs.filter((c) => Array.isArray(c.scalabilityModes));
  return listed.length > 0 && !listed.some((c) => /** @type {string[]} */ (c.scalabilityModes).includes(mode));
}

const ANSWER_TIMEOUT_MS = 15_000;

/**
 * What the publisher needs from the session around it.
 * @typedef {Object} PublisherHooks
 * @property {(msg: object) => boolean} send false when signaling is down
 * @property {() => boolean} signalingOpen
 * @property {(answerTracks: unknown) => void} onAnswer the `tracks` of an
 *   applied answer, which name our tracks
 * @property {() => void} onIceRestarted an ICE restart was negotiated
 * @property {() => void} onIceStateChange the connection's ICE state changed
 * @property {(err: QuartetError) => void} onError a negotiation failed
 */

/** @typedef {{resolve: () => void, reject: (e: unknown) => void}} Waiter */

export class Publisher {
  /**
   * @param {RTCConfiguration} config
   * @param {LocalTracks} tracks
   * @param {PublisherHooks} hooks
   */
  constructor(config, tracks, hooks) {
    this.pc = new RTCPeerConnection(config);
    /** Set by close(); every await re-checks it. */
    this.closed = false;
    /** @private */
    this._tracks = tracks;
    /** @private */
    this._hooks = hooks;
    /** @private a negotiation loop is running */
    this._running = false;
    /** @private a negotiation was asked for since the current round began */
    this._dirty = false;
    /** @private the next round must restart ICE */
    this._iceRestart = false;
    /** @private @type {Waiter[]} callers of negotiate() waiting for a round */
    this._waiters = [];
    /** @private @type {{resolve: (m: any) => void, reject: (e: unknown) => void, timer: ReturnType<typeof setTimeout>}|null} */
    this._pendingAnswer = null;
    /** @private @type {RTCIceCandidateInit[]} remote candidates held while an offer is out */
    this._heldCandidates = [];
    /** @private @type {WeakMap<RTCRtpSender, Promise<void>>} the last parameter change of each sender */
    this._senderQueues = new WeakMap();
    this.pc.onicecandidate = (e) => {
      if (this.closed) return;
      hooks.send({ type: 'candidate', target: 'publisher', candidate: e.candidate ? e.candidate.toJSON() : null });
    };
    this.pc.oniceconnectionstatechange = () => hooks.onIceStateChange();
  }

  /**
   * Closes the connection. A pending answer wait fails; callers waiting on
   * a loop that will not run again are released, since the tracks are
   * published again on the next session (not the caller's failure).
   */
  close() {
    this.closed = true;
    this.failPendingAnswer(new QuartetError('closed', 'session closed'));
    if (!this._running) this._waiters.splice(0).forEach((w) => w.resolve());
    this.pc.onicecandidate = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.close();
  }

  /**
   * Sends a local track on this connection (negotiate() afterwards):
   * camera video as simulcast, screen video as one sharp encoding with
   * temporal layers (see encodings.js).
   * @param {LocalEntry} entry
   */
  addTrack(entry) {
    const { track, source, options } = entry;
    // Screen content: favour sharp text over frame rate when bandwidth drops.
    if (source === 'screen' && track.kind === 'video' && !track.contentHint) track.contentHint = 'detail';
    entry.layerActive.clear(); // a new transceiver sends every encoding
    /** @type {RTCRtpTransceiverInit} */
    const init = { direction: 'sendonly', streams: [this._tracks.stream] };
    let encodings = sendEncodingsFor(track, source, options);
    const mode = encodings ? encodings.find((e) => e.scalabilityMode)?.scalabilityMode : undefined;
    if (encodings && mode && (refusedScalabilityModes.has(mode) || scalabilityModeUnsupported(mode))) {
      encodings = withoutScalabilityMode(encodings);
    }
    let transceiver = encodings ? this._addTransceiver(track, { ...init, sendEncodings: encodings }) : null;
    if (!transceiver && encodings && encodings.some((e) => e.scalabilityMode)) {
      // OperationError: "unsupported value for the current codecs".
      console.info(`quartet: scalabilityMode ${mode} refused; sending without temporal layers`);
      refusedScalabilityModes.add(/** @type {string} */ (mode));
      encodings = withoutScalabilityMode(encodings);
      transceiver = this._addTransceiver(track, { ...init, sendEncodings: encodings });
    }
    if (!transceiver) {
      if (encodings) console.warn("quartet: encodings refused; sending with the browser's default");
      encodings = null;
      transceiver = this.pc.addTransceiver(track, init);
    }
    entry.transceiver = transceiver;
    entry.encodings = encodings;
    if (this._degradationPreference(entry)) this._applyParameters(entry);
  }

  /**
   * addTransceiver, or null if the browser refuses the init.
   * @private @param {MediaStreamTrack} track @param {RTCRtpTransceiverInit} init
   */
  _addTransceiver(track, init) {
    try {
      return this.pc.addTransceiver(track, init);
    } catch (err) {
      console.debug(`quartet: addTransceiver refused ${JSON.stringify(init.sendEncodings)}: ${errorText(err)}`);
      return null;
    }
  }

  /**
   * Turns a track's simulcast encodings on and off as the server asks
   * (`subscribed_layers`, dynacast). A rid the track does not send is
   * ignored; a rid not named keeps its state.
   * @param {LocalEntry} entry
   * @param {unknown} layers the message's `layers`
   */
  setSubscribedLayers(entry, layers) {
    if (!Array.isArray(layers)) return;
    for (const l of layers) {
      if (l && typeof l.rid === 'string' && typeof l.active === 'boolean') entry.layerActive.set(l.rid, l.active);
    }
    this._applyParameters(entry);
  }

  /** @private @param {LocalEntry} entry @returns {RTCDegradationPreference|undefined} */
  _degradationPreference(entry) {
    if (entry.track.kind !== 'video') return undefined;
    if (entry.options.degradationPreference) return entry.options.degradationPreference;
    return entry.source === 'screen' ? 'maintain-resolution' : undefined;
  }

  /**
   * Brings a track's sender parameters in line with what we want (each
   * encoding's `active`, the degradation preference). Calls are chained
   * per sender, and each reads the wanted state when it runs, so a burst
   * of changes ends in the last one. getParameters and setParameters run
   * in the same task, as the transaction id requires.
   * @private @param {LocalEntry} entry
   */
  _applyParameters(entry) {
    const tr = entry.transceiver;
    if (!tr || this.closed) return;
    const sender = tr.sender;
    const prev = this._senderQueues.get(sender) || Promise.resolve();
    const next = prev.then(async () => {
      if (this.closed || entry.transceiver !== tr) return;
      const params = /** @type {RTCRtpSendParameters & {encodings: SendEncoding[]}} */ (sender.getParameters());
      let changed = false;
      const pref = this._degradationPreference(entry);
      if (pref && params.degradationPreference !== pref) { params.degradationPreference = pref; changed = true; }
      for (const enc of params.encodings || []) {
        const want = entry.layerActive.get(enc.rid || '');
        if (want !== undefined && enc.active !== want) { enc.active = want; changed = true; }
      }
      if (changed) await sender.setParameters(params);
    }).catch((err) => {
      if (!this.closed) console.warn(`quartet: sender parameters not set: ${errorText(err)}`);
    });
    this._senderQueues.set(sender, next);
  }

  /**
   * Stops sending a local track.
   * @param {LocalEntry} entry
   * @returns {boolean} whether the connection changed (negotiate() then)
   */
  removeTrack(entry) {
    const pc = this.pc;
    if (!entry.transceiver || pc.signalingState === 'closed') return false;
    // removeTrack makes the m-line inactive; the server then ends the track.
    // (Stopping the transceiver would give a port-0 m-line, which some
    // servers handle less well.)
    if (pc.getTransceivers().includes(entry.transceiver)) {
      pc.removeTrack(entry.transceiver.sender);
      entry.transceiver.direction = 'inactive';
    }
    entry.transceiver = null;
    return true;
  }

  /**
   * Requests a negotiation. Only one runs at a time; requests made
   * meanwhile are coalesced into one more round after it. Resolves when a
   * round that started after this call has finished.
   * @param {{iceRestart?: boolean}} [opts]
   * @returns {Promise<void>}
   */
  negotiate(opts = {}) {
    this._dirty = true;
    if (opts.iceRestart) this._iceRestart = true;
    /** @type {Promise<void>} */
    const done = new Promise((resolve, reject) => { this._waiters.push({ resolve: () => resolve(undefined), reject }); });
    if (!this._running) this._runLoop();
    return done;
  }

  /**
   * After a resume: restarts ICE with a new offer. An offer whose answer
   * was lost with the old socket is rolled back first (normally the
   * negotiation loop has done so already; this covers one left behind by a
   * loop that stopped).
   * @returns {Promise<void>}
   */
  async restartIce() {
    if (!this._running && this.pc.signalingState === 'have-local-offer') {
      await this.pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
    }
    if (this.closed) return;
    await this.negotiate({ iceRestart: true });
  }

  /** @param {any} msg the server's `answer` */
  onAnswer(msg) {
    const pending = this._pendingAnswer;
    if (!pending) return; // late answer after a timeout: ignore
    this._pendingAnswer = null;
    clearTimeout(pending.timer);
    pending.resolve(msg);
  }

  /**
   * Fails the wait for an answer, if one is out: the server refused the
   * offer, or the answer was lost with the socket. The negotiation loop
   * then rolls the offer back (and, for `closed`, redoes it once
   * signaling is back).
   * @param {QuartetError} err
   * @returns {boolean} whether an answer was awaited
   */
  failPendingAnswer(err) {
    const pending = this._pendingAnswer;
    if (!pending) return false;
    this._pendingAnswer = null;
    clearTimeout(pending.timer);
    pending.reject(err);
    return true;
  }

  /** @param {RTCIceCandidateInit} c a candidate from the server */
  addRemoteCandidate(c) {
    // While an offer is out (first one, or an ICE restart) candidates may
    // belong to the answer we have not applied yet: hold them until then.
    if (!this.pc.remoteDescription || this.pc.signalingState === 'have-local-offer') {
      this._heldCandidates.push(c);
      return;
    }
    addCandidate(this.pc, c);
  }

  /** @private */
  async _runLoop() {
    this._running = true;
    try {
      while (this._dirty && !this.closed) {
        // Signaling is down while a resume is under way: leave the request
        // pending; the resume negotiates again (restartIce).
        if (!this._hooks.signalingOpen()) break;
        this._dirty = false;
        const waiters = this._waiters.splice(0);
        const iceRestart = this._iceRestart;
        this._iceRestart = false;
        try {
          await this._round(iceRestart);
          waiters.forEach((w) => w.resolve());
        } catch (err) {
          this._roundFailed(err, waiters);
        }
      }
    } finally {
      this._running = false;
      // Anyone who asked while the loop was closing down is done too.
      if (this.closed) this._waiters.splice(0).forEach((w) => w.resolve());
    }
  }

  /** @private @param {unknown} err @param {Waiter[]} waiters */
  _roundFailed(err, waiters) {
    if (this.closed) {
      // The session went away; the tracks will be republished on the
      // next one, so this is not the caller's failure.
      waiters.forEach((w) => w.resolve());
    } else if (err instanceof QuartetError && err.code === 'closed') {
      // The socket dropped during the round (which rolled its offer
      // back): redo it for the same callers. While signaling is down
      // the loop stops at its top; the resume starts it again.
      this._waiters.unshift(...waiters);
      this._dirty = true;
    } else {
      const e = asQuartetError(err, 'negotiation_failed', 'offer');
      waiters.forEach((w) => w.reject(e));
      this._hooks.onError(e);
    }
  }

  /** One offer/answer round. @private @param {boolean} iceRestart */
  async _round(iceRestart) {
    const pc = this.pc;
    // Nothing was ever published: an offer without m-lines is useless.
    if (pc.getTransceivers().length === 0) return;
    const offer = await pc.createOffer({ iceRestart });
    if (this.closed) return;
    await pc.setLocalDescription(offer);
    if (this.closed) return;
    const sdp = /** @type {RTCSessionDescription} */ (pc.localDescription).sdp;
    const tracks = this._tracks.describeOffer(pc, sdp);
    if (!this._hooks.send({ type: 'offer', target: 'publisher', sdp, tracks })) {
      await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
      if (iceRestart) this._iceRestart = true; // still needed next round
      throw new QuartetError('closed', 'not connected');
    }
    // Messages are handled in later tasks, so the answer cannot be missed.
    const answerPromise = this._expectAnswer();
    let answer;
    try {
      answer = await answerPromise;
    } catch (err) {
      // Go back to stable so that the next round can offer again.
      if (!this.closed && pc.signalingState === 'have-local-offer') {
        await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
      }
      // Candidates held for the answer that never came belong to ICE
      // credentials we will never use; added after a later answer, Chrome
      // pairs them with the new ones and rejects the server's checks.
      this._heldCandidates.length = 0;
      if (iceRestart) this._iceRestart = true; // still needed next round
      throw err;
    }
    if (this.closed) return;
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    for (const c of this._heldCandidates.splice(0)) addCandidate(pc, c);
    // Chromium sets each encoding's `active` from the answer's
    // a=simulcast line (`~rid` is paused), which echoes our offer: a
    // subscribed_layers that came while the offer was out is undone, so
    // apply the wanted state again.
    for (const entry of this._tracks.values()) {
      if (entry.layerActive.size > 0 || this._degradationPreference(entry)) this._applyParameters(entry);
    }
    this._hooks.onAnswer(answer.tracks);
    if (iceRestart) this._hooks.onIceRestarted();
  }

  /** @private @returns {Promise<any>} the `answer` message */
  _expectAnswer() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this._pendingAnswer && this._pendingAnswer.timer === timer) this._pendingAnswer = null;
        reject(new QuartetError('timeout', 'no answer to publisher offer', 'offer'));
      }, ANSWER_TIMEOUT_MS);
      this._pendingAnswer = { resolve, reject, timer };
    });
  }
}
