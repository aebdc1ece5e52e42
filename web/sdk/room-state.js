// @ts-check
/**
 * The room as the server last described it: who is in it, their tracks,
 * who is speaking. It turns the server's room messages into the Room's
 * events, so listeners see every change exactly once, including the
 * differences a rejoin or resume brings.
 * @module quartet/room-state
 */

import { normalizeParticipant } from './protocol.js';

/**
 * @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo
 * @typedef {import('./protocol.js').TrackInfo} TrackInfo
 * @typedef {(type: string, detail: any) => void} Emit
 */

export class RoomState {
  /** @param {Emit} emit */
  constructor(emit) {
    /** @private */
    this._emit = emit;
    /** Remote participants by sid. @type {Map<string, ParticipantInfo>} */
    this.participants = new Map();
    /** @type {ParticipantInfo|null} */
    this.local = null;
    /** Loudest first. @type {{sid: string, level: number}[]} */
    this.activeSpeakers = [];
  }

  /**
   * Replaces the participant list (on join, rejoin or resume), emitting
   * events for the differences so that listeners stay in sync.
   * @param {ParticipantInfo[]} list
   */
  replace(list) {
    const next = new Map(list.map((p) => [p.sid, p]));
    for (const [sid, old] of this.participants) {
      if (!next.has(sid)) this.participantLeft(old);
    }
    for (const p of list) {
      const old = this.participants.get(p.sid);
      this.participants.set(p.sid, p);
      if (!old) {
        this._emit('participantJoined', { participant: p });
        continue;
      }
      this._emitTrackChanges(old, p);
    }
  }

  /**
   * The events between what we knew of a participant and what the server
   * says now.
   * @private @param {ParticipantInfo} old @param {ParticipantInfo} p
   */
  _emitTrackChanges(old, p) {
    const newSids = new Set(p.tracks.map((t) => t.sid));
    for (const t of old.tracks) {
      if (!newSids.has(t.sid)) this._emit('trackUnpublished', { track: t, participant: p, local: false });
    }
    const oldTracks = new Map(old.tracks.map((t) => [t.sid, t]));
    for (const t of p.tracks) {
      const was = oldTracks.get(t.sid);
      if (!was) this._emit('trackPublished', { track: t, participant: p, local: false });
      else if (!!was.muted !== !!t.muted) {
        this._emit('muteChanged', { participantSid: p.sid, trackSid: t.sid, muted: !!t.muted, local: false });
      }
    }
  }

  /** @param {any} raw participant_joined's participant */
  participantJoined(raw) {
    if (!raw || !raw.sid) return;
    const p = normalizeParticipant(raw);
    if (this.local && p.sid === this.local.sid) return;
    // A rejoin with the same identity replaces the old session; drop the old
    // entry even if its participant_left is late or missing.
    for (const [sid, old] of this.participants) {
      if (old.identity === p.identity && sid !== p.sid) this.participantLeft(old);
    }
    const existing = this.participants.get(p.sid);
    this.participants.set(p.sid, p);
    if (!existing) this._emit('participantJoined', { participant: p });
  }

  /** @param {any} raw participant_left's participant */
  participantLeft(raw) {
    if (!raw || !raw.sid) return;
    const p = this.participants.get(raw.sid);
    if (!p) return;
    this.participants.delete(raw.sid);
    this.activeSpeakers = this.activeSpeakers.filter((s) => s.sid !== raw.sid);
    this._emit('participantLeft', { participant: p });
  }

  /** @param {TrackInfo} track */
  trackPublished(track) {
    if (!track || !track.sid) return;
    const found = this._participantOrLocal(track.participantSid);
    if (found) {
      const i = found.p.tracks.findIndex((t) => t.sid === track.sid);
      if (i >= 0) found.p.tracks[i] = track; else found.p.tracks.push(track);
    }
    this._emit('trackPublished', { track, participant: found ? found.p : undefined, local: found ? found.local : false });
  }

  /** @param {TrackInfo} track */
  trackUnpublished(track) {
    if (!track || !track.sid) return;
    const found = this._participantOrLocal(track.participantSid);
    if (found) found.p.tracks = found.p.tracks.filter((t) => t.sid !== track.sid);
    this._emit('trackUnpublished', { track, participant: found ? found.p : undefined, local: found ? found.local : false });
  }

  /** @param {{participantSid: string, trackSid: string, muted: boolean}} msg mute_changed */
  muteChanged(msg) {
    const muted = !!msg.muted;
    const found = this._participantOrLocal(msg.participantSid);
    if (found) {
      const info = found.p.tracks.find((t) => t.sid === msg.trackSid);
      if (info) info.muted = muted;
    }
    this._emit('muteChanged', { participantSid: msg.participantSid, trackSid: msg.trackSid, muted, local: found ? found.local : false });
  }

  /**
   * Our own mute change, shown at once rather than when the server echoes it.
   * @param {string|null} trackSid null while the server has not named the track
   * @param {boolean} muted
   */
  localMuteChanged(trackSid, muted) {
    const info = this.local && this.local.tracks.find((t) => t.sid === trackSid);
    if (info) info.muted = muted;
    this._emit('muteChanged', { participantSid: this.local ? this.local.sid : '', trackSid: trackSid || '', muted, local: true });
  }

  /** @param {unknown} speakers active_speakers' list */
  speakersChanged(speakers) {
    this.activeSpeakers = Array.isArray(speakers) ? speakers : [];
    this._emit('activeSpeakers', { speakers: this.activeSpeakers, sids: this.activeSpeakers.map((s) => s.sid) });
  }

  /** @param {any} msg a chat message */
  chat(msg) {
    const from = msg.from || { sid: '', identity: '', name: '' };
    const local = !!this.local && from.sid === this.local.sid;
    this._emit('chat', { from, text: String(msg.text ?? ''), time: msg.time || new Date().toISOString(), local });
  }

  /** The sids of every remote participant's tracks. @returns {Set<string>} */
  remoteTrackSids() {
    return new Set([...this.participants.values()].flatMap((p) => p.tracks.map((t) => t.sid)));
  }

  /** Whether a remote participant publishes this track. @param {string} sid */
  hasRemoteTrack(sid) {
    for (const p of this.participants.values()) {
      if (p.tracks.some((t) => t.sid === sid)) return true;
    }
    return false;
  }

  /** @private @param {string} sid */
  _participantOrLocal(sid) {
    if (this.local && this.local.sid === sid) return { p: this.local, local: true };
    const p = this.participants.get(sid);
    return p ? { p, local: false } : null;
  }
}
