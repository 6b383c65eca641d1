import { nanoid } from 'nanoid'
import type { Clock } from '../clock'
import { ConflictError, NotFoundError, ReconnectError, isInvalidTransitionError } from '../errors'
import { flatString, type ReconnectIdIssuer } from '../ids'
import { hasPresence } from '../machine/connections'
import { expireConversation, type StepEvent } from '../machine/step'
import { couldOfferResumable, decidePromptAnswer, decideReturn } from '../policy'
import { isStorableKey } from '../store/record'
import type { ConversationRecord, ReconnectSettings, ReturnDecision, ReturnRequest, ServiceEvent } from '../types'
import { MAX_ID_LENGTH, checkId, checkOptionalId, describeValue } from './check-id'
import type { SettingsLookup } from './settings-lookup'
import type { EventSink } from './event-sink'
import type { StoreGateway } from './store-gateway'
import { checkConnectionId } from './connections'
import { StaleDecision, type WritePath } from './write-path'

/** A resume decision as the service returns it: with a fresh link when single-use links are on. */
export type ServiceReturnDecision = ReturnDecision & { reconnectUrl?: string }

/** Decisions voided by a concurrent change are made again, at most this many times per call. */
const RESUME_ATTEMPTS = 4

/** What the returns room needs from the service. */
export interface ReturnsDeps {
  gateway: StoreGateway
  settings: SettingsLookup
  clock: Clock
  ids: ReconnectIdIssuer
  mutate: WritePath['mutate']
  /** The record's reconnect link, or `undefined` when reconnect is off. */
  linkFor(record: ConversationRecord): Promise<string | undefined>
  /** Whether a resume through a link renews the link. */
  singleUse: boolean
  /** Where the `return` event of every call goes. */
  events: EventSink
}

/** A returning customer's two calls. */
export interface Returns {
  returnCustomer(request: ReturnRequest): Promise<ServiceReturnDecision>
  answerPrompt(
    conversationId: string,
    answer: 'continue' | 'new',
    customerId: string,
    options?: { connectionId?: string },
  ): Promise<ServiceReturnDecision>
}

type ResumableOffer = { decision: ReturnDecision; resumable: ConversationRecord | undefined }

/** Creates `returnCustomer` and `answerPrompt`: decide with the pure policy, then apply a resume. */
export function createReturns(deps: ReturnsDeps): Returns {
  const { clock, ids, mutate, linkFor, singleUse } = deps
  const { load, getByReconnectId, findResumable } = deps.gateway
  const { fixed, settingsFor } = deps.settings
  const { emit, listening } = deps.events

  async function renewLink(record: ConversationRecord): Promise<ConversationRecord> {
    return { ...record, reconnectId: flatString(await ids.issue()) }
  }

  /**
   * Applies a resume decision. Returns the decision as it finally stands: if the conversation
   * changed between the decision and the write (expired, ended), `undefined` asks for a new decision.
   */
  async function applyResume(
    decision: Extract<ReturnDecision, { type: 'resume' }>,
    presentedId: string | null,
    loaded: ConversationRecord | undefined,
    connectionId: string | null,
  ): Promise<ServiceReturnDecision | undefined> {
    const renew = singleUse && decision.via === 'link'
    let record: ConversationRecord
    const resume = (at: number): StepEvent | StepEvent[] =>
      connectionId === null
        ? { type: 'customer.returned', via: decision.via, at }
        : // The connection is attached in the same write as the resume.
          [
            { type: 'customer.returned', via: decision.via, at },
            { type: 'connection.attached', connectionId, leaseMs: null, at },
          ]
    try {
      record = await mutate(decision.conversationId, resume, {
        loaded,
        // Single-use: every resume through the link spends it, also one into a chat that is still
        // live in another tab (a no-op for the lifecycle, but the link must not stay valid).
        ...(renew ? { rewrite: renewLink, rewriteAlways: true } : {}),
        // A link resumes only while it is still the conversation's link: a single-use link that
        // another return has just renewed must not resume (or hand out the renewal) a second time.
        ...(decision.via === 'link' && presentedId !== null ? { accept: (r: ConversationRecord) => r.reconnectId === presentedId } : {}),
      })
    } catch (error) {
      if (isInvalidTransitionError(error) || error instanceof NotFoundError || error instanceof StaleDecision) return undefined
      throw error
    }
    if (record.state !== 'active' && record.state !== 'queued') return undefined
    const resumed: ServiceReturnDecision = { ...decision, agentId: record.agentId }
    if (renew) {
      const url = await linkFor(record)
      if (url !== undefined) resumed.reconnectUrl = url
    }
    return resumed
  }

  async function decideAndResume(request: ReturnRequest, seenRecords: ConversationRecord[]): Promise<ServiceReturnDecision> {
    if (typeof request !== 'object' || request === null) {
      throw new ReconnectError('invalid-argument', 'returnCustomer: request must be an object')
    }
    const widgetId = checkOptionalId(request.widgetId, 'returnCustomer: request.widgetId') ?? 'default'
    const connectionId =
      request.connectionId === undefined ? null : checkConnectionId(request.connectionId, 'returnCustomer: request.connectionId')
    // '' means "not signed in", as in decideReturn: a widget may send an empty id for a guest.
    const customerId = request.customerId === '' ? null : checkOptionalId(request.customerId, 'returnCustomer: request.customerId')
    const settings = fixed ?? (await settingsFor(widgetId))
    const reconnectId = typeof request.reconnectId === 'string' && request.reconnectId !== '' ? request.reconnectId : null
    let verified = reconnectId === null ? false : verifyId(reconnectId)
    if (typeof verified !== 'boolean') verified = await verified
    for (let attempt = 0; attempt < RESUME_ATTEMPTS; attempt += 1) {
      const now = clock.now()
      const linked = reconnectId !== null && verified ? await getByReconnectId(reconnectId) : undefined
      const seen = linked === undefined ? undefined : await presenceView(linked, now)
      if (seen !== undefined) seenRecords.push(seen)
      const decide = (resumable: ConversationRecord | null): ReturnDecision =>
        decideReturn({
          // Field by field, not a spread of the caller's object: one shape for every request.
          request: { reconnectId: request.reconnectId, customerId: request.customerId, widgetId, via: request.via },
          settings,
          now,
          linked: seen ?? null,
          resumable,
          isValidId: () => verified,
        })
      // The customer's own resumable conversation is looked up only when it could change the outcome.
      const offer = withResumableOffer(decide(null), settings, widgetId, customerId, now, decide)
      const { decision, resumable } = offer instanceof Promise ? await offer : offer
      if (resumable !== undefined) seenRecords.push(resumable)
      if (decision.type !== 'resume') return decision
      const loaded = [linked, resumable].find((record) => record?.id === decision.conversationId)
      const applied = await applyResume(decision, reconnectId, loaded, connectionId)
      if (applied !== undefined) return applied
    }
    throw new ConflictError(reconnectId ?? customerId ?? widgetId, null)
  }

  /**
   * A decision made without the customer's resumable conversation, made again with it when it could
   * change the outcome (the signed-in lookup, and a lost link's fall-through). Returns the record it looked up.
   */
  function withResumableOffer(
    decision: ReturnDecision,
    settings: ReconnectSettings,
    widgetId: string,
    customerId: string | null,
    now: number,
    redecide: (resumable: ConversationRecord) => ReturnDecision,
  ): ResumableOffer | Promise<ResumableOffer> {
    // Synchronous when there is nothing to look up: the common return through a link skips an await.
    if (customerId === null || !settings.enabled || !settings.authenticated || !couldOfferResumable(decision)) {
      return { decision, resumable: undefined }
    }
    return findResumable(widgetId, customerId, now).then((resumable) => ({
      decision: resumable === undefined ? decision : redecide(resumable),
      resumable,
    }))
  }

  /**
   * The record as a decision must see it: the policy knows the lifecycle's deadlines but not those of
   * the connections, so a passed lease or detach grace is applied first (nothing written).
   */
  async function presenceView(record: ConversationRecord, now: number): Promise<ConversationRecord> {
    if (!hasPresence(record)) return record
    const settings = fixed ?? (await settingsFor(record.widgetId))
    return expireConversation(record, settings, now).at(-1)?.record ?? record
  }

  /** Whether the issuer vouches for `reconnectId`; synchronous when the issuer answers synchronously. */
  function verifyId(reconnectId: string): boolean | Promise<boolean> {
    // What no store can hold is no reconnect id, whatever a host's issuer says: `malformed`, no read.
    if (reconnectId.length > MAX_ID_LENGTH || !isStorableKey(reconnectId)) return false
    let answer: boolean | Promise<boolean>
    try {
      answer = ids.verify(reconnectId)
    } catch {
      return false
    }
    if (typeof answer === 'boolean') return answer
    return Promise.resolve(answer).then(
      (valid) => valid === true,
      () => false,
    )
  }

  async function decidePrompt(
    conversationId: string,
    answer: 'continue' | 'new',
    customerId: string,
    options: { connectionId?: string },
    seenRecords: ConversationRecord[],
  ): Promise<ServiceReturnDecision> {
    checkId(conversationId, 'answerPrompt: conversationId')
    if (typeof options !== 'object' || options === null) {
      throw new ReconnectError('invalid-argument', 'answerPrompt: options must be an object')
    }
    const connectionId =
      options.connectionId === undefined ? null : checkConnectionId(options.connectionId, 'answerPrompt: options.connectionId')
    checkId(customerId, 'answerPrompt: customerId')
    if (answer !== 'continue' && answer !== 'new') {
      throw new ReconnectError('invalid-argument', `answerPrompt: answer must be 'continue' or 'new', got ${describeValue(answer)}`)
    }
    for (let attempt = 0; attempt < RESUME_ATTEMPTS; attempt += 1) {
      const record = await load(conversationId)
      const settings = fixed ?? (await settingsFor(record.widgetId))
      const now = clock.now()
      const seen = await presenceView(record, now)
      seenRecords.push(seen)
      const decide = (resumable: ConversationRecord | null) =>
        decidePromptAnswer({ answer, record: seen, customerId, settings, now, resumable })
      const first = decide(null)
      if (answer === 'new') {
        if (first.type === 'new-chat' && first.reason === 'identity-mismatch') return first
        if (record.state === 'reconnectable') {
          try {
            await mutate(conversationId, (at) => ({ type: 'customer.ended', at, releaseCapacity: true }), {
              loaded: record,
              // Only the chat that was waiting: if it resumed meanwhile (another tab), leave it alone.
              accept: (current) => current.state === 'reconnectable',
            })
          } catch (error) {
            if (!isInvalidTransitionError(error) && !(error instanceof StaleDecision)) throw error
          }
        }
        return first
      }
      // Too late for this one: like a lost link, offer the customer's other
      // resumable conversation on the widget, when there is one and no redirect URL takes precedence.
      const offer = withResumableOffer(first, settings, record.widgetId, customerId, now, decide)
      const { decision, resumable } = offer instanceof Promise ? await offer : offer
      if (resumable !== undefined) seenRecords.push(resumable)
      if (decision.type !== 'resume') return decision
      const applied = await applyResume(decision, null, decision.conversationId === record.id ? record : resumable, connectionId)
      if (applied !== undefined) return applied
    }
    throw new ConflictError(conversationId, null)
  }

  /**
   * The one `return` event of a call: which conversation (never on an identity mismatch, `null`
   * when the link matched none), through which path, what it decided, and how long the customer
   * was away when the conversation was waiting for them.
   */
  function told(
    decision: ServiceReturnDecision,
    via: 'link' | 'prompt' | 'session',
    asked: string | null,
    seenRecords: readonly ConversationRecord[],
  ): void {
    const at = clock.now()
    const reason = 'reason' in decision ? decision.reason : undefined
    const hidden = reason === 'identity-mismatch' || reason === 'not-found' || reason === 'malformed'
    const conversationId = hidden ? null : 'conversationId' in decision ? decision.conversationId : asked
    const event: Extract<ServiceEvent, { type: 'return' }> = {
      type: 'return',
      // A return is told in-process only (many write nothing to store it with): a random id.
      id: `return:${nanoid()}`,
      conversationId,
      at,
      emittedAt: at,
      via: decision.type === 'resume' ? decision.via : via,
      outcome: decision.type,
    }
    if (reason !== undefined) event.reason = reason
    let away: ConversationRecord | undefined
    for (const record of seenRecords) if (record.id === conversationId) away = record
    // Only a return that found the conversation still waiting says how long the customer was away.
    const waiting = decision.type === 'resume' || decision.type === 'prompt'
    const since = away === undefined || !waiting ? undefined : awaySince(away)
    if (since !== undefined) event.sinceDisconnectMs = Math.max(0, at - since)
    emit([event])
  }

  async function returnCustomer(request: ReturnRequest): Promise<ServiceReturnDecision> {
    const seenRecords: ConversationRecord[] = []
    const decision = await decideAndResume(request, seenRecords)
    if (listening) {
      const presented = typeof request.reconnectId === 'string' && request.reconnectId !== ''
      const via = presented ? (request.via === 'session' ? 'session' : 'link') : 'prompt'
      told(decision, via, seenRecords[0]?.id ?? null, seenRecords)
    }
    return decision
  }

  async function answerPrompt(
    conversationId: string,
    answer: 'continue' | 'new',
    customerId: string,
    options: { connectionId?: string } = {},
  ): Promise<ServiceReturnDecision> {
    const seenRecords: ConversationRecord[] = []
    const decision = await decidePrompt(conversationId, answer, customerId, options, seenRecords)
    if (listening) told(decision, 'prompt', conversationId, seenRecords)
    return decision
  }

  return { returnCustomer, answerPrompt }
}

/** When the customer left a conversation that waits for them: its last move into a waiting state. */
function awaySince(record: ConversationRecord): number | undefined {
  if (record.state !== 'reconnectable' && record.state !== 'disconnected') return undefined
  for (let i = record.history.length - 1; i >= 0; i -= 1) {
    const entry = record.history[i]!
    if (entry.to === record.state && entry.from !== record.state) return entry.at
  }
  return undefined
}
