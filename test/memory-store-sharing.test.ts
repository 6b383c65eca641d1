import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createReconnectService } from '../src/service/reconnect-service'
import type { ConversationStore } from '../src/store/conversation-store'
import { createMemoryStore, memoryStoreInternals } from '../src/store/memory-store'
import { createManualClock } from '../src/testing/manual-clock'
import { sampleRecord } from '../src/testing/store-contract'
import type { ConversationRecord, ReconnectSettingsInput, State } from '../src/types'
import { replayParameters } from './support/fc-replay'
import { deepFreeze } from './support/freeze'

const T = 1_000_000
const SETTINGS: ReconnectSettingsInput = { enabled: true, timeLimit: { minutes: 5 }, portalUrl: 'https://shop.example/help' }

/** Every way a caller can change a record it holds, all at once, deep inside too. */
function scribble(record: ConversationRecord): void {
  record.state = 'closed'
  record.agentId = 'someone-else'
  record.timers.window = 1
  record.timers.wrapUp = 2
  for (const entry of record.history) {
    entry.at = -1
    entry.event = 'scribbled'
  }
  record.history.push({ at: 3, event: 'x', from: 'active', to: 'closed' })
  if (record.connections !== undefined) for (const id of Object.keys(record.connections)) record.connections[id] = 4
}

const recordArb = fc
  .record({
    state: fc.constantFrom<State>('active', 'reconnectable', 'wrap-up', 'closed'),
    window: fc.integer({ min: T, max: T + 100 }),
    entries: fc.array(fc.integer({ min: 0, max: T }), { maxLength: 3 }),
    connections: fc.option(fc.uniqueArray(fc.constantFrom('tab-1', 'tab-2', '__proto__'), { minLength: 1 }), { nil: undefined }),
  })
  .map(({ state, window, entries, connections }) =>
    sampleRecord({
      state,
      customerId: 'customer-1',
      timers: { window },
      nextDueAt: window,
      history: entries.map((at) => ({ at, event: 'e', from: 'active', to: state })),
      ...(connections === undefined ? {} : { connections: Object.fromEntries(connections.map((id) => [id, T])) }),
    }),
  )

describe('memory store: copies, whatever the caller changes', () => {
  it('changing what was put, or what any read returned, deep inside too, never changes the stored copy (generated records)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(recordArb, { minLength: 1, maxLength: 4 }), async (records) => {
        const store = createMemoryStore()
        const expected = new Map<string, unknown>()
        for (const record of records) {
          expected.set(record.id, structuredClone(record))
          await store.put(record, null)
          scribble(record)
        }
        const reads: ConversationRecord[] = [
          ...(await store.due(T + 100, 10)),
          ...(await store.due(T + 100, 10, { claimer: 'a' })),
          ...(await store.heldBy('agent-1')),
          ...(await store.byCustomer!('customer-1')),
        ]
        for (const [id] of expected) {
          const one = await store.get(id)
          if (one !== undefined) reads.push(one)
          const byLink = await store.getByReconnectId(one!.reconnectId)
          if (byLink !== undefined) reads.push(byLink)
        }
        const resumable = await store.findResumable('default', 'customer-1', T)
        if (resumable !== undefined) reads.push(resumable)
        for (const read of reads) scribble(read)
        for (const [id, record] of expected) expect(await store.get(id)).toStrictEqual(record)
      }),
      replayParameters(100),
    )
  })
})

describe('memory store: findResumable after any mix of writes (model-based)', () => {
  it('finds the latest open window of the customer on the widget, as a scan of every record would', async () => {
    const op = fc.record({
      slot: fc.nat({ max: 3 }),
      kind: fc.constantFrom('put', 'put', 'put', 'delete' as const),
      state: fc.constantFrom<State>('active', 'reconnectable', 'reconnectable', 'wrap-up', 'closed'),
      customerId: fc.constantFrom('c1', 'c2', null),
      widgetId: fc.constantFrom('w1', 'w2'),
      window: fc.integer({ min: 0, max: 8 }),
      now: fc.integer({ min: 0, max: 8 }),
    })
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        const store = createMemoryStore()
        const stored = new Map<string, ConversationRecord>()
        let clock = 0
        for (const o of ops) {
          const id = `conv-${o.slot}`
          const current = stored.get(id)
          if (o.kind === 'delete') {
            if (current !== undefined) {
              await store.delete!(id, current.version)
              stored.delete(id)
            }
          } else {
            clock += 1
            const record = sampleRecord({
              id,
              reconnectId: `rid-${o.slot}`.padEnd(21, '0'),
              state: o.state,
              customerId: o.customerId,
              widgetId: o.widgetId,
              timers: o.state === 'reconnectable' ? { window: o.window } : {},
              nextDueAt: o.state === 'reconnectable' ? o.window : null,
              updatedAt: clock,
              version: (current?.version ?? 0) + 1,
            })
            await store.put(record, current?.version ?? null)
            stored.set(id, record)
          }
          for (const widgetId of ['w1', 'w2']) {
            for (const customerId of ['c1', 'c2']) {
              let best: ConversationRecord | undefined
              for (const r of stored.values()) {
                const open = r.state === 'reconnectable' && r.widgetId === widgetId && r.customerId === customerId
                if (
                  open &&
                  r.timers.window !== undefined &&
                  o.now < r.timers.window &&
                  (best === undefined || r.updatedAt > best.updatedAt)
                ) {
                  best = r
                }
              }
              expect((await store.findResumable(widgetId, customerId, o.now))?.id, `${widgetId}/${customerId} at ${o.now}`).toBe(best?.id)
            }
          }
        }
      }),
      replayParameters(100),
    )
  })
})

/** A memory store whose copy-free paths freeze what they share or keep, so a later write to any of it throws. */
function freezingStore(): ConversationStore {
  const store = createMemoryStore()
  const inner = memoryStoreInternals(store)!
  const { keep, keepMany, share } = inner
  inner.share = async (...args) => (await share(...args)).map((record) => deepFreeze(record))
  inner.keep = async (record, ...rest) => {
    await keep(record, ...rest)
    deepFreeze(record)
  }
  inner.keepMany = (writes) => {
    const results = keepMany(writes)
    for (const [k, write] of writes.entries()) if (results[k] === 'written') deepFreeze(write.record)
    return results
  }
  return store
}

const opArb = fc.oneof(
  fc.record({ kind: fc.constant('start' as const), customer: fc.nat({ max: 3 }) }),
  fc.record({ kind: fc.constantFrom('disconnect' as const, 'endByAgent' as const, 'closeByAgent' as const), which: fc.nat() }),
  fc.record({ kind: fc.constant('return' as const), customer: fc.nat({ max: 3 }) }),
  fc.record({ kind: fc.constant('attach' as const), which: fc.nat(), leaseMs: fc.integer({ min: 1_000, max: 600_000 }) }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 40 * 60_000 }) }),
)

type Op = typeof opArb extends fc.Arbitrary<infer O> ? O : never

/** Runs `ops` on a service over `store`; returns every conversation as it ends, in the order they started, without its ids. */
async function run(store: ConversationStore, ops: readonly Op[]) {
  const clock = createManualClock(T)
  const errors: unknown[] = []
  const service = createReconnectService({ settings: SETTINGS, store, clock, onError: (error) => errors.push(error) })
  const ids: string[] = []
  const applied: number[] = []
  for (const o of ops) {
    const id = 'which' in o && ids.length > 0 ? ids[o.which % ids.length]! : undefined
    try {
      if (o.kind === 'start') ids.push((await service.start({ agentId: 'agent-1', customerId: `customer-${o.customer}` })).id)
      else if (o.kind === 'return') await service.returnCustomer({ customerId: `customer-${o.customer}` })
      else if (o.kind === 'attach' && id !== undefined) await service.attach(id, { connectionId: 'tab', leaseMs: o.leaseMs })
      else if (o.kind === 'advance') {
        clock.advance(o.ms)
        applied.push(await service.runDueTimers())
      } else if (id !== undefined && o.kind !== 'attach') await service[o.kind](id)
    } catch (error) {
      // Refused transitions are part of the run: both runs must refuse the same ones.
      applied.push(-1)
      if (!(error instanceof Error) || !('code' in error)) throw error
    }
  }
  clock.advance(24 * 60 * 60_000)
  applied.push(await service.runDueTimers())
  const records = []
  for (const id of ids) {
    const record = await store.get(id)
    if (record === undefined) records.push(undefined)
    else {
      const { id: _id, reconnectId: _link, writeId: _write, ...rest } = record
      records.push(rest)
    }
  }
  return { applied, records, errors }
}

describe('memory store: the sweep without copies', () => {
  it('sweeps to the same records as through copies, and never changes a record due shared or a put kept (generated runs)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
        // A Proxy of a memory store is no memory store to the service: it reads and writes through copies.
        const copied = await run(new Proxy(createMemoryStore(), {}), ops)
        const shared = await run(freezingStore(), ops)
        expect(shared.errors).toEqual([])
        expect(copied.errors).toEqual([])
        expect(shared.applied).toEqual(copied.applied)
        expect(shared.records).toEqual(copied.records)
      }),
      replayParameters(60),
    )
  })

  it('is used by the sweep of a service on the memory store itself, not on a wrapper of it', async () => {
    const store = createMemoryStore()
    const inner = memoryStoreInternals(store)!
    let shared = 0
    let kept = 0
    const { keep, keepMany, share } = inner
    inner.share = async (...args) => {
      shared += 1
      return share(...args)
    }
    inner.keep = async (...args) => {
      kept += 1
      return keep(...args)
    }
    let batches = 0
    inner.keepMany = (writes) => {
      kept += writes.length
      batches += 1
      return keepMany(writes)
    }
    const clock = createManualClock(T)
    const service = createReconnectService({ settings: SETTINGS, store, clock })
    const chat = await service.start({ agentId: 'agent-1', customerId: 'customer-1' })
    await service.disconnect(chat.id)
    expect(kept).toBe(0)
    clock.advance(6 * 60_000)
    expect(await service.runDueTimers()).toBe(1)
    expect(shared).toBeGreaterThan(0)
    expect(kept).toBe(1)
    // Through the store's own batch write, not one keep per record.
    expect(batches).toBe(1)
    expect(memoryStoreInternals(new Proxy(store, {}))).toBeUndefined()
    expect(memoryStoreInternals({ ...store })).toBeUndefined()
  })

  it('goes through put and due replaced on the store object after the service was made (a spy sees every sweep call)', async () => {
    const store = createMemoryStore()
    const clock = createManualClock(T)
    const service = createReconnectService({ settings: SETTINGS, store, clock })
    const chat = await service.start({ agentId: 'agent-1', customerId: 'customer-1' })
    await service.disconnect(chat.id)
    const { put, due } = store
    let puts = 0
    let dues = 0
    store.put = (...args) => {
      puts += 1
      return put.apply(store, args)
    }
    store.due = (...args) => {
      dues += 1
      return due.apply(store, args)
    }
    clock.advance(6 * 60_000)
    expect(await service.runDueTimers()).toBe(1)
    expect(dues).toBeGreaterThan(0)
    expect(puts).toBe(1)
    expect((await store.get(chat.id))?.state).toBe('wrap-up')
  })
})
