import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createReconnectService } from '../src/service/reconnect-service'
import { isReconnectError } from '../src/errors'
import { createMemoryStore, memoryStoreInternals } from '../src/store/memory-store'
import { createManualClock } from '../src/testing/manual-clock'
import type { ConversationRecord } from '../src/types'
import { sampleRecord, storeContract } from '../src/testing/store-contract'
import { replayParameters } from './support/fc-replay'

describe('memory store: storeContract', () => {
  for (const c of storeContract(() => createMemoryStore())) it(c.name, c.run)
})

describe('memory store: storeContract with keepClosedFor', () => {
  for (const c of storeContract(() => createMemoryStore({ keepClosedFor: 60_000 }))) it(c.name, c.run)
})

/** A memory store whose `putMany` is its own batch write for the sweep (keepMany), to hold that to the contract. */
function withKeepMany() {
  const store = createMemoryStore()
  const inner = memoryStoreInternals(store)!
  return Object.assign(store, { putMany: async (writes: Parameters<typeof inner.keepMany>[0]) => inner.keepMany(writes) })
}

describe("memory store: the sweep's batch write (keepMany) holds to the putMany contract", () => {
  for (const c of storeContract(withKeepMany)) if (c.name.startsWith('putMany')) it(c.name, c.run)

  it('refuses a call where two writes take one reconnect id, or one takes the id of a conversation it does not write, and writes nothing', async () => {
    const store = withKeepMany()
    const holder = sampleRecord({ customerId: 'customer-holder' })
    await store.put(holder, null)
    const a = sampleRecord()
    const b = sampleRecord({ reconnectId: a.reconnectId })
    const c = sampleRecord({ reconnectId: holder.reconnectId })
    for (const writes of [
      [
        { record: a, expectedVersion: null },
        { record: b, expectedVersion: null },
      ],
      [
        { record: a, expectedVersion: null },
        { record: c, expectedVersion: null },
      ],
    ]) {
      let refused: unknown
      try {
        await store.putMany(writes)
      } catch (error) {
        refused = error
      }
      expect(isReconnectError(refused) && refused.code).toBe('store-failure')
      for (const { record } of writes) expect(await store.get(record.id)).toBeUndefined()
      expect((await store.getByReconnectId(holder.reconnectId))?.id).toBe(holder.id)
      expect(store.size).toBe(1)
    }
    // A conflict takes nothing: the other write of the call may have the id.
    const stale = { ...sampleRecord({ reconnectId: a.reconnectId }), version: 2 }
    expect(
      await store.putMany([
        { record: stale, expectedVersion: 1 },
        { record: a, expectedVersion: null },
      ]),
    ).toEqual(['conflict', 'written'])
    expect((await store.getByReconnectId(a.reconnectId))?.id).toBe(a.id)
  })

  it('keeps each written record itself as the stored copy, and no record of a write that lost', async () => {
    const store = createMemoryStore()
    const inner = memoryStoreInternals(store)!
    const due = { ...sampleRecord({ nextDueAt: 5, timers: { wrapUp: 5 }, state: 'wrap-up' }) }
    const lost = { ...sampleRecord({ nextDueAt: 5, timers: { wrapUp: 5 }, state: 'wrap-up' }), version: 3 }
    expect(
      inner.keepMany([
        { record: due, expectedVersion: null },
        { record: lost, expectedVersion: 2 },
      ]),
    ).toEqual(['written', 'conflict'])
    const shared = await inner.share(10, 10)
    expect(shared).toHaveLength(1)
    expect(shared[0]).toBe(due)
  })
})

describe('memory store: indexes', () => {
  it('due reads only what it returns from a large store', async () => {
    const store = createMemoryStore()
    const n = 20_000
    for (let i = 0; i < n; i += 1) {
      const at = 1_000_000 + i
      await store.put(sampleRecord({ state: 'reconnectable', timers: { window: at }, nextDueAt: at }), null)
    }
    const due = await store.due(1_000_004, 100)
    expect(due.map((r) => r.nextDueAt)).toEqual([1_000_000, 1_000_001, 1_000_002, 1_000_003, 1_000_004])
    expect(await store.nextDueAt()).toBe(1_000_000)
  })

  it('keeps the deadline heap bounded under repeated updates of one record', async () => {
    const store = createMemoryStore()
    let record = sampleRecord({ state: 'reconnectable', timers: { window: 10 }, nextDueAt: 10 })
    await store.put(record, null)
    for (let i = 0; i < 1_000; i += 1) {
      const next = { ...record, version: record.version + 1, timers: { window: 10 + (i % 3) }, nextDueAt: 10 + (i % 3) }
      await store.put(next, record.version)
      record = next
    }
    const due = await store.due(100, 10)
    expect(due).toHaveLength(1)
    expect(due[0]?.nextDueAt).toBe(record.nextDueAt)
  })
})

describe('memory store: the deadline index', () => {
  it('answers due and nextDueAt like a sorted list, under any mix of moved, cleared and deleted deadlines (model-based)', async () => {
    const ids = ['a', 'b', 'c', 'd', 'e', 'f']
    const op = fc.record({
      slot: fc.nat({ max: ids.length - 1 }),
      // Few distinct deadlines, so ties are common; null clears the deadline; 'delete' removes the record.
      at: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constant(null), fc.constant('delete' as const)),
      now: fc.integer({ min: -1, max: 7 }),
      limit: fc.integer({ min: 1, max: 8 }),
    })
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), async (ops) => {
        const store = createMemoryStore()
        // The model: each id's deadline and when it was last set (ties keep that order).
        const model = new Map<string, { at: number | null; stamp: number; version: number }>()
        let stamp = 0
        for (const { slot, at, now, limit } of ops) {
          const id = ids[slot]!
          const known = model.get(id)
          if (at === 'delete') {
            if (known !== undefined) {
              expect(await store.delete!(id, known.version)).toBe(true)
              model.delete(id)
            }
          } else {
            const version = (known?.version ?? 0) + 1
            const record = sampleRecord({
              id,
              reconnectId: `rid-${id}-0000000000000`,
              state: 'reconnectable',
              timers: at === null ? {} : { window: 1_000 + at },
              nextDueAt: at === null ? null : 1_000 + at,
              version,
            })
            await store.put(record, known?.version ?? null)
            const moved = known === undefined || known.at !== at
            model.set(id, { at, stamp: moved ? stamp++ : known.stamp, version })
          }
          const expected = [...model]
            .filter(([, m]) => m.at !== null && m.at <= now)
            .sort(([, x], [, y]) => x.at! - y.at! || x.stamp - y.stamp)
            .slice(0, limit)
            .map(([key]) => key)
          expect((await store.due(1_000 + now, limit)).map((r) => r.id)).toEqual(expected)
          const pending = [...model.values()].flatMap((m) => (m.at === null ? [] : [1_000 + m.at]))
          expect(await store.nextDueAt()).toBe(pending.length === 0 ? null : Math.min(...pending))
        }
      }),
      replayParameters(200),
    )
  })
})

describe('memory store: claims of sweepers sharing one store', () => {
  const T = 1_000_000
  async function dueStore(count: number) {
    const store = createMemoryStore()
    const records = Array.from({ length: count }, (_, i) =>
      sampleRecord({
        id: `r${i}`,
        reconnectId: `rid-${i}-0000000000000`,
        state: 'reconnectable',
        timers: { window: T + i },
        nextDueAt: T + i,
      }),
    )
    for (const r of records) await store.put(r, null)
    return { store, records }
  }
  const ids = (rows: ConversationRecord[]) => rows.map((r) => r.id)

  it('a sweeper passes by what another one claimed, never its own, until the claim ends 30 s later', async () => {
    const { store, records } = await dueStore(6)
    expect(ids(await store.due(T + 10, 4, { claimer: 'a' }))).toEqual(ids(records.slice(0, 4)))
    expect(ids(await store.due(T + 10, 10, { claimer: 'b' }))).toEqual(ids(records.slice(4)))
    expect(ids(await store.due(T + 11, 10, { claimer: 'a' }))).toEqual(ids(records.slice(0, 4)))
    // Without a claimer (a host reading due work, say) nothing is hidden.
    expect(ids(await store.due(T + 11, 10))).toEqual(ids(records))
    expect(ids(await store.due(T + 10 + 29_999, 10, { claimer: 'c' }))).toEqual([])
    // b claimed at T + 10; a claimed again at T + 11, which renewed its claims.
    expect(ids(await store.due(T + 10 + 30_000, 10, { claimer: 'c' }))).toEqual(ids(records.slice(4)))
    expect(ids(await store.due(T + 11 + 30_000, 10, { claimer: 'd' }))).toEqual(ids(records.slice(0, 4)))
  })

  it('a write that moves the deadline ends the claim; one that keeps it does not; a delete drops it', async () => {
    const { store, records } = await dueStore(3)
    const [r0, r1, r2] = records as [ConversationRecord, ConversationRecord, ConversationRecord]
    await store.due(T + 10, 10, { claimer: 'a' })
    await store.put({ ...r0, version: 2, timers: { window: T + 5 }, nextDueAt: T + 5 }, 1)
    await store.put({ ...r1, version: 2, agentId: 'agent-2' }, 1)
    expect(ids(await store.due(T + 10, 10, { claimer: 'b' }))).toEqual([r0.id])
    await store.delete!(r2.id, 1)
    await store.put({ ...r2, version: 1 }, null)
    expect(ids(await store.due(T + 10, 10, { claimer: 'c' }))).toEqual([r2.id])
  })
})

describe('memory store: keepClosedFor', () => {
  const DAY = 86_400_000

  it('drops closed conversations once they have been closed that long, and nothing else', async () => {
    const store = createMemoryStore({ keepClosedFor: DAY })
    const t0 = 1_700_000_000_000
    const closedEarly = sampleRecord({ state: 'closed', updatedAt: t0, agentId: null, capacityHeld: false, capacitySince: null })
    const closedLate = sampleRecord({ state: 'closed', updatedAt: t0 + 1000, agentId: null, capacityHeld: false, capacitySince: null })
    const waiting = sampleRecord({ state: 'reconnectable', updatedAt: t0, timers: { window: t0 + 10 * DAY }, nextDueAt: t0 + 10 * DAY })
    const active = sampleRecord({ updatedAt: t0 - DAY })
    for (const record of [closedEarly, closedLate, waiting, active]) await store.put(record, null)

    await store.due(t0 + DAY - 1, 10)
    expect(store.size).toBe(4)
    await store.due(t0 + DAY, 10)
    expect(await store.get(closedEarly.id)).toBeUndefined()
    expect(await store.getByReconnectId(closedEarly.reconnectId)).toBeUndefined()
    expect(await store.get(closedLate.id)).toEqual(closedLate)
    await store.due(t0 + DAY + 1000, 10)
    expect(await store.get(closedLate.id)).toBeUndefined()
    expect(await store.get(waiting.id)).toEqual(waiting)
    expect(await store.get(active.id)).toEqual(active)
    expect(store.size).toBe(2)
  })

  it('keeps a conversation that closes later for its own full time', async () => {
    const store = createMemoryStore({ keepClosedFor: DAY })
    const t0 = 1_700_000_000_000
    const record = sampleRecord({ state: 'wrap-up', updatedAt: t0, timers: { wrapUp: t0 + 5 }, nextDueAt: t0 + 5 })
    await store.put(record, null)
    await store.due(t0 + 2 * DAY, 10) // not closed yet: kept however old
    const closed = { ...record, state: 'closed' as const, updatedAt: t0 + 2 * DAY, timers: {}, nextDueAt: null, version: 2 }
    await store.put(closed, 1)
    await store.due(t0 + 3 * DAY - 1, 10)
    expect(await store.get(record.id)).toEqual(closed)
    await store.due(t0 + 3 * DAY, 10)
    expect(await store.get(record.id)).toBeUndefined()
  })

  it('refuses a negative or non-numeric keepClosedFor with a SettingsError naming it', () => {
    for (const keepClosedFor of [-1, Number.NaN, '1 day' as unknown as number]) {
      expect(() => createMemoryStore({ keepClosedFor })).toThrow(
        expect.objectContaining({ name: 'SettingsError', issues: [expect.objectContaining({ path: 'keepClosedFor' })] }),
      )
    }
    expect(createMemoryStore({ keepClosedFor: 0 }).size).toBe(0)
  })
})

describe('memory store: copies', () => {
  it('keeps properties a host adds to a record, as copies on the way in and out', async () => {
    const store = createMemoryStore()
    const record = { ...sampleRecord({ state: 'reconnectable', timers: { window: 10 }, nextDueAt: 10 }), crm: { tags: ['vip'] } }
    await store.put(record, null)
    record.crm.tags.push('changed after put')
    record.history.push({ at: 1, event: 'x', from: 'active', to: 'closed' })

    const read = (await store.get(record.id)) as typeof record
    expect(read.crm).toEqual({ tags: ['vip'] })
    expect(read.history).toEqual([])
    read.crm.tags.push('changed after get')
    read.timers.window = 99
    for (const again of [await store.get(record.id), await store.getByReconnectId(record.reconnectId), ...(await store.due(10, 5))]) {
      expect(again).toMatchObject({ crm: { tags: ['vip'] }, timers: { window: 10 } })
    }
  })

  it('keeps extra properties named like Object methods', async () => {
    const store = createMemoryStore()
    const record = Object.assign(sampleRecord(), { constructor: 'crm-7', toString: 'kept' })
    await store.put(record, null)
    expect(await store.get(record.id)).toMatchObject({ constructor: 'crm-7', toString: 'kept' })
  })

  it('refuses a record that lacks its own fields, even one that carries as many extra properties', async () => {
    // Fewer of its own keys than a record has, made up for by extras: no record, whatever the count says.
    const store = createMemoryStore()
    const { capacitySince: _missing, previousAgentId: _alsoMissing, ...rest } = sampleRecord()
    const record = { ...rest, crm: 'crm-7', tags: [] } as unknown as ConversationRecord
    await expect(store.put(record, null)).rejects.toMatchObject({
      code: 'invalid-argument',
      message: expect.stringContaining('previousAgentId'),
    })
    expect(store.size).toBe(0)
  })

  it('counts its conversations in size, also through a Proxy or an object that inherits from it', async () => {
    const store = createMemoryStore()
    await store.put(sampleRecord(), null)
    expect(store.size).toBe(1)
    expect(new Proxy(store, {}).size).toBe(1)
    expect((Object.create(store) as typeof store).size).toBe(1)
  })

  it('refuses a record whose extra property cannot be copied, and stores nothing', async () => {
    const store = createMemoryStore()
    const record = Object.assign(sampleRecord(), { callback: () => 'no' })
    await expect(store.put(record, null)).rejects.toMatchObject({ code: 'invalid-argument' })
    expect(await store.get(record.id)).toBeUndefined()
    expect(store.size).toBe(0)
  })

  it('stores a record without extra properties as exactly its fields', async () => {
    const store = createMemoryStore()
    const record = sampleRecord()
    await store.put(record, null)
    const read = await store.get(record.id)
    expect(read).toStrictEqual(record)
    expect(read).not.toBe(record)
    expect(read!.history).not.toBe(record.history)
  })

  it('stores a record whose prototype adds enumerable properties as its own properties only, in get, due and a sweep', async () => {
    const store = createMemoryStore()
    const proto = { inherited: 'from the prototype' }
    const own = sampleRecord({ state: 'reconnectable', timers: { window: 10 }, nextDueAt: 10 })
    const record = Object.assign(Object.create(proto) as ConversationRecord, own)
    await store.put(record, null)
    expect(await store.get(own.id)).toStrictEqual(own)
    expect(await store.due(10, 10)).toStrictEqual([own])
    const shared = await memoryStoreInternals(store)!.share(10, 10)
    expect(shared).toStrictEqual([own])
    expect(Object.getPrototypeOf(shared[0])).toBe(Object.prototype)
  })
})

describe('memory store: what is stored is what was checked', () => {
  it('never stores a value no check saw, however many reads a getter answers before it turns', async () => {
    // Fine for its first `turn` reads, a NUL (which no store may hold) after: for some `turn` the
    // check has read it and the copy has not yet.
    for (let turn = 0; turn < 8; turn += 1) {
      const store = createMemoryStore()
      const own = sampleRecord({ customerId: 'customer-1' })
      let reads = 0
      const record = { ...own } as ConversationRecord
      Object.defineProperty(record, 'customerId', {
        enumerable: true,
        get: () => (reads++ < turn ? 'customer-1' : 'customer\u0000-2'),
      })
      let refused: unknown
      try {
        await store.put(record, null)
      } catch (error) {
        refused = error
      }
      const stored = await store.get(own.id)
      if (refused === undefined) expect(stored?.customerId, `turn ${turn}`).toBe('customer-1')
      else expect(stored, `turn ${turn}`).toBeUndefined()
    }
  })
})

describe('memory store: invalid records', () => {
  it('refuses a BigInt or Symbol deadline before writing anything, so due, nextDueAt and the scheduler keep working', async () => {
    const store = createMemoryStore()
    const clock = createManualClock()
    const errors: unknown[] = []
    const service = createReconnectService({
      settings: { enabled: true, timeLimit: { minutes: 1 }, portalUrl: 'https://portal.example.com/chat' },
      store,
      clock,
      onError: (error) => void errors.push(error),
    })
    const chat = await service.start({ agentId: 'agent-1' })
    const dropped = await service.disconnect(chat.id)
    for (const nextDueAt of [BigInt(clock.now()), Symbol('deadline')] as unknown[]) {
      const bad = { ...sampleRecord({ state: 'reconnectable', timers: { window: 1 } }), nextDueAt } as unknown as ConversationRecord
      await expect(store.put(bad, null)).rejects.toMatchObject({ code: 'invalid-argument', message: expect.stringContaining('nextDueAt') })
      expect(await store.get(bad.id)).toBeUndefined()
    }
    expect(store.size).toBe(1)
    expect(await store.nextDueAt()).toBe(dropped.nextDueAt)
    service.startScheduler()
    clock.advance(2 * 60_000)
    await service.idle()
    service.stopScheduler()
    expect((await store.get(chat.id))?.state).toBe('wrap-up')
    expect(errors).toEqual([])
  })
})
