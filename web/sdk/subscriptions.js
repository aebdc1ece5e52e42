// @ts-check
/**
 * The app's subscribe and unsubscribe choices. The server keeps them for
 * the session; a reconnection that has to join afresh starts a session
 * that knows none of them, so they are kept here to be sent again.
 * @module quartet/subscriptions
 */

import { SUBSCRIBE_MAX_SIDS } from './protocol.js';

/** @typedef {{type: 'subscribe'|'unsubscribe', trackSids: string[]}} ChoiceMessage */

/**
 * The messages that tell the server a choice, split to the protocol's
 * limit of sids per message.
 * @param {string[]} sids
 * @param {boolean} on subscribe (true) or unsubscribe (false)
 * @returns {ChoiceMessage[]}
 */
export function choiceMessages(sids, on) {
  /** @type {ChoiceMessage[]} */
  const out = [];
  for (let i = 0; i < sids.length; i += SUBSCRIBE_MAX_SIDS) {
    out.push({ type: on ? 'subscribe' : 'unsubscribe', trackSids: sids.slice(i, i + SUBSCRIBE_MAX_SIDS) });
  }
  return out;
}

export class Subscriptions {
  constructor() {
    /** @private @type {Map<string, boolean>} by track sid: subscribe (true) or unsubscribe (false) */
    this._choices = new Map();
  }

  /** @param {string[]} sids @param {boolean} on */
  record(sids, on) {
    for (const sid of sids) this._choices.set(sid, on);
  }

  /** The track is gone: its choice means nothing any more. @param {string} sid */
  forget(sid) {
    this._choices.delete(sid);
  }

  /**
   * After joining afresh: the messages that restore the choices for the
   * tracks still in the room; the others are forgotten.
   * @param {Set<string>} present track sids in the room now
   * @returns {ChoiceMessage[]}
   */
  replay(present) {
    /** @type {string[]} */ const on = [];
    /** @type {string[]} */ const off = [];
    for (const [sid, choice] of this._choices) {
      if (!present.has(sid)) this._choices.delete(sid);
      else (choice ? on : off).push(sid);
    }
    return [...choiceMessages(on, true), ...choiceMessages(off, false)];
  }
}
