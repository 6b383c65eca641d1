import { nanoid } from 'nanoid'

/** Length of a plain reconnect id: 21 nanoid characters, about 126 bits of randomness. */
export const RECONNECT_ID_LENGTH = 21

/** Longest reconnect id of any format this library issues (signed ids are longer than plain ones). */
export const MAX_RECONNECT_ID_LENGTH = 64

// Literals, not `new RegExp` built from the constants above: a module-scope call survives tree-shaking in
// every bundle that shares this chunk. test/ids.test.ts holds the lengths to the constants.
const PLAIN_ID = /^[A-Za-z0-9_-]{21}$/
const ANY_ID = /^[A-Za-z0-9._~-]{21,64}$/

/**
 * Anything that hands out reconnect ids and recognises its own.
 * `createReconnectService({ reconnectIds })` accepts any object of this shape.
 */
export interface ReconnectIdIssuer {
  /** A new, unguessable id. */
  issue(): Promise<string> | string
  /** True when `id` is one this issuer could have issued; never throws. */
  verify(id: string): Promise<boolean> | boolean
}

/**
 * A new plain reconnect id: 21 URL-safe characters from a cryptographic random source.
 *
 * @example
 * createReconnectId() // 'V1StGXR8_Z5jdHi6B-myT'
 */
export function createReconnectId(): string {
  return flatString(nanoid(RECONNECT_ID_LENGTH))
}

/** A new conversation id: 21 nanoid characters, flat (see {@link flatString}). @internal */
export function createConversationId(): string {
  return flatString(nanoid())
}

/**
 * `s`, stored by V8 as one flat string from now on. nanoid (and any `a + b` or template literal of 13
 * characters or more) builds a chain of string pieces: about 320 B for a 21-character id instead of
 * 40 B, kept for as long as the id is — a stored conversation holds two ids for its whole life.
 * Reading one character flattens the chain in place and the next garbage collection drops its pieces.
 * @internal
 */
export function flatString<T>(s: T): T {
  // Anything but a string (a host issuer's bug) passes through untouched, to be refused where it is checked.
  if (typeof s === 'string') s.charCodeAt(0)
  return s
}

/** True when `s` has the format of a plain reconnect id (21 characters of `A–Z a–z 0–9 _ -`). */
export function isReconnectId(s: unknown): s is string {
  return typeof s === 'string' && PLAIN_ID.test(s)
}

/**
 * True when `s` could be a reconnect id of any format this library issues, plain or signed:
 * 21–64 characters of the URL-safe alphabet `A–Z a–z 0–9 _ . ~ -`. A format check only;
 * use the issuer's `verify` to know whether an id is genuine.
 */
export function looksLikeReconnectId(s: unknown): s is string {
  return typeof s === 'string' && ANY_ID.test(s)
}

/** The default issuer: plain nanoid ids, verified by format alone (the store lookup decides the rest). */
export const plainReconnectIds: ReconnectIdIssuer = {
  issue: createReconnectId,
  verify: isReconnectId,
}
