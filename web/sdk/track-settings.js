// @ts-check
/**
 * How we want each received track (`track_settings`): what the app set
 * (RemoteTrack.setSettings, Room.setTrackSettings) merged with what
 * adaptive stream saw of its elements. Each message carries a track's
 * whole state (a field left out means its default), so the merged state
 * is what is sent, and only when it changed. The server keeps the
 * settings for the session; after a fresh join they are sent again.
 * @module quartet/track-settings
 */

import { MAX_RENDERED_SIZE, TRACK_QUALITIES, TRACK_SETTINGS_MAX_SIDS } from './protocol.js';

/** @typedef {import('./protocol.js').TrackQuality} TrackQuality */

/**
 * What the app asks for a received track. Every field is optional; one
 * left out keeps its earlier value (initially: enabled, high, size unknown).
 * @typedef {Object} TrackSettings
 * @property {boolean} [enabled] false: receive nothing for this track
 * @property {TrackQuality} [quality] the highest layer wanted
 * @property {number} [width] rendered width in device pixels (CSS pixels ×
 *   devicePixelRatio); 0 for unknown, which leaves it to adaptive stream
 * @property {number} [height] likewise
 */

/**
 * What adaptive stream saw of a track's elements.
 * @typedef {{visible: boolean, width: number, height: number}} AdaptiveState
 */

/**
 * The fields of a `track_settings` message besides type and trackSids.
 * @typedef {{enabled: boolean, quality?: TrackQuality, width?: number, height?: number}} WireSettings
 */

/**
 * Checks and normalizes what the app passed.
 * @param {unknown} settings
 * @returns {TrackSettings}
 */
export function normalizeSettings(settings) {
  if (!settings || typeof settings !== 'object') throw new TypeError('track settings must be an object');
  const s = /** @type {Record<string, unknown>} */ (settings);
  /** @type {TrackSettings} */
  const out = {};
  if (s.enabled !== undefined) {
    if (typeof s.enabled !== 'boolean') throw new TypeError('track settings: enabled must be a boolean');
    out.enabled = s.enabled;
  }
  if (s.quality !== undefined) {
    if (typeof s.quality !== 'string' || !TRACK_QUALITIES.includes(s.quality)) {
      throw new TypeError(`track settings: quality must be one of ${TRACK_QUALITIES.join(', ')}`);
    }
    out.quality = /** @type {TrackQuality} */ (s.quality);
  }
  for (const k of /** @type {const} */ (['width', 'height'])) {
    const v = s[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`track settings: ${k} must be a number >= 0`);
    out[k] = clampSize(v);
  }
  return out;
}

/** @param {number} v */
export function clampSize(v) {
  return Math.min(MAX_RENDERED_SIZE, Math.max(0, Math.round(v)));
}

export class TrackSettingsStore {
  /** @param {(msg: object) => boolean} send false when not connected */
  constructor(send) {
    /** @private */
    this._send = send;
    /** @private @type {Map<string, TrackSettings>} by track sid */
    this._app = new Map();
    /** @private @type {Map<string, AdaptiveState>} by track sid */
    this._adaptive = new Map();
    /** @private @type {Map<string, string>} by track sid: the settings the server has (as JSON) */
    this._sent = new Map();
    /** @private the server does not know track_settings (an older one) */
    this._unsupported = false;
  }

  /**
   * The app's settings for tracks (merged into its earlier ones), sent now
   * if connected, else once connected.
   * @param {string[]} sids
   * @param {TrackSettings} settings normalized
   */
  setApp(sids, settings) {
    for (const sid of sids) this._app.set(sid, { ...this._app.get(sid), ...settings });
    this.flush(sids);
  }

  /** @param {string} sid @param {AdaptiveState} state */
  setAdaptive(sid, state) {
    this._adaptive.set(sid, state);
    this.flush([sid]);
  }

  /** The track is gone from the room: its settings mean nothing. @param {string} sid */
  forget(sid) {
    this._app.delete(sid);
    this._adaptive.delete(sid);
    this._sent.delete(sid);
  }

  /**
   * A fresh session knows none of our settings: send them all again, for
   * the tracks still in the room (the others are forgotten).
   * @param {Set<string>} present track sids in the room now
   */
  newSession(present) {
    this._sent.clear();
    this._unsupported = false;
    for (const sid of [...this._app.keys(), ...this._adaptive.keys()]) {
      if (!present.has(sid)) this.forget(sid);
    }
    this.flushAll();
  }

  /** Sends whatever the server does not have yet (after a resume: what was set while away). */
  flushAll() {
    this.flush([...new Set([...this._app.keys(), ...this._adaptive.keys()])]);
  }

  /**
   * The server answered `unknown_type` to track_settings: it predates
   * them, so stop sending any this session.
   */
  unsupported() {
    if (!this._unsupported) console.info('quartet: the server does not take track_settings; adaptive stream and quality choices are off');
    this._unsupported = true;
  }

  /**
   * The merged settings of a track, or null if nothing was ever set for it.
   * @param {string} sid
   * @returns {WireSettings|null}
   */
  merged(sid) {
    const app = this._app.get(sid);
    const seen = this._adaptive.get(sid);
    if (!app && !seen) return null;
    const enabled = (!app || app.enabled !== false) && (!seen || seen.visible);
    /** @type {WireSettings} */
    const out = { enabled };
    if (app && app.quality) out.quality = app.quality;
    let width = (app && app.width) || 0;
    let height = (app && app.height) || 0;
    if (!width && !height && seen && seen.visible) { width = seen.width; height = seen.height; }
    if (enabled && width) out.width = width;
    if (enabled && height) out.height = height;
    return out;
  }

  /**
   * Sends the settings of these tracks that changed since last sent,
   * tracks with the same settings in one message.
   * @param {string[]} sids
   */
  flush(sids) {
    if (this._unsupported) return;
    /** @type {Map<string, {settings: WireSettings, sids: string[]}>} */
    const groups = new Map();
    for (const sid of sids) {
      const settings = this.merged(sid);
      if (!settings) continue;
      const key = JSON.stringify(settings);
      if (this._sent.get(sid) === key) continue;
      const g = groups.get(key);
      if (g) g.sids.push(sid); else groups.set(key, { settings, sids: [sid] });
    }
    for (const [key, { settings, sids: group }] of groups) {
      for (let i = 0; i < group.length; i += TRACK_SETTINGS_MAX_SIDS) {
        const chunk = group.slice(i, i + TRACK_SETTINGS_MAX_SIDS);
        if (!this._send({ type: 'track_settings', trackSids: chunk, ...settings })) return; // not connected: sent later
        for (const sid of chunk) this._sent.set(sid, key);
      }
    }
  }
}
