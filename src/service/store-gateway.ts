import { nanoid } from 'nanoid'
import { ConflictError, NotFoundError, ReconnectError, StoreError, isConflictError, isReconnectError } from '../errors'
import {
  supportsOutbox,
  supportsRetention,
  type ConversationStore,
  type OutboxWrite,
  type StoreWrite,
  type StoreWriteResult,
} from '../store/conversation-store'
import { flatString } from '../ids'
import { memoryStoreInternals } from '../store/memory-store'
import { cloneRecord, isSameRecord } from '../store/record'
import type { ConversationRecord, ServiceEvent } from '../types'

/**
 * The service's only way to its store: every failure other than a conflict comes out as a
 * {@link StoreError} naming the operation, and a write whose reply was lost is read back.
 */
export interface StoreGateway {
  /** The stored record, or `undefined`. */
  get(id: string): Promise<ConversationRecord | undefined>
  /** The stored record, or {@link NotFoundError}. */
  load(id: string): Promise<ConversationRecord>
  /**
   * Compare-and-set on `expectedVersion` (`null` = create); stamps `record.writeId` in place. With
   * `outbox` (and a store that has one), the write's events are stored in the same atomic step.
   */
  save(record: ConversationRecord, expectedVersion: number | null, outbox?: OutboxWrite): Promise<ConversationRecord>
  /**
   * Whether the store writes batches itself (`putMany`, or a memory store's own batch write while its
   * `put` and `due` are its own); without it {@link StoreGateway.saveMany} makes one `put` each. A
   * function, not a getter: a getter in the gateway's object literal would make it a dictionary-mode
   * object in V8, and every call through it slower.
   */
  batched(): boolean
  /**
   * Several compare-and-set writes of different conversations, each stamped like a `save`; one
   * outcome per write, in order: landed (it is stored), or the error its own `save` would have thrown
   * (a `ConflictError` with its read-back, or a `StoreError`). A batch whose reply was lost is told
   * apart write by write: each is written again on its own, and a landed one is found by its
   * `writeId`, as `save` does. The records are handed over as to {@link StoreGateway.saveOwned}.
   */
  saveMany(writes: readonly SaveWrite[]): Promise<SaveOutcome[]>
  /**
   * `save` of a record the caller hands over: it never changes it afterwards, nor gives it (or any
   * object in it) to anyone who might, so a memory store may keep it instead of a copy.
   */
  saveOwned(record: ConversationRecord, expectedVersion: number | null, outbox?: OutboxWrite): Promise<ConversationRecord>
  /** The conversation whose link is `reconnectId`, or `undefined`. */
  getByReconnectId(reconnectId: string): Promise<ConversationRecord | undefined>
  /** The customer's resumable conversation on the widget at `now`, or `undefined`. */
  findResumable(widgetId: string, customerId: string, now: number): Promise<ConversationRecord | undefined>
  /**
   * Up to `limit` records with a deadline at or before `now`; unreadable ones go to `onBadRecord`.
   * They may be a memory store's own copies: the caller never changes them, nor gives them (or any
   * object in them) to anyone who might.
   */
  due(
    now: number,
    limit: number,
    onBadRecord?: (conversationId: string, cause: unknown) => void,
    claimer?: string,
  ): Promise<ConversationRecord[]>
  /** The earliest deadline in the store, or `null`. */
  nextDueAt(): Promise<number | null>
  /** Whether the store has `delete` and `byCustomer` (retention and erase). */
  readonly retention: boolean
  /** Compare-and-set delete; `false` when absent; `not-supported` without the store's `delete`. */
  delete(id: string, expectedVersion: number): Promise<boolean>
  /** The customer's records, any state; `not-supported` without the store's `byCustomer`. */
  byCustomer(customerId: string): Promise<ConversationRecord[]>
  /** Whether the store has an outbox (`claimEvents`, `ackEvents`, `nextEventAt`). */
  readonly outbox: boolean
  /** Claims pending events visible at `now` for `leaseMs`; `[]` without an outbox. */
  claimEvents(now: number, leaseMs: number, limit: number, onBadEntry: (id: string, cause: unknown) => void): Promise<ServiceEvent[]>
  /** Deletes delivered events from the outbox; nothing without one. */
  ackEvents(ids: readonly string[]): Promise<void>
  /** The earliest visibility time of a pending event, or `null` (always `null` without an outbox). */
  nextEventAt(): Promise<number | null>
}

/** One write of {@link StoreGateway.saveMany}. */
export interface SaveWrite {
  record: ConversationRecord
  expectedVersion: number
  outbox: OutboxWrite | undefined
}

/** What became of one write of {@link StoreGateway.saveMany}. */
export type SaveOutcome = { readonly ok: true } | { readonly ok: false; readonly error: unknown }

/** The outcome of every write that landed: one object for all of them. */
const LANDED: SaveOutcome = Object.freeze({ ok: true })

// The record a conflicting write's read-back found, so the caller's next attempt need not read it again.
const readBacks = new WeakMap<object, ConversationRecord | undefined>()

/**
 * The stored record as the gateway read it back after `conflict` (`undefined`: gone, or not read);
 * `null` when the conflict did not come from the gateway's read-back.
 */
export function readBackOf(conflict: unknown): ConversationRecord | undefined | null {
  if (typeof conflict !== 'object' || conflict === null || !readBacks.has(conflict)) return null
  return readBacks.get(conflict)
}

/** What a store written for Part I (without `delete`/`byCustomer`) answers retention and erase with. */
export function notSupported(what: string): ReconnectError {
  return new ReconnectError(
    'not-supported',
    `${what} needs a store with delete() and byCustomer(); this store has not got them (see docs/retention.md)`,
  )
}

/** A store's failure as the service reports it: conflicts and StoreErrors pass, the rest is wrapped. */
export function storeFailure(error: unknown, operation: string, conversationId: string | undefined): unknown {
  if (isConflictError(error)) return error
  if (isReconnectError(error) && error.code === 'store-failure') return error
  return new StoreError(operation, { cause: error, ...(conversationId === undefined ? {} : { conversationId }) })
}

/** Wraps `store` in the service's error rules. */
export function createStoreGateway(store: ConversationStore): StoreGateway {
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

  const outbox = supportsOutbox(store)
  /** A write's events as the store takes them: only a store with an outbox, and only when there are any. */
  const storedEvents = (events: OutboxWrite | undefined): OutboxWrite | undefined =>
    outbox && events !== undefined && events.events.length > 0 ? events : undefined
  // A memory store's copy-free `put` and `due` (see MemoryStoreInternals), used where the service
  // keeps their promise: the sweep.
  const memory = memoryStoreInternals(store)

  /**
   * A compare-and-set write. When the store fails, the write may still have landed (the reply was
   * lost), and a conflict may be this very write found again (ioredis re-sends a script that got no
   * reply after a reconnect, and the re-sent one meets the first): one read tells, so a landed write
   * is reported as done, with its events, instead of leaving the host to retry into a no-op that
   * reports nothing.
   *
   * `record` is always one this service has just built, never one a caller or the store holds, so
   * it is stamped in place instead of being copied once more.
   */
  function stamp(record: ConversationRecord): void {
    // Stamped per write: a read-back can then tell this write from an identical one by another node.
    writes += 1
    record.writeId = flatString(`${writerId}.${writes.toString(36)}`)
  }

  function save(record: ConversationRecord, expectedVersion: number | null, events?: OutboxWrite): Promise<ConversationRecord> {
    return write(record, expectedVersion, events, store.put)
  }

  function write(
    record: ConversationRecord,
    expectedVersion: number | null,
    events: OutboxWrite | undefined,
    put: (record: ConversationRecord, expectedVersion: number | null, pending?: OutboxWrite) => Promise<void>,
  ): Promise<ConversationRecord> {
    stamp(record)
    return writeStamped(record, expectedVersion, events, put)
  }

  function writeStamped(
    record: ConversationRecord,
    expectedVersion: number | null,
    events: OutboxWrite | undefined,
    put: (record: ConversationRecord, expectedVersion: number | null, pending?: OutboxWrite) => Promise<void>,
  ): Promise<ConversationRecord> {
    // Not an async function: every service call writes, and a suspended async frame costs more
    // than the two callbacks.
    let pending: Promise<void>
    try {
      const stored = storedEvents(events)
      pending = Promise.resolve(
        stored !== undefined ? put.call(store, record, expectedVersion, stored) : put.call(store, record, expectedVersion),
      )
    } catch (error) {
      return landedAnyway(record, storeFailure(error, 'put', record.id))
    }
    return pending.then(
      () => record,
      (error: unknown) => landedAnyway(record, storeFailure(error, 'put', record.id)),
    )
  }

  /** After a failed write: `record` if it was stored all the same, else the failure. */
  async function landedAnyway(record: ConversationRecord, error: unknown): Promise<ConversationRecord> {
    // Any failure of the read-back (also a synchronous throw) means "unknown": the write's error stands.
    let read = true
    const stored = await Promise.resolve()
      .then(() => store.get(record.id))
      .catch(() => {
        read = false
        return undefined
      })
    // `writeId` is in the comparison: an identical record another node wrote is not this write.
    if (stored !== undefined && isSameRecord(stored, record)) return record
    if (isConflictError(error) && read) readBacks.set(error, stored)
    throw error
  }

  const putMany = store.putMany?.bind(store)

  function saveMany(batch: readonly SaveWrite[]): Promise<SaveOutcome[]> {
    for (const write of batch) stamp(write.record)
    const writes = (of: readonly SaveWrite[]): StoreWrite[] =>
      of.map(({ record, expectedVersion, outbox: events }) => {
        const stored = storedEvents(events)
        return stored !== undefined ? { record, expectedVersion, outbox: stored } : { record, expectedVersion }
      })
    // A memory store's own: the records are handed over (the sweep never changes one it planned),
    // and the whole batch is written at once, without a promise per write.
    if (memory?.untouched()) {
      let results: StoreWriteResult[] | undefined
      try {
        // As they are: the memory store has an outbox, and it stores no entry of a write without events.
        results = memory.keepMany(batch)
      } catch {
        // Refused as a whole (a record it cannot take): each write on its own tells which.
      }
      if (results !== undefined) return outcomesOf(batch, results)
      return eachOnItsOwn(batch)
    }
    // Records a memory store's sweep planned from the store's own copies: a host's `putMany` or
    // `put` in its place gets copies, never objects the store holds.
    const handed = memory === undefined ? batch : batch.map((write) => ({ ...write, record: cloneRecord(write.record) }))
    if (putMany === undefined || batch.length <= 1) return eachOnItsOwn(handed)
    return Promise.resolve()
      .then(() => putMany(writes(handed)))
      .then(
        (results: unknown) =>
          Array.isArray(results) && results.length === batch.length ? outcomesOf(handed, results) : eachOnItsOwn(handed),
        // The batch failed, or its reply was lost: each write on its own, as `save` tells those apart.
        () => eachOnItsOwn(handed),
      )
  }

  /** The outcomes of a batch the store answered write by write; a conflict is read back once, like `save`'s. */
  function outcomesOf(batch: readonly SaveWrite[], results: readonly unknown[]): Promise<SaveOutcome[]> {
    const outcomes: (SaveOutcome | Promise<SaveOutcome>)[] = []
    let waiting = false
    for (let k = 0; k < batch.length; k += 1) {
      const write = batch[k]!
      if (results[k] === 'written') {
        outcomes.push(LANDED)
        continue
      }
      waiting = true
      outcomes.push(
        landedAnyway(write.record, new ConflictError(write.record.id, write.expectedVersion)).then(
          (): SaveOutcome => LANDED,
          (failure: unknown): SaveOutcome => ({ ok: false, error: failure }),
        ),
      )
    }
    // Every write landed (the sweep's usual batch): no promise per write.
    return waiting ? Promise.all(outcomes) : Promise.resolve(outcomes as SaveOutcome[])
  }

  /** One `put` per write, at once, not one after the other: against a store that is down, they fail together. */
  function eachOnItsOwn(batch: readonly SaveWrite[]): Promise<SaveOutcome[]> {
    return Promise.all(
      batch.map((write) =>
        writeStamped(write.record, write.expectedVersion, write.outbox, store.put).then(
          (): SaveOutcome => LANDED,
          (error: unknown): SaveOutcome => ({ ok: false, error }),
        ),
      ),
    )
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

  return {
    get: (id) => storeCall('get', id, () => store.get(id)),
    load,
    save,
    batched: () => putMany !== undefined || memory?.untouched() === true,
    saveMany,
    saveOwned:
      memory === undefined
        ? save
        : (record, expectedVersion, events) =>
            memory.untouched()
              ? write(record, expectedVersion, events, memory.keep)
              : // A host's `put`, put in place after the record was planned from the store's own copies
                // (`share`): it gets a copy, never objects the store holds.
                save(cloneRecord(record), expectedVersion, events),
    getByReconnectId: (reconnectId) => storeCall('getByReconnectId', undefined, () => store.getByReconnectId(reconnectId)),
    findResumable: (widgetId, customerId, now) =>
      storeCall('findResumable', undefined, () => store.findResumable(widgetId, customerId, now)),
    due: (now, limit, onBadRecord, claimer) =>
      storeCall('due', undefined, () =>
        memory?.untouched()
          ? memory.share(now, limit, claimer === undefined ? undefined : { claimer })
          : onBadRecord === undefined && claimer === undefined
            ? store.due(now, limit)
            : store.due(now, limit, {
                ...(onBadRecord === undefined ? {} : { onBadRecord }),
                ...(claimer === undefined ? {} : { claimer }),
              }),
      ),
    nextDueAt: () => storeCall('nextDueAt', undefined, () => store.nextDueAt()),
    retention: supportsRetention(store),
    outbox,
    claimEvents: (now, leaseMs, limit, onBadEntry) =>
      supportsOutbox(store)
        ? storeCall('claimEvents', undefined, () => store.claimEvents(now, leaseMs, limit, { onBadEntry }))
        : Promise.resolve([]),
    ackEvents: (ids) => (supportsOutbox(store) ? storeCall('ackEvents', undefined, () => store.ackEvents(ids)) : Promise.resolve()),
    nextEventAt: () => (supportsOutbox(store) ? storeCall('nextEventAt', undefined, () => store.nextEventAt()) : Promise.resolve(null)),
    delete: (id, expectedVersion) =>
      supportsRetention(store) ? storeCall('delete', id, () => store.delete(id, expectedVersion)) : Promise.reject(notSupported('delete')),
    byCustomer: (customerId) =>
      supportsRetention(store)
        ? storeCall('byCustomer', undefined, () => store.byCustomer(customerId))
        : Promise.reject(notSupported('byCustomer')),
  }
}
