import { ConflictError } from '../errors'
import type { ConversationRecord } from '../types'
import type { ConversationStore } from './conversation-store'
import { cloneRecord } from './record'

interface DueEntry {
  at: number
  id: string
}

/**
 * A binary min-heap of deadlines with lazy deletion: an entry is live only while the record it
 * names still has that `nextDueAt`, so updates never search the heap.
 */
class DeadlineHeap {
  private entries: DueEntry[] = []

  get size(): number {
    return this.entries.length
  }

  push(entry: DueEntry): void {
    const entries = this.entries
    entries.push(entry)
    let i = entries.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(entries[i]!, entries[parent]!)) break
      swap(entries, i, parent)
      i = parent
    }
  }

  peek(): DueEntry | undefined {
    return this.entries[0]
  }

  pop(): DueEntry | undefined {
    const entries = this.entries
    const top = entries[0]
    const last = entries.pop()
    if (top === undefined || last === undefined || entries.length === 0) return top
    entries[0] = last
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let smallest = i
      if (left < entries.length && before(entries[left]!, entries[smallest]!)) smallest = left
      if (right < entries.length && before(entries[right]!, entries[smallest]!)) smallest = right
      if (smallest === i) break
      swap(entries, i, smallest)
      i = smallest
    }
    return top
  }

  rebuild(live: Iterable<DueEntry>): void {
    this.entries = []
    for (const entry of live) this.push(entry)
  }
}

function before(a: DueEntry, b: DueEntry): boolean {
  return a.at < b.at || (a.at === b.at && a.id < b.id)
}

function swap(entries: DueEntry[], i: number, j: number): void {
  const tmp = entries[i]!
  entries[i] = entries[j]!
  entries[j] = tmp
}

function addTo(index: Map<string, Set<string>>, key: string, id: string): void {
  let ids = index.get(key)
  if (ids === undefined) {
    ids = new Set()
    index.set(key, ids)
  }
  ids.add(id)
}

function removeFrom(index: Map<string, Set<string>>, key: string, id: string): void {
  const ids = index.get(key)
  if (ids === undefined) return
  ids.delete(id)
  if (ids.size === 0) index.delete(key)
}

function customerKey(widgetId: string, customerId: string): string {
  return `${widgetId}\u0000${customerId}`
}

/**
 * The embedded store: everything in this process's memory, indexed so that every query costs in
 * proportion to what it returns. Good for one backend node, tests and demos; use the Redis or
 * PostgreSQL store when several nodes share conversations.
 *
 * @example
 * const service = createReconnectService({ settings, store: createMemoryStore() })
 */
export function createMemoryStore(): ConversationStore & { readonly size: number } {
  const records = new Map<string, ConversationRecord>()
  const byReconnectId = new Map<string, string>()
  const resumable = new Map<string, Set<string>>()
  const held = new Map<string, Set<string>>()
  const deadlines = new DeadlineHeap()

  function isLive(entry: DueEntry): boolean {
    return records.get(entry.id)?.nextDueAt === entry.at
  }

  function dropStaleTop(): void {
    for (let top = deadlines.peek(); top !== undefined && !isLive(top); top = deadlines.peek()) deadlines.pop()
  }

  function compactIfBloated(): void {
    if (deadlines.size <= 2 * records.size + 64) return
    const live: DueEntry[] = []
    for (const record of records.values()) if (record.nextDueAt !== null) live.push({ at: record.nextDueAt, id: record.id })
    deadlines.rebuild(live)
  }

  function unindex(record: ConversationRecord): void {
    if (byReconnectId.get(record.reconnectId) === record.id) byReconnectId.delete(record.reconnectId)
    if (record.state === 'reconnectable' && record.customerId !== null) {
      removeFrom(resumable, customerKey(record.widgetId, record.customerId), record.id)
    }
    if (record.capacityHeld && record.agentId !== null) removeFrom(held, record.agentId, record.id)
  }

  function index(record: ConversationRecord, previous: ConversationRecord | undefined): void {
    byReconnectId.set(record.reconnectId, record.id)
    if (record.state === 'reconnectable' && record.customerId !== null) {
      addTo(resumable, customerKey(record.widgetId, record.customerId), record.id)
    }
    if (record.capacityHeld && record.agentId !== null) addTo(held, record.agentId, record.id)
    if (record.nextDueAt !== null && record.nextDueAt !== previous?.nextDueAt) {
      deadlines.push({ at: record.nextDueAt, id: record.id })
    }
  }

  return {
    get size() {
      return records.size
    },

    async get(id) {
      const record = records.get(id)
      return record === undefined ? undefined : cloneRecord(record)
    },

    async getByReconnectId(reconnectId) {
      const id = byReconnectId.get(reconnectId)
      const record = id === undefined ? undefined : records.get(id)
      return record === undefined ? undefined : cloneRecord(record)
    },

    async findResumable(widgetId, customerId, now) {
      const ids = resumable.get(customerKey(widgetId, customerId))
      let best: ConversationRecord | undefined
      for (const id of ids ?? []) {
        const record = records.get(id)
        const window = record?.timers.window
        if (record === undefined || window === undefined || now >= window) continue
        if (best === undefined || record.updatedAt > best.updatedAt) best = record
      }
      return best === undefined ? undefined : cloneRecord(best)
    },

    async put(record, expectedVersion) {
      const current = records.get(record.id)
      const currentVersion = current === undefined ? null : current.version
      if (currentVersion !== expectedVersion) throw new ConflictError(record.id, expectedVersion)
      const copy = cloneRecord(record)
      if (current !== undefined) unindex(current)
      records.set(copy.id, copy)
      index(copy, current)
      compactIfBloated()
    },

    async due(now, limit) {
      const found: ConversationRecord[] = []
      const taken: DueEntry[] = []
      const seen = new Set<string>()
      while (found.length < limit) {
        const top = deadlines.peek()
        if (top === undefined || top.at > now) break
        deadlines.pop()
        if (!isLive(top) || seen.has(top.id)) continue
        seen.add(top.id)
        taken.push(top)
        found.push(cloneRecord(records.get(top.id)!))
      }
      // due() only reads: the entries go back until the service changes the records.
      for (const entry of taken) deadlines.push(entry)
      return found
    },

    async nextDueAt() {
      dropStaleTop()
      return deadlines.peek()?.at ?? null
    },

    async heldBy(agentId) {
      const ids = held.get(agentId)
      const out: ConversationRecord[] = []
      for (const id of ids ?? []) {
        const record = records.get(id)
        if (record !== undefined) out.push(cloneRecord(record))
      }
      return out
    },
  }
}
