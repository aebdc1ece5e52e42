// @ts-check
/**
 * Quartet browser SDK: a client for the Quartet native signaling protocol,
 * version 1 (docs/protocol.md). It has no UI; web/app/ is built on it.
 *
 * A participant uses two RTCPeerConnections: "publisher" (the client offers,
 * carries the local tracks) and "subscriber" (the server offers, carries
 * everyone else's tracks). Signaling is JSON over one WebSocket.
 *
 * Usage:
 *   const room = new Room({url: 'wss://host/ws', token});
 *   room.on('track', ({track, participantSid, info}) => { ... });
 *   await room.connect();
 *   await room.publish(micTrack, 'microphone');
 *   await room.publish(camTrack, 'camera'); // simulcast: three layers at 720p, fewer for smaller captures
 *   // (a third argument changes that: {simulcast: false}, {layers: [...]}; PublishOptions in encodings.js)
 *
 * Show remote video, receiving only what the page shows (adaptive stream:
 * hidden tiles receive nothing, small tiles a small simulcast layer):
 *   const room = new Room({url, token, adaptiveStream: true});
 *   room.on('track', (rt) => { if (rt.kind === 'video') rt.attach(tile.querySelector('video')); });
 *   room.on('trackStreamState', ({track, state}) => showPaused(track, state === 'paused'));
 *   rt.setSettings({quality: 'low'});            // at most the low layer
 *   room.setTrackSettings(sid, {enabled: false}); // by sid, received or not
 *
 * In a large room, choose what to receive:
 *   const room = new Room({url, token, autoSubscribe: false});
 *   room.on('trackPublished', ({track, local}) => { if (!local && wanted(track)) room.subscribe([track.sid]); });
 *   await room.connect();
 *   for (const p of room.participants.values()) room.subscribe(p.tracks.filter(wanted).map((t) => t.sid));
 *
 * This file is the entry point and only re-exports; the SDK is plain ES
 * modules next to it, loaded by the browser as they are (no bundler):
 *
 * | module | owns |
 * |---|---|
 * | room.js | `Room`: the public API, events, joining and resuming as the room sees it |
 * | session.js | the connection to the server kept alive: join, resume, rejoin, backoff; both peer connections |
 * | signaling.js | the WebSocket: open, join handshake, send, ping watchdog |
 * | publisher.js | the publisher connection: offer/answer rounds, one at a time; encodings on and off (dynacast) |
 * | encodings.js | how local video is encoded: simulcast layers, screen share, the offer's `layers` |
 * | subscriber.js | the subscriber connection: answering the server, remote tracks, their stream state |
 * | remote-track.js | `RemoteTrack`: a received track, attach(), setSettings() |
 * | track-settings.js | what we asked of each received track (`track_settings`), sent again after a rejoin |
 * | adaptive-stream.js | watching attached video elements' size and visibility |
 * | ice.js | ICE server selection; restarts when ICE fails, and giving up on them |
 * | room-state.js | participants, their tracks, speakers, chat: server messages to events |
 * | local-tracks.js | the tracks we publish, across connections |
 * | subscriptions.js | the app's subscribe/unsubscribe choices, replayed after a rejoin |
 * | protocol.js | protocol version, limits, wire types, message decoding |
 * | errors.js, util.js | `QuartetError`; small helpers |
 *
 * Events (listen with `room.on(type, fn)`, which passes `event.detail`, or
 * `room.addEventListener(type, e => e.detail)`):
 *
 * | type | detail |
 * |---|---|
 * | connectionState | {state: ConnectionState} |
 * | participantJoined / participantLeft | {participant: ParticipantInfo} |
 * | trackPublished / trackUnpublished | {track: TrackInfo, participant?: ParticipantInfo, local: boolean} |
 * | muteChanged | {participantSid, trackSid, muted, local: boolean} |
 * | activeSpeakers | {speakers: {sid, level}[], sids: string[]} |
 * | chat | {from: {sid, identity, name}, text, time, local: boolean} |
 * | track | RemoteTrack |
 * | trackEnded | RemoteTrack |
 * | trackStreamState | {trackSid, state, reason, track?: RemoteTrack}: the server paused a video track we receive (state `paused`, reason `bandwidth`: not even its lowest layer fits) or resumed it (`active`); also RemoteTrack.streamState |
 * | error | QuartetError |
 * | leave | {reason: string} (client, removed, room_closed, server_shutdown, duplicate_identity, timeout, reconnect_failed) |
 * | localTrackSid | {track: MediaStreamTrack, sid: string, source} when the server names a published track |
 *
 * @module quartet
 */

export { QuartetError } from './errors.js';
export { PROTOCOL_VERSION, TRACK_SOURCES } from './protocol.js';
export { Room } from './room.js';
export { RemoteTrack } from './remote-track.js';
export { DEFAULT_CAMERA_LAYERS } from './encodings.js';
export { msidTrackIdsByMid } from './util.js';

/**
 * The SDK's public types, for `import('/sdk/quartet.js').Name` in JSDoc.
 * @typedef {import('./protocol.js').TrackSource} TrackSource
 * @typedef {import('./protocol.js').Target} Target
 * @typedef {import('./protocol.js').TrackInfo} TrackInfo
 * @typedef {import('./protocol.js').TrackLayer} TrackLayer
 * @typedef {import('./protocol.js').TrackQuality} TrackQuality
 * @typedef {import('./protocol.js').StreamState} StreamState
 * @typedef {import('./encodings.js').PublishOptions} PublishOptions
 * @typedef {import('./encodings.js').SimulcastLayer} SimulcastLayer
 * @typedef {import('./track-settings.js').TrackSettings} TrackSettings
 * @typedef {import('./protocol.js').Permissions} Permissions
 * @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo
 * @typedef {import('./session.js').ConnectionState} ConnectionState
 * @typedef {import('./room.js').RoomOptions} RoomOptions
 * @typedef {import('./room.js').RoomEventType} RoomEventType
 */
