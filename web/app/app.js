// @ts-check
/**
 * Quartet web app: the home page (pick a room) and the room page (/r/{room}),
 * built on the SDK in /sdk/quartet.js. No framework: the DOM is small and
 * each UI piece is updated by one function.
 *
 * Test hooks: window.quartet = {room} once joined; body[data-state] is
 * loading | name | joining | joined | left | error; a tile showing a video
 * track has data-stream-state active | paused.
 */
import { Room } from '/sdk/quartet.js';

/** @typedef {import('/sdk/quartet.js').RemoteTrack} RemoteTrack */
/** @typedef {import('/sdk/quartet.js').ParticipantInfo} ParticipantInfo */

const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const VIDEO_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const MAX_CHAT_MESSAGES = 500;
const NEEDS_TOKEN_MESSAGE = 'This server needs an access token: open the link with ?token=...';

/** @param {string} id @returns {any} */
const $ = (id) => document.getElementById(id);

// ===================================================================== home

function initHome() {
  const form = $('home-form');
  const nameInput = $('home-name-input');
  nameInput.value = storageGet(localStorage, 'quartet.name') || '';
  form.addEventListener('submit', (/** @type {Event} */ e) => {
    e.preventDefault();
    const room = $('room-input').value.trim();
    if (!room) return;
    const name = nameInput.value.trim();
    if (name) storageSet(localStorage, 'quartet.name', name);
    const query = name ? `?name=${encodeURIComponent(name)}` : '';
    location.assign(`/r/${encodeURIComponent(room)}${query}`);
  });
}

// ================================================================ room page

const params = new URLSearchParams(location.search);
const roomName = roomNameFromPath(location.pathname);
const urlToken = params.get('token');
// For debugging TURN: ?relay=1 sends all media through TURN, ?turn=udp or
// ?turn=tcp keeps only the turn: URLs of that transport.
const relayOnly = params.get('relay') === '1';
const turnParam = params.get('turn');
const turnTransport = turnParam === 'udp' || turnParam === 'tcp' ? turnParam : undefined;

/** Page state; the Room is the source of truth for everything remote. */
const state = {
  /** @type {Room|null} */ room: null,
  /** @type {MediaStreamTrack|null} */ mic: null,
  /** @type {MediaStreamTrack|null} */ camera: null,
  /** @type {MediaStreamTrack[]} */ screen: [],
  /** @type {MediaStream|null} */ localStream: null,
  /** Remote track -> element playing it (audio element or tile). @type {Map<RemoteTrack, HTMLElement>} */
  media: new Map(),
  /** @type {string[]} */ speakers: [],
  left: false,
};

function initRoomPage() {
  $('room-name').textContent = roomName;
  $('name-view-room').textContent = roomName;
  document.title = `${roomName} · Quartet`;
  $('banner-close').addEventListener('click', hideBanner);
  $('enable-audio').addEventListener('click', enableAudio);
  window.addEventListener('resize', layoutTiles);
  bindControls();
  updateControls();
  // Tell the server right away instead of letting it time us out.
  window.addEventListener('pagehide', () => { if (state.room && !state.left) state.room.leave(); });

  const name = (params.get('name') || '').trim();
  if (name) start(name);
  else showNameForm();
}

function showNameForm() {
  setBodyState('name');
  showView('name-view');
  const input = $('name-input');
  input.value = storageGet(localStorage, 'quartet.name') || '';
  input.focus();
  $('name-form').addEventListener('submit', (/** @type {Event} */ e) => {
    e.preventDefault();
    const name = input.value.trim();
    if (!name) return;
    // Put the name in the URL so that a reload rejoins directly.
    const url = new URL(location.href);
    url.searchParams.set('name', name);
    history.replaceState(null, '', url);
    start(name);
  }, { once: true });
}

/**
 * Joins the room: token, connect, then publish whatever media we got.
 * @param {string} name
 */
async function start(name) {
  setBodyState('joining');
  showView('room-view');
  storageSet(localStorage, 'quartet.name', name);
  const identity = getIdentity();
  // Ask for the camera while joining: the permission prompt takes the longest.
  const mediaPromise = acquireMedia();

  let token;
  try {
    token = urlToken || await fetchDevToken(identity, name);
  } catch (err) {
    fail(errorMessage(err));
    mediaPromise.then(stopStream);
    return;
  }

  const room = new Room({
    token,
    // A token from the URL cannot be renewed; dev tokens can.
    tokenProvider: urlToken ? undefined : () => fetchDevToken(identity, name),
    iceTransportPolicy: relayOnly ? 'relay' : 'all',
    turnTransport,
    // Hidden tiles receive no video, small ones a small simulcast layer.
    adaptiveStream: true,
  });
  state.room = room;
  bindRoomEvents(room);
  try {
    await room.connect();
  } catch (err) {
    state.room = null;
    fail(`Could not join the room: ${joinErrorMessage(err)}`);
    mediaPromise.then(stopStream);
    return;
  }

  /** @type {Window & {quartet?: {room: Room}}} */ (window).quartet = { room };
  setBodyState('joined');
  renderLocalTile(name);
  syncParticipantTiles();
  renderParticipants();

  const media = await mediaPromise;
  if (state.left) { stopStream(media); return; }
  await publishLocalMedia(room, media);
}

/**
 * @param {string} identity
 * @param {string} name
 * @returns {Promise<string>}
 */
async function fetchDevToken(identity, name) {
  const query = new URLSearchParams({ room: roomName, identity, name });
  const res = await fetch(`/api/dev/token?${query}`, { cache: 'no-store', credentials: 'same-origin' });
  if (!res.ok) throw new Error(NEEDS_TOKEN_MESSAGE);
  const body = await res.json().catch(() => null);
  if (!body || typeof body.token !== 'string' || !body.token) throw new Error(NEEDS_TOKEN_MESSAGE);
  return body.token;
}

/** @param {any} err */
function joinErrorMessage(err) {
  switch (err && err.code) {
    case 'unauthorized': return `the access token was refused (${err.message})`;
    case 'room_full': return 'the room is full';
    case 'unsupported_protocol': return 'this page is out of date for the server: reload it';
    case 'closed': return 'the server closed the connection';
    case 'timeout': return 'the server did not answer';
    default: return errorMessage(err);
  }
}

/** Shows a fatal error: nothing else to do on this page but read it. @param {string} message */
function fail(message) {
  showBanner(message);
  showView(null);
  setBodyState('error');
}

// =================================================================== media

/**
 * Gets camera and microphone, falling back to one of them, then to none.
 * @returns {Promise<MediaStream|null>}
 */
async function acquireMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showNotice('Camera and microphone need a secure page (HTTPS or localhost): you can watch and chat.');
    return null;
  }
  const attempts = [
    { constraints: { audio: AUDIO_CONSTRAINTS, video: VIDEO_CONSTRAINTS }, notice: '' },
    { constraints: { audio: AUDIO_CONSTRAINTS, video: false }, notice: 'Camera unavailable: joined with microphone only.' },
    { constraints: { audio: false, video: VIDEO_CONSTRAINTS }, notice: 'Microphone unavailable: joined with camera only.' },
  ];
  let lastError = null;
  for (const { constraints, notice } of attempts) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      if (notice) showNotice(notice);
      return stream;
    } catch (err) {
      lastError = err;
    }
  }
  showNotice(`No camera or microphone (${errorMessage(lastError)}): you can watch and chat.`);
  return null;
}

/** @param {Room} room @param {MediaStream|null} stream */
async function publishLocalMedia(room, stream) {
  state.localStream = stream;
  state.mic = stream ? stream.getAudioTracks()[0] || null : null;
  state.camera = stream ? stream.getVideoTracks()[0] || null : null;
  showLocalPreview();
  updateControls();
  const jobs = [];
  if (state.mic) jobs.push(publishTrack(room, state.mic, 'microphone'));
  if (state.camera) jobs.push(publishTrack(room, state.camera, 'camera'));
  await Promise.all(jobs);
}

/**
 * @param {Room} room
 * @param {MediaStreamTrack} track
 * @param {import('/sdk/quartet.js').TrackSource} source
 */
async function publishTrack(room, track, source) {
  // A device that goes away (unplugged, revoked) ends its track.
  track.addEventListener('ended', () => onLocalTrackEnded(track), { once: true });
  try {
    await room.publish(track, source);
  } catch (err) {
    showBanner(`Could not publish your ${source.replace('_', ' ')}: ${errorMessage(err)}`);
  }
}

/** @param {MediaStreamTrack} track */
function onLocalTrackEnded(track) {
  if (state.left || !state.room) return;
  if (track === state.mic || track === state.camera) {
    state.room.unpublish(track).catch(() => {});
    showNotice(`Your ${track === state.mic ? 'microphone' : 'camera'} stopped.`);
    if (track === state.mic) state.mic = null; else state.camera = null;
    showLocalPreview();
    updateControls();
  }
}

/** @param {MediaStream|null} stream */
function stopStream(stream) {
  if (stream) stream.getTracks().forEach((t) => t.stop());
}

function stopLocalMedia() {
  stopStream(state.localStream);
  state.screen.forEach((t) => t.stop());
  state.screen = [];
  state.mic = null;
  state.camera = null;
}

// ================================================================ controls

function bindControls() {
  $('mic-btn').addEventListener('click', () => toggleMute(state.mic));
  $('camera-btn').addEventListener('click', () => toggleMute(state.camera));
  $('screen-btn').addEventListener('click', toggleScreenShare);
  $('leave-btn').addEventListener('click', () => { if (state.room) state.room.leave(); });
  $('chat-form').addEventListener('submit', onChatSubmit);
}

/** @param {MediaStreamTrack|null} track */
function toggleMute(track) {
  const room = state.room;
  if (!room || !track) return;
  room.setMuted(track, !room.isMuted(track));
  updateControls();
  showLocalPreview();
}

async function toggleScreenShare() {
  const room = state.room;
  if (!room) return;
  if (state.screen.length > 0) { await stopScreenShare(); return; }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
    showBanner('Screen sharing is not supported by this browser.');
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: true });
  } catch (err) {
    // Cancelling the picker is not an error worth a banner.
    const name = err instanceof DOMException ? err.name : '';
    if (err && name !== 'NotAllowedError' && name !== 'AbortError') showBanner(`Could not share the screen: ${errorMessage(err)}`);
    return;
  }
  state.screen = stream.getTracks();
  updateControls();
  for (const track of state.screen) {
    // The browser's own "Stop sharing" button ends the track.
    track.addEventListener('ended', () => { stopScreenShare(); }, { once: true });
    const source = track.kind === 'video' ? 'screen' : 'screen_audio';
    room.publish(track, source).catch((err) => showBanner(`Could not share the screen: ${errorMessage(err)}`));
  }
}

async function stopScreenShare() {
  const tracks = state.screen;
  state.screen = [];
  updateControls();
  for (const track of tracks) {
    track.stop();
    if (state.room) await state.room.unpublish(track).catch(() => {});
  }
}

function updateControls() {
  const room = state.room;
  setToggle($('mic-btn'), state.mic, room, 'Mute', 'Unmute', 'No microphone');
  setToggle($('camera-btn'), state.camera, room, 'Stop video', 'Start video', 'No camera');
  const screen = $('screen-btn');
  const sharing = state.screen.length > 0;
  screen.textContent = sharing ? 'Stop sharing' : 'Share screen';
  screen.setAttribute('aria-pressed', String(sharing));
  screen.classList.toggle('active', sharing);
}

/**
 * @param {HTMLButtonElement} button
 * @param {MediaStreamTrack|null} track
 * @param {Room|null} room
 * @param {string} onLabel shown while the track is live
 * @param {string} offLabel shown while muted
 * @param {string} missingLabel
 */
function setToggle(button, track, room, onLabel, offLabel, missingLabel) {
  const muted = !!track && !!room && room.isMuted(track);
  button.disabled = !track;
  button.textContent = !track ? missingLabel : muted ? offLabel : onLabel;
  button.setAttribute('aria-pressed', String(muted));
  button.dataset.muted = String(muted);
  button.classList.toggle('off', muted || !track);
}

// ==================================================================== chat

/** @param {Event} e */
function onChatSubmit(e) {
  e.preventDefault();
  const input = $('chat-input');
  const text = input.value.trim();
  if (!text || !state.room) return;
  try {
    state.room.sendChat(text);
    input.value = '';
  } catch (err) {
    showBanner(`Message not sent: ${errorMessage(err)}`);
  }
}

/** @param {{from: {sid: string, name: string, identity: string}, text: string, time: string, local: boolean}} msg */
function appendChat(msg) {
  const list = $('chat-messages');
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const item = el('li', 'chat-message');
  if (msg.local) item.classList.add('own');
  item.dataset.participantSid = msg.from.sid;
  const head = el('div', 'chat-head');
  // User text goes in with textContent only, never as HTML.
  head.append(el('span', 'chat-from', msg.local ? 'You' : msg.from.name || msg.from.identity || 'Guest'));
  head.append(el('time', 'chat-time', formatTime(msg.time)));
  item.append(head, el('div', 'chat-text', msg.text));
  list.append(item);
  while (list.children.length > MAX_CHAT_MESSAGES) list.firstElementChild.remove();
  if (nearBottom || msg.local) list.scrollTop = list.scrollHeight;
}

// ============================================================= room events

/** @param {Room} room */
function bindRoomEvents(room) {
  room.on('connectionState', ({ state: s }) => {
    const indicator = $('connection-state');
    indicator.textContent = s;
    indicator.dataset.state = s;
    if (s === 'connected') syncParticipantTiles();
  });
  room.on('participantJoined', ({ participant }) => {
    ensureTile(participant.sid, 'main');
    updateTileState(participant.sid); // its tile may predate the name (track first)
    renderParticipants();
  });
  room.on('participantLeft', ({ participant }) => {
    removeTiles(participant.sid);
    renderParticipants();
  });
  room.on('trackPublished', onParticipantInfoChanged);
  room.on('trackUnpublished', onParticipantInfoChanged);
  room.on('muteChanged', onParticipantInfoChanged);
  room.on('activeSpeakers', ({ sids }) => showSpeakers(sids));
  room.on('chat', appendChat);
  room.on('track', attachRemoteTrack);
  room.on('trackEnded', detachRemoteTrack);
  room.on('trackStreamState', ({ trackSid }) => updateStreamState(trackSid));
  room.on('error', (err) => {
    // Receive preferences (adaptive stream) are best effort: a refusal,
    // say for a track unpublished meanwhile, is nothing the user can act on.
    if (err.requestType === 'track_settings') { console.warn('quartet app: track settings refused:', err.message); return; }
    showBanner(`${errorMessage(err)}${err.code ? ` (${err.code})` : ''}`);
  });
  room.on('leave', ({ reason }) => onLeft(reason));
}

/** @param {{participantSid?: string, participant?: ParticipantInfo, track?: {participantSid: string}, local?: boolean}} detail */
function onParticipantInfoChanged(detail) {
  const sid = detail.participantSid || (detail.track && detail.track.participantSid) || (detail.participant && detail.participant.sid);
  if (sid && !detail.local) updateTileState(sid);
  renderParticipants();
}

/** @param {string} reason */
function onLeft(reason) {
  if (state.left) return;
  state.left = true;
  stopLocalMedia();
  for (const audio of $('audio-sink').querySelectorAll('audio')) audio.srcObject = null;
  $('audio-sink').replaceChildren();
  for (const tile of $('tiles').querySelectorAll('video')) tile.srcObject = null;
  $('tiles').replaceChildren();
  state.media.clear();
  $('enable-audio').hidden = true;

  const [title, detail] = leaveText(reason);
  $('left-title').textContent = title;
  $('left-detail').textContent = detail;
  const rejoin = new URL(location.href);
  const name = state.room && state.room.localParticipant ? state.room.localParticipant.name : '';
  if (name && !rejoin.searchParams.get('name')) rejoin.searchParams.set('name', name);
  $('rejoin-link').href = rejoin.pathname + rejoin.search;
  showView('left-view');
  setBodyState('left');
}

/** @param {string} reason @returns {[string, string]} */
function leaveText(reason) {
  switch (reason) {
    case 'client': return ['You left', ''];
    case 'duplicate_identity': return ['You joined from somewhere else', 'This tab was disconnected because the same identity joined the room again.'];
    case 'removed': return ['You were removed', 'An administrator removed you from the room.'];
    case 'room_closed': return ['The room was closed', ''];
    case 'server_shutdown': return ['The server shut down', 'Try rejoining in a moment.'];
    case 'timeout': return ['Disconnected', 'The server stopped hearing from this browser.'];
    case 'reconnect_failed': return ['Connection lost', 'Could not reach the server again.'];
    default: return ['Disconnected', reason ? `Reason: ${reason}` : ''];
  }
}

// =================================================================== tiles

/**
 * Returns the tile of a participant (kind "main": camera + avatar) or of
 * their screen share, creating it if needed.
 * @param {string} sid
 * @param {'main'|'screen'} kind
 * @returns {HTMLElement}
 */
function ensureTile(sid, kind) {
  const existing = findTile(sid, kind);
  if (existing) return existing;
  const tile = el('div', 'tile');
  tile.dataset.participantSid = sid;
  if (kind === 'screen') tile.dataset.source = 'screen';
  const video = /** @type {HTMLVideoElement} */ (el('video'));
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // sound plays through the <audio> elements
  const avatar = el('div', 'avatar');
  avatar.append(el('span', 'initial'));
  const label = el('div', 'label');
  label.append(el('span', 'mic-indicator'), el('span', 'name'));
  const badge = el('div', 'paused-badge');
  badge.setAttribute('role', 'status');
  tile.append(video, avatar, label, badge);
  tile.classList.add('no-video');
  if (kind === 'screen') tile.classList.add('screen');
  $('tiles').append(tile);
  updateTileState(sid);
  layoutTiles();
  return tile;
}

/** @param {string} sid @param {'main'|'screen'} kind @returns {HTMLElement|null} */
function findTile(sid, kind) {
  for (const tile of /** @type {NodeListOf<HTMLElement>} */ ($('tiles').querySelectorAll('.tile'))) {
    if (tile.dataset.participantSid !== sid) continue;
    if ((tile.dataset.source === 'screen') === (kind === 'screen')) return tile;
  }
  return null;
}

/** @param {string} sid */
function removeTiles(sid) {
  for (const tile of /** @type {NodeListOf<HTMLElement>} */ ($('tiles').querySelectorAll('.tile'))) {
    if (tile.dataset.participantSid !== sid) continue;
    const video = tile.querySelector('video');
    if (video) video.srcObject = null;
    tile.remove();
  }
  layoutTiles();
}

/** Makes sure every remote participant has a tile (after join or rejoin). */
function syncParticipantTiles() {
  const room = state.room;
  if (!room || state.left) return;
  for (const sid of room.participants.keys()) ensureTile(sid, 'main');
  for (const tile of /** @type {NodeListOf<HTMLElement>} */ ($('tiles').querySelectorAll('.tile'))) {
    if (!room.participants.has(tile.dataset.participantSid || '')) removeTiles(tile.dataset.participantSid || '');
  }
}

/** @param {RemoteTrack} rt */
function attachRemoteTrack(rt) {
  if (state.left) return;
  if (rt.kind === 'audio') {
    const audio = /** @type {HTMLAudioElement} */ (el('audio'));
    audio.autoplay = true;
    audio.dataset.participantSid = rt.participantSid;
    audio.dataset.trackSid = rt.trackSid;
    audio.dataset.source = rt.source;
    rt.attach(audio);
    $('audio-sink').append(audio);
    play(audio);
    state.media.set(rt, audio);
    ensureTile(rt.participantSid, 'main'); // audio-only participants get a tile too
    return;
  }
  const tile = ensureTile(rt.participantSid, rt.source === 'screen' ? 'screen' : 'main');
  const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
  // attach(): the SDK's adaptive stream watches the tile's size and visibility.
  rt.attach(video);
  tile.dataset.trackSid = rt.trackSid;
  play(video);
  state.media.set(rt, tile);
  updateTileState(rt.participantSid);
  updateStreamState(rt.trackSid);
}

/** @param {RemoteTrack} rt */
function detachRemoteTrack(rt) {
  const target = state.media.get(rt);
  state.media.delete(rt);
  if (!target) return;
  if (target instanceof HTMLAudioElement) {
    rt.detach(target);
    target.srcObject = null;
    target.remove();
  } else if (target.dataset.trackSid === rt.trackSid) {
    const video = target.querySelector('video');
    if (video) { rt.detach(video); video.srcObject = null; }
    delete target.dataset.trackSid;
    delete target.dataset.streamState;
    target.classList.remove('stream-paused');
    // A screen tile exists only for its track.
    if (target.dataset.source === 'screen') { target.remove(); layoutTiles(); }
  }
  // Once nothing of a participant is left playing, drop their tile(s).
  const stillPlaying = [...state.media.keys()].some((r) => r.participantSid === rt.participantSid);
  if (!stillPlaying) removeTiles(rt.participantSid);
  else updateTileState(rt.participantSid);
}

/**
 * Name, mute icon and camera-off state of a participant's tiles, from the
 * participant info the SDK keeps current.
 * @param {string} sid
 */
function updateTileState(sid) {
  const room = state.room;
  const p = room ? room.participants.get(sid) : undefined;
  const name = p ? p.name || p.identity : 'Guest';
  const tracks = p ? p.tracks : [];
  const mic = tracks.find((t) => t.source === 'microphone');
  const micMuted = !mic || mic.muted;
  for (const kind of /** @type {const} */ (['main', 'screen'])) {
    const tile = findTile(sid, kind);
    if (!tile) continue;
    setText(tile, '.name', kind === 'screen' ? `${name} (screen)` : name);
    setText(tile, '.initial', initialOf(name));
    const videoSid = tile.dataset.trackSid;
    const videoInfo = tracks.find((t) => t.sid === videoSid);
    tile.classList.toggle('no-video', !videoSid || !!(videoInfo && videoInfo.muted));
    if (kind === 'main') {
      tile.classList.toggle('mic-muted', micMuted);
      tile.dataset.micMuted = String(micMuted);
    }
  }
}

/**
 * The "paused" badge of the tile showing a video track: the server holds
 * the video back while our bandwidth cannot carry even its lowest layer.
 * @param {string} trackSid
 */
function updateStreamState(trackSid) {
  const rt = [...state.media.keys()].find((r) => r.trackSid === trackSid && r.kind === 'video');
  for (const tile of /** @type {NodeListOf<HTMLElement>} */ ($('tiles').querySelectorAll('.tile'))) {
    if (tile.dataset.trackSid !== trackSid) continue;
    const paused = !!rt && rt.streamState === 'paused';
    tile.classList.toggle('stream-paused', paused);
    tile.dataset.streamState = paused ? 'paused' : 'active';
    const badge = tile.querySelector('.paused-badge');
    if (badge) badge.textContent = !paused ? '' : rt.streamStateReason === 'bandwidth' ? 'Paused (low bandwidth)' : 'Paused';
  }
}

/** The local preview: not a .tile (tiles are remote participants). @param {string} name */
function renderLocalTile(name) {
  let self = $('local-tile');
  if (!self) {
    self = el('div', 'self-view');
    self.id = 'local-tile';
    const video = /** @type {HTMLVideoElement} */ (el('video'));
    video.id = 'local-video';
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true; // never play our own microphone back
    const avatar = el('div', 'avatar');
    avatar.append(el('span', 'initial', initialOf(name)));
    const label = el('div', 'label');
    label.append(el('span', 'mic-indicator'), el('span', 'name', `${name} (you)`));
    self.append(video, avatar, label);
    $('tiles').prepend(self);
  }
  showLocalPreview();
  layoutTiles();
}

function showLocalPreview() {
  const self = $('local-tile');
  if (!self) return;
  const video = self.querySelector('video');
  const room = state.room;
  const cam = state.camera;
  if (cam && video.srcObject?.getVideoTracks?.()[0] !== cam) {
    video.srcObject = new MediaStream([cam]);
    play(video);
  } else if (!cam) {
    video.srcObject = null;
  }
  const camOff = !cam || (!!room && room.isMuted(cam));
  const micOff = !state.mic || (!!room && room.isMuted(state.mic));
  self.classList.toggle('no-video', camOff);
  self.classList.toggle('mic-muted', micOff);
}

/** Grid shape for the number of tiles: as square as possible. */
function layoutTiles() {
  const tiles = $('tiles');
  if (!tiles) return;
  const n = Math.max(1, tiles.children.length);
  const narrow = window.innerWidth < 700;
  let cols = Math.ceil(Math.sqrt(n));
  if (narrow) cols = Math.min(cols, n <= 2 ? 1 : 2);
  const rows = Math.ceil(n / cols);
  tiles.style.setProperty('--cols', String(cols));
  tiles.style.setProperty('--rows', String(rows));
}

/** @param {string[]} sids loudest first */
function showSpeakers(sids) {
  state.speakers = sids;
  const speaking = new Set(sids);
  for (const tile of /** @type {NodeListOf<HTMLElement>} */ ($('tiles').querySelectorAll('.tile'))) {
    tile.classList.toggle('speaking', speaking.has(tile.dataset.participantSid || ''));
  }
  const room = state.room;
  const self = $('local-tile');
  if (self && room && room.localParticipant) self.classList.toggle('speaking', speaking.has(room.localParticipant.sid));
  for (const item of /** @type {NodeListOf<HTMLElement>} */ ($('participant-list').children)) {
    item.classList.toggle('speaking', speaking.has(item.dataset.participantSid || ''));
  }
}

// ============================================================ participants

function renderParticipants() {
  const room = state.room;
  const list = $('participant-list');
  if (!room) return;
  /** @type {{p: ParticipantInfo, local: boolean}[]} */
  const people = [];
  if (room.localParticipant) people.push({ p: room.localParticipant, local: true });
  const others = [...room.participants.values()].sort((a, b) => (a.name || '').localeCompare(b.name || ''));
  for (const p of others) people.push({ p, local: false });

  const speaking = new Set(state.speakers);
  list.replaceChildren(...people.map(({ p, local }) => participantItem(p, local, speaking.has(p.sid))));
  $('participant-count').textContent = String(people.length);
}

/**
 * @param {ParticipantInfo} p
 * @param {boolean} local
 * @param {boolean} speaking
 */
function participantItem(p, local, speaking) {
  const item = el('li', 'participant');
  item.dataset.participantSid = p.sid;
  if (speaking) item.classList.add('speaking');
  const name = p.name || p.identity;
  item.append(el('span', 'initial', initialOf(name)), el('span', 'name', local ? `${name} (you)` : name));

  // Our own state is known locally before the server confirms it.
  const micMuted = local ? !state.mic || !!(state.room && state.room.isMuted(state.mic)) : isSourceOff(p, 'microphone');
  const camOff = local ? !state.camera || !!(state.room && state.room.isMuted(state.camera)) : isSourceOff(p, 'camera');
  const icons = el('span', 'icons');
  const mic = el('span', `icon mic${micMuted ? ' off' : ''}`);
  mic.title = micMuted ? 'Microphone off' : 'Microphone on';
  const cam = el('span', `icon cam${camOff ? ' off' : ''}`);
  cam.title = camOff ? 'Camera off' : 'Camera on';
  icons.append(mic, cam);
  if (p.tracks.some((t) => t.source === 'screen')) {
    const screen = el('span', 'icon screen');
    screen.title = 'Sharing screen';
    icons.append(screen);
  }
  item.dataset.micMuted = String(micMuted);
  item.dataset.cameraOff = String(camOff);
  item.append(icons);
  return item;
}

/** @param {ParticipantInfo} p @param {string} source */
function isSourceOff(p, source) {
  const t = p.tracks.find((x) => x.source === source);
  return !t || t.muted;
}

// ========================================================= small UI helpers

/** @param {HTMLMediaElement} media */
function play(media) {
  media.play().catch((err) => {
    // Autoplay with sound can be blocked until the user interacts.
    if (err && err.name === 'NotAllowedError') $('enable-audio').hidden = false;
  });
}

function enableAudio() {
  $('enable-audio').hidden = true;
  for (const media of document.querySelectorAll('audio, video')) play(/** @type {HTMLMediaElement} */ (media));
}

/** @param {string} text */
function showBanner(text) {
  $('banner-text').textContent = text;
  $('banner').hidden = false;
}

function hideBanner() {
  $('banner').hidden = true;
}

/** @param {string} text */
function showNotice(text) {
  const notice = $('notice');
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(showNotice.timer);
  showNotice.timer = setTimeout(() => { notice.hidden = true; }, 8000);
}
/** @type {any} */
showNotice.timer = null;

/** @param {string|null} id the one view to show (null: none) */
function showView(id) {
  for (const view of ['name-view', 'room-view', 'left-view']) $(view).hidden = view !== id;
}

/** @param {string} s */
function setBodyState(s) {
  document.body.dataset.state = s;
}

/**
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text] set as textContent (safe for user text)
 * @returns {HTMLElement}
 */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Sets the text of an element inside `parent` (ensureTile made it, so it is
 * there; the check is for the type checker's sake and costs nothing).
 * @param {Element} parent
 * @param {string} selector
 * @param {string} text
 */
function setText(parent, selector, text) {
  const node = parent.querySelector(selector);
  if (node) node.textContent = text;
}

/** @param {string} name */
function initialOf(name) {
  const first = [...(name || '?').trim()][0];
  return (first || '?').toUpperCase();
}

/** @param {string} iso */
function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** @param {any} err */
function errorMessage(err) {
  if (!err) return 'unknown error';
  return err.message || String(err);
}

/** The room is the last path segment of /r/{room}, URL-decoded. @param {string} path */
function roomNameFromPath(path) {
  const segment = path.split('/').filter(Boolean).pop() || '';
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * A random identity per tab: sessionStorage survives reloads but is not
 * shared between tabs, so two tabs are two participants.
 */
function getIdentity() {
  let id = storageGet(sessionStorage, 'quartet.identity');
  if (!id) {
    // getRandomValues works on plain-HTTP pages too (randomUUID does not).
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    id = `guest-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
    storageSet(sessionStorage, 'quartet.identity', id);
  }
  return id;
}

/** Storage may throw (privacy modes); the app works without it. @param {Storage} store @param {string} key */
function storageGet(store, key) {
  try { return store.getItem(key); } catch { return null; }
}

/** @param {Storage} store @param {string} key @param {string} value */
function storageSet(store, key, value) {
  try { store.setItem(key, value); } catch { /* ignore */ }
}

// Last, so that every module-level binding above is initialized.
if (document.body.dataset.page === 'home') initHome();
else if (document.body.dataset.page === 'room') initRoomPage();
