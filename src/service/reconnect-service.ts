import { type Clock, systemClock } from '../clock'
import { ReconnectError } from '../errors'
import { plainReconnectIds, type ReconnectIdIssuer } from '../ids'
import type { ConversationStore } from '../store/conversation-store'
import { createMemoryStore } from '../store/memory-store'
import type { ConversationRecord, ReturnRequest, ServiceEvent } from '../types'
import { createConnectionCalls, type AttachInput, type DetachInput } from './connections'
import { createConversations, type StartConversationInput } from './conversations'
import { createErase, withoutRetention } from './erase'
import { createEventSink } from './event-sink'
import { OUTBOX_REDELIVER_AFTER_MS, createOutbox } from './outbox'
import { createReturns, type ServiceReturnDecision } from './returns'
import { createScheduler } from './scheduler'
import { createSettingsLookup, type SettingsSource } from './settings-lookup'
import { createStoreGateway } from './store-gateway'
import { createSweep } from './sweep'
import { createWritePath } from './write-path'

export { OUTBOX_REDELIVER_AFTER_MS } from './outbox'
export { SCHEDULER_MAX_SLEEP_MS } from './scheduler'
export { SWEEP_CONCURRENCY, SWEEP_SETTINGS_TIMEOUT_MS } from './sweep'
export type { ServiceReturnDecision } from './returns'
export type { SettingsSource } from './settings-lookup'
export type { StartConversationInput } from './conversations'
export type { AttachInput, DetachInput } from './connections'

/** Options of {@link createReconnectService}. */
export interface ReconnectServiceOptions {
  /** The widgets' settings: one input for all, or a function of the widget id (sync or async). */
  settings: SettingsSource
  /**
   * Where conversations live.
   * @default createMemoryStore() — an in-process memory store
   */
  store?: ConversationStore
  /**
   * Where time comes from.
   * @default systemClock
   */
  clock?: Clock
  /**
   * Receives every transition, capacity change and notice after it has been stored, and one `return`
   * event per `returnCustomer` / `answerPrompt` call. Read once, when the service is created; without
   * it the service does not build events at all. With a store that has an outbox (every built-in
   * one), the events of a write are stored with it and delivered at least once: de-duplicate by
   * `event.id` (see docs/events.md).
   * @default undefined — no events
   */
  onEvent?: (event: ServiceEvent) => void | Promise<void>
  /**
   * Issues and verifies reconnect ids.
   * @default plainReconnectIds — plain 21-character nanoid ids
   */
  reconnectIds?: ReconnectIdIssuer
  /**
   * Receives failures of the background scheduler and of `onEvent` handlers.
   * @default undefined — such failures are dropped
   */
  onError?: (error: unknown) => void
  /**
   * Attempts per call when another writer wins the compare-and-set; a whole number from 1 to 100.
   * @default 5
   */
  maxAttempts?: number
  /**
   * Issue a fresh reconnect id whenever a customer resumes through a link, so each link works once.
   * The new link comes back in the `resume` decision's `reconnectUrl`.
   * @default false
   */
  singleUseLinks?: boolean
  /**
   * The longest the background scheduler sleeps between two looks at the store, in ms. Deadlines
   * this node writes, and those other nodes write through a store with `watchDue` (Redis with a
   * `subscriber`, PostgreSQL with `listen`), wake it earlier; this bounds how late any other is seen.
   * @default 30000
   */
  schedulerMaxSleepMs?: number
  /**
   * How long the sweep waits for one widget's settings (when `settings` is a function), in ms of
   * the service's clock. A widget whose settings fail or take longer has its due conversations
   * skipped and reported as `bad-record`; every other widget's are still applied.
   * @default 5000
   */
  sweepSettingsTimeoutMs?: number
  /**
   * How many due conversations one sweep applies at once. Each one is still applied start to end by
   * itself (its events keep their order); a store failure stops the sweep after those under way.
   * `1` applies them one at a time.
   * @default 16
   */
  sweepConcurrency?: number
  /**
   * How long, in ms of the service's clock, a stored event waits for the delivery of the node that
   * wrote it (`onEvent` returned, or its promise resolved) before any node's scheduler (or
   * `drainOutbox`) delivers it again; also the lease of a redelivery in progress. Only with
   * `onEvent` and a store with an outbox.
   * @default 5000
   */
  outboxRedeliverAfterMs?: number
}

/** The reconnect service a contact-centre backend embeds. */
export interface ReconnectService {
  /** Creates a conversation, `queued` or (with `agentId`) `active`; an existing `conversationId` returns that one. */
  start(input?: StartConversationInput): Promise<ConversationRecord>
  /** Assigns an agent to a queued conversation (`agent.assigned`); capacity is held from then on. */
  assign(id: string, agentId: string): Promise<ConversationRecord>
  /** Records that the customer's connection dropped (`customer.disconnected`); starts the window or grace. */
  disconnect(id: string): Promise<ConversationRecord>
  /** Decides what a returning customer gets and applies a resume before returning it. */
  returnCustomer(request: ReturnRequest): Promise<ServiceReturnDecision>
  /**
   * Applies a signed-in customer's answer to the "continue or start new?" prompt; a resume attaches
   * `options.connectionId` in the same write.
   */
  answerPrompt(
    conversationId: string,
    answer: 'continue' | 'new',
    customerId: string,
    options?: {
      /**
       * The connection (tab) the customer answers on.
       * @default undefined — no connection
       */
      connectionId?: string
    },
  ): Promise<ServiceReturnDecision>
  /**
   * Registers or renews one of the customer's connections on a `queued` or `active`
   * conversation; any other state throws `InvalidTransitionError`. An attach while the detach grace
   * runs ends the grace and changes no state. At most 32 connections: one more drops the one that
   * would lapse first (see docs/connections.md).
   *
   * @example
   * await service.attach(chat.id, { connectionId: 'tab-1', leaseMs: 30_000 }) // renew every ~10 s
   */
  attach(id: string, input: AttachInput): Promise<ConversationRecord>
  /**
   * Removes one connection; an unknown one is a no-op. When the last one goes, the conversation takes
   * `customer.disconnected` after the widget's `detachGrace` unless another attaches meanwhile.
   */
  detach(id: string, input: DetachInput): Promise<ConversationRecord>
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
  runDueTimers(options?: {
    /**
     * How many due conversations to look at, at most: a whole number ≥ 0, or `Infinity`; anything
     * else is refused with `invalid-argument`.
     * @default Infinity
     */
    limit?: number
  }): Promise<number>
  /** Starts the background scheduler: one pending timeout that wakes at the next deadline and sweeps. */
  startScheduler(): void
  /** Stops the background scheduler; a sweep under way finishes on its own (see `idle`). */
  stopScheduler(): void
  /**
   * Resolves once the scheduler's sweep in progress (if any) has finished and the acks of delivered
   * events have reached the store; for tests and shutdown.
   */
  idle(): Promise<void>
  /**
   * Delivers, through `onEvent`, every stored event whose own delivery did not complete within
   * `outboxRedeliverAfterMs` (its node died, `onEvent` failed, the call failed after its write
   * landed), and acks it; resolves to how many it delivered. The background scheduler calls it on
   * its own; without `onEvent` or a store with an outbox it resolves to 0.
   */
  drainOutbox(): Promise<number>
  /**
   * Erases one customer (a privacy request): ends each of their live conversations (capacity is
   * released, events are emitted), then deletes every one of them, in any state. Resolves to how many
   * this call deleted; safe to call again and while other nodes write. Needs a store with `delete`
   * and `byCustomer` (every built-in one); otherwise throws `ReconnectError` `'not-supported'`.
   *
   * @example
   * const deleted = await service.eraseCustomer('customer-42')
   */
  eraseCustomer(customerId: string): Promise<number>
}

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
  const schedulerMaxSleepMs = positiveMs(options.schedulerMaxSleepMs, 'schedulerMaxSleepMs')
  const sweepSettingsTimeoutMs = positiveMs(options.sweepSettingsTimeoutMs, 'sweepSettingsTimeoutMs')
  const sweepConcurrency = options.sweepConcurrency
  if (
    sweepConcurrency !== undefined &&
    (typeof sweepConcurrency !== 'number' || !Number.isSafeInteger(sweepConcurrency) || sweepConcurrency < 1)
  ) {
    throw new ReconnectError(
      'invalid-argument',
      `createReconnectService: sweepConcurrency must be a whole number, at least 1; got ${String(sweepConcurrency)}`,
    )
  }
  const redeliverAfterMs = positiveMs(options.outboxRedeliverAfterMs, 'outboxRedeliverAfterMs') ?? OUTBOX_REDELIVER_AFTER_MS
  const gateway = createStoreGateway(store)
  // Read once: whether events are built at all is decided with `onEvent`, so it must not change later.
  const events = createEventSink(
    options.onEvent,
    options.onError,
    gateway.outbox
      ? {
          ack: gateway.ackEvents,
          // A failed delivery stays in the outbox: the scheduler looks again when it becomes claimable.
          failed: () => scheduler.noteDeadline(clock.now() + redeliverAfterMs),
        }
      : undefined,
  )
  const outbox = createOutbox({ gateway, clock, events, redeliverAfterMs })
  // A static settings input is validated here, once (failing fast).
  // A store written before retention cannot delete: its closed conversations get no deadline.
  const lookup = createSettingsLookup(options.settings)
  const settings = gateway.retention ? lookup : withoutRetention(lookup)

  // The rooms call one another through these few functions; the scheduler's sweep is bound late.
  const scheduler = createScheduler({
    clock,
    runDueTimers: () => sweepAndDrain(),
    nextDueAt: outbox.enabled ? nextWork : gateway.nextDueAt,
    report: events.report,
    ...(schedulerMaxSleepMs === undefined ? {} : { maxSleepMs: schedulerMaxSleepMs }),
    ...(typeof store.watchDue === 'function' ? { watch: (onWake: (at: number) => void) => store.watchDue!(onWake) } : {}),
  })
  const { noteDeadline } = scheduler
  const { plan, mutate } = createWritePath({ gateway, settings, clock, events, outbox, maxAttempts, noteDeadline })
  const runDueTimers = createSweep({
    gateway,
    settings,
    clock,
    events,
    outbox,
    plan,
    maxAttempts,
    noteDeadline,
    ...(sweepSettingsTimeoutMs === undefined ? {} : { settingsTimeoutMs: sweepSettingsTimeoutMs }),
    ...(sweepConcurrency === undefined ? {} : { concurrency: sweepConcurrency }),
  })
  const conversations = createConversations({ gateway, settings, clock, ids, events, outbox, mutate, noteDeadline })

  /** One scheduler wake: the sweep, then the outbox; one failing does not keep the other from running. */
  async function sweepAndDrain(): Promise<number> {
    let failure: unknown
    let failed = false
    let done = 0
    try {
      done += await runDueTimers()
    } catch (error) {
      failed = true
      failure = error
    }
    try {
      done += await outbox.drain()
    } catch (error) {
      if (failed) events.report(error)
      else {
        failed = true
        failure = error
      }
    }
    if (failed) throw failure
    return done
  }

  /** The earlier of the next deadline and the next claimable stored event. */
  async function nextWork(): Promise<number | null> {
    const [due, event] = await Promise.all([gateway.nextDueAt(), outbox.nextEventAt()])
    if (due === null) return event
    return event === null ? due : Math.min(due, event)
  }
  const eraseCustomer = createErase({ gateway, mutate })
  const { returnCustomer, answerPrompt } = createReturns({
    gateway,
    settings,
    clock,
    ids,
    mutate,
    events,
    linkFor: conversations.linkFor,
    singleUse: options.singleUseLinks === true,
  })
  const connections = createConnectionCalls({ mutate })

  return {
    start: conversations.start,
    assign: conversations.assign,
    disconnect: conversations.disconnect,
    returnCustomer,
    answerPrompt,
    attach: connections.attach,
    detach: connections.detach,
    endByAgent: conversations.endByAgent,
    endByCustomer: conversations.endByCustomer,
    closeByAgent: conversations.closeByAgent,
    get: conversations.get,
    reconnectUrl: conversations.reconnectUrl,
    quickReply: conversations.quickReply,
    runDueTimers,
    startScheduler: scheduler.start,
    stopScheduler: scheduler.stop,
    idle: async () => {
      await scheduler.idle()
      await events.settled()
    },
    drainOutbox: outbox.drain,
    eraseCustomer,
  }
}

function positiveMs(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ReconnectError(
      'invalid-argument',
      `createReconnectService: ${name} must be a whole number of milliseconds, at least 1; got ${String(value)}`,
    )
  }
  return value
}
