import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isReconnectError } from '../src/errors'
import { createReconnectService, type ReconnectService } from '../src/service/reconnect-service'
import { SWEEP_CONCURRENCY } from '../src/service/sweep'
import { createMemoryStore } from '../src/store/memory-store'
import { createManualClock, type ManualClock } from '../src/testing/manual-clock'
import type { ConversationStore } from '../src/store/conversation-store'
import type { ReconnectSettingsInput, ServiceEvent } from '../src/types'
import { replayParameters } from './support/fc-replay'
import { scheduledStore } from './support/scheduled-store'

const MINUTE = 60_000
const SETTINGS: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 30 },
  warnBefore: { minutes: 5 },
  wrapUpCapacity: { minutes: 2 },
  wrapUpAutoClose: { minutes: 20 },
  queueAutoClose: { minutes: 45 },
  portalUrl: 'https://shop.example/help',
}

/** What a conversation went through before the sweep: each kind leaves other deadlines behind. */
type Kind = 'disconnected' | 'ended' | 'queued' | 'active'
const kinds: Kind[] = ['disconnected', 'ended', 'queued', 'active']

async function prepare(service: ReconnectService, clock: ManualClock, plan: { kind: Kind; afterMs: number }[]): Promise<void> {
  for (const [i, { kind, afterMs }] of plan.entries()) {
    clock.advance(afterMs)
    const chat = await service.start({ conversationId: `conv-${i}`, ...(kind === 'queued' ? {} : { agentId: `agent-${i % 3}` }) })
    if (kind === 'disconnected') await service.disconnect(chat.id)
    if (kind === 'ended') await service.endByAgent(chat.id)
  }
}

/** The events of each conversation in the order they were emitted, without `emittedAt` (it is the clock's, the same in both runs). */
function byConversation(events: ServiceEvent[]): Map<string, unknown[]> {
  const out = new Map<string, unknown[]>()
  for (const event of events) {
    if (!('conversationId' in event) || typeof event.conversationId !== 'string') continue
    const { emittedAt: _, ...rest } = event as ServiceEvent & { emittedAt?: number }
    const list = out.get(event.conversationId) ?? []
    list.push(rest)
    out.set(event.conversationId, list)
  }
  return out
}

async function snapshot(store: ConversationStore, count: number) {
  const records = []
  for (let i = 0; i < count; i += 1) {
    const r = await store.get(`conv-${i}`)
    records.push(r === undefined ? undefined : { state: r.state, version: r.version, timers: r.timers, capacityHeld: r.capacityHeld })
  }
  return records
}

const plans = fc.array(fc.record({ kind: fc.constantFrom(...kinds), afterMs: fc.integer({ min: 0, max: 3 * MINUTE }) }), {
  minLength: 1,
  maxLength: 24,
})

describe('a sweep that applies due conversations concurrently', () => {
  it('applies each due conversation exactly once, in any interleaving, keeping each conversation’s events in order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        plans,
        fc.integer({ min: 0, max: 90 * MINUTE }),
        fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 2 }),
        async (s, plan, sweepAfter, bounds) => {
          // The model: the same conversations swept by one service, one conversation at a time.
          const modelClock = createManualClock()
          const modelEvents: ServiceEvent[] = []
          // Like the system's store below: the wrapper has no delete, so neither run has retention.
          const modelStore = scheduledStore(createMemoryStore(), s)
          const model = createReconnectService({
            settings: SETTINGS,
            store: modelStore,
            clock: modelClock,
            onEvent: (e) => void modelEvents.push(e),
            sweepConcurrency: 1,
          })
          await prepare(model, modelClock, plan)
          modelClock.advance(sweepAfter)
          modelEvents.length = 0
          const modelApplied = await model.runDueTimers()

          // The system: one or two services on one store, each applying up to `bound` at once, every
          // store call released by the scheduler in an order it picks.
          const clock = createManualClock()
          const events: ServiceEvent[] = []
          const store = scheduledStore(createMemoryStore(), s)
          const services = bounds.map((bound) =>
            createReconnectService({ settings: SETTINGS, store, clock, onEvent: (e) => void events.push(e), sweepConcurrency: bound }),
          )
          await prepare(services[0]!, clock, plan)
          clock.advance(sweepAfter)
          events.length = 0
          store.gated = true
          const applied = await s.waitFor(Promise.all(services.map((service) => service.runDueTimers())))
          store.gated = false

          expect(applied.reduce((a, b) => a + b, 0)).toBe(modelApplied)
          expect(await snapshot(store, plan.length)).toEqual(await snapshot(modelStore, plan.length))
          expect(byConversation(events)).toEqual(byConversation(modelEvents))
          // Nothing left over: a second sweep finds no work.
          expect(await services[0]!.runDueTimers()).toBe(0)
        },
      ),
      replayParameters(60),
    )
  })

  it('stops at the first store failure once the conversations under way are done, and the next sweep applies the rest', async () => {
    const clock = createManualClock()
    const inner = createMemoryStore()
    let failing = false
    let putsInFlight = 0
    let mostInFlight = 0
    const store: ConversationStore = {
      ...inner,
      get: (id) => inner.get(id),
      getByReconnectId: (id) => inner.getByReconnectId(id),
      findResumable: (w, c, now) => inner.findResumable(w, c, now),
      due: (now, limit, options) => inner.due(now, limit, options),
      nextDueAt: () => inner.nextDueAt(),
      heldBy: (a) => inner.heldBy(a),
      delete: (id, v) => inner.delete!(id, v),
      byCustomer: (c) => inner.byCustomer!(c),
      async put(record, expected) {
        putsInFlight += 1
        mostInFlight = Math.max(mostInFlight, putsInFlight)
        await new Promise((resolve) => setTimeout(resolve, 0))
        putsInFlight -= 1
        if (failing && expected !== null) throw new Error('the store went away')
        return inner.put(record, expected)
      },
    }
    const service = createReconnectService({ settings: SETTINGS, store, clock, sweepConcurrency: 4 })
    await prepare(
      service,
      clock,
      Array.from({ length: 40 }, () => ({ kind: 'disconnected' as const, afterMs: 0 })),
    )
    clock.advance(31 * MINUTE)
    failing = true
    mostInFlight = 0
    const error = await service.runDueTimers().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isReconnectError(error) && error.code).toBe('store-failure')
    // No write of that sweep is still running once it has rejected.
    expect(putsInFlight).toBe(0)
    expect(mostInFlight).toBe(4)
    failing = false
    expect(await service.runDueTimers()).toBeGreaterThan(0)
    expect(await service.runDueTimers()).toBe(0)
    for (let i = 0; i < 40; i += 1) expect((await inner.get(`conv-${i}`))?.state).toBe('wrap-up')
  })

  it('sweepConcurrency is an option (default 16); a bad value is invalid-argument', () => {
    expect(SWEEP_CONCURRENCY).toBe(16)
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '4']) {
      let thrown: unknown
      try {
        createReconnectService({ settings: SETTINGS, sweepConcurrency: bad as number })
      } catch (error) {
        thrown = error
      }
      expect(isReconnectError(thrown) && thrown.code === 'invalid-argument', String(bad)).toBe(true)
    }
    expect(() => createReconnectService({ settings: SETTINGS, sweepConcurrency: 1 })).not.toThrow()
  })
})
