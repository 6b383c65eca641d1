import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isNotFoundError, isReconnectError } from '../src/errors'
import { readReconnectId } from '../src/links'
import { createReconnectService } from '../src/service/reconnect-service'
import type { ConversationStore } from '../src/store/conversation-store'
import { createMemoryStore } from '../src/store/memory-store'
import { createManualClock } from '../src/testing/manual-clock'
import type { ConversationRecord, ServiceEvent } from '../src/types'
import { replayParameters } from './support/fc-replay'

const MINUTE = 60_000
const DAY = 24 * 60 * MINUTE
const SETTINGS = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://portal.example.com/chat' }

/** A Part I adapter: the memory store without the optional retention methods. */
function partOneStore(): ConversationStore {
  const inner = createMemoryStore()
  return {
    get: (id) => inner.get(id),
    getByReconnectId: (rid) => inner.getByReconnectId(rid),
    findResumable: (w, c, now) => inner.findResumable(w, c, now),
    put: (record, expected) => inner.put(record, expected),
    due: (now, limit) => inner.due(now, limit),
    nextDueAt: () => inner.nextDueAt(),
    heldBy: (agentId) => inner.heldBy(agentId),
  }
}

function setup(settings: object = SETTINGS, store: ConversationStore = createMemoryStore()) {
  const clock = createManualClock()
  const events: ServiceEvent[] = []
  const service = createReconnectService({ settings: settings as typeof SETTINGS, clock, store, onEvent: (e) => void events.push(e) })
  return { clock, events, service, store }
}

async function closedChat(service: ReturnType<typeof setup>['service'], customerId: string | null = 'customer-1') {
  const chat = await service.start({ agentId: 'agent-1', customerId })
  await service.endByAgent(chat.id)
  return service.closeByAgent(chat.id)
}

describe('keepClosedFor', () => {
  it('defaults to 7 days: the sweep deletes a closed conversation then, and its link reads not-found', async () => {
    const { clock, service, store } = setup()
    const chat = await service.start({ agentId: 'agent-1', customerId: 'customer-1' })
    const reconnectId = readReconnectId(await service.reconnectUrl(chat.id))!
    await service.endByAgent(chat.id)
    const closed = await service.closeByAgent(chat.id)
    expect(closed.state).toBe('closed')
    expect(closed.timers).toEqual({ retention: clock.now() + 7 * DAY })
    expect(closed.nextDueAt).toBe(clock.now() + 7 * DAY)

    clock.advance(7 * DAY - 1)
    expect(await service.runDueTimers()).toBe(0)
    expect((await service.get(chat.id)).state).toBe('closed')
    clock.advance(1)
    expect(await service.runDueTimers()).toBe(1)
    expect(await store.get(chat.id)).toBeUndefined()
    expect(await store.nextDueAt()).toBeNull()
    expect(await store.byCustomer!('customer-1')).toEqual([])
    expect(await service.get(chat.id).catch((e: unknown) => e)).toSatisfy(isNotFoundError)
    expect(await service.returnCustomer({ reconnectId })).toEqual({ type: 'new-chat', reason: 'not-found' })
  })

  it('counts from when the conversation closed, also when the sweep closes it and deletes it in one go', async () => {
    const { clock, service, store } = setup({ ...SETTINGS, keepClosedFor: { hours: 1 } })
    const chat = await service.start({ agentId: 'agent-1' })
    await service.endByAgent(chat.id) // wrap-up closes itself after 15 minutes
    clock.advance(15 * MINUTE + 60 * MINUTE)
    expect(await service.runDueTimers()).toBe(2) // wrapUp, then retention
    expect(await store.get(chat.id)).toBeUndefined()
  })

  it('null keeps closed conversations until erased; 0 deletes at the next sweep', async () => {
    const kept = setup({ ...SETTINGS, keepClosedFor: null })
    const a = await closedChat(kept.service)
    expect(a.timers).toEqual({})
    expect(a.nextDueAt).toBeNull()
    const gone = setup({ ...SETTINGS, keepClosedFor: 0 })
    const b = await closedChat(gone.service)
    expect(await gone.service.runDueTimers()).toBe(1)
    expect(await gone.store.get(b.id)).toBeUndefined()
  })

  it('is refused with a SettingsError when it is no duration', () => {
    expect(() => createReconnectService({ settings: { ...SETTINGS, keepClosedFor: -1 } as never })).toThrow(/keepClosedFor/)
    expect(() => createReconnectService({ settings: { ...SETTINGS, keepClosedFor: '7 days' } as never })).toThrow(/keepClosedFor/)
  })

  it('a store without delete keeps closed conversations and sets them no deadline', async () => {
    const { clock, service, store } = setup(SETTINGS, partOneStore())
    const chat = await closedChat(service)
    expect(chat.timers).toEqual({})
    clock.advance(30 * DAY)
    expect(await service.runDueTimers()).toBe(0)
    expect((await store.get(chat.id))?.state).toBe('closed')
  })

  it('a deletion that loses a race to another writer is applied on the fresh record', async () => {
    const { clock, service, store } = setup({ ...SETTINGS, keepClosedFor: { minutes: 1 } })
    const chat = await closedChat(service)
    clock.advance(MINUTE)
    // Another node rewrites the record (same content, new version) just before this sweep deletes it.
    const real = store.delete!.bind(store)
    let raced = false
    store.delete = async (id, version) => {
      if (!raced) {
        raced = true
        const current = (await store.get(id))!
        await store.put({ ...current, version: current.version + 1 }, current.version)
      }
      return real(id, version)
    }
    expect(await service.runDueTimers()).toBe(1)
    expect(raced).toBe(true)
    expect(await store.get(chat.id)).toBeUndefined()
  })
})

describe('eraseCustomer', () => {
  it('ends live conversations (capacity released, events emitted), deletes all, resolves to the count, and is safe to retry', async () => {
    const { clock, events, service, store } = setup()
    const queued = await service.start({ customerId: 'erase-me' })
    const active = await service.start({ customerId: 'erase-me', agentId: 'agent-a' })
    const away = await service.start({ customerId: 'erase-me', agentId: 'agent-b' })
    await service.disconnect(away.id)
    const wrapping = await service.start({ customerId: 'erase-me', agentId: 'agent-c' })
    await service.endByAgent(wrapping.id)
    const closed = await closedChat(service, 'erase-me')
    const other = await service.start({ customerId: 'someone-else', agentId: 'agent-a' })
    const anonymous = await service.start({ agentId: 'agent-a' })
    clock.advance(MINUTE)
    events.length = 0

    expect(await service.eraseCustomer('erase-me')).toBe(5)
    for (const chat of [queued, active, away, wrapping, closed]) expect(await store.get(chat.id)).toBeUndefined()
    expect(await store.byCustomer!('erase-me')).toEqual([])
    expect((await store.heldBy('agent-a')).map((r) => r.id).sort()).toEqual([other.id, anonymous.id].sort())
    expect(await store.heldBy('agent-b')).toEqual([])
    expect(await store.heldBy('agent-c')).toEqual([])
    const released = events.filter((e) => e.type === 'capacity.released').map((e) => e.conversationId)
    expect(released.sort()).toEqual([active.id, away.id, wrapping.id].sort())
    const closings = events.filter((e) => e.type === 'transition' && e.to === 'closed').map((e) => e.conversationId)
    expect(closings.sort()).toEqual([queued.id, active.id, away.id, wrapping.id].sort())
    expect(await store.get(other.id)).toEqual(other)

    expect(await service.eraseCustomer('erase-me')).toBe(0)
    expect(await service.eraseCustomer('nobody')).toBe(0)
  })

  it('refuses a bad id with invalid-argument and a store without retention with not-supported', async () => {
    const { service } = setup()
    expect(await service.eraseCustomer('' as string).catch((e: unknown) => e)).toMatchObject({ code: 'invalid-argument' })
    const old = setup(SETTINGS, partOneStore())
    await old.service.start({ customerId: 'c' })
    const error = await old.service.eraseCustomer('c').catch((e: unknown) => e)
    expect(isReconnectError(error) && error.code).toBe('not-supported')
  })

  it('for any mix of customers and states, erases exactly that customer and nothing else (property)', async () => {
    const customers = ['c1', 'c2', 'c3', null] as const
    const step = fc.constantFrom('none', 'disconnect', 'end', 'close', 'assignLater', 'expire')
    const chat = fc.record({ customer: fc.constantFrom(...customers), agent: fc.constantFrom('a1', 'a2', null), step })
    await fc.assert(
      fc.asyncProperty(fc.array(chat, { maxLength: 12 }), fc.constantFrom('c1', 'c2'), async (chats, victim) => {
        const { clock, service, store } = setup({ ...SETTINGS, wrapUpCapacity: 'always' })
        for (const c of chats) {
          const started = await service.start({ customerId: c.customer, agentId: c.agent })
          if (c.step === 'disconnect') await service.disconnect(started.id)
          if (c.step === 'end' && c.agent !== null) await service.endByAgent(started.id)
          if (c.step === 'close' && c.agent !== null) await service.endByAgent(started.id).then(() => service.closeByAgent(started.id))
          if (c.step === 'assignLater' && c.agent === null) await service.assign(started.id, 'a3')
          if (c.step === 'expire') clock.advance(40 * MINUTE)
        }
        const everyone = async () => {
          const out = new Map<string, ConversationRecord>()
          for (const c of customers) if (c !== null) for (const r of await store.byCustomer!(c)) out.set(r.id, r)
          return out
        }
        const before = await everyone()
        const expected = [...before.values()].filter((r) => r.customerId === victim).length
        expect(await service.eraseCustomer(victim)).toBe(expected)
        const after = await everyone()
        for (const [id, record] of before) {
          if (record.customerId === victim) expect(await store.get(id)).toBeUndefined()
          else expect(after.get(id)).toEqual(record)
        }
        for (const agent of ['a1', 'a2', 'a3']) {
          for (const r of await store.heldBy(agent)) expect(r.customerId).not.toBe(victim)
        }
        for (const r of await store.due(Number.POSITIVE_INFINITY, 1000)) expect(r.customerId).not.toBe(victim)
      }),
      replayParameters(60),
    )
  })
})
