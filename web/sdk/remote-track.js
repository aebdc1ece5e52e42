// @ts-check
/**
 * A track we receive: the `track` event's detail. Besides what it is
 * (participant, source, layers) it carries the server's stream state and
 * the app's ways to say how it is shown: attach() it to a media element
 * (watched by adaptive stream) and setSettings().
 * @module quartet/remote-track
 */

/**
 * @typedef {import('./protocol.js').TrackInfo} TrackInfo
 * @typedef {import('./protocol.js').TrackLayer} TrackLayer
 * @typedef {import('./protocol.js').TrackSource} TrackSource
 * @typedef {import('./protocol.js').StreamState} StreamState
 * @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo
 * @typedef {import('./track-settings.js').TrackSettings} TrackSettings
 */

/**
 * What a remote track needs from the room around it.
 * @typedef {Object} RemoteTrackHooks
 * @property {(trackSid: string, settings: TrackSettings) => void} setSettings
 * @property {(rt: RemoteTrack, element: HTMLMediaElement) => void} attached
 * @property {(rt: RemoteTrack, element: HTMLMediaElement) => void} detached
 * @property {(rt: RemoteTrack) => void} ended the track is no longer received
 */

/**
 * @typedef {Object} RemoteTrackInit
 * @property {MediaStreamTrack} track
 * @property {MediaStream} stream
 * @property {string} participantSid
 * @property {ParticipantInfo|undefined} participant
 * @property {TrackInfo} info
 * @property {string} mid
 * @property {{state: StreamState, reason: string}|undefined} streamState
 */

export class RemoteTrack {
  /** @param {RemoteTrackInit} init @param {RemoteTrackHooks} hooks */
  constructor(init, hooks) {
    /** @type {MediaStreamTrack} */
    this.track = init.track;
    /** All current tracks of that participant. @type {MediaStream} */
    this.stream = init.stream;
    /** @type {string} */
    this.participantSid = init.participantSid;
    /** @type {ParticipantInfo|undefined} */
    this.participant = init.participant;
    /** The server's description, kept current (mute, layers). @type {TrackInfo} */
    this.info = init.info;
    /** @type {string} */
    this.trackSid = init.info.sid;
    /** @type {TrackSource} */
    this.source = init.info.source;
    /** @type {'audio'|'video'} */
    this.kind = init.info.kind || /** @type {'audio'|'video'} */ (init.track.kind);
    /** Transceiver mid on the subscriber connection. @type {string} */
    this.mid = init.mid;
    /**
     * `paused` while the server holds this video back because even its
     * lowest layer does not fit our bandwidth (`trackStreamState` events
     * tell the changes). @type {StreamState}
     */
    this.streamState = init.streamState ? init.streamState.state : 'active';
    /** Why it is paused (`bandwidth`), '' while active. @type {string} */
    this.streamStateReason = init.streamState ? init.streamState.reason : '';
    /** Set once the track is no longer received (`trackEnded`). */
    this.ended = false;
    /** @private */
    this._hooks = hooks;
    /** @private @type {Set<HTMLMediaElement>} */
    this._elements = new Set();
  }

  /** Simulcast layers, lowest first; empty for audio and single-layer video. @returns {TrackLayer[]} */
  get layers() {
    return Array.isArray(this.info.layers) ? this.info.layers : [];
  }

  /** The elements attach() has shown this track in. @returns {HTMLMediaElement[]} */
  get attachedElements() {
    return [...this._elements];
  }

  /**
   * Tells the server how this track is to be received (`track_settings`):
   * `enabled: false` receives nothing; `quality` caps the layer;
   * `width`/`height` (device pixels) let it pick the smallest layer at
   * least that big. Fields left out keep their earlier value; with
   * adaptive stream, the element's size and visibility fill in what the
   * app does not set. Kept across reconnections.
   * @param {TrackSettings} settings
   */
  setSettings(settings) {
    this._hooks.setSettings(this.trackSid, settings);
  }

  /**
   * Shows the track in a media element (a new `<video>` or `<audio>` if
   * none is given) and returns it. With the room's `adaptiveStream` the
   * SDK then watches a video element's size and visibility and asks the
   * server for what it needs. The element's play() is the app's (autoplay
   * policies differ); an element attached to another remote track is
   * taken from it.
   * @param {HTMLMediaElement} [element]
   * @returns {HTMLMediaElement}
   */
  attach(element) {
    const el = element || document.createElement(this.kind === 'video' ? 'video' : 'audio');
    if (!element) {
      el.autoplay = true;
      if (el instanceof HTMLVideoElement) el.playsInline = true;
    }
    const current = el.srcObject instanceof MediaStream ? el.srcObject.getTracks() : [];
    if (current.length !== 1 || current[0] !== this.track) el.srcObject = new MediaStream([this.track]);
    if (!this._elements.has(el)) {
      this._elements.add(el);
      this._hooks.attached(this, el);
    }
    return el;
  }

  /**
   * Stops showing the track in `element`, or in every element it was
   * attached to (srcObject is cleared where it still holds this track).
   * With adaptive stream, a video no longer shown anywhere is not received.
   * @param {HTMLMediaElement} [element]
   * @returns {HTMLMediaElement[]} the elements detached
   */
  detach(element) {
    const els = element ? (this._elements.has(element) ? [element] : []) : [...this._elements];
    for (const el of els) {
      this._elements.delete(el);
      const current = el.srcObject instanceof MediaStream ? el.srcObject.getTracks() : [];
      if (current.includes(this.track)) el.srcObject = null;
      this._hooks.detached(this, el);
    }
    return els;
  }

  /**
   * An element was attached to another remote track: it is no longer
   * ours (its srcObject is the other track's now).
   * @param {HTMLMediaElement} element
   */
  release(element) {
    this._elements.delete(element);
  }

  /**
   * The track is no longer received. Its elements are left as they are
   * (the app may already show another track in them); the SDK stops
   * watching them.
   */
  end() {
    this.ended = true;
    this._elements.clear();
  }
}
