// @ts-check
/**
 * Small helpers shared by the connection modules.
 * @module quartet/util
 */

import { errorText } from './errors.js';

/**
 * Adds a remote ICE candidate without failing the caller.
 * @param {RTCPeerConnection} pc
 * @param {RTCIceCandidateInit} c
 */
export function addCandidate(pc, c) {
  // A stale candidate (old ICE generation) is harmless: log and move on.
  pc.addIceCandidate(c).catch((err) => console.debug('quartet: candidate ignored:', errorText(err)));
}

/**
 * Maps each m-line's mid to its msid track id.
 * @param {string} sdp
 * @returns {Map<string, string>}
 */
export function msidTrackIdsByMid(sdp) {
  const out = new Map();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const mid = /^a=mid:(\S+)/m.exec(section);
    const msid = /^a=msid:\S+ (\S+)/m.exec(section);
    if (mid && msid) out.set(mid[1], msid[1]);
  }
  return out;
}

/** @param {number} ms @returns {Promise<void>} */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * @typedef {Object} Backoff
 * @property {number} firstDelayMs pause before the first attempt
 * @property {number} maxDelayMs the pause doubles up to this
 * @property {number} giveUpAfterMs no attempt starts later than this
 * @property {() => boolean} stop checked before and after each pause
 * @property {(err: unknown) => boolean} fatal an error retrying cannot fix
 */

/**
 * Calls `attempt` after growing pauses until it returns true.
 * @param {() => Promise<boolean>} attempt
 * @param {Backoff} backoff
 * @returns {Promise<{done: boolean, lastError: unknown}>} done: an attempt
 *   succeeded; lastError: the last error thrown, if any
 */
export async function retryWithBackoff(attempt, backoff) {
  const deadline = Date.now() + backoff.giveUpAfterMs;
  let delay = backoff.firstDelayMs;
  /** @type {unknown} */
  let lastError = null;
  while (!backoff.stop()) {
    await sleep(delay);
    if (backoff.stop()) break;
    try {
      if (await attempt()) return { done: true, lastError };
    } catch (err) {
      lastError = err;
      if (backoff.fatal(err)) break;
    }
    if (Date.now() + delay >= deadline) break;
    delay = Math.min(delay * 2, backoff.maxDelayMs);
  }
  return { done: false, lastError };
}
