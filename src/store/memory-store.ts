import { ConflictError, ReconnectError, SettingsError, StoreError } from '../errors'
import { flatString } from '../ids'
import type { ConversationRecord, ServiceEvent } from '../types'
import type { ConversationStore, OutboxWrite } from './conversation-store'
import { checkRecordForPut, cloneRecord, copyRecordFields, hasExtraFields } from './record'

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
  walk(visit: (at: number, record: ConversationRecord) => boolean): void {
    const size = this.ats.length
    if (size === 0) return
    const earlier = (i: number, j: number): boolean => this.earlier(i, j)
    const frontier: number[] = [0]
    while (frontier.length > 0) {
      const i = popIndex(frontier, earlier)
      if (!visit(this.ats[i]!, this.records[this.handles[i]!]!)) return
      const first = ARITY * i + 1
      for (let child = first; child < first + ARITY && child < size; child += 1) pushIndex(frontier, child, earlier)
    }
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

function customerKey(widgetId: string, customerId: string): string {
  // Kept as an index key for as long as the conversation waits: one flat string, not two pieces.
  return flatString(`${widgetId}\u0000${customerId}`)
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
function checkOutboxWrite(pending: OutboxWrite): void {
  if (typeof pending !== 'object' || pending === null || !Array.isArray(pending.events) || !Number.isFinite(pending.visibleAt)) {
    throw new ReconnectError('invalid-argument', 'memory store: put() outbox must be { events: ServiceEvent[], visibleAt: epoch ms }')
  }
  for (const event of pending.events) {
    if (typeof event !== 'object' || event === null || typeof event.id !== 'string' || event.id === '') {
      throw new ReconnectError('invalid-argument', 'memory store: put() outbox events must be objects with a non-empty string id')
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
  const copyOut = (record: ConversationRecord): ConversationRecord =>
    withExtras.has(record) ? cloneRecord(record) : copyRecordFields(record)
  const byReconnectId = new Map<string, string>()
  const resumable: Index = new Map()
  const held: Index = new Map()
  const byCustomerId: Index = new Map()
  const deadlines = new DeadlineHeap()
  // Sweeps of several services on this one store: id → who claimed the record at which deadline,
  // until when. A moved deadline or a removed record drops its claim.
  const claims = new Map<string, { by: string; at: number; until: number }>()
  // The outbox: event id → the event and when a claim may take it. Entries are acked within moments
  // of their write, so the few pending ones are scanned rather than indexed.
  const outbox = new Map<string, { event: ServiceEvent; visibleAt: number }>()

  function resumableKey(record: ConversationRecord | undefined): string | undefined {
    if (record === undefined || record.state !== 'reconnectable' || record.customerId === null) return undefined
    return customerKey(record.widgetId, record.customerId)
  }

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
    const wasResumable = resumableKey(previous)
    const isResumable = resumableKey(record)
    if (wasResumable !== isResumable) {
      if (wasResumable !== undefined) removeFrom(resumable, wasResumable, record.id)
      if (isResumable !== undefined) addTo(resumable, isResumable, record.id)
    }
    const wasHeldBy = holder(previous)
    const isHeldBy = holder(record)
    if (wasHeldBy !== isHeldBy) {
      if (wasHeldBy !== undefined) removeFrom(held, wasHeldBy, record.id)
      if (isHeldBy !== undefined) addTo(held, isHeldBy, record.id)
    }
    const wasCustomer = previous?.customerId ?? null
    if (wasCustomer !== record.customerId) {
      if (wasCustomer !== null) removeFrom(byCustomerId, wasCustomer, record.id)
      if (record.customerId !== null) addTo(byCustomerId, record.customerId, record.id)
    }
    deadlines.place(record, previous)
    if (claims.size > 0 && record.nextDueAt !== (previous?.nextDueAt ?? null)) claims.delete(record.id)
  }

  /** Drops a record and every index entry naming it. */
  function remove(record: ConversationRecord): void {
    records.delete(record.id)
    deadlines.drop(record)
    claims.delete(record.id)
    if (byReconnectId.get(record.reconnectId) === record.id) byReconnectId.delete(record.reconnectId)
    const wasResumable = resumableKey(record)
    if (wasResumable !== undefined) removeFrom(resumable, wasResumable, record.id)
    const wasHeldBy = holder(record)
    if (wasHeldBy !== undefined) removeFrom(held, wasHeldBy, record.id)
    if (record.customerId !== null) removeFrom(byCustomerId, record.customerId, record.id)
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

  return Object.assign(new StoreSize(records), {
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
      for (const id of idsUnder(resumable, customerKey(widgetId, customerId))) {
        const record = records.get(id)
        const window = record?.timers.window
        if (record === undefined || window === undefined || now >= window) continue
        if (best === undefined || record.updatedAt > best.updatedAt) best = record
      }
      return best === undefined ? undefined : copyOut(best)
    },

    async put(record, expectedVersion, pending) {
      // Refused here as the Redis and PostgreSQL stores refuse it, before anything is written: a
      // record the indexes cannot order (a BigInt or Symbol deadline) would break every later `due`.
      checkRecordForPut(record, expectedVersion, 'memory store: put()')
      const current = records.get(record.id)
      const currentVersion = current === undefined ? null : current.version
      if (currentVersion !== expectedVersion) throw new ConflictError(record.id, expectedVersion)
      // A reconnect id opens exactly one conversation: taking over another's id would strand its link.
      const holder = byReconnectId.get(record.reconnectId)
      if (holder !== undefined && holder !== record.id && records.get(holder)?.reconnectId === record.reconnectId) {
        throw new StoreError('put', {
          conversationId: record.id,
          cause: new Error(`reconnect id "${record.reconnectId}" already belongs to another conversation`),
        })
      }
      if (pending !== undefined) checkOutboxWrite(pending)
      const extra = hasExtraFields(record)
      const copy = extra ? cloneRecord(record) : copyRecordFields(record)
      if (extra) withExtras.add(copy)
      records.set(copy.id, copy)
      reindex(copy, current)
      noteClosed(copy, current)
      // The same synchronous step as the record: no other call can see one without the other.
      if (pending !== undefined) {
        for (const event of pending.events) outbox.set(event.id, { event: { ...event }, visibleAt: pending.visibleAt })
      }
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
      dropOldClosed(now)
      const found: ConversationRecord[] = []
      const claimer = dueOptions?.claimer
      if (claimer === undefined || !Number.isFinite(now)) {
        deadlines.walk((at, record) => {
          if (found.length >= limit || at > now) return false
          found.push(copyOut(record))
          return true
        })
        return found
      }
      const until = now + MEMORY_CLAIM_MS
      deadlines.walk((at, record) => {
        if (found.length >= limit || at > now) return false
        const claim = claims.get(record.id)
        if (claim !== undefined && claim.by !== claimer && claim.at === at && claim.until > now) return true
        claims.set(record.id, { by: claimer, at, until })
        found.push(copyOut(record))
        return true
      })
      return found
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
}
