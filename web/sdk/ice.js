// @ts-check
/**
 * ICE: which servers a connection uses, and the watch over a connection's
 * ICE state that restarts ICE when the path breaks and gives up on a
 * restart that does not bring media back.
 * @module quartet/ice
 */

// Chromium often reports "disconnected" for a moment on a network blip; only
// restart ICE if it lasts.
const ICE_DISCONNECTED_GRACE_MS = 3_000;
// If ICE restarts have not brought media back by then, rebuild the session.
const ICE_RESTART_GIVE_UP_MS = 15_000;

/**
 * The ICE servers to use: `override` (the `iceServers` option), else the
 * server's list, narrowed to the `turn:` URLs of one TURN transport if
 * `turnTransport` says so.
 * @param {RTCIceServer[]|null} override
 * @param {unknown} list the server's `iceServers`
 * @param {'udp'|'tcp'|null} turnTransport
 * @returns {RTCIceServer[]}
 */
export function selectIceServers(override, list, turnTransport) {
  /** @type {RTCIceServer[]} */
  const servers = override || (Array.isArray(list) ? list : []);
  if (!turnTransport) return servers;
  const keep = (/** @type {string} */ u) =>
    u.startsWith('turn:') && (new URLSearchParams(u.split('?')[1] || '').get('transport') || 'udp') === turnTransport;
  return servers
    .map((s) => ({ ...s, urls: [s.urls].flat().filter(keep) }))
    .filter((s) => s.urls.length > 0);
}

/** @param {RTCPeerConnection} pc */
function iceUp(pc) {
  return pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed';
}

/**
 * What a monitor acts on.
 * @typedef {Object} IceMonitorHooks
 * @property {() => RTCPeerConnection|null} pc the connection watched now
 * @property {() => void} restart restart ICE on it
 * @property {() => void} giveUp a restart did not bring it back in time
 * @property {() => void} recovered a recovery is over
 */

/** Watches one of the two connections (publisher or subscriber). */
export class IceMonitor {
  /** @param {IceMonitorHooks} hooks */
  constructor(hooks) {
    /** @private */
    this._hooks = hooks;
    /** An ICE restart is under way. */
    this.recovering = false;
    /** @private @type {ReturnType<typeof setTimeout>|null} */
    this._graceTimer = null;
    /** @private @type {ReturnType<typeof setTimeout>|null} */
    this._giveUpTimer = null;
  }

  /** Call on each iceconnectionstatechange of the connection. */
  onStateChange() {
    const pc = this._hooks.pc();
    if (!pc) return;
    const state = pc.iceConnectionState;
    if (iceUp(pc)) {
      this._clearGrace();
      this.checkRecovered();
    } else if (state === 'failed') {
      this._hooks.restart();
    } else if (state === 'disconnected' && !this._graceTimer) {
      this._graceTimer = setTimeout(() => {
        this._graceTimer = null;
        if (pc === this._hooks.pc() && pc.iceConnectionState === 'disconnected') this._hooks.restart();
      }, ICE_DISCONNECTED_GRACE_MS);
    }
  }

  /**
   * Marks an ICE restart as under way: `recovering` stays true until it is
   * over (checkRecovered), and if it is not over within
   * ICE_RESTART_GIVE_UP_MS the giveUp hook runs.
   */
  watchRecovery() {
    if (this.recovering) return;
    this.recovering = true;
    this._giveUpTimer = setTimeout(() => this._hooks.giveUp(), ICE_RESTART_GIVE_UP_MS);
  }

  /**
   * Ends a recovery once the connection is up again. Also called after
   * each restart negotiation: a restart that begins while ICE still reports
   * "connected" brings no state change event.
   */
  checkRecovered() {
    const pc = this._hooks.pc();
    if (!this.recovering || !pc || !iceUp(pc)) return;
    if (this._giveUpTimer) clearTimeout(this._giveUpTimer);
    this._giveUpTimer = null;
    this.recovering = false;
    this._hooks.recovered();
  }

  /** Forgets any recovery and timer (the connection closed or was resumed). */
  reset() {
    this._clearGrace();
    if (this._giveUpTimer) clearTimeout(this._giveUpTimer);
    this._giveUpTimer = null;
    this.recovering = false;
  }

  /** @private */
  _clearGrace() {
    if (this._graceTimer) clearTimeout(this._graceTimer);
    this._graceTimer = null;
  }
}
