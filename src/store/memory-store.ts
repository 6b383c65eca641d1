import { ConflictError, ReconnectError, SettingsError, StoreError, isConflictError, isReconnectError } from '../errors'
import type { ConversationRecord, ServiceEvent } from '../types'
import type { ConversationStore, OutboxWrite, StoreWrite, StoreWriteResult } from './conversation-store'
import { checkRecordForPut, checkRecordForPutOver, cloneRecord, copiesFaithfully, copyRecordFields, hasExtraFields } from './record'

/**
 * The handle of a stored copy in the {@link DeadlineHeap}, under a symbol: no copy handed out has
 * it (copies are made field by field), and the store's own copy gets it once, when it is stored.
 */
const HANDLE = Symbol('deadlineHandle')
type Handled = ConversationRecord & { [HANDLE]?: number }

/** Children per node of the deadline heap: four halve the depth of a binary heap, and sit in one cache line. */
const ARITY = 4

/**
 * A min-heap of the stored records that have a deadline, one entry per record. A record's entry is
 * found through a small integer handle kept on its stored copy, so a write that moves or drops a
 * deadline fixes that one entry in O(log n): no write ever rebuilds the heap (with lazy deletion,
 * stale entries piled up until one write paid for a rebuild of the whole heap: 282 ms on a million
 * records). Every array holds numbers only, apart from handle → record: moving entries touches no
 * record object. Equal deadlines keep the order they were set in (a sequence number).
 */
class DeadlineHeap {
  // By slot in the heap.
  private readonly ats: number[] = []
  private readonly seqs: number[] = []
  private readonly handles: number[] = []
  // By handle.
  private readonly slots: number[] = []
  private readonly records: (ConversationRecord | undefined)[] = []
  // The claim on an entry (see `claim`): the claimer's number (0: none) and until when. Numbers in
  // arrays, not a map of objects: a sweep claims every record it is handed.
  private readonly claimedBy: number[] = []
  private readonly claimedUntil: number[] = []
  private readonly freeHandles: number[] = []
  private stamp = 0

  get size(): number {
    return this.ats.length
  }

  /** `record` (a stored copy) replaces `previous` (the copy it supersedes, if any): its entry follows. */
  place(record: ConversationRecord, previous: ConversationRecord | undefined): void {
    const held = previous === undefined ? undefined : (previous as Handled)[HANDLE]
    const handle = held !== undefined && this.records[held] === previous ? held : undefined
    const at = record.nextDueAt
    if (handle === undefined) {
      if (at !== null) this.insert(record, at)
      return
    }
    if (at === null) {
      this.remove(handle)
      return
    }
    this.records[handle] = record
    ;(record as Handled)[HANDLE] = handle
    const slot = this.slots[handle]!
    if (this.ats[slot] === at) return
    // A claim is on a deadline: one that moved is new work for every sweeper.
    this.claimedBy[handle] = 0
    this.ats[slot] = at
    this.seqs[slot] = this.stamp++
    this.sift(slot)
  }

  /** Drops the entry of `record` (a stored copy), if it has one. */
  drop(record: ConversationRecord): void {
    const handle = (record as Handled)[HANDLE]
    if (handle !== undefined && this.records[handle] === record) this.remove(handle)
  }

  /** The earliest deadline, or `undefined` when the heap is empty. */
  topAt(): number | undefined {
    return this.ats[0]
  }

  /**
   * Visits the entries in deadline order, without taking them out, until `visit` returns false.
   * A second, small heap holds the frontier: the children of every entry visited so far.
   */
  walk(visit: (at: number, record: ConversationRecord, handle: number) => boolean): void {
    const size = this.ats.length
    if (size === 0) return
    const earlier = (i: number, j: number): boolean => this.earlier(i, j)
    const frontier: number[] = [0]
    while (frontier.length > 0) {
      const i = popIndex(frontier, earlier)
      const handle = this.handles[i]!
      if (!visit(this.ats[i]!, this.records[handle]!, handle)) return
      const first = ARITY * i + 1
      for (let child = first; child < first + ARITY && child < size; child += 1) pushIndex(frontier, child, earlier)
    }
  }

  /**
   * Claims the entry `handle` (as `walk` names it) for claimer number `by` (≥ 1) until `until`,
   * unless another claimer's claim on it lasts past `now`: then it answers false. A claim lasts
   * until it ends, the deadline moves or the entry goes.
   */
  claim(handle: number, by: number, now: number, until: number): boolean {
    const holder = this.claimedBy[handle]
    if (holder !== undefined && holder !== 0 && holder !== by && this.claimedUntil[handle]! > now) return false
    this.claimedBy[handle] = by
    this.claimedUntil[handle] = until
    return true
  }

  private earlier(i: number, j: number): boolean {
    const a = this.ats[i]!
    const b = this.ats[j]!
    return a < b || (a === b && this.seqs[i]! < this.seqs[j]!)
  }

  private insert(record: ConversationRecord, at: number): void {
    const handle = this.freeHandles.pop() ?? this.records.length
    this.records[handle] = record
    ;(record as Handled)[HANDLE] = handle
    this.claimedBy[handle] = 0
    const slot = this.ats.length
    this.ats.push(at)
    this.seqs.push(this.stamp++)
    this.handles.push(handle)
    this.slots[handle] = slot
    this.sift(slot)
  }

  private remove(handle: number): void {
    const slot = this.slots[handle]!
    this.records[handle] = undefined
    this.claimedBy[handle] = 0
    this.freeHandles.push(handle)
    const at = this.ats.pop()!
    const seq = this.seqs.pop()!
    const moved = this.handles.pop()!
    if (slot === this.ats.length) return
    this.ats[slot] = at
    this.seqs[slot] = seq
    this.handles[slot] = moved
    this.slots[moved] = slot
    this.sift(slot)
  }

  /** Moves the entry at `slot` up or down to where it belongs: a hole travels, the entry is written once. */
  private sift(slot: number): void {
    const { ats, seqs, handles, slots } = this
    const at = ats[slot]!
    const seq = seqs[slot]!
    const handle = handles[slot]!
    let i = slot
    while (i > 0) {
      const parent = ((i - 1) / ARITY) | 0
      const pa = ats[parent]!
      if (!(at < pa || (at === pa && seq < seqs[parent]!))) break
      ats[i] = pa
      seqs[i] = seqs[parent]!
      handles[i] = handles[parent]!
      slots[handles[i]!] = i
      i = parent
    }
    if (i === slot) {
      const size = ats.length
      for (;;) {
        const first = ARITY * i + 1
        if (first >= size) break
        let best = first
        for (let child = first + 1; child < first + ARITY && child < size; child += 1) {
          if (ats[child]! < ats[best]! || (ats[child] === ats[best] && seqs[child]! < seqs[best]!)) best = child
        }
        const ba = ats[best]!
        if (!(ba < at || (ba === at && seqs[best]! < seq))) break
        ats[i] = ba
        seqs[i] = seqs[best]!
        handles[i] = handles[best]!
        slots[handles[i]!] = i
        i = best
      }
    }
    ats[i] = at
    seqs[i] = seq
    handles[i] = handle
    slots[handle] = i
  }
}

function swap<T>(values: T[], i: number, j: number): void {
  const tmp = values[i]!
  values[i] = values[j]!
  values[j] = tmp
}

function pushIndex(heap: number[], value: number, earlier: (a: number, b: number) => boolean): void {
  heap.push(value)
  let i = heap.length - 1
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (!earlier(heap[i]!, heap[parent]!)) break
    swap(heap, i, parent)
    i = parent
  }
}

function popIndex(heap: number[], earlier: (a: number, b: number) => boolean): number {
  const top = heap[0]!
  const last = heap.pop()!
  if (heap.length === 0) return top
  heap[0] = last
  let i = 0
  for (;;) {
    const left = 2 * i + 1
    const right = left + 1
    let smallest = i
    if (left < heap.length && earlier(heap[left]!, heap[smallest]!)) smallest = left
    if (right < heap.length && earlier(heap[right]!, heap[smallest]!)) smallest = right
    if (smallest === i) break
    swap(heap, i, smallest)
    i = smallest
  }
  return top
}

/**
 * Ids filed under keys (customers, agents). Most keys hold one id, kept as itself: a Set costs
 * far more memory than the id, so one is made only from the second id on.
 */
type Index = Map<string, string | Set<string>>

function addTo(index: Index, key: string, id: string): void {
  const ids = index.get(key)
  if (ids === undefined) index.set(key, id)
  else if (typeof ids !== 'string') ids.add(id)
  else if (ids !== id) index.set(key, new Set([ids, id]))
}

function removeFrom(index: Index, key: string, id: string): void {
  const ids = index.get(key)
  if (ids === undefined) return
  if (typeof ids === 'string') {
    if (ids === id) index.delete(key)
    return
  }
  ids.delete(id)
  if (ids.size === 0) index.delete(key)
}

function idsUnder(index: Index, key: string): Iterable<string> {
  const ids = index.get(key)
  if (ids === undefined) return []
  return typeof ids === 'string' ? [ids] : ids
}

/**
 * How long a record the `due` of one service's sweep returned stays hidden from the sweeps of other
 * services on the same store (or until its deadline moves): long enough for a sweep's batch, and
 * short enough that a service dropped mid-sweep holds nothing back for long.
 */
const MEMORY_CLAIM_MS = 30_000

const RECORDS = Symbol('records')

/**
 * Where a memory store's `size` comes from: one getter on a shared prototype. Written into the
 * store's object literal, a getter made every store a dictionary-mode object in V8, and through it
 * all the records of a store that was already gone survived every young-generation collection until
 * the next full one. The map sits under a symbol rather than in a private field, so that `size` also
 * reads through a `Proxy` of the store.
 */
class StoreSize {
  readonly [RECORDS]: ReadonlyMap<string, unknown>

  constructor(records: ReadonlyMap<string, unknown>) {
    this[RECORDS] = records
  }

  /** How many conversations the store holds. */
  get size(): number {
    return this[RECORDS].size
  }
}

/** Refuses an outbox write the other stores could not hold either, before anything is written. */
function checkOutboxWrite(pending: OutboxWrite, what: string): void {
  if (typeof pending !== 'object' || pending === null || !Array.isArray(pending.events) || !Number.isFinite(pending.visibleAt)) {
    throw new ReconnectError('invalid-argument', `${what} outbox must be { events: ServiceEvent[], visibleAt: epoch ms }`)
  }
  for (const event of pending.events) {
    if (typeof event !== 'object' || event === null || typeof event.id !== 'string' || event.id === '') {
      throw new ReconnectError('invalid-argument', `${what} outbox events must be objects with a non-empty string id`)
    }
  }
}

/** Options of {@link createMemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * How long a `closed` conversation is kept after it closed (its `updatedAt`), in milliseconds;
   * kept for the life of the process when absent. Closed conversations older than this are dropped
   * when the sweeper next asks for due work (`due`), so a long-running node does not grow forever.
   * A dropped conversation's link then reads as `not-found`. The widget setting `keepClosedFor`
   * (7 days by default, applied by the sweeper through `delete`) does the same for every store; this
   * option is an extra, store-wide upper bound that also covers records closed with retention off.
   * @default Infinity
   */
  keepClosedFor?: number
}

/**
 * The embedded store: everything in this process's memory, indexed so that every query costs in
 * proportion to what it returns. Good for one backend node, tests and demos; use the Redis or
 * PostgreSQL store when several nodes share conversations.
 *
 * Records go in and come out as copies, so no caller can change what is stored. Properties a host
 * adds to a record besides its own fields are kept as well; history entries are kept as
 * `{ at, event, from, to }`.
 *
 * @example
 * const service = createReconnectService({ settings, store: createMemoryStore({ keepClosedFor: 86_400_000 }) })
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): ConversationStore & { readonly size: number } {
  const keepClosedFor = options?.keepClosedFor ?? Number.POSITIVE_INFINITY
  if (typeof keepClosedFor !== 'number' || Number.isNaN(keepClosedFor) || keepClosedFor < 0) {
    throw new SettingsError([
      { path: 'keepClosedFor', message: 'must be a number of milliseconds ≥ 0 (or absent, to keep closed conversations)' },
    ])
  }
  // Closed conversations in the order they closed; a closed record never changes again.
  const closedIds: string[] = []
  let closedHead = 0

  const records = new Map<string, ConversationRecord>()
  // Stored records that carry properties besides a record's own fields: only these need the slower
  // copy that keeps them.
  const withExtras = new WeakSet<ConversationRecord>()
  // Until a first such record, no look-up in `withExtras`: one costs a read of a record's property
  // storage, a cache miss per record of a big sweep (3% of its time on a million records).
  let anyExtras = false
  const hasExtras = (record: ConversationRecord): boolean => anyExtras && withExtras.has(record)
  const copyOut = (record: ConversationRecord): ConversationRecord => (hasExtras(record) ? cloneRecord(record) : copyRecordFields(record))
  const byReconnectId = new Map<string, string>()
  // Reconnectable records by customer, of every widget: a customer waits on few widgets at once, and
  // a key of its own for each (widget, customer) pair cost a new string, its hash and a comparison
  // with a stored key on every write that changed it. A record that stops being reconnectable stays
  // filed under its customer until `findResumable` next meets it there, it changes customer or it is
  // removed: the sweep's write that ends a window then touches no index entry of the customer's (a
  // look-up in a map of every waiting customer, a tenth of a million-record sweep's time).
  const resumable: Index = new Map()
  const held: Index = new Map()
  const byCustomerId: Index = new Map()
  const deadlines = new DeadlineHeap()
  // Sweeps of several services on this one store: each claimer's number in the deadline heap's
  // claims (a moved deadline or a removed record drops its claim there). One entry per service that
  // ever swept this store, kept for the store's life: a few dozen bytes each.
  const claimers = new Map<string, number>()
  // The outbox: event id → the event and when a claim may take it. Entries are acked within moments
  // of their write, so the few pending ones are scanned rather than indexed.
  const outbox = new Map<string, { event: ServiceEvent; visibleAt: number }>()

  function holder(record: ConversationRecord | undefined): string | undefined {
    return record?.capacityHeld && record.agentId !== null ? record.agentId : undefined
  }

  // With 100 000 records every index access is a cache miss, so a write touches only the index
  // entries whose membership it changes.
  function reindex(record: ConversationRecord, previous: ConversationRecord | undefined): void {
    if (previous !== undefined && previous.reconnectId !== record.reconnectId) {
      if (byReconnectId.get(previous.reconnectId) === previous.id) byReconnectId.delete(previous.reconnectId)
    }
    if (previous === undefined || previous.reconnectId !== record.reconnectId) byReconnectId.set(record.reconnectId, record.id)
    const wasCustomer = previous?.customerId ?? null
    // Filed under its customer already unless it just became reconnectable or changed customer.
    if (wasCustomer !== record.customerId && wasCustomer !== null) removeFrom(resumable, wasCustomer, record.id)
    if (record.state === 'reconnectable' && record.customerId !== null) {
      if (previous?.state !== 'reconnectable' || wasCustomer !== record.customerId) addTo(resumable, record.customerId, record.id)
    }
    const wasHeldBy = holder(previous)
    const isHeldBy = holder(record)
    if (wasHeldBy !== isHeldBy) {
      if (wasHeldBy !== undefined) removeFrom(held, wasHeldBy, record.id)
      if (isHeldBy !== undefined) addTo(held, isHeldBy, record.id)
    }
    if (wasCustomer !== record.customerId) {
      if (wasCustomer !== null) removeFrom(byCustomerId, wasCustomer, record.id)
      if (record.customerId !== null) addTo(byCustomerId, record.customerId, record.id)
    }
    deadlines.place(record, previous)
  }

  /** Drops a record and every index entry naming it. */
  function remove(record: ConversationRecord): void {
    records.delete(record.id)
    deadlines.drop(record)
    if (byReconnectId.get(record.reconnectId) === record.id) byReconnectId.delete(record.reconnectId)
    const wasHeldBy = holder(record)
    if (wasHeldBy !== undefined) removeFrom(held, wasHeldBy, record.id)
    if (record.customerId !== null) {
      removeFrom(byCustomerId, record.customerId, record.id)
      removeFrom(resumable, record.customerId, record.id)
    }
  }

  function noteClosed(record: ConversationRecord, previous: ConversationRecord | undefined): void {
    if (keepClosedFor === Number.POSITIVE_INFINITY || record.state !== 'closed' || previous?.state === 'closed') return
    closedIds.push(record.id)
  }

  function dropOldClosed(now: number): void {
    while (closedHead < closedIds.length) {
      const id = closedIds[closedHead]!
      const record = records.get(id)
      if (record !== undefined && record.state === 'closed') {
        if (record.updatedAt + keepClosedFor > now) break
        remove(record)
      }
      closedHead += 1
    }
    if (closedHead > 1024 && closedHead * 2 > closedIds.length) {
      closedIds.splice(0, closedHead)
      closedHead = 0
    }
  }

  /**
   * The copy a write stores, checked (a `ReconnectError` `'invalid-argument'` when the record is
   * refused). With `keep`, the record itself, unless it carries a host's properties: the service
   * hands it over (plain data it built). Otherwise a copy is made first and the copy is checked, so
   * what is stored is exactly what was checked: a record whose getters showed the check one value
   * and the copy another could store a value no check has seen. Either way, what the record keeps
   * of the stored copy as it is (its keys, its history entry objects) is not read again (see
   * `checkRecordForPutOver`): every stored copy was checked like this when it was stored.
   */
  function storable(record: ConversationRecord, expectedVersion: number | null, what: string, keep: boolean): ConversationRecord {
    let copy: ConversationRecord
    let extra: boolean
    try {
      if (!copiesFaithfully(record)) throw new TypeError('not a record')
      extra = hasExtraFields(record)
      copy = extra ? cloneRecord(record) : keep ? record : copyRecordFields(record)
    } catch (error) {
      // Not a record to copy: the check of the record as it is says why.
      checkRecordForPut(record, expectedVersion, what)
      if (isReconnectError(error)) throw error
      throw new ReconnectError('invalid-argument', `${what}: the record's properties cannot be read`, { cause: error })
    }
    // Refused here as the Redis and PostgreSQL stores refuse it, before anything is written: a
    // record the indexes cannot order (a BigInt or Symbol deadline) would break every later `due`.
    checkRecordForPutOver(copy, expectedVersion, what, records.get(copy.id))
    if (extra) {
      withExtras.add(copy)
      anyExtras = true
    }
    return copy
  }

  /**
   * The checks of a write's place in the store, in `put`'s order after the record's own: its version
   * (a `ConflictError`), then its reconnect id. Returns the stored copy it supersedes.
   */
  function checkPlace(
    record: ConversationRecord,
    expectedVersion: number | null,
    operation: 'put' | 'putMany',
  ): ConversationRecord | undefined {
    const current = records.get(record.id)
    const currentVersion = current === undefined ? null : current.version
    if (currentVersion !== expectedVersion) throw new ConflictError(record.id, expectedVersion)
    // A reconnect id opens exactly one conversation: taking over another's id would strand its link.
    // The record's own id, unchanged, is its own (one look-up less in a map of every record).
    const holder = current !== undefined && current.reconnectId === record.reconnectId ? record.id : byReconnectId.get(record.reconnectId)
    if (holder !== undefined && holder !== record.id && records.get(holder)?.reconnectId === record.reconnectId) {
      throw new StoreError(operation, {
        conversationId: record.id,
        cause: new Error(`reconnect id "${record.reconnectId}" already belongs to another conversation`),
      })
    }
    return current
  }

  /** Stores `copy`, a checked write's stored copy (see `storable`), with its index entries and events. */
  function apply(copy: ConversationRecord, current: ConversationRecord | undefined, pending: OutboxWrite | undefined): void {
    records.set(copy.id, copy)
    reindex(copy, current)
    noteClosed(copy, current)
    // The same synchronous step as the record: no other call can see one without the other.
    if (pending !== undefined) {
      for (const event of pending.events) outbox.set(event.id, { event: { ...event }, visibleAt: pending.visibleAt })
    }
  }

  /** `put`; with `keep`, the record itself becomes the stored copy: one copy less per write. */
  function write(record: ConversationRecord, expectedVersion: number | null, pending: OutboxWrite | undefined, keep: boolean): void {
    const copy = storable(record, expectedVersion, 'memory store: put()', keep)
    const current = checkPlace(copy, expectedVersion, 'put')
    if (pending !== undefined) checkOutboxWrite(pending, 'memory store: put()')
    apply(copy, current, pending)
  }

  /**
   * `putMany` as the optional store method's contract has it, keeping each written record as `keep`
   * does (see {@link MemoryStoreInternals}): every write is checked, and its stored copy made,
   * before any is stored, so a call lands whole or not at all. Each write is checked as `put` checks
   * it, with two writes of one conversation refused right after the record's own check. A reconnect
   * id two writes of the call would both take is refused as `put` refuses one another conversation
   * holds, even where one of the two writes would release it first.
   */
  function keepMany(writes: readonly StoreWrite[]): StoreWriteResult[] {
    const what = 'memory store: putMany()'
    if (!Array.isArray(writes)) throw new ReconnectError('invalid-argument', `${what} needs an array of writes`)
    const results: StoreWriteResult[] = []
    // Each write that lands: its stored copy, the copy it supersedes, its events.
    const landing: [ConversationRecord, ConversationRecord | undefined, OutboxWrite | undefined][] = []
    const ids = new Set<string>()
    const claimed = new Set<string>()
    for (const write of writes) {
      if (typeof write !== 'object' || write === null) {
        throw new ReconnectError('invalid-argument', `${what} takes writes of { record, expectedVersion, outbox? }`)
      }
      const { record, expectedVersion, outbox: pending } = write
      const copy = storable(record, expectedVersion, what, true)
      if (ids.has(copy.id)) throw new ReconnectError('invalid-argument', `${what} writes one conversation twice in one call`)
      ids.add(copy.id)
      let current: ConversationRecord | undefined
      try {
        current = checkPlace(copy, expectedVersion, 'putMany')
      } catch (error) {
        if (!isConflictError(error)) throw error
        results.push('conflict')
        continue
      }
      if (pending !== undefined) checkOutboxWrite(pending, what)
      if (current === undefined || current.reconnectId !== copy.reconnectId) {
        if (claimed.has(copy.reconnectId)) {
          throw new StoreError('putMany', {
            conversationId: copy.id,
            cause: new Error(`reconnect id "${copy.reconnectId}" is taken by two writes of one call`),
          })
        }
        claimed.add(copy.reconnectId)
      }
      results.push('written')
      landing.push([copy, current, pending])
    }
    // Nothing below can throw: every copy is made and every check passed.
    for (const [copy, current, pending] of landing) apply(copy, current, pending)
    return results
  }

  /** `due`, each record handed out as `out` makes it. */
  function dueRecords(
    now: number,
    limit: number,
    dueOptions: { claimer?: string } | undefined,
    out: (record: ConversationRecord) => ConversationRecord,
  ): ConversationRecord[] {
    dropOldClosed(now)
    const found: ConversationRecord[] = []
    const claimer = dueOptions?.claimer
    if (claimer === undefined || !Number.isFinite(now)) {
      deadlines.walk((at, record) => {
        if (found.length >= limit || at > now) return false
        found.push(out(record))
        return true
      })
      return found
    }
    let by = claimers.get(claimer)
    if (by === undefined) {
      by = claimers.size + 1
      claimers.set(claimer, by)
    }
    const until = now + MEMORY_CLAIM_MS
    deadlines.walk((at, record, handle) => {
      if (found.length >= limit || at > now) return false
      if (deadlines.claim(handle, by, now, until)) found.push(out(record))
      return true
    })
    return found
  }

  const store = Object.assign(new StoreSize(records), {
    async get(id) {
      const record = records.get(id)
      return record === undefined ? undefined : copyOut(record)
    },

    async getByReconnectId(reconnectId) {
      const id = byReconnectId.get(reconnectId)
      const record = id === undefined ? undefined : records.get(id)
      return record === undefined ? undefined : copyOut(record)
    },

    async findResumable(widgetId, customerId, now) {
      let best: ConversationRecord | undefined
      for (const id of idsUnder(resumable, customerId)) {
        const record = records.get(id)
        if (record === undefined || record.state !== 'reconnectable') {
          // Filed when it was reconnectable: it is not any more.
          removeFrom(resumable, customerId, id)
          continue
        }
        const window = record.timers.window
        if (record.widgetId !== widgetId || window === undefined || now >= window) continue
        if (best === undefined || record.updatedAt > best.updatedAt) best = record
      }
      return best === undefined ? undefined : copyOut(best)
    },

    async put(record, expectedVersion, pending) {
      write(record, expectedVersion, pending, false)
    },

    async claimEvents(now, leaseMs, limit) {
      const visible: { event: ServiceEvent; visibleAt: number }[] = []
      for (const entry of outbox.values()) if (entry.visibleAt <= now) visible.push(entry)
      // Stable: equal visibility times keep the order they were written in.
      visible.sort((a, b) => a.visibleAt - b.visibleAt)
      const taken = visible.slice(0, Math.max(0, Math.ceil(limit)))
      for (const entry of taken) entry.visibleAt = now + leaseMs
      return taken.map((entry) => ({ ...entry.event }))
    },

    async ackEvents(ids) {
      for (const id of ids) outbox.delete(id)
    },

    async nextEventAt() {
      let earliest: number | null = null
      for (const entry of outbox.values()) if (earliest === null || entry.visibleAt < earliest) earliest = entry.visibleAt
      return earliest
    },

    async due(now, limit, dueOptions) {
      return dueRecords(now, limit, dueOptions, copyOut)
    },

    async nextDueAt() {
      return deadlines.topAt() ?? null
    },

    async heldBy(agentId) {
      const out: ConversationRecord[] = []
      for (const id of idsUnder(held, agentId)) {
        const record = records.get(id)
        if (record !== undefined) out.push(copyOut(record))
      }
      return out
    },

    async delete(id, expectedVersion) {
      const current = records.get(id)
      if (current === undefined) return false
      if (current.version !== expectedVersion) throw new ConflictError(id, expectedVersion)
      remove(current)
      return true
    },

    async byCustomer(customerId) {
      const out: ConversationRecord[] = []
      for (const id of idsUnder(byCustomerId, customerId)) {
        const record = records.get(id)
        if (record !== undefined) out.push(copyOut(record))
      }
      return out
    },
  } satisfies ConversationStore)
  const { put: ownPut, due: ownDue } = store
  // A property of the store's own, not an entry in a module-wide WeakMap: a WeakMap entry per store
  // kept the records of stores no longer in use alive through young-generation collections (a
  // lifecycle on fresh stores ran at 0.24x of the Map baseline with it, 0.31-0.33x without).
  const inner: MemoryStoreInternals = {
    // A `putMany` a host added to the store is its own way in for batches: the sweep then uses it.
    untouched: () => store.put === ownPut && store.due === ownDue && (store as ConversationStore).putMany === undefined,
    keep: async (record, expectedVersion, pending) => write(record, expectedVersion, pending, true),
    keepMany,
    // A stored copy with properties of a host's is copied all the same: the caller could not know of them.
    share: async (now, limit, dueOptions) =>
      dueRecords(now, limit, dueOptions, (record) => (hasExtras(record) ? cloneRecord(record) : record)),
  }
  Object.defineProperty(store, INTERNALS, { value: { owner: store, internals: inner } })
  return store
}

/**
 * What the service's sweep may use instead of a memory store's `put` and `due`, to skip copies it
 * does not need. Both are for callers that keep a promise the store cannot check, so they are
 * reachable only from the store object itself, under a symbol no spread copies (a host's wrapper of
 * a store, a spread or a `Proxy` never reaches them, and a store whose `put` or `due` was replaced
 * in place is not {@link MemoryStoreInternals.untouched}):
 * - `keep` is `put` where the store keeps the record it is given as its stored copy; the caller
 *   hands it over and never changes it, nor gives it (or any object in it) to anyone who might.
 * - `share` is `due` handing out the stored copies themselves; the caller never changes them, nor
 *   gives them (or any object in them) to anyone who might.
 * Stored copies are never changed by the store, apart from its own symbol-keyed deadline handle,
 * so what `share` hands out stays as it was.
 */
export interface MemoryStoreInternals {
  /**
   * Whether the store's own `put` and `due` are still in place, and no `putMany` was added to it: a
   * host that replaced either on the store object, or added a `putMany` (a spy, instrumentation),
   * gets every call through them, so the service then uses neither `keep`, `keepMany` nor `share`.
   */
  untouched(): boolean
  keep(record: ConversationRecord, expectedVersion: number | null, pending?: OutboxWrite): Promise<void>
  /**
   * `putMany` (the contract of the optional store method) keeping each written record as `keep`
   * does, at once: one result per write, and a call that is refused throws (writing nothing).
   */
  keepMany(writes: readonly StoreWrite[]): StoreWriteResult[]
  share(now: number, limit: number, dueOptions?: { claimer?: string }): Promise<ConversationRecord[]>
}

/** The key of a memory store's {@link MemoryStoreInternals}: not enumerable, so a spread does not copy it. */
const INTERNALS = /* @__PURE__ */ Symbol('chat-reconnect memory store internals')

/** The {@link MemoryStoreInternals} of `store` if it is a memory store itself (not a wrapper of one), else `undefined`. */
export function memoryStoreInternals(store: object): MemoryStoreInternals | undefined {
  const found = (store as { [INTERNALS]?: { owner: object; internals: MemoryStoreInternals } })[INTERNALS]
  // A Proxy of the store, or an object whose prototype it is, reads the property too: not theirs.
  return found !== undefined && found.owner === store ? found.internals : undefined
}
