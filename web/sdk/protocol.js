// @ts-check
/**
 * The native signaling protocol as the SDK sees it (docs/protocol.md): the
 * version, its limits, the shapes of what the server describes, and
 * decoding of what arrives.
 * @module quartet/protocol
 */

/** Version of the signaling protocol this SDK speaks. */
export const PROTOCOL_VERSION = 1;

/** Sources a published track may declare. */
export const TRACK_SOURCES = Object.freeze(['camera', 'microphone', 'screen', 'screen_audio', 'unknown']);

/** The server refuses longer chat texts (UTF-8 bytes). */
export const CHAT_MAX_BYTES = 4096;
/** Track sids one subscribe or unsubscribe message may carry. */
export const SUBSCRIBE_MAX_SIDS = 64;
/** Track sids one track_settings message may carry (as for subscribe). */
export const TRACK_SETTINGS_MAX_SIDS = SUBSCRIBE_MAX_SIDS;
/** The largest rendered width or height track_settings may carry. */
export const MAX_RENDERED_SIZE = 16384;
/** Layer qualities, lowest first: the names of a track's layers by position. */
export const TRACK_QUALITIES = Object.freeze(['low', 'medium', 'high']);
/** Join errors that retrying cannot fix. */
export const FATAL_JOIN_CODES = new Set(['unsupported_protocol']);

/**
 * @typedef {'camera'|'microphone'|'screen'|'screen_audio'|'unknown'} TrackSource
 * @typedef {'publisher'|'subscriber'} Target which of a participant's two
 *   peer connections a message is about
 * @typedef {'low'|'medium'|'high'} TrackQuality a layer's name by position:
 *   one layer is high; two are low and high; three low, medium and high
 * @typedef {'active'|'paused'} StreamState whether the server forwards a
 *   video track to us (`stream_state`)
 */

/**
 * One simulcast layer of a published video track, as the server describes
 * it (lowest first in `TrackInfo.layers`).
 * @typedef {Object} TrackLayer
 * @property {string} rid
 * @property {TrackQuality} quality
 * @property {number} [width]
 * @property {number} [height]
 * @property {number} [bitrate] the publisher's maximum, bits per second
 */

/**
 * A published track as the server describes it.
 * @typedef {Object} TrackInfo
 * @property {string} sid
 * @property {string} participantSid
 * @property {'audio'|'video'} kind
 * @property {TrackSource} source
 * @property {boolean} muted
 * @property {string} [mimeType]
 * @property {TrackLayer[]} [layers] simulcast layers, lowest first; absent
 *   for audio and for video sent as one stream
 */

/**
 * @typedef {Object} Permissions
 * @property {boolean} canPublish
 * @property {boolean} canSubscribe
 * @property {boolean} admin
 */

/**
 * A participant as the server describes it. `tracks` is kept current by the
 * SDK from track_published / track_unpublished / mute_changed.
 * @typedef {Object} ParticipantInfo
 * @property {string} sid
 * @property {string} identity
 * @property {string} name
 * @property {TrackInfo[]} tracks
 * @property {Permissions} [permissions]
 */

/**
 * What a `join` needs to resume a session after a drop.
 * @typedef {{participantSid: string, resumeToken: string}} ResumeRequest
 */

/**
 * A server message, or null for anything that is not one (binary frames,
 * bad JSON, no `type`): those are ignored rather than fatal, so a newer
 * server cannot break an older SDK.
 * @param {unknown} data
 * @returns {any}
 */
export function parseMessage(data) {
  if (typeof data !== 'string') return null;
  try {
    const msg = JSON.parse(data);
    return msg && typeof msg === 'object' && typeof msg.type === 'string' ? msg : null;
  } catch {
    return null;
  }
}

/**
 * A participant from the wire with every field the SDK relies on present,
 * and a `tracks` array of its own (the SDK edits it).
 * @param {any} raw
 * @returns {ParticipantInfo}
 */
export function normalizeParticipant(raw) {
  const p = raw || {};
  return {
    ...p,
    sid: String(p.sid || ''),
    identity: String(p.identity || ''),
    name: String(p.name || p.identity || ''),
    tracks: Array.isArray(p.tracks) ? p.tracks.slice() : [],
  };
}

/**
 * What a `join` needs to resume the session a `joined` describes, or null
 * if the server offers no resume (an older server sends no token).
 * @param {any} msg the `joined` message
 * @returns {ResumeRequest|null}
 */
export function resumeRequestFrom(msg) {
  const participantSid = msg.participant && msg.participant.sid;
  const resumeToken = msg.resumeToken;
  if (typeof participantSid !== 'string' || !participantSid) return null;
  if (typeof resumeToken !== 'string' || !resumeToken) return null;
  return { participantSid, resumeToken };
}
