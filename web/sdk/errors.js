// @ts-check
/**
 * The SDK's one error type, and how anything thrown is turned into it.
 * @module quartet/errors
 */

/** An error from the server (`error` message) or from the SDK itself. */
export class QuartetError extends Error {
  /**
   * @param {string} code protocol error code, or an SDK code such as
   *   `closed`, `timeout`, `negotiation_failed`, `reconnect_failed`
   * @param {string} message
   * @param {string} [requestType] type of the message that caused it
   */
  constructor(code, message, requestType) {
    super(message || code);
    this.name = 'QuartetError';
    this.code = code;
    this.requestType = requestType;
  }
}

/**
 * The message of anything thrown. Browsers reject with DOMExceptions, but a
 * rejection may carry any value, so nothing is assumed about its shape.
 * @param {unknown} err
 * @returns {string}
 */
export function errorText(err) {
  const message = err && typeof err === 'object' && 'message' in err ? err.message : undefined;
  return String(message || err);
}

/**
 * `err` itself if it is a QuartetError already (its code says more than
 * ours would), else a QuartetError with `code` and err's message.
 * @param {unknown} err
 * @param {string} code
 * @param {string} [requestType]
 * @returns {QuartetError}
 */
export function asQuartetError(err, code, requestType) {
  return err instanceof QuartetError ? err : new QuartetError(code, errorText(err), requestType);
}
