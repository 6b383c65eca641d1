import { ReconnectError } from '../errors'
import { isStorableKey } from '../store/record'

/** The longest id (conversation, widget, customer, agent, reconnect) a service call accepts. */
export const MAX_ID_LENGTH = 256

/**
 * `value` if it is a usable id, else an `invalid-argument` error naming `what`. An id with NUL or a
 * lone UTF-16 surrogate is refused here, before any I/O: PostgreSQL cannot hold NUL and Redis would
 * store a lone surrogate as U+FFFD, so a store could only fail on it, as if it were down.
 */
export function checkId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID_LENGTH || !isStorableKey(value)) {
    throw new ReconnectError(
      'invalid-argument',
      `${what} must be a non-empty string of at most ${MAX_ID_LENGTH} characters (no NUL, no lone surrogate), got ${describeValue(value)}`,
    )
  }
  return value
}

/** Like {@link checkId}, with `undefined` and `null` read as "none". */
export function checkOptionalId(value: unknown, what: string): string | null {
  return value === undefined || value === null ? null : checkId(value, what)
}

/** A short description of a bad argument for an error message, never echoing a long string. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value)
  if (value === null) return 'null'
  return typeof value
}
