/** The `code` of an error answer of the HTTP handler (`{ error: { code, message } }`). */
export type ReconnectHttpErrorCode =
  | 'invalid-argument'
  | 'forbidden-origin'
  | 'not-found'
  | 'method-not-allowed'
  | 'invalid-transition'
  | 'conflict'
  | 'reconnect-disabled'
  | 'payload-too-large'
  | 'unsupported-media-type'
  | 'store-failure'
  | 'internal'

/** The body of every error answer. */
export interface ReconnectHttpErrorBody {
  error: { code: ReconnectHttpErrorCode; message: string }
}

/**
 * An answer the handler has decided to give instead of a success. Internal: it never leaves the
 * handler, and its message is always one the handler wrote (nothing from the service or the store).
 */
export class HttpFailure extends Error {
  override name = 'HttpFailure'

  constructor(
    readonly status: number,
    readonly code: ReconnectHttpErrorCode,
    message: string,
  ) {
    super(message)
  }
}
