import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createReconnectMetrics } from '../src/metrics/index'
import { createLogHistogram } from '../src/metrics/log-histogram'
import { isReconnectError } from '../src/errors'
import type { ServiceEvent } from '../src/types'
import { eventsOf, metricsRunArbitrary } from './support/metrics-model'
import { exactPercentile, naive, numbers, ordered, withinTwoPercent } from './support/metrics-naive'

function recordAll(events: readonly ServiceEvent[], options?: Parameters<typeof createReconnectMetrics>[0]) {
  const metrics = createReconnectMetrics(options)
  for (const event of events) metrics.record(event)
  return metrics
}

describe('createReconnectMetrics', () => {
  it('a snapshot equals the figures computed naively from the event list, for any run of the conversation model', () => {
    fc.assert(
      fc.property(metricsRunArbitrary, (steps) => {
        const events = eventsOf(steps)
        const snapshot = recordAll(events).snapshot()
        const expected = naive(events)
        const { timeToReconnect, ...rest } = snapshot
        const { timeToReconnect: exactTimes, ...expectedRest } = expected
        expect(rest).toEqual(expectedRest)
        expect(timeToReconnect.count).toBe(exactTimes.count)
        expect(timeToReconnect.max).toBe(exactTimes.max)
        for (const q of ['p50', 'p90', 'p99'] as const) {
          expect(withinTwoPercent(timeToReconnect[q], exactTimes[q]), `${q}: ${timeToReconnect[q]} vs exact ${exactTimes[q]}`).toBe(true)
        }
      }),
      { numRuns: 300 },
    )
  })

  it('never counts below zero, keeps p50 ≤ p90 ≤ p99 ≤ max, and every disconnect is accounted for', () => {
    fc.assert(
      fc.property(metricsRunArbitrary, fc.integer({ min: 1, max: 6 }), (steps, bound) => {
        const events = eventsOf(steps)
        const metrics = createReconnectMetrics({ maxTrackedWindows: bound })
        for (const event of events) {
          metrics.record(event)
          const s = metrics.snapshot()
          expect(numbers(s).every((n) => n >= 0)).toBe(true)
          expect(ordered(s)).toBe(true)
          expect(s.windows.open + s.windows.awaitingReturn).toBeLessThanOrEqual(bound)
          const resumed = s.resumed.link + s.resumed.prompt + s.resumed.session
          expect(s.disconnects).toBe(
            resumed + s.expiredUnused + s.endedWhileAway + s.windows.open + s.windows.awaitingReturn + s.windows.untracked,
          )
          expect(s.capacityWastedMs).toBeLessThanOrEqual(s.capacityHeldAwayMs)
          if (s.reconnectRate !== null) expect(s.reconnectRate).toBeGreaterThanOrEqual(0)
          if (s.reconnectRate !== null) expect(s.reconnectRate).toBeLessThanOrEqual(1)
        }
      }),
      { numRuns: 100 },
    )
  })

  it('a bound at least the number of conversations changes nothing', () => {
    fc.assert(
      fc.property(metricsRunArbitrary, (steps) => {
        const events = eventsOf(steps)
        // One tracked window per conversation at most. A slot can start a new conversation while an
        // older one still waits for a return event that never comes, so bound by the ids seen.
        const conversations = new Set(events.map((event) => event.conversationId)).size
        expect(recordAll(events, { maxTrackedWindows: Math.max(1, conversations) }).snapshot()).toEqual(recordAll(events).snapshot())
      }),
    )
  })

  it('beyond the bound, the window opened longest ago is forgotten and its close ignored', () => {
    const at = 1_000
    const drop = (id: string, t: number): ServiceEvent => ({
      id: 'e',
      type: 'transition',
      conversationId: id,
      at: t,
      emittedAt: t,
      from: 'active',
      to: 'reconnectable',
      event: 'customer.disconnected',
    })
    const expire = (id: string, t: number): ServiceEvent => ({
      id: 'e',
      type: 'transition',
      conversationId: id,
      at: t,
      emittedAt: t,
      from: 'reconnectable',
      to: 'wrap-up',
      event: 'window.elapsed',
    })
    const metrics = recordAll([drop('a', at), drop('b', at + 1), drop('c', at + 2), expire('a', at + 10), expire('b', at + 10)], {
      maxTrackedWindows: 2,
    })
    const s = metrics.snapshot()
    expect(s.disconnects).toBe(3)
    expect(s.windows).toEqual({ open: 1, awaitingReturn: 0, untracked: 1 })
    expect(s.expiredUnused).toBe(1)
    expect(s.capacityWastedMs).toBe(9) // b: held from its drop at 1001 to 1010
  })

  it('reset() empties it: a reset recorder then counts exactly like a new one', () => {
    fc.assert(
      fc.property(metricsRunArbitrary, metricsRunArbitrary, (first, second) => {
        const metrics = recordAll(eventsOf(first))
        metrics.reset()
        expect(metrics.snapshot()).toEqual(createReconnectMetrics().snapshot())
        const events = eventsOf(second, 1_800_000_000_000)
        for (const event of events) metrics.record(event)
        expect(metrics.snapshot()).toEqual(recordAll(events).snapshot())
      }),
      { numRuns: 60 },
    )
  })

  it('pairs a resume with its return event in either order, and reads the figures of one short story', () => {
    const t0 = 1_700_000_000_000
    const events: ServiceEvent[] = [
      { id: 'e', type: 'capacity.held', conversationId: 'a', at: t0, emittedAt: t0, agentId: 'agent-1' },
      {
        id: 'e',
        type: 'transition',
        conversationId: 'a',
        at: t0 + 1_000,
        emittedAt: t0 + 1_000,
        from: 'active',
        to: 'reconnectable',
        event: 'customer.disconnected',
      },
      {
        id: 'e',
        type: 'transition',
        conversationId: 'a',
        at: t0 + 31_000,
        emittedAt: t0 + 31_000,
        from: 'reconnectable',
        to: 'active',
        event: 'customer.returned',
      },
      {
        id: 'e',
        type: 'return',
        conversationId: 'a',
        at: t0 + 31_000,
        emittedAt: t0 + 31_000,
        via: 'link',
        outcome: 'resume',
        sinceDisconnectMs: 30_000,
      },
      { id: 'e', type: 'capacity.held', conversationId: 'b', at: t0, emittedAt: t0, agentId: 'agent-1' },
      {
        id: 'e',
        type: 'transition',
        conversationId: 'b',
        at: t0,
        emittedAt: t0,
        from: 'active',
        to: 'reconnectable',
        event: 'customer.disconnected',
      },
      { id: 'e', type: 'return', conversationId: 'b', at: t0 + 5_000, emittedAt: t0 + 5_000, via: 'session', outcome: 'resume' },
      {
        id: 'e',
        type: 'transition',
        conversationId: 'b',
        at: t0 + 5_000,
        emittedAt: t0 + 5_000,
        from: 'reconnectable',
        to: 'active',
        event: 'customer.returned',
      },
      { id: 'e', type: 'capacity.held', conversationId: 'c', at: t0, emittedAt: t0, agentId: 'agent-1' },
      {
        id: 'e',
        type: 'transition',
        conversationId: 'c',
        at: t0,
        emittedAt: t0,
        from: 'active',
        to: 'reconnectable',
        event: 'customer.disconnected',
      },
      {
        id: 'e',
        type: 'transition',
        conversationId: 'c',
        at: t0 + 60_000,
        emittedAt: t0 + 60_000,
        from: 'reconnectable',
        to: 'wrap-up',
        event: 'window.elapsed',
      },
      {
        id: 'e',
        type: 'return',
        conversationId: null,
        at: t0 + 90_000,
        emittedAt: t0 + 90_000,
        via: 'link',
        outcome: 'redirect',
        reason: 'expired',
      },
    ]
    const s = recordAll(events).snapshot()
    expect(s.disconnects).toBe(3)
    expect(s.resumed).toEqual({ link: 1, prompt: 0, session: 1 })
    expect(s.expiredUnused).toBe(1)
    expect(s.reconnectRate).toBeCloseTo(2 / 3)
    expect(s.timeToReconnect.count).toBe(2)
    expect(s.timeToReconnect.max).toBe(30_000)
    expect(s.capacityHeldAwayMs).toBe(30_000 + 5_000 + 60_000)
    expect(s.capacityWastedMs).toBe(60_000)
    expect(s.redirects.expired).toBe(1)
    expect(s.returns.resume).toEqual({ link: 1, prompt: 0, session: 1 })
  })

  it('skips what it does not understand instead of throwing', () => {
    const metrics = createReconnectMetrics()
    const junk = [
      null,
      42,
      'transition',
      {},
      { id: 'e', type: 'transition', conversationId: 7, at: 1 },
      { id: 'e', type: 'return', via: 'carrier-pigeon', outcome: 'resume', conversationId: 'x' },
      { id: 'e', type: 'capacity.held', conversationId: 'x', at: Number.NaN },
    ]
    for (const event of junk) metrics.record(event as unknown as ServiceEvent)
    expect(metrics.snapshot().ignoredEvents).toBe(junk.length)
    expect(metrics.snapshot().disconnects).toBe(0)
  })

  it('refuses a bound that is not a positive integer, with a typed error', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Infinity]) {
      let error: unknown
      try {
        createReconnectMetrics({ maxTrackedWindows: bad })
      } catch (e) {
        error = e
      }
      expect(isReconnectError(error) && error.code === 'invalid-argument').toBe(true)
    }
  })
})

describe('the time-to-reconnect histogram', () => {
  it('reads every percentile within 2 % of the exact nearest-rank value, in fixed memory', () => {
    const value = fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 7 * 24 * 3_600_000 }))
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 400 }), (values) => {
        const histogram = createLogHistogram()
        for (const v of values) histogram.add(v)
        const sorted = [...values].sort((a, b) => a - b)
        const summary = histogram.summary()
        expect(summary.count).toBe(values.length)
        expect(summary.max).toBe(sorted.at(-1))
        for (const [name, quantile] of [
          ['p50', 0.5],
          ['p90', 0.9],
          ['p99', 0.99],
        ] as const) {
          expect(withinTwoPercent(summary[name], exactPercentile(sorted, quantile))).toBe(true)
        }
      }),
      { numRuns: 300 },
    )
  })
})
