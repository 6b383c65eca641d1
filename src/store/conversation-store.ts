import type { ConversationRecord, ServiceEvent } from '../types'

/**
 * Where conversations live. Every adapter — the memory store, Redis, PostgreSQL, or a host's own —
 * implements this port and passes `storeContract` from `chat-reconnect/testing`.
 *
 * Records handed in and out are copies: a caller that mutates a returned record changes nothing
 * stored. Deadlines are absolute epoch ms computed by the service from one clock.
 */
export interface ConversationStore {
  /** The record with this conversation id, or `undefined`. */
  get(id: string): Promise<ConversationRecord | undefined>
  /** The record whose current `reconnectId` is this one, or `undefined`. */
  getByReconnectId(reconnectId: string): Promise<ConversationRecord | undefined>
  /**
   * The customer's most recently updated conversation on the widget that is `reconnectable` with its
   * window still open at `now`, or `undefined`.
   */
  findResumable(widgetId: string, customerId: string, now: number): Promise<ConversationRecord | undefined>
  /**
   * Compare-and-set write: stores `record` when the stored version equals `expectedVersion`
   * (`null` = no record with this id may exist yet), otherwise throws `ConflictError` and writes
   * nothing. Indexes are updated in the same atomic step.
   *
   * A store with an outbox (`claimEvents`, `ackEvents`, `nextEventAt`) also stores `outbox.events`
   * in that same atomic step, pending from `outbox.visibleAt`: a write that lands has its events
   * stored, one that is refused stores none. An entry whose id is already pending is replaced.
   * A store without an outbox ignores `outbox`; its events are then delivered best effort.
   */
  put(record: ConversationRecord, expectedVersion: number | null, outbox?: OutboxWrite): Promise<void>
  /**
   * Optional: several compare-and-set writes of different conversations in one call, each exactly
   * as {@link ConversationStore.put} would make it (its own `expectedVersion`, its indexes, its
   * outbox events in the same atomic step as its record). Resolves to one result per write, in
   * order: `'written'`, or `'conflict'` when the stored version was not the expected one (that
   * write wrote nothing). The writes of one call land together or not at all; a rejection means
   * none of them is known to have landed (the caller reads them back). Two writes of one id in a
   * call are refused with `invalid-argument`. The sweep uses it when the store has it; a store
   * without it gets one `put` per write.
   */
  putMany?(writes: readonly StoreWrite[]): Promise<StoreWriteResult[]>
  /**
   * Up to `limit` records whose `nextDueAt <= now`, earliest `nextDueAt` first. A stored record that
   * cannot be read is left out and handed to `options.onBadRecord` when given (a store that ignores
   * `options` may reject instead, as before).
   */
  due(now: number, limit: number, options?: DueOptions): Promise<ConversationRecord[]>
  /** The earliest `nextDueAt` of any stored record, or `null` when nothing is pending. */
  nextDueAt(): Promise<number | null>
  /** The records whose capacity is held by this agent. */
  heldBy(agentId: string): Promise<ConversationRecord[]>
  /**
   * Optional: calls `onWake(at)` when any node (this one included) writes a deadline `at` that may
   * come before every other pending one, so schedulers on other nodes wake for it; returns the
   * function that stops listening. Without it, other nodes notice within `schedulerMaxSleepMs`.
   */
  watchDue?(onWake: (at: number) => void): () => void
  /**
   * Compare-and-set delete: removes the record and every index entry naming it in one atomic step
   * when the stored version equals `expectedVersion`; resolves to `false` when no record has this id,
   * throws `ConflictError` (deleting nothing) on another version. Optional: a store without it works
   * for everything but retention and `eraseCustomer`, which then throw `'not-supported'`.
   */
  delete?(id: string, expectedVersion: number): Promise<boolean>
  /**
   * Every stored record whose `customerId` is this one, in any state, from an index (not a scan).
   * Optional, like {@link ConversationStore.delete}.
   */
  byCustomer?(customerId: string): Promise<ConversationRecord[]>
  /**
   * Outbox: takes up to `limit` pending events whose visibility time is at or before `now`, earliest
   * first, and in the same atomic step moves their visibility to `now + leaseMs`, so no other caller
   * gets them before that lease ends (or before they are acked). An entry that cannot be read is
   * left out and handed to `options.onBadEntry` (it counts against `limit`). Optional, with
   * `ackEvents` and `nextEventAt`: a store without the three delivers events best effort.
   */
  claimEvents?(now: number, leaseMs: number, limit: number, options?: ClaimEventsOptions): Promise<ServiceEvent[]>
  /** Outbox: deletes the pending events with these ids (delivered); unknown ids are ignored. */
  ackEvents?(ids: readonly string[]): Promise<void>
  /** Outbox: the earliest visibility time of any pending event, or `null` when none is pending. */
  nextEventAt?(): Promise<number | null>
}

/** The events of one write, stored by {@link ConversationStore.put} in the same atomic step as the record. */
export interface OutboxWrite {
  /** The write's events, each with its stable `id`, in the order they happened. */
  readonly events: readonly ServiceEvent[]
  /** When `claimEvents` may first take them (epoch ms); until then the writer delivers them itself. */
  readonly visibleAt: number
}

/** One write of {@link ConversationStore.putMany}: the arguments of one `put`. */
export interface StoreWrite {
  /** The record to store. */
  readonly record: ConversationRecord
  /** The stored version the write expects, `null` for a conversation that must not exist yet. */
  readonly expectedVersion: number | null
  /** The write's events, as `put`'s `outbox`. */
  readonly outbox?: OutboxWrite
}

/** What became of one write of {@link ConversationStore.putMany}. */
export type StoreWriteResult = 'written' | 'conflict'

/** Options of {@link ConversationStore.claimEvents}. */
export interface ClaimEventsOptions {
  /** Receives the id of each claimed entry the store could not read, and why. */
  onBadEntry?: (id: string, cause: unknown) => void
}

/** A store that implements the optional outbox methods. */
export type OutboxStore = ConversationStore & Required<Pick<ConversationStore, 'claimEvents' | 'ackEvents' | 'nextEventAt'>>

/** Whether `store` implements `claimEvents`, `ackEvents` and `nextEventAt` (the outbox needs all three). */
export function supportsOutbox(store: ConversationStore): store is OutboxStore {
  return typeof store.claimEvents === 'function' && typeof store.ackEvents === 'function' && typeof store.nextEventAt === 'function'
}

/** A store that implements the optional retention methods. */
export type RetentionStore = ConversationStore & Required<Pick<ConversationStore, 'delete' | 'byCustomer'>>

/** Whether `store` implements `delete` and `byCustomer` (retention and erase need both). */
export function supportsRetention(store: ConversationStore): store is RetentionStore {
  return typeof store.delete === 'function' && typeof store.byCustomer === 'function'
}

/** Options of {@link ConversationStore.due}. */
export interface DueOptions {
  /**
   * Receives each due record the store could not read (unparseable, not a valid record); it is left
   * out of the result instead of failing the whole call. Counts against `limit`.
   */
  onBadRecord?: (conversationId: string, cause: unknown) => void
  /**
   * Names the sweeper asking (each service has its own). A store that several sweepers share in
   * one object (the memory store) may claim the records it returns for this sweeper, so that the
   * `due` of another sweeper passes them by for a while; a store that claims per store object
   * (Redis, PostgreSQL) or not at all ignores it.
   */
  claimer?: string
}
