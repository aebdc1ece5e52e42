// @ts-check
/**
 * The tracks the app publishes. They outlive any one publisher connection:
 * after a rejoin they are published again on the new one.
 * @module quartet/local-tracks
 */

import { offeredLayers } from './encodings.js';
import { msidTrackIdsByMid } from './util.js';

/**
 * @typedef {import('./protocol.js').TrackSource} TrackSource
 * @typedef {import('./encodings.js').PublishOptions} PublishOptions
 * @typedef {import('./encodings.js').SendEncoding} SendEncoding
 * @typedef {import('./encodings.js').OfferedLayer} OfferedLayer
 */

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
 * @property {PublishOptions} options how to encode it
 * @property {SendEncoding[]|null} encodings what its transceiver was
 *   made with (null: the browser's default)
 * @property {Map<string, boolean>} layerActive by rid: the server's last
 *   word on which encodings anyone needs (`subscribed_layers`); a rid not
 *   in it is sent
 */

/**
 * An entry of an offer's `tracks` list.
 * @typedef {{trackId: string, source: TrackSource, muted: boolean, layers?: OfferedLayer[]}} OfferedTrack
 */

export class LocalTracks {
  constructor() {
    /** @private @type {Map<string, LocalEntry>} by MediaStreamTrack.id */
    this._entries = new Map();
    /** One stream for all local tracks, so they share an msid stream id. */
    this.stream = new MediaStream();
  }

  get size() {
    return this._entries.size;
  }

  /** @returns {IterableIterator<LocalEntry>} */
  values() {
    return this._entries.values();
  }

  /** @param {MediaStreamTrack} track */
  get(track) {
    return this._entries.get(track.id);
  }

  /**
   * Starts tracking a track (not yet sent on any connection).
   * @param {MediaStreamTrack} track
   * @param {TrackSource} source
   * @param {PublishOptions} [options]
   * @returns {LocalEntry}
   */
  add(track, source, options = {}) {
    /** @type {LocalEntry} */
    const entry = {
      track, source, muted: !track.enabled, serverMuted: null,
      sid: null, offeredId: null, transceiver: null,
      options, encodings: null, layerActive: new Map(),
    };
    this._entries.set(track.id, entry);
    this.stream.addTrack(track);
    return entry;
  }

  /**
   * The entry the server calls `sid`, if any.
   * @param {string} sid
   * @returns {LocalEntry|undefined}
   */
  bySid(sid) {
    for (const entry of this._entries.values()) {
      if (entry.sid === sid) return entry;
    }
    return undefined;
  }

  /**
   * Stops tracking a track; the caller takes it off the connection.
   * @param {MediaStreamTrack} track
   * @returns {LocalEntry|undefined}
   */
  remove(track) {
    const entry = this._entries.get(track.id);
    if (!entry) return undefined;
    this._entries.delete(track.id);
    this.stream.removeTrack(track);
    return entry;
  }

  /**
   * Forgets what belonged to the closed connection: its transceivers, and
   * the sids the server gave (a new session gives new ones).
   */
  forgetConnection() {
    for (const entry of this._entries.values()) {
      entry.transceiver = null;
      entry.sid = null;
      entry.layerActive.clear();
    }
  }

  /**
   * Builds the offer's `tracks` list. The protocol keys tracks by their msid
   * track id, which Chromium takes from the sender (equal to the track id for
   * a fresh transceiver, but not after replaceTrack), so read it from the SDP.
   * A simulcast track lists its layers.
   * @param {RTCPeerConnection} pc
   * @param {string} sdp the offer
   * @returns {OfferedTrack[]}
   */
  describeOffer(pc, sdp) {
    const msidByMid = msidTrackIdsByMid(sdp);
    const live = new Set(pc.getTransceivers());
    /** @type {OfferedTrack[]} */
    const tracks = [];
    for (const entry of this._entries.values()) {
      const tr = entry.transceiver;
      if (!tr || !live.has(tr) || tr.mid == null) continue;
      entry.offeredId = msidByMid.get(tr.mid) || entry.track.id;
      entry.serverMuted = entry.muted;
      /** @type {OfferedTrack} */
      const t = { trackId: entry.offeredId, source: entry.source, muted: entry.muted };
      const layers = offeredLayers(entry.track, entry.encodings);
      if (layers.length > 0) t.layers = layers;
      tracks.push(t);
    }
    return tracks;
  }

  /**
   * Records the server sids from a publisher answer's `tracks`.
   * @param {unknown} tracks
   * @param {(entry: LocalEntry, isNew: boolean) => void} named called for
   *   each entry the answer names, after its sid is set
   */
  applySids(tracks, named) {
    if (!Array.isArray(tracks)) return;
    for (const t of tracks) {
      for (const entry of this._entries.values()) {
        if (entry.offeredId !== t.trackId || !t.sid) continue;
        const isNew = entry.sid !== t.sid;
        entry.sid = t.sid;
        named(entry, isNew);
      }
    }
  }
}
