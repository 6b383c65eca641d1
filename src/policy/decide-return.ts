import { ReconnectError } from '../errors'
import { looksLikeReconnectId } from '../ids'
import type { ConversationRecord, EndedBy, LostReason, ReconnectSettings, ReturnDecision, ReturnRequest } from '../types'

/** Arguments of {@link decideReturn}; the caller loads both records before deciding. */
export interface DecideReturnInput {
  request: ReturnRequest
  /** Validated settings of the widget the customer came back through. */
  settings: ReconnectSettings
  /** Epoch ms at which the decision is made. */
  now: number
  /** The conversation `request.reconnectId` points to; `null`/`undefined` when none was found. */
  linked?: ConversationRecord | null
  /** The signed-in customer's latest conversation on this widget, if the caller found one. */
  resumable?: ConversationRecord | null
  /** Format check for reconnect ids (e.g. a signed-id verifier's sync pre-check); a built-in check by default. */
  isValidId?: (id: string) => boolean
}

/** Arguments of {@link decidePromptAnswer}. */
export interface DecidePromptAnswerInput {
  answer: 'continue' | 'new'
  /** The conversation the prompt offered, as loaded now; `null`/`undefined` when it is gone. */
  record: ConversationRecord | null | undefined
  /** The signed-in customer who answered. */
  customerId: string | null | undefined
  settings: ReconnectSettings
  now: number
  /**
   * The customer's latest other resumable conversation on the widget, if the caller looked it up:
   * `continue` on a conversation that can no longer resume falls back as a lost link does, so
   * without a redirect URL the customer is offered this one instead.
   */
  resumable?: ConversationRecord | null | undefined
}

type Via = 'link' | 'session' | 'prompt'
type NewChatReason = Extract<ReturnDecision, { type: 'new-chat' }>['reason']

interface Context {
  settings: ReconnectSettings
  now: number
  widgetId: string
  customerId: string | null
  resumable: ConversationRecord | null
}

const DEFAULT_WIDGET_ID = 'default'

/**
 * Built-in reconnect id format check: 21–64 URL-safe characters (`A-Z a-z 0-9 _ . ~ -`).
 * The same check as {@link looksLikeReconnectId}, whose home is `ids.ts`.
 */
export const isWellFormedReconnectId: (id: string) => boolean = looksLikeReconnectId

/**
 * Decides what a returning customer gets: resume, prompt, redirect or a new chat.
 * Pure: it reads no clock and does no I/O, so the caller loads `linked` and `resumable` first.
 *
 * @example
 * const decision = decideReturn({
 *   request: { reconnectId, customerId },
 *   settings,
 *   now: clock.now(),
 *   linked: await store.getByReconnectId(reconnectId),
 *   resumable: await store.findResumable('default', customerId, clock.now()),
 * })
 * if (decision.type === 'redirect') location.assign(decision.url)
 */
export function decideReturn(input: DecideReturnInput): ReturnDecision {
  const { ctx, reconnectId, via, isValidId, linked } = readReturnInput(input)

  if (reconnectId === null) return decideWithoutLink(ctx)
  if (typeof reconnectId !== 'string' || !isValidId(reconnectId)) return lostOutcome('malformed', ctx)
  // A link is scoped to its widget, and a record under another id means the caller loaded the wrong one:
  // both are answered exactly like a missing record so nothing leaks across widgets.
  if (!linked || linked.reconnectId !== reconnectId || linked.widgetId !== ctx.widgetId) {
    return lostOutcome('not-found', ctx)
  }
  // Before looking at the state, so a stranger learns nothing about someone else's conversation.
  if (linked.customerId !== null && linked.customerId !== ctx.customerId) return newChat('identity-mismatch')
  return decideForRecord(linked, via, ctx)
}

/**
 * Whether a decision made with `resumable: null` could come out differently with a resumable
 * record: only a new chat can turn into the signed-in customer's own conversation (rule 2, or rule 1
 * falling through to it), and never one refused as `disabled` or `identity-mismatch`. A caller that
 * decides first without the record skips the `findResumable` lookup whenever this is false.
 */
export function couldOfferResumable(decision: ReturnDecision): boolean {
  return decision.type === 'new-chat' && decision.reason !== 'disabled' && decision.reason !== 'identity-mismatch'
}

/**
 * Decides the outcome of a signed-in customer's answer to the "continue or start new?" prompt.
 * `continue` re-checks the window at `now`; `new` returns `new-chat` and the caller ends the old conversation.
 *
 * @example
 * const decision = decidePromptAnswer({ answer: 'continue', record, customerId, settings, now: clock.now() })
 */
export function decidePromptAnswer(input: DecidePromptAnswerInput): ReturnDecision {
  if (typeof input !== 'object' || input === null) {
    throw invalid('decidePromptAnswer expects an object { answer, record, customerId, settings, now }')
  }
  const { answer, record, settings } = input
  if (answer !== 'continue' && answer !== 'new') {
    throw invalid(`answer must be 'continue' or 'new' (got ${describe(answer)})`)
  }
  const now = readNow(input.now)
  readSettings(settings)
  const customerId = readCustomerId(input.customerId)
  if (record !== undefined && record !== null && typeof record !== 'object') {
    throw invalid(`record must be a conversation record, null or undefined (got ${describe(record)})`)
  }
  if (input.resumable !== undefined && input.resumable !== null && typeof input.resumable !== 'object') {
    throw invalid(`resumable must be a conversation record, null or undefined (got ${describe(input.resumable)})`)
  }

  const ctx: Context = {
    settings,
    now,
    widgetId: record?.widgetId ?? DEFAULT_WIDGET_ID,
    customerId,
    resumable: input.resumable ?? null,
  }
  if (!record) return answer === 'new' ? newChat('none') : lostOutcome('not-found', ctx)
  // The prompt is only ever offered to the signed-in owner; anyone else must not end or resume it.
  if (record.customerId === null || record.customerId !== customerId) return newChat('identity-mismatch')
  if (answer === 'new') return newChat('none')
  return decideForRecord(record, 'prompt', ctx)
}

/**
 * Why a conversation can no longer be resumed at `now`, or `null` when it still can.
 * A passed deadline counts even when no sweeper has applied it yet.
 *
 * @example
 * lostReason({ ...record, state: 'closed', endedBy: 'agent' }, now) // 'ended-by-agent'
 */
export function lostReason(record: ConversationRecord, now: number): LostReason | null {
  switch (record.state) {
    case 'active':
      return null
    case 'queued':
      // Past its queue deadline it closes with nobody having ended it: the same reason the sweep will record.
      return record.timers.queue !== undefined && !isBefore(now, record.timers.queue) ? 'closed' : null
    case 'reconnectable':
      return isBefore(now, record.timers.window) ? null : 'expired'
    case 'disconnected':
      return isBefore(now, record.timers.grace) ? null : 'expired'
    case 'wrap-up':
    case 'closed':
      return endedReason(record.endedBy)
  }
  // A state this library does not know (a corrupt record) must never resume.
  return 'closed'
}

/**
 * True when the conversation is `reconnectable` and its window is still open at `now` — the conversations
 * a signed-in customer is offered (rule 2), and what `ConversationStore.findResumable` looks for.
 */
export function isResumable(record: ConversationRecord, now: number): boolean {
  return record.state === 'reconnectable' && isBefore(now, record.timers.window)
}

function decideForRecord(record: ConversationRecord, via: Via, ctx: Context): ReturnDecision {
  const reason = lostReason(record, ctx.now)
  if (reason !== null) return lostOutcome(reason, ctx)

  switch (record.state) {
    case 'reconnectable':
    case 'active':
    case 'queued':
      // With reconnect off the widget hands out no links, so a link never resumes; its own session still does.
      if (via === 'link' && !ctx.settings.enabled) return newChat('disabled')
      return resume(record, via)
    case 'disconnected':
      return via === 'session' ? resume(record, 'session') : newChat('disabled')
    default:
      return lostOutcome('closed', ctx)
  }
}

function decideWithoutLink(ctx: Context): ReturnDecision {
  if (offersResumable(ctx)) return offerResumable(ctx) ?? newChat('none')
  return newChat(ctx.settings.enabled ? 'none' : 'disabled')
}

/** "Can no longer resume": redirect when allowed, else the signed-in customer's own chat, else a new chat. */
function lostOutcome(reason: LostReason, ctx: Context): ReturnDecision {
  const { enabled, redirectUrl } = ctx.settings
  if (enabled && redirectUrl) return { type: 'redirect', url: redirectUrl, reason }
  // Keep the lost reason when nothing else is offered, so the host can tell the customer why.
  return offerResumable(ctx) ?? newChat(reason)
}

function offersResumable(ctx: Context): boolean {
  return ctx.settings.enabled && ctx.settings.authenticated && ctx.customerId !== null
}

function offerResumable(ctx: Context): ReturnDecision | null {
  if (!offersResumable(ctx)) return null
  const candidate = ctx.resumable
  // The caller's lookup is not trusted blindly: another customer's or widget's chat must never be offered.
  if (!candidate || candidate.customerId !== ctx.customerId || candidate.widgetId !== ctx.widgetId) return null
  const expiresAt = candidate.timers.window
  if (!isResumable(candidate, ctx.now) || expiresAt === undefined) return null
  if (!ctx.settings.prompt) return resume(candidate, 'prompt')
  return { type: 'prompt', conversationId: candidate.id, expiresAt }
}

function endedReason(endedBy: EndedBy | null): LostReason {
  switch (endedBy) {
    case 'timeout':
      return 'expired'
    case 'agent':
      return 'ended-by-agent'
    case 'customer':
      return 'ended-by-customer'
    default:
      // Nobody ended it (e.g. never assigned before it closed).
      return 'closed'
  }
}

/** `now < deadline`; a missing or non-numeric deadline fails closed (treated as passed). */
function isBefore(now: number, deadline: number | undefined): boolean {
  return typeof deadline === 'number' && now < deadline
}

function resume(record: ConversationRecord, via: Via): ReturnDecision {
  return { type: 'resume', conversationId: record.id, agentId: record.agentId, via }
}

function newChat(reason: NewChatReason): ReturnDecision {
  return { type: 'new-chat', reason }
}

interface ReadReturnInput {
  ctx: Context
  /** `null` when absent; anything else is checked for format (a non-string is malformed). */
  reconnectId: unknown
  via: 'link' | 'session'
  isValidId: (id: string) => boolean
  linked: ConversationRecord | null
}

function readReturnInput(input: DecideReturnInput): ReadReturnInput {
  if (typeof input !== 'object' || input === null) {
    throw invalid('decideReturn expects an object { request, settings, now, linked?, resumable? }')
  }
  const { request, settings } = input
  if (typeof request !== 'object' || request === null) {
    throw invalid(`request must be an object (got ${describe(request)})`)
  }
  const now = readNow(input.now)
  readSettings(settings)

  const via = request.via ?? 'link'
  if (via !== 'link' && via !== 'session') {
    throw invalid(`request.via must be 'link' or 'session' (got ${describe(via)})`)
  }
  const widgetId = request.widgetId ?? DEFAULT_WIDGET_ID
  if (typeof widgetId !== 'string') {
    throw invalid(`request.widgetId must be a string (got ${describe(widgetId)})`)
  }
  const isValidId = input.isValidId ?? looksLikeReconnectId
  if (typeof isValidId !== 'function') {
    throw invalid(`isValidId must be a function (got ${describe(isValidId)})`)
  }

  return {
    ctx: {
      settings,
      now,
      widgetId,
      customerId: readCustomerId(request.customerId, 'request.customerId'),
      resumable: readRecord(input.resumable, 'resumable'),
    },
    reconnectId: readReconnectId(request.reconnectId),
    via,
    isValidId,
    linked: readRecord(input.linked, 'linked'),
  }
}

/** `''`, `null` and `undefined` mean "no link"; any other value is present (and malformed unless well-formed). */
function readReconnectId(value: unknown): unknown {
  return value === undefined || value === null || value === '' ? null : value
}

function readNow(now: unknown): number {
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw invalid(`now must be a finite number of epoch milliseconds (got ${describe(now)})`)
  }
  return now
}

function readSettings(settings: unknown): void {
  if (typeof settings !== 'object' || settings === null) {
    throw invalid(`settings must be the object returned by defineSettings (got ${describe(settings)})`)
  }
}

/** An empty customer id means nobody is signed in. */
function readCustomerId(value: unknown, field = 'customerId'): string | null {
  if (value === undefined || value === null || value === '') return null
  if (typeof value !== 'string') throw invalid(`${field} must be a string, null or undefined (got ${describe(value)})`)
  return value
}

function readRecord(value: unknown, field: string): ConversationRecord | null {
  if (value === undefined || value === null) return null
  if (typeof value !== 'object') {
    throw invalid(`${field} must be a conversation record, null or undefined (got ${describe(value)})`)
  }
  return value as ConversationRecord
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (value === null || value === undefined) return String(value)
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

function invalid(message: string): ReconnectError {
  return new ReconnectError('invalid-argument', message)
}
