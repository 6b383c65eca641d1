/** Stable machine-readable codes carried by every error this library throws. */
export type ReconnectErrorCode =
  | 'invalid-settings'
  | 'not-found'
  | 'invalid-transition'
  | 'conflict'
  | 'store-failure'
  | 'reconnect-disabled'
  | 'invalid-argument'
  | 'transport-failure'
  | 'bad-record'
  | 'not-supported'

/**
 * Stable, machine-readable kind of a {@link SettingsIssue}, so a settings UI can react without parsing messages.
 *
 * - `'unreadable'`: the input (or a part of it) threw when read: a throwing getter or Proxy trap.
 * - `'invalid-type'`: the value has the wrong type (a string where true/false is expected, say).
 * - `'unknown-key'`: a key that is not a known setting or option.
 * - `'required'`: a value that must be given (`timeLimit` and `portalUrl` when reconnect is enabled).
 * - `'invalid-duration'`: not a duration in any accepted form (`'30 minutes'`, `{ mins: 3 }`, `NaN`).
 * - `'calendar-unit'`: a duration in years or months, whose length depends on the calendar.
 * - `'too-small'` / `'too-big'`: outside a limit; `minimum` / `maximum` and `unit` give the limit.
 * - `'invalid-url'`: not an absolute http(s) URL, or one that two URL parsers could read differently.
 * - `'invalid-origin'`: an allowlist entry that is not a bare origin (a path, query, fragment or wildcard).
 * - `'not-allowed'`: a value outside the set it must come from (`redirectUrl` off the allowlist).
 * - `'invalid-format'`: a string that breaks its pattern (`linkParam`, a key id).
 * - `'unsupported'`: the platform lacks something the option needs (Web Crypto).
 * - `'invalid-value'`: any other rule; the message says which.
 */
export type SettingsIssueCode =
  | 'unreadable'
  | 'invalid-type'
  | 'unknown-key'
  | 'required'
  | 'invalid-duration'
  | 'calendar-unit'
  | 'too-small'
  | 'too-big'
  | 'invalid-url'
  | 'invalid-origin'
  | 'not-allowed'
  | 'invalid-format'
  | 'unsupported'
  | 'invalid-value'

/** What the `minimum` and `maximum` of a {@link SettingsIssue} count. */
export type SettingsLimitUnit = 'ms' | 'characters' | 'bytes' | 'items'

/** One problem found in a settings input: where it is, what kind of rule it breaks, and the limit if one applies. */
export interface SettingsIssue {
  /** The field, such as `'timeLimit'` or `'redirectAllowlist[2]'`; `''` for the input as a whole. */
  path: string
  /** Stable kind of problem. */
  code: SettingsIssueCode
  /** A sentence for people that names the rule and the value received. */
  message: string
  /** With `'too-small'`: the smallest allowed value, counted in `unit`. */
  minimum?: number
  /** With `'too-big'`: the largest allowed value, counted in `unit`. */
  maximum?: number
  /** What `minimum` / `maximum` count. */
  unit?: SettingsLimitUnit
}

/** A {@link SettingsIssue} as given to the {@link SettingsError} constructor: `code` defaults to `'invalid-value'`. */
export type SettingsIssueInput = Omit<SettingsIssue, 'code'> & { code?: SettingsIssueCode }

/**
 * Base class of every error thrown by chat-reconnect.
 *
 * @example
 * try { await service.disconnect(id) } catch (e) { if (isReconnectError(e)) console.log(e.code) }
 */
export class ReconnectError extends Error {
  override name = 'ReconnectError'
  readonly code: ReconnectErrorCode

  constructor(code: ReconnectErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/**
 * A settings input broke one or more rules; `issues` lists every one of them. When the input came
 * from the service's settings function, `widgetId` names the widget it was asked for.
 */
export class SettingsError extends ReconnectError {
  override name = 'SettingsError'
  declare readonly code: 'invalid-settings'
  readonly issues: readonly SettingsIssue[]
  /** The widget whose settings these were, when a settings function gave them; else `undefined`. */
  readonly widgetId: string | undefined

  constructor(issues: readonly SettingsIssueInput[], options?: { cause?: unknown; widgetId?: string }) {
    const list = issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')
    const widget = options?.widgetId === undefined ? '' : ` for widget ${JSON.stringify(options.widgetId)}`
    super('invalid-settings', `Invalid settings${widget}: ${list}`, options?.cause === undefined ? undefined : { cause: options.cause })
    this.issues = Object.freeze(issues.map((i) => Object.freeze({ ...i, code: i.code ?? 'invalid-value' })))
    this.widgetId = options?.widgetId
  }
}

/** No conversation exists with the given id. */
export class NotFoundError extends ReconnectError {
  override name = 'NotFoundError'
  declare readonly code: 'not-found'
  readonly conversationId: string

  constructor(conversationId: string, options?: { cause?: unknown }) {
    super('not-found', `Conversation "${conversationId}" was not found`, options)
    this.conversationId = conversationId
  }
}

/** The event does not apply to the conversation's current state. */
export class InvalidTransitionError extends ReconnectError {
  override name = 'InvalidTransitionError'
  declare readonly code: 'invalid-transition'
  readonly state: string
  readonly event: string
  readonly conversationId: string | undefined

  constructor(state: string, event: string, conversationId?: string, options?: { cause?: unknown }) {
    const where = conversationId === undefined ? '' : ` (conversation "${conversationId}")`
    super('invalid-transition', `Event "${event}" does not apply in state "${state}"${where}`, options)
    this.state = state
    this.event = event
    this.conversationId = conversationId
  }
}

/** A compare-and-set write found another version than expected: someone else wrote first. */
export class ConflictError extends ReconnectError {
  override name = 'ConflictError'
  declare readonly code: 'conflict'
  readonly conversationId: string
  readonly expectedVersion: number | null

  constructor(conversationId: string, expectedVersion: number | null, options?: { cause?: unknown }) {
    const expected = expectedVersion === null ? 'no record' : `version ${expectedVersion}`
    super('conflict', `Conversation "${conversationId}" changed concurrently (expected ${expected})`, options)
    this.conversationId = conversationId
    this.expectedVersion = expectedVersion
  }
}

/** A storage adapter failed; the original failure is in `cause`. */
export class StoreError extends ReconnectError {
  override name = 'StoreError'
  declare readonly code: 'store-failure'
  readonly operation: string
  readonly conversationId: string | undefined

  constructor(operation: string, options?: { cause?: unknown; conversationId?: string }) {
    const where = options?.conversationId === undefined ? '' : ` for conversation "${options.conversationId}"`
    const why = describeCause(options?.cause)
    super('store-failure', `Store operation "${operation}" failed${where}${why}`, { cause: options?.cause })
    this.operation = operation
    this.conversationId = options?.conversationId
  }
}

/**
 * A stored conversation could not be read or applied (unparseable, an invalid state, or its
 * widget's settings failed or timed out); the sweep skipped it and went on with the others.
 */
export class BadRecordError extends ReconnectError {
  override name = 'BadRecordError'
  declare readonly code: 'bad-record'
  readonly conversationId: string

  constructor(conversationId: string, reason: string, options?: { cause?: unknown }) {
    super('bad-record', `Conversation "${conversationId}" was skipped by the sweep: ${reason}${describeCause(options?.cause)}`, options)
    this.conversationId = conversationId
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) return `: ${cause.message}`
  if (typeof cause === 'string') return `: ${cause}`
  return ''
}

function hasName(value: unknown, names: readonly string[]): value is ReconnectError {
  if (typeof value !== 'object' || value === null) return false
  const candidate = value as { name?: unknown; code?: unknown }
  return typeof candidate.code === 'string' && typeof candidate.name === 'string' && names.includes(candidate.name)
}

const ALL_NAMES = [
  'ReconnectError',
  'SettingsError',
  'NotFoundError',
  'InvalidTransitionError',
  'ConflictError',
  'StoreError',
  'BadRecordError',
] as const

/** True for any chat-reconnect error, also one thrown in another realm (iframe, worker, vm). */
export function isReconnectError(value: unknown): value is ReconnectError {
  return value instanceof ReconnectError || hasName(value, ALL_NAMES)
}

/** True for a {@link SettingsError}, also across realms. */
export function isSettingsError(value: unknown): value is SettingsError {
  return value instanceof SettingsError || hasName(value, ['SettingsError'])
}

/** True for a {@link NotFoundError}, also across realms. */
export function isNotFoundError(value: unknown): value is NotFoundError {
  return value instanceof NotFoundError || hasName(value, ['NotFoundError'])
}

/** True for an {@link InvalidTransitionError}, also across realms. */
export function isInvalidTransitionError(value: unknown): value is InvalidTransitionError {
  return value instanceof InvalidTransitionError || hasName(value, ['InvalidTransitionError'])
}

/** True for a {@link ConflictError}, also across realms. */
export function isConflictError(value: unknown): value is ConflictError {
  return value instanceof ConflictError || hasName(value, ['ConflictError'])
}

/** True for a {@link StoreError}, also across realms. */
export function isStoreError(value: unknown): value is StoreError {
  return value instanceof StoreError || hasName(value, ['StoreError'])
}

/** True for a {@link BadRecordError}, also across realms. */
export function isBadRecordError(value: unknown): value is BadRecordError {
  return value instanceof BadRecordError || hasName(value, ['BadRecordError'])
}
