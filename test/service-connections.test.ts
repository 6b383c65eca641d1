import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  createMemoryStore,
  createReconnectService,
  defineSettings,
  isConversationRecord,
  isInvalidTransitionError,
  isSettingsError,
  MAX_CONNECTIONS,
  type ConversationRecord,
  type ReconnectSettingsInput,
  type ServiceEvent,
} from '../src/index'
import { createManualClock } from '../src/testing/index'
import { countingStore } from './support/http'

const SETTINGS: ReconnectSettingsInput = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://help.example/chat' }

function setup(settings: ReconnectSettingsInput = SETTINGS) {
  const clock = createManualClock()
  const store = countingStore(createMemoryStore())
  const events: ServiceEvent[] = []
  const service = createReconnectService({ settings, clock, store, onEvent: (e) => void events.push(e) })
  const transitions = () => events.filter((e) => e.type === 'transition')
  return { clock, store, service, events, transitions }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection')
    },
    (error: unknown) => error,
  )
}

describe('attach and detach (SPEC §10)', () => {
  it('a conversation without connections keeps its Part I shape: no `connections`, no presence timers', async () => {
    const { service } = setup()
    const record = await service.start({ agentId: 'agent-1' })
    expect('connections' in record).toBe(false)
    expect(record.timers).toEqual({})
    expect((await service.disconnect(record.id)).state).toBe('reconnectable')
  })

  it('start with a connection attaches it in the same write (version 1, one put)', async () => {
    const { service, store } = setup()
    const record = await service.start({ agentId: 'agent-1', connectionId: 'tab-1' })
    expect(record.version).toBe(1)
    expect(record.connections).toEqual({ 'tab-1': null })
    expect(store.puts).toBe(1)
  })

  it('the last detach waits for detachGrace; an attach within it changes no state and emits no transition', async () => {
    const { service, clock, transitions } = setup()
    const record = await service.start({ agentId: 'agent-1', connectionId: 'tab-1' })
    const detached = await service.detach(record.id, { connectionId: 'tab-1' })
    expect(detached.state).toBe('active')
    expect(detached.timers.detach).toBe(clock.now() + 10_000)
    clock.advance(9_999)
    const back = await service.attach(record.id, { connectionId: 'tab-2' })
    expect(back.state).toBe('active')
    expect(back.timers.detach).toBeUndefined()
    clock.advance(60_000)
    expect(await service.runDueTimers()).toBe(0)
    expect((await service.get(record.id)).state).toBe('active')
    expect(transitions()).toEqual([])
  })

  it('at the grace end it takes customer.disconnected at that instant, as disconnect does', async () => {
    const { service, clock, transitions } = setup()
    const record = await service.start({ agentId: 'agent-1', connectionId: 'tab-1' })
    const start = clock.now()
    await service.detach(record.id, { connectionId: 'tab-1' })
    clock.advance(10_000)
    expect(await service.runDueTimers()).toBe(1)
    const after = await service.get(record.id)
    expect(after.state).toBe('reconnectable')
    expect(after.timers).toEqual({ window: start + 10_000 + 30 * 60_000 })
    expect(after.history.at(-1)).toEqual({ at: start + 10_000, event: 'customer.disconnected', from: 'active', to: 'reconnectable' })
    expect(transitions()).toEqual([
      {
        type: 'transition',
        id: `${record.id}:${after.version}:0`,
        conversationId: record.id,
        at: start + 10_000,
        emittedAt: expect.any(Number),
        from: 'active',
        to: 'reconnectable',
        event: 'customer.disconnected',
      },
    ])
    // Taken effect at the grace end; emitted by the sweep that applied it, never before.
    expect((transitions()[0] as { emittedAt: number }).emittedAt).toBeGreaterThanOrEqual(start + 10_000)
  })

  it('detachGrace 0 disconnects in the same write as the last detach; a queued chat closes', async () => {
    const { service } = setup({ ...SETTINGS, detachGrace: 0 })
    const record = await service.start({ connectionId: 'tab-1' })
    const after = await service.detach(record.id, { connectionId: 'tab-1' })
    expect(after.state).toBe('closed')
    expect(after.version).toBe(2)
  })

  it('a lease lapses unless renewed; the grace starts at the lapse', async () => {
    const { service, clock } = setup()
    const record = await service.start({ agentId: 'agent-1' })
    const t0 = clock.now()
    await service.attach(record.id, { connectionId: 'tab-1', leaseMs: 30_000 })
    clock.advance(20_000)
    const renewed = await service.attach(record.id, { connectionId: 'tab-1', leaseMs: 30_000 })
    expect(renewed.connections).toEqual({ 'tab-1': t0 + 50_000 })
    expect(renewed.nextDueAt).toBe(t0 + 50_000)
    clock.advance(30_000)
    const lapsed = await service.get(record.id)
    expect(lapsed.connections).toBeUndefined()
    expect(lapsed.timers.detach).toBe(t0 + 60_000)
    clock.advance(10_000)
    expect((await service.get(record.id)).state).toBe('reconnectable')
  })

  it('two tabs: closing one keeps the chat; disconnect(id) drops every connection at once', async () => {
    const { service, clock } = setup()
    const record = await service.start({ agentId: 'agent-1', connectionId: 'tab-1' })
    await service.attach(record.id, { connectionId: 'tab-2' })
    await service.detach(record.id, { connectionId: 'tab-1' })
    clock.advance(60_000)
    await service.runDueTimers()
    expect((await service.get(record.id)).connections).toEqual({ 'tab-2': null })
    const gone = await service.disconnect(record.id)
    expect(gone.state).toBe('reconnectable')
    expect(gone.connections).toBeUndefined()
    expect(gone.timers.lease ?? gone.timers.detach).toBeUndefined()
  })

  it('detaching an unknown connection is a no-op: the record, version unchanged, no write', async () => {
    const { service, store } = setup()
    const record = await service.start({ connectionId: 'tab-1' })
    const puts = store.puts
    const same = await service.detach(record.id, { connectionId: 'tab-9' })
    expect(same.version).toBe(record.version)
    expect(store.puts).toBe(puts)
    // Also on a conversation that has ended.
    const closed = await service.endByCustomer(record.id)
    expect((await service.detach(record.id, { connectionId: 'tab-1' })).version).toBe(closed.version)
  })

  it('attach on a dropped or ended conversation is an InvalidTransitionError', async () => {
    const { service } = setup()
    const record = await service.start({ agentId: 'agent-1' })
    await service.disconnect(record.id)
    const error = await rejection(service.attach(record.id, { connectionId: 'tab-1' }))
    expect(isInvalidTransitionError(error)).toBe(true)
    expect(error).toMatchObject({ state: 'reconnectable' })
  })

  it('connections survive agent.assigned and agent.closed (queued ↔ active)', async () => {
    const { service } = setup()
    const record = await service.start({ connectionId: 'tab-1' })
    await service.attach(record.id, { connectionId: 'tab-2', leaseMs: 5_000 })
    const active = await service.assign(record.id, 'agent-1')
    expect(active.connections).toEqual(
      record.connections === undefined ? undefined : { ...record.connections, 'tab-2': active.connections!['tab-2']! },
    )
    const queued = await service.closeByAgent(record.id)
    expect(queued.state).toBe('queued')
    expect(Object.keys(queued.connections ?? {}).sort()).toEqual(['tab-1', 'tab-2'])
    expect(queued.timers.lease).toBe(active.timers.lease)
    expect(queued.timers.queue).toBeDefined()
  })

  it('returnCustomer with a connection resumes and attaches in one write', async () => {
    const { service, store } = setup()
    const record = await service.start({ agentId: 'agent-1' })
    await service.disconnect(record.id)
    const puts = store.puts
    const decision = await service.returnCustomer({ reconnectId: record.reconnectId, connectionId: 'tab-3' })
    expect(decision.type).toBe('resume')
    expect(store.puts).toBe(puts + 1)
    expect((await service.get(record.id)).connections).toEqual({ 'tab-3': null })
  })

  it(`keeps at most ${MAX_CONNECTIONS}: one more drops the one that lapses first, lease-less ones last`, async () => {
    const { service, clock } = setup()
    const record = await service.start({ agentId: 'agent-1' })
    const t0 = clock.now()
    for (let i = 0; i < MAX_CONNECTIONS; i += 1) {
      await service.attach(record.id, i < 2 ? { connectionId: `c${i}`, leaseMs: 60_000 - i } : { connectionId: `c${i}` })
    }
    let current = await service.attach(record.id, { connectionId: 'new-1' })
    expect(Object.keys(current.connections!)).toHaveLength(MAX_CONNECTIONS)
    expect(current.connections!.c1).toBeUndefined() // lapsed first (t0 + 59 999)
    expect(current.connections!.c0).toBe(t0 + 60_000)
    current = await service.attach(record.id, { connectionId: 'new-2' })
    expect(current.connections!.c0).toBeUndefined()
    // Only lease-less ones left: the smallest id goes, never the one just attached.
    current = await service.attach(record.id, { connectionId: 'a-first' })
    expect(current.connections!['a-first']).toBeNull()
    expect(current.connections!.c10).toBeUndefined()
    expect(isConversationRecord(current)).toBe(true)
  })

  it('refuses bad connection ids and leases with invalid-argument before any write', async () => {
    const { service, store } = setup()
    const record = await service.start({ agentId: 'agent-1' })
    const puts = store.puts
    for (const connectionId of [undefined, '', 'c'.repeat(129), 7, null, 'a\u0000b', '\uD800']) {
      const calls = [
        () => service.attach(record.id, { connectionId } as never),
        () => service.detach(record.id, { connectionId } as never),
        // `start` and `returnCustomer` read an absent connection as none.
        ...(connectionId === undefined
          ? []
          : [
              () => service.start({ connectionId } as never),
              () => service.returnCustomer({ reconnectId: record.reconnectId, connectionId } as never),
              () => service.answerPrompt(record.id, 'continue', 'cust-1', { connectionId } as never),
            ]),
      ]
      for (const call of calls) expect(await rejection(call())).toMatchObject({ code: 'invalid-argument' })
    }
    for (const leaseMs of [0, -1, 1.5, '30000', null, Number.NaN, 86_400_001]) {
      const error = await rejection(service.attach(record.id, { connectionId: 'tab-1', leaseMs } as never))
      expect(error).toMatchObject({ code: 'invalid-argument' })
    }
    expect(await rejection(service.attach(record.id, null as never))).toMatchObject({ code: 'invalid-argument' })
    expect(store.puts).toBe(puts)
  })

  it('a return via link to a live chat whose grace has passed decides on the disconnected chat', async () => {
    const { service, clock } = setup({ ...SETTINGS, detachGrace: 1_000 })
    const record = await service.start({ connectionId: 'tab-1' })
    await service.detach(record.id, { connectionId: 'tab-1' })
    clock.advance(1_000)
    // The stored record still says `queued`; the decision must see it closed (not retry into a conflict).
    const decision = await service.returnCustomer({ reconnectId: record.reconnectId })
    expect(decision).toEqual({ type: 'new-chat', reason: 'closed' })
  })
})

describe('detachGrace setting', () => {
  it('defaults to 10 s, accepts 0 and every duration form, at most 1 hour', () => {
    expect(defineSettings({}).detachGrace).toBe(10_000)
    expect(defineSettings({ detachGrace: 0 }).detachGrace).toBe(0)
    expect(defineSettings({ detachGrace: 'PT30S' }).detachGrace).toBe(30_000)
    expect(defineSettings({ detachGrace: { minutes: 1 } }).detachGrace).toBe(60_000)
    for (const bad of [-1, Number.NaN, '10 seconds', { hours: 2 }, null]) {
      let error: unknown
      try {
        defineSettings({ detachGrace: bad as never })
      } catch (e) {
        error = e
      }
      expect(isSettingsError(error)).toBe(true)
      expect((error as { issues: { path: string }[] }).issues.map((i) => i.path)).toEqual(['detachGrace'])
    }
  })
})

describe('records with connections (store validation)', () => {
  const base = async (): Promise<ConversationRecord> => {
    const { service } = setup()
    return service.start({ agentId: 'agent-1' })
  }

  it('accepts a record without `connections` (written before the upgrade) and any valid map', async () => {
    const record = await base()
    expect(isConversationRecord(record)).toBe(true)
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.string({ minLength: 1, maxLength: 128 }), fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: null }), {
          maxKeys: MAX_CONNECTIONS,
        }),
        async (connections) => {
          const with_ = JSON.parse(JSON.stringify({ ...record, connections })) as unknown
          expect(isConversationRecord(with_)).toBe(true)
        },
      ),
      { numRuns: 100 },
    )
  })

  it('refuses a bad `connections` field', async () => {
    const record = await base()
    const tooMany = Object.fromEntries(Array.from({ length: MAX_CONNECTIONS + 1 }, (_, i) => [`c${i}`, null]))
    for (const connections of [null, [], 'x', { '': null }, { a: 'soon' }, { a: Number.NaN }, { ['c'.repeat(129)]: null }, tooMany]) {
      expect(isConversationRecord({ ...record, connections })).toBe(false)
    }
  })

  it('the memory store keeps `connections` across put and get, also an id named __proto__', async () => {
    const { service, store } = setup()
    const record = await service.start({ agentId: 'agent-1', connectionId: '__proto__' })
    const stored = await store.get(record.id)
    expect(Object.hasOwn(stored!.connections!, '__proto__')).toBe(true)
    expect(Object.getPrototypeOf(stored!.connections)).toBe(Object.prototype)
    const detached = await service.detach(record.id, { connectionId: '__proto__' })
    expect(detached.connections).toBeUndefined()
  })
})
