// @ts-check
/**
 * Adaptive stream: the SDK watches each video element a remote track is
 * attached to (RemoteTrack.attach) and tells the server what it needs. A
 * hidden element (out of the viewport, zero size, removed from the page,
 * or the page itself hidden) needs nothing; a visible one needs a layer of
 * its size in device pixels. Changes are reported after a quiet spell
 * (DEBOUNCE_MS), so that a window being resized sends one message.
 * It also keeps which remote track owns each attached element, adaptive
 * or not, so that attaching an element to another track takes it from
 * the first.
 * @module quartet/adaptive-stream
 */

import { clampSize } from './track-settings.js';

/**
 * @typedef {import('./remote-track.js').RemoteTrack} RemoteTrack
 * @typedef {import('./track-settings.js').AdaptiveState} AdaptiveState
 */

/** Quiet time before a change is reported. */
export const DEBOUNCE_MS = 300;
/** A change is reported within this, however busy the page. */
const MAX_WAIT_MS = 1000;

export class AdaptiveStream {
  /**
   * @param {boolean} enabled watch video elements (the `adaptiveStream` option)
   * @param {(trackSid: string, state: AdaptiveState) => void} onState
   */
  constructor(enabled, onState) {
    /** Whether video elements are watched. */
    this.enabled = enabled;
    /** @private */
    this._onState = onState;
    /** @private @type {WeakMap<HTMLMediaElement, RemoteTrack>} */
    this._owner = new WeakMap();
    /** @private @type {Map<RemoteTrack, Set<HTMLMediaElement>>} video tracks watched */
    this._watched = new Map();
    /** @private @type {WeakMap<Element, boolean>} the last IntersectionObserver word */
    this._intersecting = new WeakMap();
    /** @private @type {ResizeObserver|null} */
    this._resize = null;
    /** @private @type {IntersectionObserver|null} */
    this._intersect = null;
    /** @private @type {ReturnType<typeof setTimeout>|null} */
    this._timer = null;
    /** @private time the oldest unreported change happened, 0 if none */
    this._pendingSince = 0;
    /** @private */
    this._onVisibility = () => this._schedule();
    /** @private */
    this._disposed = false;
  }

  /** @param {RemoteTrack} rt @param {HTMLMediaElement} el */
  attached(rt, el) {
    const prev = this._owner.get(el);
    if (prev && prev !== rt) {
      prev.release(el);
      this._unwatch(prev, el);
    }
    this._owner.set(el, rt);
    if (!this.enabled || this._disposed || rt.kind !== 'video') return;
    this._observers();
    let els = this._watched.get(rt);
    if (!els) { els = new Set(); this._watched.set(rt, els); }
    els.add(el);
    /** @type {ResizeObserver} */ (this._resize).observe(el);
    /** @type {IntersectionObserver} */ (this._intersect).observe(el);
    this._schedule();
  }

  /** @param {RemoteTrack} rt @param {HTMLMediaElement} el */
  detached(rt, el) {
    if (this._owner.get(el) === rt) this._owner.delete(el);
    this._unwatch(rt, el);
  }

  /**
   * The track is no longer received: stop watching its elements, and
   * report nothing for it (the server's settings for the sid stay as
   * they were, for when it is received again).
   * @param {RemoteTrack} rt
   */
  ended(rt) {
    const els = this._watched.get(rt);
    if (!els) return;
    this._watched.delete(rt);
    for (const el of els) {
      if (this._owner.get(el) === rt) this._owner.delete(el);
      this._unobserve(el);
    }
  }

  /** Stops watching anything (the room is left). */
  dispose() {
    this._disposed = true;
    if (this._timer) clearTimeout(this._timer);
    this._timer = null;
    if (this._resize) this._resize.disconnect();
    if (this._intersect) this._intersect.disconnect();
    this._resize = null;
    this._intersect = null;
    if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', this._onVisibility);
    this._watched.clear();
  }

  /** @private */
  _observers() {
    if (this._resize) return;
    this._resize = new ResizeObserver(() => this._schedule());
    this._intersect = new IntersectionObserver((entries) => {
      for (const e of entries) this._intersecting.set(e.target, e.isIntersecting);
      this._schedule();
    });
    document.addEventListener('visibilitychange', this._onVisibility);
  }

  /**
   * The element no longer shows this track. The track stays watched with
   * one element fewer: with none left, the next report says hidden.
   * @private @param {RemoteTrack} rt @param {HTMLMediaElement} el
   */
  _unwatch(rt, el) {
    const els = this._watched.get(rt);
    if (!els || !els.delete(el)) return;
    this._unobserve(el);
    this._schedule();
  }

  /** @private @param {HTMLMediaElement} el */
  _unobserve(el) {
    if (this._resize) this._resize.unobserve(el);
    if (this._intersect) this._intersect.unobserve(el);
    this._intersecting.delete(el);
  }

  /** @private */
  _schedule() {
    if (this._disposed) return;
    const now = Date.now();
    if (!this._pendingSince) this._pendingSince = now;
    if (this._timer) clearTimeout(this._timer);
    const wait = Math.max(0, Math.min(DEBOUNCE_MS, this._pendingSince + MAX_WAIT_MS - now));
    this._timer = setTimeout(() => this._report(), wait);
  }

  /** Reports the state of every watched track. @private */
  _report() {
    this._timer = null;
    this._pendingSince = 0;
    if (this._disposed) return;
    const pageVisible = document.visibilityState !== 'hidden';
    const dpr = window.devicePixelRatio || 1;
    /** @type {Map<string, AdaptiveState>} by track sid: two tracks may share one while an m-line is reused */
    const states = new Map();
    for (const [rt, els] of this._watched) {
      if (rt.ended) { this._watched.delete(rt); continue; }
      const st = states.get(rt.trackSid) || { visible: false, width: 0, height: 0 };
      states.set(rt.trackSid, st);
      for (const el of els) {
        if (!pageVisible || !el.isConnected || this._intersecting.get(el) === false) continue;
        const r = el.getBoundingClientRect();
        const width = clampSize(r.width * dpr);
        const height = clampSize(r.height * dpr);
        if (width === 0 || height === 0) continue;
        st.visible = true;
        st.width = Math.max(st.width, width);
        st.height = Math.max(st.height, height);
      }
      // Reported hidden once; attaching again watches it again.
      if (els.size === 0) this._watched.delete(rt);
    }
    for (const [sid, st] of states) this._onState(sid, st);
  }
}
