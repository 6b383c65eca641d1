import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  SCHEDULER_MAX_SLEEP_MS,
  createMemoryStore,
  createReconnectService,
  isStoreError,
  type ConversationStore,
  type ReconnectSettingsInput,
  type ServiceEvent,
} from '../src/index'
import { createManualClock } from '../src/testing/manual-clock'
import { replayParameters } from './support/fc-replay'

const SECOND = 1000
const MINUTE = 60 * SECOND

function widgetSettings(timeLimit: number): ReconnectSettingsInput {
  return { enabled: true, timeLimit, portalUrl: 'https://portal.example.com/chat', wrapUpCapacity: 'never' }
}

interface Plan {
  /** Time limit of each widget, in ms. */
  limits: number[]
  /** Per conversation: which widget, and how long after the start it disconnects. */
  conversations: Array<{ widget: number; disconnectAfter: number }>
}

/**
 * Runs one service with its scheduler on a manual clock, moving time from one pending event (a timer or a
 * planned disconnect) to the next, and checks the scheduler's promises after every step.
 */
async function simulate(plan: Plan): Promise<void> {
  const clock = createManualClock()
  const store = createMemoryStore()
  // One settings object per widget, so the service validates each once.
  const perWidget = plan.limits.map(widgetSettings)
  const settings = (widgetId: string): ReconnectSettingsInput => perWidget[Number(widgetId.slice(2))]!
  const expiries: Array<{ id: string; at: number; sweptAt: number }> = []
  const onEvent = (event: ServiceEvent): void => {
    if (event.type === 'transition' && event.to === 'wrap-up')
      expiries.push({ id: event.conversationId, at: event.at, sweptAt: clock.now() })
  }
  const errors: unknown[] = []
  const service = createReconnectService({ settings, clock, store, onEvent, onError: (e) => errors.push(e) })

  // Called tens of thousands of times: compare first, build the assertion only on failure.
  const checkTimer = (): void => {
    const at = clock.nextTimerAt()
    if (clock.pending() <= 1 && at !== null && at - clock.now() <= SCHEDULER_MAX_SLEEP_MS) return
    expect(clock.pending(), 'pending scheduler timeouts').toBeLessThanOrEqual(1)
    expect(at, 'the scheduler always has a wake-up while it runs').not.toBeNull()
    expect(at! - clock.now(), 'sleeps at most 30 s').toBeLessThanOrEqual(SCHEDULER_MAX_SLEEP_MS)
  }

  const t0 = clock.now()
  const ids: string[] = []
  for (const [i, c] of plan.conversations.entries()) {
    ids.push((await service.start({ conversationId: `c-${i}`, widgetId: `w-${c.widget}`, agentId: `agent-${i % 20}` })).id)
  }
  service.startScheduler()
  await service.idle()
  checkTimer()

  const order = plan.conversations.map((c, i) => ({ i, at: t0 + c.disconnectAfter })).sort((a, b) => a.at - b.at)
  const expected = plan.conversations.map((c) => t0 + c.disconnectAfter + plan.limits[c.widget]!)
  const expectedInOrder = [...expected].sort((a, b) => a - b)
  let overdue = 0
  let next = 0
  while (expiries.length < ids.length) {
    const disconnectAt = order[next]?.at ?? Number.POSITIVE_INFINITY
    const target = Math.min(disconnectAt, clock.nextTimerAt() ?? Number.POSITIVE_INFINITY)
    expect(Number.isFinite(target), 'nothing left to wait for but conversations are still open').toBe(true)
    clock.set(Math.max(target, clock.now()))
    await service.idle()
    checkTimer()
    // Every deadline up to now has been applied, on time: the scheduler woke when the first came due.
    while (overdue < expectedInOrder.length && expectedInOrder[overdue]! <= clock.now()) overdue += 1
    if (expiries.length !== overdue) expect(expiries.length, `expired by ${clock.now() - t0} ms`).toBe(overdue)
    while (order[next] !== undefined && order[next]!.at === clock.now()) {
      const i = order[next]!.i
      const record = await service.disconnect(ids[i]!)
      const window = record.timers.window!
      if (window !== expected[i]) expect(window).toBe(expected[i])
      // A deadline earlier than the planned wake-up moves the wake-up forward at once.
      if (!(clock.nextTimerAt()! <= window))
        expect(clock.nextTimerAt(), 'scheduler re-armed for the new deadline').toBeLessThanOrEqual(window)
      checkTimer()
      next += 1
    }
  }

  expect(errors).toEqual([])
  const ats = expiries.map((e) => e.at)
  const outOfOrder = ats.findIndex((at, i) => i > 0 && at < ats[i - 1]!)
  expect(outOfOrder, 'index of the first expiry out of deadline order').toBe(-1)
  const wrong = expiries.filter((e) => e.at !== expected[Number(e.id.slice(2))] || e.sweptAt !== e.at)
  expect(wrong, 'expiries not at their deadline, or swept late').toEqual([])
  expect(new Set(expiries.map((e) => e.id)).size, 'each conversation expires once').toBe(ids.length)

  service.stopScheduler()
  expect(clock.pending()).toBe(0)
}

/** A small pseudo-random generator, so the big run is the same every time. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

describe('scheduler', () => {
  it('expires 10 000 conversations in deadline order, on time, with one pending timeout', async () => {
    const random = mulberry32(20_250_101)
    const limits = Array.from({ length: 50 }, (_, k) => (k + 1) * 7 * SECOND + k * 13)
    const conversations = Array.from({ length: 10_000 }, () => ({
      widget: Math.floor(random() * limits.length),
      disconnectAfter: Math.floor(random() * 10 * MINUTE),
    }))
    await simulate({ limits, conversations })
  }, 30_000)

  it('expires a crowd that shares one deadline in a single wake-up, past the sweep batch size', async () => {
    const sameTime = Array.from({ length: 600 }, (_, i) => ({ widget: i % 2, disconnectAfter: (i % 2) * 1_000 }))
    await simulate({ limits: [5_000, 4_000], conversations: sameTime })
  })

  it('keeps the same promises for any mix of time limits and disconnect times', async () => {
    const plan = fc.record({
      limits: fc.array(fc.integer({ min: 1000, max: 5 * MINUTE }), { minLength: 1, maxLength: 5 }),
      conversations: fc.array(fc.record({ widget: fc.nat({ max: 4 }), disconnectAfter: fc.integer({ min: 0, max: 3 * MINUTE }) }), {
        maxLength: 30,
      }),
    })
    await fc.assert(
      fc.asyncProperty(plan, async ({ limits, conversations }) => {
        await simulate({ limits, conversations: conversations.map((c) => ({ ...c, widget: c.widget % limits.length })) })
      }),
      replayParameters(60),
    )
  })

  it('wakes every 30 s when nothing is due, and then only looks', async () => {
    const clock = createManualClock()
    const inner = createMemoryStore()
    let dueCalls = 0
    const store: ConversationStore = { ...inner, due: (now, limit) => ((dueCalls += 1), inner.due(now, limit)) }
    const service = createReconnectService({ settings: widgetSettings(MINUTE), clock, store })
    await service.start({ agentId: 'agent-1' })
    service.startScheduler()
    await service.idle()
    for (let i = 1; i <= 5; i += 1) {
      expect(clock.pending()).toBe(1)
      expect(clock.nextTimerAt()).toBe(clock.now() + SCHEDULER_MAX_SLEEP_MS)
      clock.advance(SCHEDULER_MAX_SLEEP_MS - 1)
      await service.idle()
      expect(dueCalls, 'not woken early').toBe(i - 1)
      clock.advance(1)
      await service.idle()
      expect(dueCalls).toBe(i)
    }
    service.stopScheduler()
    expect(clock.pending()).toBe(0)
  })

  it('applies a deadline another node wrote within 30 s, without being told', async () => {
    const clock = createManualClock()
    const store = createMemoryStore()
    const events: ServiceEvent[] = []
    const settings = widgetSettings(5 * SECOND)
    const sweeper = createReconnectService({ settings, clock, store, onEvent: (e) => void events.push(e) })
    const other = createReconnectService({ settings, clock, store })
    sweeper.startScheduler()
    await sweeper.idle()
    const wake = clock.nextTimerAt()!
    const chat = await other.start({ agentId: 'agent-1' })
    const dropped = await other.disconnect(chat.id)
    expect(clock.nextTimerAt(), "another node's write does not touch this node's timer").toBe(wake)
    clock.set(wake)
    await sweeper.idle()
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'transition', to: 'wrap-up', conversationId: chat.id, at: dropped.timers.window }),
    )
    expect(clock.pending()).toBe(1)
    sweeper.stopScheduler()
  })

  it('moves its wake-up forward for an earlier deadline it writes, and not for a later one', async () => {
    const clock = createManualClock()
    const perWidget: Record<string, ReconnectSettingsInput> = { soon: widgetSettings(5 * SECOND), later: widgetSettings(10 * MINUTE) }
    const service = createReconnectService({ settings: (w) => perWidget[w]!, clock })
    service.startScheduler()
    await service.idle()
    const wake = clock.nextTimerAt()!
    const late = await service.start({ widgetId: 'later', agentId: 'agent-1' })
    await service.disconnect(late.id)
    expect(clock.nextTimerAt()).toBe(wake)
    const soon = await service.start({ widgetId: 'soon', agentId: 'agent-2' })
    const dropped = await service.disconnect(soon.id)
    expect(clock.nextTimerAt()).toBe(dropped.timers.window)
    expect(clock.pending()).toBe(1)
    clock.set(dropped.timers.window!)
    await service.idle()
    expect((await service.get(soon.id)).state).toBe('wrap-up')
    expect(clock.pending()).toBe(1)
    service.stopScheduler()
    expect(clock.pending()).toBe(0)
  })

  it('backs off after a failed sweep instead of spinning, reports it, and applies the deadline once the store is back', async () => {
    const clock = createManualClock()
    const inner = createMemoryStore()
    let failures = 1
    const store: ConversationStore = {
      ...inner,
      due: (now, limit) => (failures-- > 0 ? Promise.reject(new Error('injected: store down')) : inner.due(now, limit)),
    }
    const errors: unknown[] = []
    const service = createReconnectService({ settings: widgetSettings(5 * SECOND), clock, store, onError: (e) => errors.push(e) })
    const chat = await service.start({ agentId: 'agent-1' })
    const dropped = await service.disconnect(chat.id)
    service.startScheduler()
    await service.idle()
    clock.set(dropped.timers.window!)
    await service.idle()
    expect(errors).toHaveLength(1)
    expect(isStoreError(errors[0])).toBe(true)
    expect(clock.pending()).toBe(1)
    const retryIn = clock.nextTimerAt()! - clock.now()
    expect(retryIn, 'no zero-delay retry loop').toBeGreaterThan(0)
    expect(retryIn).toBeLessThanOrEqual(SCHEDULER_MAX_SLEEP_MS)
    clock.advance(retryIn)
    await service.idle()
    expect((await inner.get(chat.id))!.state).toBe('wrap-up')
    service.stopScheduler()
  })

  it('leaves no pending timeout after stopScheduler, even when stopped mid-sweep, and can start again', async () => {
    const clock = createManualClock()
    const inner = createMemoryStore()
    let release: (() => void) | undefined
    const store: ConversationStore = {
      ...inner,
      async due(now, limit) {
        if (release === undefined) await new Promise<void>((resolve) => (release = resolve))
        return inner.due(now, limit)
      },
    }
    const service = createReconnectService({ settings: widgetSettings(5 * SECOND), clock, store })
    service.startScheduler()
    service.stopScheduler()
    await service.idle()
    expect(clock.pending(), 'stopped before its first look').toBe(0)

    const chat = await service.start({ agentId: 'agent-1' })
    const dropped = await service.disconnect(chat.id)
    service.startScheduler()
    await service.idle()
    expect(clock.pending()).toBe(1)
    clock.set(dropped.timers.window!)
    // The sweep now waits inside the store; stop while it is under way.
    service.stopScheduler()
    expect(clock.pending()).toBe(0)
    release!()
    await service.idle()
    expect(clock.pending(), 'the finished sweep does not re-arm a stopped scheduler').toBe(0)
    expect((await inner.get(chat.id))!.state).toBe('wrap-up')

    service.startScheduler()
    await service.idle()
    expect(clock.pending()).toBe(1)
    service.stopScheduler()
    service.stopScheduler()
    expect(clock.pending()).toBe(0)
  })

  it('idle() waits for a sweep that was under way when the scheduler was restarted', async () => {
    const clock = createManualClock()
    const inner = createMemoryStore()
    let release: (() => void) | undefined
    const store: ConversationStore = {
      ...inner,
      async due(now, limit) {
        if (release === undefined) await new Promise<void>((resolve) => (release = resolve))
        return inner.due(now, limit)
      },
    }
    const service = createReconnectService({ settings: widgetSettings(5 * SECOND), clock, store })
    const chat = await service.start({ agentId: 'agent-1' })
    const dropped = await service.disconnect(chat.id)
    service.startScheduler()
    await service.idle()
    clock.set(dropped.timers.window!)
    // A host restarts the scheduler (say, on a configuration reload) while a sweep waits on the store.
    service.stopScheduler()
    service.startScheduler()
    let idle = false
    const waiting = service.idle().then(() => (idle = true))
    for (let i = 0; i < 20; i += 1) await Promise.resolve()
    expect(idle, 'idle() resolved while a sweep was still waiting on the store').toBe(false)
    release!()
    await waiting
    expect((await inner.get(chat.id))!.state).toBe('wrap-up')
    expect(clock.pending()).toBe(1)
    service.stopScheduler()
    expect(clock.pending()).toBe(0)
  })
})
