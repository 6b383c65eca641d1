import type { Clock } from '../clock'
import { ConflictError, NotFoundError, ReconnectError, isInvalidTransitionError } from '../errors'
import type { ReconnectIdIssuer } from '../ids'
import { couldOfferResumable, decidePromptAnswer, decideReturn } from '../policy'
import type { ConversationRecord, ReconnectSettings, ReturnDecision, ReturnRequest, ServiceEvent, State } from '../types'
import { MAX_ID_LENGTH, checkId, checkOptionalId, describeValue } from './check-id'
import type { EventSink } from './event-sink'
import type { SettingsLookup } from './settings-lookup'
import type { StoreGateway } from './store-gateway'
import { StaleDecision, type WritePath } from './write-path'

/** A resume decision as the service returns it: with a fresh link when single-use links are on. */
export type ServiceReturnDecision = ReturnDecision & { reconnectUrl?: string }

/** Decisions voided by a concurrent change are made again, at most this many times per call. */
const RESUME_ATTEMPTS = 4

type ReturnEvent = Extract<ServiceEvent, { type: 'return' }>

/** A decision as it finally stands, with what its `return` event says besides the decision itself. */
interface Decided {
  decision: ServiceReturnDecision
  /** The conversation the presented link or prompt named, when there was one (see {@link returnEventOf}). */
  named: ConversationRecord | undefined
  /** When the decision took effect: the resume's write, or the clock reading it was made at. */
  at: number
  /** For a resume out of an away state: how long the customer was away. */
  sinceDisconnectMs?: number | undefined
}

const isAway = (state: State): boolean => state === 'reconnectable' || state === 'disconnected'

/**
 * When `record` last went away (into `reconnectable` or `disconnected` from elsewhere), from its
 * bounded history; `undefined` when that entry has been dropped.
 */
function awaySince(record: ConversationRecord): number | undefined {
  for (let i = record.history.length - 1; i >= 0; i -= 1) {
    const entry = record.history[i]!
    if (isAway(entry.to) && !isAway(entry.from)) return entry.at
  }
  return undefined
}

/**
 * The `return` event of one decision (SPEC §11). It names a conversation only when the customer
 * showed they may know it: a resume or a prompt names its own; a redirect or new chat names the
 * conversation the link or prompt matched, and never one refused for an identity mismatch.
 */
function returnEventOf(decided: Decided, via: ReturnEvent['via'], emittedAt: number): ReturnEvent {
  const { decision, named, at } = decided
  const event: ReturnEvent = { type: 'return', conversationId: null, at, emittedAt, via, outcome: decision.type }
  if (decision.type === 'resume') {
    event.conversationId = decision.conversationId
    event.via = decision.via
    if (decided.sinceDisconnectMs !== undefined) event.sinceDisconnectMs = decided.sinceDisconnectMs
  } else if (decision.type === 'prompt') {
    event.conversationId = decision.conversationId
    if (decided.sinceDisconnectMs !== undefined) event.sinceDisconnectMs = decided.sinceDisconnectMs
  } else {
    event.reason = decision.reason
    const anonymous = decision.reason === 'identity-mismatch' || decision.reason === 'not-found' || decision.reason === 'malformed'
    if (!anonymous && named !== undefined) event.conversationId = named.id
  }
  return event
}

/** What the returns room needs from the service. */
export interface ReturnsDeps {
  gateway: StoreGateway
  settings: SettingsLookup
  clock: Clock
  ids: ReconnectIdIssuer
  mutate: WritePath['mutate']
  /** Where each call's `return` event goes. */
  events: EventSink
  /** The record's reconnect link, or `undefined` when reconnect is off. */
  linkFor(record: ConversationRecord): Promise<string | undefined>
  /** Whether a resume through a link renews the link. */
  singleUse: boolean
}

/** A returning customer's two calls. */
export interface Returns {
  returnCustomer(request: ReturnRequest): Promise<ServiceReturnDecision>
  answerPrompt(conversationId: string, answer: 'continue' | 'new', customerId: string): Promise<ServiceReturnDecision>
}

type ResumableOffer = { decision: ReturnDecision; resumable: ConversationRecord | undefined }

/** Creates `returnCustomer` and `answerPrompt`: decide with the pure policy, then apply a resume. */
export function createReturns(deps: ReturnsDeps): Returns {
  const { clock, ids, mutate, linkFor, singleUse } = deps
  const { emit, listening } = deps.events
  const { load, getByReconnectId, findResumable } = deps.gateway
  const { fixed, settingsFor } = deps.settings

  async function renewLink(record: ConversationRecord): Promise<ConversationRecord> {
    return { ...record, reconnectId: await ids.issue() }
  }

  /**
   * Applies a resume decision. Returns the decision as it finally stands: if the conversation
   * changed between the decision and the write (expired, ended), `undefined` asks for a new decision.
   */
  async function applyResume(
    decision: Extract<ReturnDecision, { type: 'resume' }>,
    presentedId: string | null,
    loaded: ConversationRecord | undefined,
    now: number,
  ): Promise<Decided | undefined> {
    const renew = singleUse && decision.via === 'link'
    const linkOnly = decision.via === 'link' && presentedId !== null
    let record: ConversationRecord
    // The record as the write path last loaded it: whether the customer was away, and since when.
    let seen: ConversationRecord | undefined
    try {
      record = await mutate(decision.conversationId, (at) => ({ type: 'customer.returned', via: decision.via, at }), {
        loaded,
        // Single-use: every resume through the link spends it, also one into a chat that is still
        // live in another tab (a no-op for the lifecycle, but the link must not stay valid).
        ...(renew ? { rewrite: renewLink, rewriteAlways: true } : {}),
        // A link resumes only while it is still the conversation's link: a single-use link that
        // another return has just renewed must not resume (or hand out the renewal) a second time.
        accept: (r: ConversationRecord) => {
          seen = r
          return !linkOnly || r.reconnectId === presentedId
        },
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
    // Away until this write, which stamped `updatedAt` with the moment of the return; a chat that
    // was not away (live in another tab) changed nothing, and the return took effect at the decision.
    if (seen === undefined || !isAway(seen.state)) return { decision: resumed, named: record, at: now }
    const awayAt = awaySince(seen)
    return {
      decision: resumed,
      named: record,
      at: record.updatedAt,
      sinceDisconnectMs: awayAt === undefined ? undefined : Math.max(0, record.updatedAt - awayAt),
    }
  }

  /** Hands the call's one `return` event to `onEvent` and replies with the decision. */
  function reply(decided: Decided, via: ReturnEvent['via']): ServiceReturnDecision {
    if (listening) emit([returnEventOf(decided, via, clock.now())])
    return decided.decision
  }

  /** A decision that writes nothing (prompt, redirect, new chat), as {@link reply} takes it. */
  function unwritten(decision: ReturnDecision, named: ConversationRecord | undefined, now: number): Decided {
    const awayAt = decision.type === 'prompt' && named !== undefined && isAway(named.state) ? awaySince(named) : undefined
    return { decision, named, at: now, sinceDisconnectMs: awayAt === undefined ? undefined : Math.max(0, now - awayAt) }
  }

  async function returnCustomer(request: ReturnRequest): Promise<ServiceReturnDecision> {
    if (typeof request !== 'object' || request === null) {
      throw new ReconnectError('invalid-argument', 'returnCustomer: request must be an object')
    }
    const widgetId = checkOptionalId(request.widgetId, 'returnCustomer: request.widgetId') ?? 'default'
    // '' means "not signed in", as in decideReturn: a widget may send an empty id for a guest.
    const customerId = request.customerId === '' ? null : checkOptionalId(request.customerId, 'returnCustomer: request.customerId')
    const settings = fixed ?? (await settingsFor(widgetId))
    const reconnectId = typeof request.reconnectId === 'string' && request.reconnectId !== '' ? request.reconnectId : null
    let verified = reconnectId === null ? false : verifyId(reconnectId)
    if (typeof verified !== 'boolean') verified = await verified
    // decideReturn refuses any other `via`, so by the time an event is built this is one of the two.
    const via: ReturnEvent['via'] = request.via === 'session' ? 'session' : 'link'
    for (let attempt = 0; attempt < RESUME_ATTEMPTS; attempt += 1) {
      const now = clock.now()
      const linked = reconnectId !== null && verified ? await getByReconnectId(reconnectId) : undefined
      const decide = (resumable: ConversationRecord | null): ReturnDecision =>
        decideReturn({
          // Field by field, not a spread of the caller's object: one shape for every request.
          request: { reconnectId: request.reconnectId, customerId: request.customerId, widgetId, via: request.via },
          settings,
          now,
          linked: linked ?? null,
          resumable,
          isValidId: () => verified,
        })
      // The customer's own resumable conversation is looked up only when it could change the outcome.
      const offer = withResumableOffer(decide(null), settings, widgetId, customerId, now, decide)
      const { decision, resumable } = offer instanceof Promise ? await offer : offer
      if (decision.type !== 'resume') {
        const named = decision.type === 'prompt' ? [linked, resumable].find((r) => r?.id === decision.conversationId) : linked
        return reply(unwritten(decision, named, now), via)
      }
      const loaded = [linked, resumable].find((record) => record?.id === decision.conversationId)
      const applied = await applyResume(decision, reconnectId, loaded, now)
      if (applied !== undefined) return reply(applied, via)
    }
    throw new ConflictError(reconnectId ?? customerId ?? widgetId, null)
  }

  /**
   * A decision made without the customer's resumable conversation, made again with it when it could
   * change the outcome (SPEC §5 rule 2, and rule 1's fall-through). Returns the record it looked up.
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

  /** Whether the issuer vouches for `reconnectId`; synchronous when the issuer answers synchronously. */
  function verifyId(reconnectId: string): boolean | Promise<boolean> {
    if (reconnectId.length > MAX_ID_LENGTH) return false
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

  async function answerPrompt(
    conversationId: string,
    answer: 'continue' | 'new',
    customerId: string,
  ): Promise<ServiceReturnDecision> {
    checkId(conversationId, 'answerPrompt: conversationId')
    checkId(customerId, 'answerPrompt: customerId')
    if (answer !== 'continue' && answer !== 'new') {
      throw new ReconnectError('invalid-argument', `answerPrompt: answer must be 'continue' or 'new', got ${describeValue(answer)}`)
    }
    for (let attempt = 0; attempt < RESUME_ATTEMPTS; attempt += 1) {
      const record = await load(conversationId)
      const settings = fixed ?? (await settingsFor(record.widgetId))
      const now = clock.now()
      const decide = (resumable: ConversationRecord | null) =>
        decidePromptAnswer({ answer, record, customerId, settings, now, resumable })
      const first = decide(null)
      if (answer === 'new') {
        if (first.type === 'new-chat' && first.reason === 'identity-mismatch') return reply(unwritten(first, undefined, now), 'prompt')
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
        return reply(unwritten(first, record, now), 'prompt')
      }
      // Too late for this one: like a lost link (SPEC §5 rule 1), offer the customer's other
      // resumable conversation on the widget, when there is one and no redirect URL takes precedence.
      const offer = withResumableOffer(first, settings, record.widgetId, customerId, now, decide)
      const { decision, resumable } = offer instanceof Promise ? await offer : offer
      if (decision.type !== 'resume') return reply(unwritten(decision, decision.type === 'prompt' ? resumable : record, now), 'prompt')
      const applied = await applyResume(decision, null, decision.conversationId === record.id ? record : resumable, now)
      if (applied !== undefined) return reply(applied, 'prompt')
    }
    throw new ConflictError(conversationId, null)
  }

  return { returnCustomer, answerPrompt }
}
