// @ts-check
/**
 * The signaling WebSocket: opening it, the join (or resume) handshake,
 * sending, and the ping watchdog that notices a half-open socket. It knows
 * nothing of peer connections; what a `joined` means is the Room's
 * business (the callbacks passed to establish()).
 * @module quartet/signaling
 */

import { QuartetError } from './errors.js';
import { parseMessage } from './protocol.js';

/** @typedef {import('./protocol.js').ResumeRequest} ResumeRequest */

const PING_INTERVAL_MS = 10_000;
// Two missed pongs in a row mean the socket is half-open (laptop sleep, NAT
// rebinding): the browser may not notice for minutes, so we drop it ourselves.
const PONG_TIMEOUT_MS = 2 * PING_INTERVAL_MS + 5_000;
const JOIN_TIMEOUT_MS = 15_000;

/**
 * What the connection reports to its owner.
 * @typedef {Object} SignalingHooks
 * @property {(msg: any) => void} onMessage a message on the joined socket
 * @property {() => void} onDrop the joined socket closed without our asking
 * @property {() => void} onPongTimeout the server stopped answering pings
 */

/**
 * What to do with the `joined` that answers establish()'s join.
 * @typedef {Object} JoinHandlers
 * @property {(msg: any) => void} onJoined a fresh session
 * @property {(msg: any) => void} onResumeAnswer the answer to a resume
 *   request (which may still be a fresh session: see Room._onResumeAnswer)
 * @property {() => void} onResumeFailed the server could not resume; a
 *   fresh join follows on the same socket
 */

/**
 * The WebSocket URL to connect to: `/ws` on the page's own host by
 * default; http(s) URLs become ws(s).
 * @param {string} [url]
 * @returns {string}
 */
export function resolveWsUrl(url) {
  if (!url) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws`;
  }
  const u = new URL(url, typeof location !== 'undefined' ? location.href : undefined);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.toString();
}

/**
 * Removes our handlers, so that a close we asked for is not taken for a
 * drop.
 * @param {WebSocket} ws
 */
function detachSocket(ws) {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}

/** @param {WebSocket} ws */
function discardSocket(ws) {
  detachSocket(ws);
  ws.close(1000);
}

export class SignalingConnection {
  /** @param {string} url @param {SignalingHooks} hooks */
  constructor(url, hooks) {
    this.url = url;
    /** @private */
    this._hooks = hooks;
    /** The joined socket; null before a join and after a drop or close(). @type {WebSocket|null} */
    this.ws = null;
    /** @private @type {ReturnType<typeof setInterval>|null} */
    this._pingTimer = null;
    /** @private */
    this._pingSeq = 0;
    /** @private time the oldest unanswered ping was sent, 0 if none */
    this._pingOutstandingSince = 0;
  }

  /** Whether messages can be sent on a joined socket now. */
  isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * @param {object} msg
   * @returns {boolean} whether it was handed to an open socket
   */
  send(msg) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  /**
   * Opens a WebSocket and joins on it. With `resume` it first asks the
   * server to resume that session; if the server cannot (`resume_failed`),
   * it joins afresh on the same socket, as the protocol allows. Resolves
   * once the `joined` has been handled.
   * @param {Record<string, any>} join the `join` message, without `resume`
   * @param {ResumeRequest|null} resume
   * @param {JoinHandlers} handlers
   * @returns {Promise<void>}
   */
  async establish(join, resume, handlers) {
    const ws = await this._openSocket();
    try {
      if (resume) {
        try {
          await this._join(ws, { ...join, resume }, handlers.onResumeAnswer);
          return;
        } catch (err) {
          if (!(err instanceof QuartetError && err.code === 'resume_failed')) throw err;
          handlers.onResumeFailed();
        }
      }
      await this._join(ws, join, handlers.onJoined);
    } catch (err) {
      // Not joined: the socket is still ours to close. (Once joined it is
      // this.ws, and the owner's teardown closes it.)
      if (this.ws !== ws) discardSocket(ws);
      throw err;
    }
  }

  /** Closes the joined socket (a close we mean: no onDrop) and stops pinging. */
  close() {
    this.stopPing();
    const ws = this.ws;
    this.ws = null;
    if (ws) discardSocket(ws);
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
   * the socket becomes this.ws and `onJoined` runs at once, in the same
   * task: the server may send a subscriber offer right behind the
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
      const settle = (/** @type {unknown} */ err) => {
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
          this._adopt(ws);
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
   * Makes a joined socket the session's: its messages go to the owner,
   * and its close (one we did not ask for: close() detaches first) is a drop.
   * @private @param {WebSocket} ws
   */
  _adopt(ws) {
    this.ws = ws;
    ws.onmessage = (e) => { const m = parseMessage(e.data); if (m) this._hooks.onMessage(m); };
    ws.onclose = () => {
      if (ws !== this.ws) return;
      this.ws = null;
      this._hooks.onDrop();
    };
  }

  // -------------------------------------------------------------- pings

  /** Starts pinging the server; call after each join or resume. */
  startPing() {
    this.stopPing();
    this._pingOutstandingSince = 0;
    this._pingTimer = setInterval(() => {
      if (this._pingOutstandingSince && Date.now() - this._pingOutstandingSince > PONG_TIMEOUT_MS) {
        this._hooks.onPongTimeout();
        return;
      }
      if (this.send({ type: 'ping', id: String(++this._pingSeq) }) && !this._pingOutstandingSince) {
        this._pingOutstandingSince = Date.now();
      }
    }, PING_INTERVAL_MS);
  }

  stopPing() {
    if (this._pingTimer) clearInterval(this._pingTimer);
    this._pingTimer = null;
  }

  /** A `pong` arrived: every ping so far is answered. */
  pong() {
    this._pingOutstandingSince = 0;
  }
}
