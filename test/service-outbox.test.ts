import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import {
  ConflictError,
  createMemoryStore,
  createReconnectService,
  isStoreError,
  type ConversationRecord,
  type ConversationStore,
  type ServiceEvent,
} from '../src/index'
import type { OutboxStore } from '../src/store/conversation-store'
import { createManualClock } from '../src/testing/manual-clock'
import { replayParameters } from './support/fc-replay'
import { closeStores, storeKinds } from './support/stores'

// Events are never lost: the events of a write are stored with it (the outbox), delivered right
// away, acked once onEvent took them, and delivered again by a drain when that did not happen.

const T0 = Date.UTC(2026, 0, 1)
const SETTINGS = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://shop.example/help' } as const
const REDELIVER = 5_000

/** Every method of `inner`, the outbox ones included, with some replaced. */
function wrap(inner: ConversationStore, overrides: Partial<ConversationStore>): OutboxStore {
  const o = inner as OutboxStore
  return {
    get: (id) => inner.get(id),
    getByReconnectId: (rid) => inner.getByReconnectId(rid),
    findResumable: (w, c, now) => inner.findResumable(w, c, now),
    put: (record, expected, outbox) => inner.put(record, expected, outbox),
    due: (now, limit, options) => inner.due(now, limit, options),
    nextDueAt: () => inner.nextDueAt(),
    heldBy: (agentId) => inner.heldBy(agentId),
    claimEvents: (now, lease, limit, options) => o.claimEvents(now, lease, limit, options),
    ackEvents: (ids) => o.ackEvents(ids),
    nextEventAt: () => o.nextEventAt(),
    ...overrides,
  }
}

function harness(store: ConversationStore, fail: (event: ServiceEvent) => boolean = () => false) {
  const clock = createManualClock(T0)
  const delivered: ServiceEvent[] = []
  const errors: unknown[] = []
  const service = createReconnectService({
    settings: SETTINGS,
    store,
    clock,
    outboxRedeliverAfterMs: REDELIVER,
    onEvent: (event) => {
      if (fail(event)) throw new Error(`host down for ${event.id}`)
      delivered.push(event)
    },
    onError: (error) => errors.push(error),
  })
  return { clock, service, delivered, errors }
}

const byType = (events: readonly ServiceEvent[], type: ServiceEvent['type']) => events.filter((e) => e.type === type)

afterAll(closeStores)

for (const kind of storeKinds()) {
  describe(`the outbox on the ${kind.name} store`, () => {
    it('gives the events of a write ids made of conversation, version and position', async () => {
      const { service, delivered } = harness(await kind.make())
      const chat = await service.start({ agentId: 'agent-1' })
      await service.endByAgent(chat.id)
      const closed = await service.closeByAgent(chat.id)
      await service.idle()
      expect(closed.version).toBe(3)
      expect(delivered.map((e) => `${e.id} ${e.type}`)).toEqual([
        `${chat.id}:1:0 capacity.held`,
        `${chat.id}:2:0 transition`,
        `${chat.id}:2:1 notice`,
        `${chat.id}:3:0 transition`,
        `${chat.id}:3:1 capacity.released`,
        `${chat.id}:3:2 notice`,
      ])
    })

    it('acks what onEvent took: nothing is left to deliver again', async () => {
      const store = (await kind.make()) as OutboxStore
      const { clock, service, delivered } = harness(store)
      const chat = await service.start({ agentId: 'agent-1' })
      await service.disconnect(chat.id)
      await service.idle()
      expect(await store.nextEventAt()).toBeNull()
      clock.advance(REDELIVER * 10)
      expect(await service.drainOutbox()).toBe(0)
      expect(new Set(delivered.map((e) => e.id)).size).toBe(delivered.length)
    })

    it('delivers an event onEvent failed on again, with the same id, once its time has come', async () => {
      let hostDown = true
      const store = (await kind.make()) as OutboxStore
      const { clock, service, delivered, errors } = harness(store, () => hostDown)
      const chat = await service.start({ agentId: 'agent-1' })
      await service.endByAgent(chat.id)
      await service.closeByAgent(chat.id)
      await service.idle()
      expect(delivered).toEqual([])
      expect(errors).toHaveLength(6)
      hostDown = false
      clock.advance(REDELIVER - 1)
      expect(await service.drainOutbox()).toBe(0)
      clock.advance(1)
      expect(await service.drainOutbox()).toBe(6)
      await service.idle()
      const written = ['1:0', '2:0', '2:1', '3:0', '3:1', '3:2'].map((n) => `${chat.id}:${n}`)
      expect(delivered.map((e) => e.id)).toEqual(written)
      expect(byType(delivered, 'capacity.released')).toMatchObject([{ agentId: 'agent-1', conversationId: chat.id }])
      clock.advance(REDELIVER * 10)
      expect(await service.drainOutbox()).toBe(0)
    })

    it('the scheduler delivers a failed event again on its own, also on a manual clock', async () => {
      let failures = 1
      const store = await kind.make()
      const { clock, service, delivered } = harness(store, () => failures-- > 0)
      service.startScheduler()
      await service.idle()
      const chat = await service.start({ agentId: 'agent-1' })
      await service.idle()
      expect(delivered).toEqual([])
      clock.advance(REDELIVER)
      await service.idle()
      await service.idle()
      service.stopScheduler()
      expect(delivered.map((e) => e.id)).toEqual([`${chat.id}:1:0`])
    })

    it('stores nothing without onEvent', async () => {
      const store = (await kind.make()) as OutboxStore
      const service = createReconnectService({ settings: SETTINGS, store, clock: createManualClock(T0) })
      const chat = await service.start({ agentId: 'agent-1' })
      await service.endByAgent(chat.id)
      expect(await store.nextEventAt()).toBeNull()
      expect(await store.claimEvents(T0 + 3_600_000, 1_000, 100)).toEqual([])
    })

    it('a write re-sent after it landed and answered "conflict" succeeds with its events', async () => {
      // What ioredis does after a reconnect: the script ran, its reply was lost, the re-sent script
      // finds the record at the new version and answers "conflict".
      const inner = await kind.make()
      let resend = false
      const store = wrap(inner, {
        put: async (record, expected, outbox) => {
          await inner.put(record, expected, outbox)
          if (resend) {
            resend = false
            throw new ConflictError(record.id, expected)
          }
        },
      })
      const { service, delivered } = harness(store)
      const chat = await service.start({ agentId: 'agent-1' })
      await service.endByAgent(chat.id)
      resend = true
      const closed = await service.closeByAgent(chat.id)
      await service.idle()
      expect(closed.state).toBe('closed')
      expect(byType(delivered, 'capacity.released')).toMatchObject([{ conversationId: chat.id, agentId: 'agent-1' }])
      expect(byType(delivered, 'notice').map((e) => (e as { message: string }).message)).toEqual(['agent-ended', 'session-ended'])
    })

    it('a call that rejects although its write landed: the drain delivers its events', async () => {
      const inner = await kind.make()
      let outage = false
      const store = wrap(inner, {
        put: async (record, expected, outbox) => {
          await inner.put(record, expected, outbox)
          // The connection drops after the write and stays down for the read-back.
          outage = true
          throw new Error('connection dropped after the write')
        },
        get: (id) => (outage ? Promise.reject(new Error('still down')) : inner.get(id)),
      })
      const { clock, service, delivered } = harness(store)
      const failed = await service.start({ conversationId: 'lost-reply', agentId: 'agent-1' }).catch((error: unknown) => error)
      outage = false
      expect(isStoreError(failed)).toBe(true)
      expect(delivered).toEqual([])
      expect((await inner.get('lost-reply'))?.capacityHeld).toBe(true)
      clock.advance(REDELIVER)
      expect(await service.drainOutbox()).toBe(1)
      expect(delivered).toMatchObject([{ id: 'lost-reply:1:0', type: 'capacity.held', agentId: 'agent-1' }])
    })
  })
}

describe('the scheduler and the outbox', () => {
  it("a node that never acks: another node's scheduler wakes at the events' visibility time and delivers them", async () => {
    const store = createMemoryStore() as OutboxStore
    const clock = createManualClock(T0)
    // The first node's host hangs on every event: nothing it writes is acked.
    const stuck = createReconnectService({
      settings: SETTINGS,
      store,
      clock,
      outboxRedeliverAfterMs: REDELIVER,
      onEvent: () => new Promise<void>(() => {}),
    })
    const chat = await stuck.start({ agentId: 'agent-1' })
    clock.advance(1_000)
    await stuck.endByAgent(chat.id)
    const delivered: ServiceEvent[] = []
    const survivor = createReconnectService({
      settings: SETTINGS,
      store,
      clock,
      outboxRedeliverAfterMs: REDELIVER,
      schedulerMaxSleepMs: 3_600_000,
      onEvent: (event) => {
        delivered.push(event)
      },
    })
    survivor.startScheduler()
    await survivor.idle()
    clock.advance(REDELIVER - 1_001)
    await survivor.idle()
    expect(delivered).toEqual([])
    clock.advance(1)
    await survivor.idle()
    expect(delivered.map((e) => e.id)).toEqual([`${chat.id}:1:0`])
    clock.advance(1_000)
    await survivor.idle()
    expect(delivered.map((e) => e.id)).toEqual([`${chat.id}:1:0`, `${chat.id}:2:0`, `${chat.id}:2:1`])
    survivor.stopScheduler()
    expect(await store.nextEventAt()).toBeNull()
  })
})

describe('the outbox with a store of your own', () => {
  it('a store without the outbox methods gets best-effort events and no outbox calls', async () => {
    const inner = createMemoryStore()
    const puts: number[] = []
    const plain: ConversationStore = {
      get: (id) => inner.get(id),
      getByReconnectId: (rid) => inner.getByReconnectId(rid),
      findResumable: (w, c, now) => inner.findResumable(w, c, now),
      put: (record, expected, ...rest: unknown[]) => {
        puts.push(rest.length)
        return inner.put(record, expected)
      },
      due: (now, limit) => inner.due(now, limit),
      nextDueAt: () => inner.nextDueAt(),
      heldBy: (agentId) => inner.heldBy(agentId),
    }
    const { service, delivered } = harness(plain)
    const chat = await service.start({ agentId: 'agent-1' })
    await service.endByAgent(chat.id)
    expect(puts).toEqual([0, 0])
    expect(delivered).toHaveLength(3)
    expect(await service.drainOutbox()).toBe(0)
  })

  it('acks in one batch per moment, not one round trip per event', async () => {
    const inner = createMemoryStore() as OutboxStore
    const acks: number[] = []
    const store = wrap(inner, {
      ackEvents: (ids) => {
        acks.push(ids.length)
        return inner.ackEvents(ids)
      },
    })
    const { service } = harness(store)
    const chats = await Promise.all(Array.from({ length: 5 }, () => service.start({ agentId: 'agent-1' })))
    await service.idle()
    await Promise.all(chats.map((chat) => service.endByAgent(chat.id)))
    await service.idle()
    expect(acks.reduce((a, b) => a + b, 0)).toBe(5 + 5 * 2)
    expect(acks.length).toBeLessThanOrEqual(4)
    expect(await inner.nextEventAt()).toBeNull()
  })

  it('a stored entry that cannot be read is reported as bad-record and dropped; the others are delivered', async () => {
    const inner = createMemoryStore() as OutboxStore
    const store = wrap(inner, {
      claimEvents: async (now, lease, limit, options) => {
        const claimed = await inner.claimEvents(now, lease, limit, options)
        options?.onBadEntry?.('broken:7:0', new Error('not JSON'))
        return claimed
      },
    })
    let hostDown = true
    const { clock, service, delivered, errors } = harness(store, () => hostDown)
    const chat = await service.start({ agentId: 'agent-1' })
    await service.idle()
    hostDown = false
    errors.length = 0
    clock.advance(REDELIVER)
    expect(await service.drainOutbox()).toBe(1)
    expect(delivered.map((e) => e.id)).toEqual([`${chat.id}:1:0`])
    expect(errors).toMatchObject([{ code: 'bad-record', conversationId: 'broken' }])
  })
})

/**
 * A model-based run on the memory store: random calls, onEvent failures, writes whose reply is lost
 * (the call rejects, the write landed), clock moves and drains. After a final drain with a healthy
 * host, the events seen (after de-duplication by id) are exactly those of the writes that landed:
 * each id always with the same content, per conversation a chain of transitions from creation to
 * the stored state, and capacity held minus released equal to what the stored record holds.
 */
describe('the outbox, model-based (memory store)', () => {
  type Command =
    | { kind: 'start'; agent: boolean }
    | { kind: 'call'; what: 'assign' | 'disconnect' | 'endByAgent' | 'endByCustomer' | 'closeByAgent'; pick: number }
    | { kind: 'host'; down: boolean }
    | { kind: 'lose-next-reply' }
    | { kind: 'advance'; ms: number }
    | { kind: 'drain' }

  const command: fc.Arbitrary<Command> = fc.oneof(
    { weight: 3, arbitrary: fc.boolean().map((agent): Command => ({ kind: 'start', agent })) },
    {
      weight: 6,
      arbitrary: fc
        .record({
          what: fc.constantFrom('assign', 'disconnect', 'endByAgent', 'endByCustomer', 'closeByAgent') as fc.Arbitrary<
            'assign' | 'disconnect' | 'endByAgent' | 'endByCustomer' | 'closeByAgent'
          >,
          pick: fc.nat(),
        })
        .map((c): Command => ({ kind: 'call', ...c })),
    },
    { weight: 2, arbitrary: fc.boolean().map((down): Command => ({ kind: 'host', down })) },
    { weight: 1, arbitrary: fc.constant<Command>({ kind: 'lose-next-reply' }) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 40 * 60_000 }).map((ms): Command => ({ kind: 'advance', ms })) },
    { weight: 1, arbitrary: fc.constant<Command>({ kind: 'drain' }) },
  )

  it('delivers every event of every landed write at least once, and nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { maxLength: 40 }), async (commands) => {
        const inner = createMemoryStore() as OutboxStore
        let loseNext = false
        let lost = false
        const store = wrap(inner, {
          put: async (record, expected, outbox) => {
            await inner.put(record, expected, outbox)
            if (loseNext) {
              loseNext = false
              lost = true
              throw new Error('reply lost')
            }
          },
          // The read-back of a lost reply fails too: the call rejects though its write landed.
          get: (id) => {
            if (lost) {
              lost = false
              return Promise.reject(new Error('still down'))
            }
            return inner.get(id)
          },
        })
        let down = false
        const seen = new Map<string, string>()
        const clock = createManualClock(T0)
        const service = createReconnectService({
          settings: SETTINGS,
          store,
          clock,
          outboxRedeliverAfterMs: REDELIVER,
          onEvent: (event) => {
            if (down) return Promise.reject(new Error('host down'))
            const json = JSON.stringify(event)
            const before = seen.get(event.id)
            if (before !== undefined && before !== json) throw new Error(`id ${event.id} delivered with two contents`)
            seen.set(event.id, json)
            return undefined
          },
          onError: () => undefined,
        })
        const ids: string[] = []
        for (const c of commands) {
          if (c.kind === 'start') {
            const chat = await service.start(c.agent ? { agentId: 'agent-1' } : {}).catch(() => undefined)
            if (chat !== undefined) ids.push(chat.id)
          } else if (c.kind === 'call' && ids.length > 0) {
            const id = ids[c.pick % ids.length]!
            await (c.what === 'assign' ? service.assign(id, 'agent-2') : service[c.what](id)).catch(() => undefined)
          } else if (c.kind === 'host') down = c.down
          else if (c.kind === 'lose-next-reply') loseNext = true
          else if (c.kind === 'advance') {
            clock.advance(c.ms)
            await service.runDueTimers().catch(() => undefined)
          } else if (c.kind === 'drain') await service.drainOutbox().catch(() => undefined)
        }
        // A healthy host and a drain after every lease has passed: nothing may be missing now.
        down = false
        loseNext = false
        await service.idle()
        clock.advance(REDELIVER)
        await service.drainOutbox()
        await service.idle()
        expect(await inner.nextEventAt()).toBeNull()

        const events = [...seen.values()].map((json) => JSON.parse(json) as ServiceEvent)
        const stored = new Map<string, ConversationRecord>()
        for (const id of new Set([...ids, ...events.map((e) => e.conversationId!)])) {
          const record = await inner.get(id)
          if (record !== undefined) stored.set(id, record)
        }
        for (const event of events)
          expect(stored.has(event.conversationId!), `event of a conversation never stored: ${event.id}`).toBe(true)
        for (const [id, record] of stored) {
          const mine = events.filter((e) => e.conversationId === id)
          const version = (e: ServiceEvent) => Number(e.id.split(':')[1])
          const position = (e: ServiceEvent) => Number(e.id.split(':')[2])
          for (const e of mine) expect(version(e)).toBeLessThanOrEqual(record.version)
          const transitions = byType(mine, 'transition').sort((a, b) => version(a) - version(b) || position(a) - position(b)) as Extract<
            ServiceEvent,
            { type: 'transition' }
          >[]
          // Every write after the creation applies at least one transition; each one was told.
          const versions = new Set(transitions.map(version))
          for (let v = 2; v <= record.version; v += 1) expect(versions.has(v), `transition of ${id} version ${v}`).toBe(true)
          for (let i = 1; i < transitions.length; i += 1) expect(transitions[i]!.from).toBe(transitions[i - 1]!.to)
          if (transitions.length > 0) expect(['queued', 'active']).toContain(transitions[0]!.from)
          if (transitions.length > 0) expect(transitions.at(-1)!.to).toBe(record.state)
          const held = byType(mine, 'capacity.held').length - byType(mine, 'capacity.released').length
          expect(held, `capacity of ${id}`).toBe(record.capacityHeld ? 1 : 0)
        }
      }),
      replayParameters(150),
    )
  })
})
