import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isBadRecordError } from '../src/errors'
import { createReconnectService } from '../src/service/reconnect-service'
import type { ConversationStore, StoreWrite, StoreWriteResult } from '../src/store/conversation-store'
import { createMemoryStore, memoryStoreInternals } from '../src/store/memory-store'
import { createManualClock } from '../src/testing/manual-clock'
import type { ConversationRecord, ReconnectSettingsInput, ServiceEvent } from '../src/types'
import { replayParameters } from './support/fc-replay'

const MINUTE = 60_000
const settings: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 10 },
  portalUrl: 'https://shop.example/help',
  wrapUpAutoClose: { minutes: 5 },
  keepClosedFor: { minutes: 20 },
}

/**
 * A memory store with a `putMany` of one `put` per write (checked first, so a call lands whole or
 * not at all), and a hook that runs before each call: the sweep's batched path on the memory store.
 */
function withPutMany(store: ConversationStore, before?: (writes: readonly StoreWrite[]) => Promise<void>) {
  const calls: StoreWriteResult[][] = []
  const batched: ConversationStore = {
    get: (id) => store.get(id),
    getByReconnectId: (id) => store.getByReconnectId(id),
    findResumable: (w, c, now) => store.findResumable(w, c, now),
    put: (record, expected, outbox) => store.put(record, expected, outbox),
    due: (now, limit, options) => store.due(now, limit, options),
    nextDueAt: () => store.nextDueAt(),
    heldBy: (agentId) => store.heldBy(agentId),
    delete: (id, expected) => store.delete!(id, expected),
    byCustomer: (customerId) => store.byCustomer!(customerId),
    async putMany(writes) {
      await before?.(writes)
      const results: StoreWriteResult[] = []
      for (const write of writes) {
        const stored = await store.get(write.record.id)
        results.push((stored?.version ?? null) === write.expectedVersion ? 'written' : 'conflict')
      }
      for (const [k, write] of writes.entries()) if (results[k] === 'written') await store.put(write.record, write.expectedVersion)
      calls.push(results)
      return results
    },
  }
  return { store: batched, calls }
}

/** Records without the per-write stamp, which differs from one service to another. */
function unstamped(records: (ConversationRecord | undefined)[]) {
  return records.map((record) => (record === undefined ? undefined : { ...record, writeId: undefined }))
}

/**
 * After a sweep that raced another node's close of `raced`: it stays closed with no transition told,
 * and every other conversation went to wrap-up once, told once.
 */
async function expectRacedOnce(store: ConversationStore, ids: string[], raced: string, events: ServiceEvent[]) {
  expect((await store.get(raced))?.state).toBe('closed')
  for (const id of ids.filter((id) => id !== raced)) {
    expect((await store.get(id))?.state).toBe('wrap-up')
    expect(events.filter((e) => e.conversationId === id && e.type === 'transition' && e.to === 'wrap-up')).toHaveLength(1)
  }
  expect(events.filter((e) => e.conversationId === raced && e.type === 'transition')).toEqual([])
}

describe('the sweep on a store with putMany', () => {
  it("applies the same deadlines, leaves the same records and tells the same events as one put per record, through a putMany or the memory store's own (generated conversations)", async () => {
    let batches = 0
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom('disconnected', 'ended', 'closed', 'active'), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 60 }),
        async (kinds, minutes) => {
          // 'each': one put per record (a wrapper of the memory store is no memory store to the
          // service); 'putMany': a store's putMany; 'memory': the memory store's own batch write.
          const run = async (how: 'each' | 'putMany' | 'memory') => {
            const clock = createManualClock(1_700_000_000_000)
            const plain = createMemoryStore()
            const wrapped = withPutMany(plain)
            const events: ServiceEvent[] = []
            const service = createReconnectService({
              settings,
              store: how === 'putMany' ? wrapped.store : how === 'each' ? { ...plain } : plain,
              clock,
              onEvent: (event) => void events.push({ ...event, id: '' }),
            })
            const ids: string[] = []
            for (const [i, kind] of kinds.entries()) {
              const chat = await service.start({ agentId: `agent-${i % 4}`, customerId: `customer-${i}` })
              ids.push(chat.id)
              if (kind === 'disconnected') await service.disconnect(chat.id)
              if (kind === 'ended') await service.endByAgent(chat.id)
              if (kind === 'closed') await service.closeByAgent(chat.id)
            }
            clock.advance(minutes * MINUTE)
            events.length = 0
            let applied = 0
            for (let n = await service.runDueTimers(); n > 0; n = await service.runDueTimers()) applied += n
            const records = unstamped(await Promise.all(ids.map((id) => plain.get(id))))
            return { applied, records, events, ids, batches: wrapped.calls.length }
          }
          const one = await run('each')
          const many = await run('putMany')
          const own = await run('memory')
          expect(many.applied).toBe(one.applied)
          expect(own.applied).toBe(one.applied)
          // Ids are random per service: compare everything but them.
          const strip = (r: { records: unknown[]; events: ServiceEvent[]; ids: string[] }) =>
            JSON.parse(
              r.ids.reduce(
                (text, id, i) => text.split(id).join(`#${i}`),
                JSON.stringify({ records: r.records, events: r.events }).replace(/"(reconnectId|widgetId)":"[^"]*"/g, '"$1":""'),
              ),
            )
          expect(strip(many)).toEqual(strip(one))
          expect(strip(own)).toEqual(strip(one))
          batches += many.batches
        },
      ),
      replayParameters(25),
    )
    // (A batch of one is a plain put.) Enough runs had several due at once to go through putMany.
    expect(batches).toBeGreaterThan(0)
  })

  it('a write that loses its compare-and-set in the batch is decided again from the stored record, and applied once', async () => {
    const clock = createManualClock(1_700_000_000_000)
    const plain = createMemoryStore()
    let raced = false
    let racedId = ''
    // Just before the first batch lands, the customer of its first conversation comes back elsewhere.
    const wrapped = withPutMany(plain, async (writes) => {
      if (raced) return
      raced = true
      const first = writes[0]!.record
      racedId = first.id
      const other = createReconnectService({ settings, store: plain, clock })
      await other.closeByAgent(first.id)
    })
    const events: ServiceEvent[] = []
    const service = createReconnectService({ settings, store: wrapped.store, clock, onEvent: (event) => void events.push(event) })
    const ids: string[] = []
    for (let i = 0; i < 5; i += 1) {
      const chat = await service.start({ agentId: 'agent-1' })
      await service.disconnect(chat.id)
      ids.push(chat.id)
    }
    clock.advance(11 * MINUTE)
    events.length = 0
    const applied = await service.runDueTimers()
    expect(wrapped.calls[0]!.filter((r) => r === 'conflict')).toHaveLength(1)
    // The raced one was closed by the other node: its window no longer applies; the other four did.
    expect(applied).toBe(4)
    await expectRacedOnce(plain, ids, racedId, events)
  })

  it('a batch with a write the store fails on still tells every write that landed, then the sweep stops with the failure', async () => {
    const clock = createManualClock(1_700_000_000_000)
    const plain = createMemoryStore()
    let bad = ''
    // The batch call fails, and so does the write of its first conversation on its own.
    const wrapped = withPutMany(plain, async (writes) => {
      bad = writes[0]!.record.id
      throw new Error('the batch was refused')
    })
    wrapped.store.put = (record, expected, outbox) =>
      record.id === bad ? Promise.reject(new Error('disk full')) : plain.put(record, expected, outbox)
    const seeding = createReconnectService({ settings, store: plain, clock })
    const ids: string[] = []
    for (let i = 0; i < 40; i += 1) {
      const chat = await seeding.start({ agentId: `agent-${i % 3}` })
      await seeding.disconnect(chat.id)
      ids.push(chat.id)
    }
    clock.advance(11 * MINUTE)
    const events: ServiceEvent[] = []
    const service = createReconnectService({ settings, store: wrapped.store, clock, onEvent: (event) => void events.push(event) })
    await expect(service.runDueTimers()).rejects.toMatchObject({ code: 'store-failure' })
    expect(bad).not.toBe('')
    for (const id of ids) {
      const told = events.filter((e) => e.conversationId === id && e.type === 'transition' && e.to === 'wrap-up')
      expect((await plain.get(id))?.state, id).toBe(id === bad ? 'reconnectable' : 'wrap-up')
      expect(told, id).toHaveLength(id === bad ? 0 : 1)
    }
  })

  it("a widget whose settings fail sets its records aside; the batch still writes every other widget's", async () => {
    const clock = createManualClock(1_700_000_000_000)
    const plain = createMemoryStore()
    const wrapped = withPutMany(plain)
    const errors: unknown[] = []
    const seeding = createReconnectService({ settings, store: plain, clock })
    const service = createReconnectService({
      settings: (widgetId) => (widgetId === 'broken' ? Promise.reject(new Error('settings down')) : settings),
      store: wrapped.store,
      clock,
      onError: (error) => void errors.push(error),
    })
    const good: string[] = []
    const bad: string[] = []
    for (let i = 0; i < 6; i += 1) {
      const widgetId = i % 3 === 0 ? 'broken' : 'default'
      const chat = await seeding.start({ agentId: 'agent-1', widgetId })
      await seeding.disconnect(chat.id)
      ;(widgetId === 'broken' ? bad : good).push(chat.id)
    }
    clock.advance(11 * MINUTE)
    expect(await service.runDueTimers()).toBe(good.length)
    for (const id of good) expect((await plain.get(id))?.state).toBe('wrap-up')
    for (const id of bad) expect((await plain.get(id))?.state).toBe('reconnectable')
    expect(errors.filter(isBadRecordError)).toHaveLength(bad.length)
  })

  it("on the memory store's own batch write, a conversation another service moves while the batch is planned is decided again from the stored record, and applied once", async () => {
    const clock = createManualClock(1_700_000_000_000)
    const store = createMemoryStore()
    const seeding = createReconnectService({ settings, store, clock })
    const ids: string[] = []
    for (let i = 0; i < 5; i += 1) {
      const chat = await seeding.start({ agentId: 'agent-1' })
      await seeding.disconnect(chat.id)
      ids.push(chat.id)
    }
    clock.advance(11 * MINUTE)
    const raced = ids[2]!
    let lookups = 0
    const events: ServiceEvent[] = []
    // The sweep waits for the widget's settings after it has read the batch: the other service
    // closes one of its conversations in that moment.
    const service = createReconnectService({
      settings: async () => {
        lookups += 1
        if (lookups === 1) await seeding.closeByAgent(raced)
        return settings
      },
      store,
      clock,
      onEvent: (event) => void events.push(event),
    })
    expect(await service.runDueTimers()).toBe(4)
    await expectRacedOnce(store, ids, raced, events)
  })

  it('a put a host puts in place on the memory store while a batch is planned gets copies, never objects the store holds', async () => {
    const clock = createManualClock(1_700_000_000_000)
    const plain = createMemoryStore()
    const inner = memoryStoreInternals(plain)!
    const seeding = createReconnectService({ settings, store: plain, clock })
    for (let i = 0; i < 3; i += 1) await seeding.disconnect((await seeding.start({ agentId: 'agent-1' })).id)
    clock.advance(11 * MINUTE)
    const ownPut = plain.put
    let handed = 0
    const shared: unknown[] = []
    // A host's instrumentation, put in place after the sweep has read its batch as stored.
    const spy: ConversationStore['put'] = async (record, expectedVersion, outbox) => {
      const held = new Set<unknown>()
      for (const stored of await inner.share(Number.POSITIVE_INFINITY, 100)) {
        held.add(stored)
        held.add(stored.timers)
        for (const entry of stored.history) held.add(entry)
      }
      handed += 1
      for (const part of [record, record.timers, ...record.history]) if (held.has(part)) shared.push(part)
      return ownPut(record, expectedVersion, outbox)
    }
    let lookups = 0
    const service = createReconnectService({
      settings: async () => {
        lookups += 1
        if (lookups === 1) plain.put = spy
        return settings
      },
      store: plain,
      clock,
    })
    expect(await service.runDueTimers()).toBe(3)
    expect(handed).toBe(3)
    expect(shared).toEqual([])
  })

  it("a putMany a host adds to a memory store gets the sweep's batches, as on any store with one", async () => {
    const clock = createManualClock(1_700_000_000_000)
    const plain = createMemoryStore()
    const seeding = createReconnectService({ settings, store: plain, clock })
    for (let i = 0; i < 3; i += 1) await seeding.disconnect((await seeding.start({ agentId: 'agent-1' })).id)
    clock.advance(11 * MINUTE)
    const calls: number[] = []
    const store = Object.assign(plain, {
      async putMany(writes: readonly StoreWrite[]): Promise<StoreWriteResult[]> {
        calls.push(writes.length)
        const results: StoreWriteResult[] = []
        for (const write of writes) {
          await plain.put(write.record, write.expectedVersion, write.outbox)
          results.push('written')
        }
        return results
      },
    })
    const service = createReconnectService({ settings, store, clock })
    expect(await service.runDueTimers()).toBe(3)
    expect(calls).toEqual([3])
  })
})
