import { ReconnectError } from '../errors'

/** The longest id (conversation, widget, customer, agent, reconnect) a service call accepts. */
export const MAX_ID_LENGTH = 256

/** `value` if it is a usable id, else an `invalid-argument` error naming `what`. */
export function checkId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID_LENGTH) {
    throw new ReconnectError(
      'invalid-argument',
      `${what} must be a non-empty string of at most ${MAX_ID_LENGTH} characters, got ${describeValue(value)}`,
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
