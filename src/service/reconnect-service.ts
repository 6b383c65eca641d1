import { nanoid } from 'nanoid'
import { type Clock, systemClock } from '../clock'
import {
  ConflictError,
  InvalidTransitionError,
  NotFoundError,
  ReconnectError,
  StoreError,
  isConflictError,
  isInvalidTransitionError,
  isReconnectError,
} from '../errors'
import { plainReconnectIds, type ReconnectIdIssuer } from '../ids'
import { buildReconnectUrl, expandQuickReply } from '../links'
import type { ConversationEvent } from '../machine/conversation-machine'
import { describeCreation, describeTransition } from '../machine/effects'
import { createConversationRecord, expireConversation, stepConversation, type StepResult } from '../machine/step'
import { couldOfferResumable, decidePromptAnswer, decideReturn } from '../policy'
import { defineSettings } from '../settings'
import { createMemoryStore } from '../store/memory-store'
import { isSameRecord } from '../store/record'
import type { ConversationStore } from '../store/conversation-store'
import type {
  ConversationRecord,
  ReconnectSettings,
  ReconnectSettingsInput,
  ReturnDecision,
  ReturnRequest,
  ServiceEvent,
} from '../types'

/** Settings for every widget: one input, or a function of the widget id (sync or async). */
export type SettingsSource =
  | ReconnectSettingsInput
  | ((widgetId: string) => ReconnectSettingsInput | Promise<ReconnectSettingsInput>)

/** Options of {@link createReconnectService}. */
export interface ReconnectServiceOptions {
  /** The widgets' settings: one input for all, or a function of the widget id (sync or async). */
  settings: SettingsSource
  /** Where conversations live; an in-process memory store by default. */
  store?: ConversationStore
  /** Where time comes from; the system clock by default. */
  clock?: Clock
  /** Receives every transition, capacity change and notice after it has been stored. */
  onEvent?: (event: ServiceEvent) => void | Promise<void>
  /** Issues and verifies reconnect ids; plain 21-character nanoid ids by default. */
  reconnectIds?: ReconnectIdIssuer
  /** Receives failures of the background scheduler and of `onEvent` handlers. */
  onError?: (error: unknown) => void
  /** Attempts per call when another writer wins the compare-and-set (default 5). */
  maxAttempts?: number
  /**
   * Issue a fresh reconnect id whenever a customer resumes through a link, so each link works once.
   * The new link comes back in the `resume` decision's `reconnectUrl`. Off by default.
   */
  singleUseLinks?: boolean
}

/** What `start` accepts. */
export interface StartConversationInput {
  /** The host's own id for the conversation; a new nanoid when absent. */
  conversationId?: string
  /** The widget the chat came through (`'default'` when absent); its settings apply. */
  widgetId?: string
  /** The signed-in customer, or `null` for an anonymous one. */
  customerId?: string | null
  /** The agent the chat starts with; without one it starts `queued`. */
  agentId?: string | null
}

/** A resume decision as the service returns it: with a fresh link when single-use links are on. */
export type ServiceReturnDecision = ReturnDecision & { reconnectUrl?: string }

/** The reconnect service a contact-centre backend embeds (SPEC §9). */
export interface ReconnectService {
  /** Creates a conversation, `queued` or (with `agentId`) `active`; an existing `conversationId` returns that one. */
  start(input?: StartConversationInput): Promise<ConversationRecord>
  /** Assigns an agent to a queued conversation (`agent.assigned`); capacity is held from then on. */
  assign(id: string, agentId: string): Promise<ConversationRecord>
  /** Records that the customer's connection dropped (`customer.disconnected`); starts the window or grace. */
  disconnect(id: string): Promise<ConversationRecord>
  /** Decides what a returning customer gets (SPEC §5) and applies a resume before returning it. */
  returnCustomer(request: ReturnRequest): Promise<ServiceReturnDecision>
  /** Applies a signed-in customer's answer to the "continue or start new?" prompt. */
  answerPrompt(conversationId: string, answer: 'continue' | 'new', customerId: string): Promise<ServiceReturnDecision>
  /** The agent pressed End (`agent.ended`): the conversation goes to wrap-up. */
  endByAgent(id: string): Promise<ConversationRecord>
  /** The customer closed the chat (`customer.ended`): the conversation goes to wrap-up. */
  endByCustomer(id: string): Promise<ConversationRecord>
  /** The agent closed the session (`agent.closed`): closes after wrap-up, otherwise releases the agent. */
  closeByAgent(id: string): Promise<ConversationRecord>
  /** Reads a conversation with every passed deadline applied; writes nothing. */
  get(id: string): Promise<ConversationRecord>
  /** The conversation's reconnect link; throws `reconnect-disabled` when its widget has reconnect off. */
  reconnectUrl(id: string): Promise<string>
  /** Expands the reconnect-link slugs in an agent's quick-reply text with the conversation's link. */
  quickReply(id: string, text: string): Promise<string>
  /** Applies every passed deadline (up to `limit` conversations); resolves to how many it applied. */
  runDueTimers(options?: { limit?: number }): Promise<number>
  /** Starts the background scheduler: one pending timeout that wakes at the next deadline and sweeps. */
  startScheduler(): void
  /** Stops the background scheduler; a sweep under way finishes on its own (see `idle`). */
  stopScheduler(): void
  /** Resolves once the scheduler's sweep in progress (if any) has finished; for tests and shutdown. */
  idle(): Promise<void>
}

const MAX_ID_LENGTH = 256
const SWEEP_BATCH = 256
/** The scheduler looks at the store at least this often, to notice deadlines other nodes wrote. */
export const SCHEDULER_MAX_SLEEP_MS = 30_000
const RESUME_ATTEMPTS = 4
/** How long the scheduler waits before sweeping again after a failed sweep. */
const SCHEDULER_RETRY_MS = 1_000

function checkId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID_LENGTH) {
    throw new ReconnectError(
      'invalid-argument',
      `${what} must be a non-empty string of at most ${MAX_ID_LENGTH} characters, got ${describe(value)}`,
    )
  }
  return value
}

function checkOptionalId(value: unknown, what: string): string | null {
  return value === undefined || value === null ? null : checkId(value, what)
}

function describe(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value)
  if (value === null) return 'null'
  return typeof value
}

/** A decision made on a record that has since changed in a way that voids it; the caller decides again. */
class StaleDecision extends Error {}

/**
 * Creates the service: load → transition of `conversationMachine` → compare-and-set save → events,
 * for every call.
 *
 * @example
 * const service = createReconnectService({
 *   settings: { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://shop.example/help' },
 * })
 * const chat = await service.start({ agentId: 'agent-7' })
 * await service.disconnect(chat.id)
 * const link = await service.reconnectUrl(chat.id)
 */
export function createReconnectService(options: ReconnectServiceOptions): ReconnectService {
  if (typeof options !== 'object' || options === null) {
    throw new ReconnectError('invalid-argument', 'createReconnectService: options must be an object with `settings`')
  }
  const store = options.store ?? createMemoryStore()
  const clock = options.clock ?? systemClock
  const ids = options.reconnectIds ?? plainReconnectIds
  const maxAttempts = options.maxAttempts ?? 5
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 100) {
    throw new ReconnectError(
      'invalid-argument',
      `createReconnectService: maxAttempts must be a whole number from 1 to 100, got ${String(options.maxAttempts)}`,
    )
  }
  const singleUse = options.singleUseLinks === true
  const onError = options.onError
  // Read once: whether events are built at all is decided with it, so it must not change later.
  const onEvent = options.onEvent
  const source = options.settings
  // A static input is validated here, once (failing fast), and the hot paths skip awaiting `settingsFor`.
  const fixed = typeof source === 'function' ? undefined : defineSettings(source)
  const validated = new WeakMap<object, ReconnectSettings>()

  async function settingsFor(widgetId: string): Promise<ReconnectSettings> {
    if (fixed !== undefined) return fixed
    const input = typeof source === 'function' ? await source(widgetId) : source
    if (typeof input === 'object' && input !== null) {
      const known = validated.get(input)
      if (known !== undefined) return known
      const settings = defineSettings(input)
      validated.set(input, settings)
      return settings
    }
    return defineSettings(input)
  }

  function report(error: unknown): void {
    try {
      onError?.(error)
    } catch {
      // A failing error reporter must not take the service down with it.
    }
  }

  function emit(events: readonly ServiceEvent[]): void {
    if (onEvent === undefined) return
    for (const event of events) {
      try {
        const result = onEvent(event)
        if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
          ;(result as Promise<void>).then(undefined, report)
        }
      } catch (error) {
        report(error)
      }
    }
  }

  function storeFailure(error: unknown, operation: string, conversationId: string | undefined): unknown {
    if (isConflictError(error)) return error
    if (isReconnectError(error) && error.code === 'store-failure') return error
    return new StoreError(operation, { cause: error, ...(conversationId === undefined ? {} : { conversationId }) })
  }
  // Not an async function: on every service call's hot path, one promise fewer per store call.
  function storeCall<T>(operation: string, conversationId: string | undefined, call: () => Promise<T>): Promise<T> {
    let pending: Promise<T>
    try {
      pending = Promise.resolve(call())
    } catch (error) {
      return Promise.reject(storeFailure(error, operation, conversationId))
    }
    return pending.then(undefined, (error: unknown) => {
      throw storeFailure(error, operation, conversationId)
    })
  }

  // Unique per service instance (random) and per write (a counter): cheaper than a random id per write.
  const writerId = nanoid(10)
  let writes = 0

  /**
   * A compare-and-set write. When the store fails without a conflict, the write may still have
   * landed (the reply was lost): one read tells, so a landed write is reported as done, with its
   * events, instead of leaving the host to retry into a no-op that reports nothing.
   *
   * `record` is always one this service has just built, never one a caller or the store holds, so
   * it is stamped in place instead of being copied once more.
   */
  function save(record: ConversationRecord, expectedVersion: number | null): Promise<ConversationRecord> {
    // Stamped per write: a read-back can then tell this write from an identical one by another node.
    writes += 1
    record.writeId = `${writerId}.${writes.toString(36)}`
    // Not an async function: every service call writes, and a suspended async frame costs more
    // than the two callbacks.
    let pending: Promise<void>
    try {
      pending = Promise.resolve(store.put(record, expectedVersion))
    } catch (error) {
      return landedAnyway(record, storeFailure(error, 'put', record.id))
    }
    return pending.then(
      () => record,
      (error: unknown) => landedAnyway(record, storeFailure(error, 'put', record.id)),
    )
  }

  /** After a failed write other than a conflict: `record` if it was stored all the same, else the failure. */
  async function landedAnyway(record: ConversationRecord, error: unknown): Promise<ConversationRecord> {
    if (isConflictError(error)) throw error
    // Any failure of the read-back (also a synchronous throw) means "unknown": the write's error stands.
    const stored = await Promise.resolve()
      .then(() => store.get(record.id))
      .catch(() => undefined)
    if (stored !== undefined && isSameRecord(stored, record)) return record
    throw error
  }

  async function load(id: string): Promise<ConversationRecord> {
    let record: ConversationRecord | undefined
    try {
      record = await store.get(id)
    } catch (error) {
      throw storeFailure(error, 'get', id)
    }
    if (record === undefined) throw new NotFoundError(id)
    return record
  }

  // --- the one write path ---------------------------------------------------------------------

  /** A write to make: the record, how many transitions it applies, and their events (none without `onEvent`). */
  type Change = { record: ConversationRecord; transitions: number; events: ServiceEvent[] }

  /** Lazy expiry then `event` on a loaded record, without I/O. `undefined` = nothing to write. */
  function plan(
    record: ConversationRecord,
    settings: ReconnectSettings,
    now: number,
    event: ConversationEvent | null,
  ): { change: Change | undefined; current: ConversationRecord; rejected: boolean } {
    const steps: Extract<StepResult, { kind: 'changed' }>[] = expireConversation(record, settings, now)
    let current = steps.at(-1)?.record ?? record
    let rejected = false
    if (event !== null) {
      const step = stepConversation(current, settings, event)
      if (step.kind === 'changed') {
        steps.push(step)
        current = step.record
      } else if (step.kind === 'rejected') {
        rejected = true
      }
    }
    if (steps.length === 0 || rejected) return { change: undefined, current, rejected }
    const events: ServiceEvent[] = []
    // Nobody to tell, nothing to describe: a service without `onEvent` skips building its events.
    if (onEvent !== undefined) {
      let before = record
      for (const step of steps) {
        events.push(...describeTransition(before, step.record, step.event))
        before = step.record
      }
    }
    // Several steps are still one write: one version up from the record as loaded.
    const final = current.version === record.version + 1 ? current : { ...current, version: record.version + 1 }
    return { change: { record: final, transitions: steps.length, events }, current: final, rejected }
  }

  /** Loads, transitions and compare-and-set saves one conversation, retrying on conflicts. */
  async function mutate(
    id: string,
    makeEvent: ((now: number) => ConversationEvent) | null,
    how: {
      rewrite?: (record: ConversationRecord) => Promise<ConversationRecord> | ConversationRecord
      /** Checked on every load; a record it refuses ends the call with {@link StaleDecision}. */
      accept?: (record: ConversationRecord) => boolean
      /**
       * The record as the caller has just read it: the first attempt uses it instead of reading it
       * again. If it is stale, the compare-and-set says so, and the usual attempts follow.
       */
      loaded?: ConversationRecord | undefined
      /** Apply `rewrite` (and write) even when the event changes nothing, e.g. to renew a link on a no-op resume. */
      rewriteAlways?: boolean
    } = {},
  ): Promise<ConversationRecord> {
    const { rewrite, accept } = how
    let preloaded = how.loaded?.id === id ? how.loaded : undefined
    const attempts = maxAttempts + (preloaded === undefined ? 0 : 1)
    let lastConflict: ConflictError | undefined
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      const record = preloaded ?? (await load(id))
      preloaded = undefined
      if (accept !== undefined && !accept(record)) throw new StaleDecision()
      const settings = fixed ?? (await settingsFor(record.widgetId))
      const now = clock.now()
      const event = makeEvent === null ? null : makeEvent(now)
      const outcome = plan(record, settings, now, event)
      if (outcome.rejected && event !== null) {
        throw new InvalidTransitionError(outcome.current.state, event.type, id)
      }
      const planned = outcome.change ?? (rewrite !== undefined && how.rewriteAlways === true ? { record: outcome.current, transitions: 0, events: [] } : undefined)
      if (planned === undefined) return outcome.current
      const change: Change =
        rewrite === undefined ? planned : { ...planned, record: { ...(await rewrite(planned.record)), version: record.version + 1 } }
      let stored: ConversationRecord
      try {
        stored = await save(change.record, record.version)
      } catch (error) {
        if (!isConflictError(error)) throw error
        lastConflict = error
        continue
      }
      noteDeadline(stored.nextDueAt)
      emit(change.events)
      return stored
    }
    throw lastConflict ?? new ConflictError(id, null)
  }

  // --- conversations --------------------------------------------------------------------------

  async function start(input: StartConversationInput = {}): Promise<ConversationRecord> {
    if (typeof input !== 'object' || input === null) {
      throw new ReconnectError('invalid-argument', 'start: input must be an object')
    }
    const requestedId = checkOptionalId(input.conversationId, 'start: conversationId')
    const widgetId = checkOptionalId(input.widgetId, 'start: widgetId') ?? 'default'
    const customerId = checkOptionalId(input.customerId, 'start: customerId')
    const agentId = checkOptionalId(input.agentId, 'start: agentId')
    if (requestedId !== null) {
      const existing = await storeCall('get', requestedId, () => store.get(requestedId))
      if (existing !== undefined) return get(requestedId)
    }
    const settings = fixed ?? (await settingsFor(widgetId))
    const id = requestedId ?? nanoid()
    const reconnectId = await ids.issue()
    const record = createConversationRecord({ id, widgetId, reconnectId, customerId, agentId, now: clock.now(), settings })
    let stored: ConversationRecord
    try {
      stored = await save(record, null)
    } catch (error) {
      // Someone created the same conversation id first: theirs is the conversation.
      if (isConflictError(error) && requestedId !== null) return get(requestedId)
      throw error
    }
    noteDeadline(stored.nextDueAt)
    if (onEvent !== undefined) emit(describeCreation(stored))
    return stored
  }

  async function get(id: string): Promise<ConversationRecord> {
    checkId(id, 'get: id')
    const record = await load(id)
    const settings = fixed ?? (await settingsFor(record.widgetId))
    const expired = expireConversation(record, settings, clock.now()).at(-1)?.record
    // A read applies passed deadlines to what it returns but writes nothing: the version stays the stored one.
    return expired === undefined ? record : { ...expired, version: record.version }
  }

  const simple =
    (type: 'customer.disconnected' | 'customer.ended' | 'agent.ended' | 'agent.closed', name: string) =>
    (id: string): Promise<ConversationRecord> => {
      // A bad id rejects like every other call instead of throwing synchronously (no extra async frame).
      try {
        checkId(id, `${name}: id`)
      } catch (error) {
        return Promise.reject(error)
      }
      return mutate(id, (at) => ({ type, at }))
    }

  async function assign(id: string, agentId: string): Promise<ConversationRecord> {
    checkId(id, 'assign: id')
    checkId(agentId, 'assign: agentId')
    return mutate(id, (at) => ({ type: 'agent.assigned', agentId, at }))
  }

  async function renewLink(record: ConversationRecord): Promise<ConversationRecord> {
    return { ...record, reconnectId: await ids.issue() }
  }

  async function linkFor(record: ConversationRecord): Promise<string | undefined> {
    const settings = fixed ?? (await settingsFor(record.widgetId))
    if (!settings.enabled || settings.portalUrl === null) return undefined
    return buildReconnectUrl(settings.portalUrl, record.reconnectId, { param: settings.linkParam })
  }

  /**
   * Applies a resume decision. Returns the decision as it finally stands: if the conversation
   * changed between the decision and the write (expired, ended), `undefined` asks for a new decision.
   */
  async function applyResume(
    decision: Extract<ReturnDecision, { type: 'resume' }>,
    presentedId: string | null,
    loaded: ConversationRecord | undefined,
  ): Promise<ServiceReturnDecision | undefined> {
    const renew = singleUse && decision.via === 'link'
    let record: ConversationRecord
    try {
      record = await mutate(decision.conversationId, (at) => ({ type: 'customer.returned', via: decision.via, at }), {
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
    for (let attempt = 0; attempt < RESUME_ATTEMPTS; attempt += 1) {
      const now = clock.now()
      const linked =
        reconnectId !== null && verified
          ? await storeCall('getByReconnectId', undefined, () => store.getByReconnectId(reconnectId))
          : undefined
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
      if (decision.type !== 'resume') return decision
      const loaded = [linked, resumable].find((record) => record?.id === decision.conversationId)
      const applied = await applyResume(decision, reconnectId, loaded)
      if (applied !== undefined) return applied
    }
    throw new ConflictError(reconnectId ?? customerId ?? widgetId, null)
  }

  type ResumableOffer = { decision: ReturnDecision; resumable: ConversationRecord | undefined }

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
    return storeCall('findResumable', undefined, () => store.findResumable(widgetId, customerId, now)).then((resumable) => ({
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
      throw new ReconnectError('invalid-argument', `answerPrompt: answer must be 'continue' or 'new', got ${describe(answer)}`)
    }
    for (let attempt = 0; attempt < RESUME_ATTEMPTS; attempt += 1) {
      const record = await load(conversationId)
      const settings = fixed ?? (await settingsFor(record.widgetId))
      const now = clock.now()
      const decide = (resumable: ConversationRecord | null) =>
        decidePromptAnswer({ answer, record, customerId, settings, now, resumable })
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
      // Too late for this one: like a lost link (SPEC §5 rule 1), offer the customer's other
      // resumable conversation on the widget, when there is one and no redirect URL takes precedence.
      const offer = withResumableOffer(first, settings, record.widgetId, customerId, now, decide)
      const { decision, resumable } = offer instanceof Promise ? await offer : offer
      if (decision.type !== 'resume') return decision
      const applied = await applyResume(decision, null, decision.conversationId === record.id ? record : resumable)
      if (applied !== undefined) return applied
    }
    throw new ConflictError(conversationId, null)
  }

  async function reconnectUrl(id: string): Promise<string> {
    const record = await get(id)
    const url = await linkFor(record)
    if (url === undefined) {
      throw new ReconnectError('reconnect-disabled', `Reconnect is off for widget "${record.widgetId}" of conversation "${id}"`)
    }
    return url
  }

  async function quickReply(id: string, text: string): Promise<string> {
    if (typeof text !== 'string') {
      throw new ReconnectError('invalid-argument', `quickReply: text must be a string, got ${describe(text)}`)
    }
    return expandQuickReply(text, await reconnectUrl(id))
  }

  // --- deadlines ------------------------------------------------------------------------------

  /** Applies the passed deadlines of one due record; returns how many deadlines it applied. */
  async function expireOne(seen: ConversationRecord): Promise<number> {
    let record: ConversationRecord | undefined = seen
    for (let attempt = 0; attempt < maxAttempts && record !== undefined; attempt += 1) {
      const settings = fixed ?? (await settingsFor(record.widgetId))
      const outcome = plan(record, settings, clock.now(), null)
      if (outcome.change === undefined) return 0
      const change = outcome.change
      try {
        await save(change.record, record.version)
      } catch (error) {
        if (!isConflictError(error)) throw error
        // Another node got there first: look again, it may have applied the deadline already.
        const id: string = record.id
        record = await storeCall('get', id, () => store.get(id))
        continue
      }
      noteDeadline(change.record.nextDueAt)
      emit(change.events)
      return change.transitions
    }
    return 0
  }

  async function runDueTimers(runOptions: { limit?: number } = {}): Promise<number> {
    const limit = runOptions.limit ?? Number.POSITIVE_INFINITY
    if (!(limit > 0)) {
      if (limit === 0) return 0
      throw new ReconnectError('invalid-argument', `runDueTimers: limit must be a positive number, got ${String(limit)}`)
    }
    let applied = 0
    let processed = 0
    // Records that stayed due although nothing could be applied to them: fetched once per sweep.
    // One that moved on is due again only if another of its deadlines has passed meanwhile, and then
    // it should run again. Later batches ask for enough rows to reach past the stuck ones.
    const stuck = new Set<string>()
    for (;;) {
      const batch = Math.min(SWEEP_BATCH, limit - processed)
      if (batch <= 0) break
      const want = batch + stuck.size
      const due = await storeCall('due', undefined, () => store.due(clock.now(), want))
      const fresh = (stuck.size === 0 ? due : due.filter((r) => !stuck.has(r.id))).slice(0, batch)
      if (fresh.length === 0) break
      for (const record of fresh) {
        processed += 1
        let count = 0
        try {
          count = await expireOne(record)
        } catch (error) {
          // A store failure stops the sweep (the next one retries); anything else concerns this one
          // conversation (say, the settings function throws for its widget): report it and go on,
          // so one bad record cannot hold back every other conversation's deadline.
          if (isReconnectError(error) && error.code === 'store-failure') throw error
          report(error)
        }
        if (count === 0) stuck.add(record.id)
        applied += count
      }
      if (due.length < want) break
    }
    return applied
  }

  // --- scheduler ------------------------------------------------------------------------------

  let running = false
  let handle: unknown = undefined
  let wakeAt: number | null = null
  // Every sweep (or first look at the store) under way; a stop/start while one runs starts another.
  const sweeps = new Set<Promise<void>>()

  function arm(at: number): void {
    if (!running) return
    if (handle !== undefined) clock.clearTimeout(handle)
    const now = clock.now()
    const target = Math.min(at, now + SCHEDULER_MAX_SLEEP_MS)
    wakeAt = target
    handle = clock.setTimeout(wake, Math.max(0, target - now))
  }

  // Deadlines written while a sweep is under way; the sweep's re-arm takes them into account.
  let notedDuringSweep: number | null = null

  function noteDeadline(at: number | null): void {
    if (!running || at === null) return
    if (sweeps.size > 0) {
      notedDuringSweep = notedDuringSweep === null ? at : Math.min(notedDuringSweep, at)
      return
    }
    if (wakeAt === null || at < wakeAt) arm(at)
  }

  function rearm(next: number | null): void {
    const noted = notedDuringSweep
    notedDuringSweep = null
    const candidates = [next, noted].filter((at): at is number => at !== null)
    arm(candidates.length === 0 ? clock.now() + SCHEDULER_MAX_SLEEP_MS : Math.min(...candidates))
  }

  function track(work: () => Promise<void>): void {
    const sweep = work().finally(() => {
      sweeps.delete(sweep)
      // A deadline written after the sweep re-armed but before it finished would wait for the next wake.
      const noted = notedDuringSweep
      if (sweeps.size === 0 && noted !== null) {
        notedDuringSweep = null
        if (wakeAt === null || noted < wakeAt) arm(noted)
      }
    })
    sweeps.add(sweep)
  }

  async function nextDeadline(): Promise<number | null> {
    try {
      return await storeCall('nextDueAt', undefined, () => store.nextDueAt())
    } catch (error) {
      report(error)
      return null
    }
  }

  function wake(): void {
    handle = undefined
    wakeAt = null
    if (!running) return
    track(async () => {
      let stalled = false
      try {
        stalled = (await runDueTimers()) === 0
      } catch (error) {
        stalled = true
        report(error)
      }
      const next = await nextDeadline()
      // After a sweep that failed or applied nothing, a deadline that is still in the past is one
      // this node cannot move on (yet): wait a little instead of spinning on it.
      const now = clock.now()
      rearm(stalled && next !== null && next <= now ? now + SCHEDULER_RETRY_MS : next)
    })
  }

  function startScheduler(): void {
    if (running) return
    running = true
    track(async () => rearm(await nextDeadline()))
  }

  function stopScheduler(): void {
    running = false
    if (handle !== undefined) clock.clearTimeout(handle)
    handle = undefined
    wakeAt = null
  }

  async function idle(): Promise<void> {
    while (sweeps.size > 0) await Promise.all(sweeps)
  }

  return {
    start,
    assign,
    disconnect: simple('customer.disconnected', 'disconnect'),
    returnCustomer,
    answerPrompt,
    endByAgent: simple('agent.ended', 'endByAgent'),
    endByCustomer: simple('customer.ended', 'endByCustomer'),
    closeByAgent: simple('agent.closed', 'closeByAgent'),
    get,
    reconnectUrl,
    quickReply,
    runDueTimers,
    startScheduler,
    stopScheduler,
    idle,
  }
}
