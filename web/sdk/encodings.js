// @ts-check
/**
 * How a local video track is encoded: the simulcast layers of a camera,
 * the one sharp layer of a screen share, and the layers as the publisher
 * `offer` declares them. Chromium writes the `a=rid` and `a=simulcast`
 * lines itself from the encodings given to addTransceiver: no SDP munging.
 * @module quartet/encodings
 */

/** @typedef {import('./protocol.js').TrackSource} TrackSource */

/**
 * One simulcast layer to send, for a capture of REFERENCE_HEIGHT or more.
 * @typedef {Object} SimulcastLayer
 * @property {string} rid
 * @property {number} scaleResolutionDownBy 1 for the full capture size
 * @property {number} maxBitrate bits per second
 * @property {number} [maxFramerate]
 */

/**
 * How to publish a track (`room.publish(track, source, options)`, or the
 * room's `publishDefaults`).
 * @typedef {Object} PublishOptions
 * @property {boolean} [simulcast] send video as simulcast layers; default
 *   true for `camera`, false for every other source
 * @property {SimulcastLayer[]} [layers] the simulcast layers, lowest
 *   first, for a capture at least 480 pixels on its short side (default
 *   DEFAULT_CAMERA_LAYERS). Smaller captures send fewer: under 480 the
 *   lowest two, under 240 the lowest one, rescaled so that the highest of
 *   them is the capture size.
 * @property {string|null} [scalabilityMode] per encoding, for temporal
 *   layers: default `L1T3` (left out when the browser refuses it); null
 *   for none
 * @property {number} [maxBitrate] cap for a track sent as one encoding
 *   (bits per second); default none for screen shares, the top layer's
 *   for a camera sent without simulcast
 * @property {RTCDegradationPreference} [degradationPreference] what the
 *   encoder gives up when bandwidth or CPU runs short; default
 *   `maintain-resolution` for screen shares (sharp text), the browser's
 *   choice otherwise
 */

/**
 * An encoding as addTransceiver and setParameters take it (TypeScript's
 * DOM types lack scalabilityMode).
 * @typedef {RTCRtpEncodingParameters & {scalabilityMode?: string}} SendEncoding
 */

/**
 * A layer as the publisher `offer` declares it.
 * @typedef {{rid: string, width: number, height: number, maxBitrate: number}} OfferedLayer
 */

/**
 * Camera layers: 1280×720 at 1.7 Mbit/s, 640×360 at 500 kbit/s, 320×180 at
 * 150 kbit/s (for a 720p capture).
 * @type {readonly SimulcastLayer[]}
 */
export const DEFAULT_CAMERA_LAYERS = Object.freeze([
  Object.freeze({ rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 }),
  Object.freeze({ rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 }),
  Object.freeze({ rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_700_000 }),
]);

/** Temporal layers (VP8, and H.264 where the browser supports it). */
export const DEFAULT_SCALABILITY_MODE = 'L1T3';

/**
 * How many of the layers a capture gets, from its short side: the layers
 * are made for 720p, and a layer below 90 or so lines is of no use.
 * @param {number} size the capture's short side in pixels, 0 if unknown
 * @param {number} available
 */
function layerCount(size, available) {
  let n = available;
  if (size > 0 && size < 480) n = Math.min(n, 2);
  if (size > 0 && size < 240) n = Math.min(n, 1);
  return Math.max(1, n);
}

/**
 * The short side of a track's capture, 0 if the browser does not say.
 * @param {MediaStreamTrack} track
 */
function captureSize(track) {
  const s = track.getSettings ? track.getSettings() : {};
  const w = s.width || 0;
  const h = s.height || 0;
  return w && h ? Math.min(w, h) : h || w;
}

/**
 * The encodings to send a local track with, or null for the browser's
 * default (audio).
 * @param {MediaStreamTrack} track
 * @param {TrackSource} source
 * @param {PublishOptions} opts
 * @returns {SendEncoding[]|null}
 */
export function sendEncodingsFor(track, source, opts) {
  if (track.kind !== 'video') return null;
  const mode = opts.scalabilityMode === undefined ? DEFAULT_SCALABILITY_MODE : opts.scalabilityMode;
  const withMode = (/** @type {SendEncoding} */ e) => (mode ? { ...e, scalabilityMode: mode } : e);
  const simulcast = opts.simulcast !== undefined ? opts.simulcast : source === 'camera';
  const layers = opts.layers && opts.layers.length > 0 ? opts.layers : DEFAULT_CAMERA_LAYERS;
  if (!simulcast) {
    /** @type {SendEncoding} */
    const one = {};
    const cap = opts.maxBitrate || (source === 'camera' ? layers[layers.length - 1].maxBitrate : 0);
    if (cap) one.maxBitrate = cap;
    return [withMode(one)];
  }
  const n = layerCount(captureSize(track), layers.length);
  const used = layers.slice(0, n);
  // The highest layer sent is the capture itself.
  const top = used[n - 1].scaleResolutionDownBy || 1;
  if (n === 1) return [withMode({ maxBitrate: used[0].maxBitrate })];
  return used.map((l) => {
    /** @type {SendEncoding} */
    const e = {
      rid: l.rid,
      scaleResolutionDownBy: Math.max(1, (l.scaleResolutionDownBy || 1) / top),
      maxBitrate: l.maxBitrate,
    };
    if (l.maxFramerate) e.maxFramerate = l.maxFramerate;
    return withMode(e);
  });
}

/**
 * The same encodings without scalabilityMode, for a browser that refuses it.
 * @param {SendEncoding[]} encodings
 * @returns {SendEncoding[]}
 */
export function withoutScalabilityMode(encodings) {
  return encodings.map(({ scalabilityMode: _, ...e }) => e);
}

/**
 * The `layers` of a track's entry in the publisher offer: its simulcast
 * encodings with the size each sends (capture size / scale), lowest
 * first. Empty for a track sent as one encoding.
 * @param {MediaStreamTrack} track
 * @param {SendEncoding[]|null} encodings
 * @returns {OfferedLayer[]}
 */
export function offeredLayers(track, encodings) {
  if (!encodings || encodings.length < 2 || !encodings.every((e) => e.rid)) return [];
  const s = track.getSettings ? track.getSettings() : {};
  const w = s.width || 0;
  const h = s.height || 0;
  return encodings
    .map((e) => {
      const scale = e.scaleResolutionDownBy || 1;
      return { rid: /** @type {string} */ (e.rid), width: Math.round(w / scale), height: Math.round(h / scale), maxBitrate: e.maxBitrate || 0 };
    })
    .sort((a, b) => a.width * a.height - b.width * b.height || a.maxBitrate - b.maxBitrate);
}
