import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createReconnectMetrics, type ReconnectMetricsSnapshot } from '../src/metrics/index'
import { createLogHistogram } from '../src/metrics/log-histogram'
import { isReconnectError } from '../src/errors'
import type { ServiceEvent, State } from '../src/types'
import { eventsOf, metricsRunArbitrary } from './support/metrics-model'

// The figures of docs/metrics.md, computed the slow and obvious way from the whole event list:
// conversations one at a time, windows as intervals, capacity as intervals intersected with them,
// percentiles by sorting. createReconnectMetrics must agree with it for any generated run.

type Via = 'link' | 'prompt' | 'session'
const AWAY: readonly State[] = ['reconnectable', 'disconnected']
const isAway = (s: State) => AWAY.includes(s)
const LOST = ['expired', 'ended-by-agent', 'ended-by-customer', 'closed', 'not-found', 'malformed']
const NEW_CHAT = [...LOST, 'none', 'disabled', 'identity-mismatch']

interface NaiveWindow {
  openIndex: number
  openAt: number
  closeIndex: number | null
  closeAt: number | null
  closeTo: State | null
  closeEvent: string | null
}

function exactPercentile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!
}

function naive(events: readonly ServiceEvent[]) {
  const indexed = events.map((event, index) => ({ event, index }))
  const known = indexed.filter(({ event }) => ['transition', 'capacity.held', 'capacity.released', 'notice', 'return'].includes(event.type))
  const returns = known.flatMap(({ event, index }) => (event.type === 'return' ? [{ ...event, index }] : []))

  const count = (list: readonly string[], values: (string | undefined)[]) => {
    const out: Record<string, number> = Object.fromEntries(list.map((k) => [k, 0]))
    out.other = 0
    for (const v of values) out[v !== undefined && list.includes(v) ? v : 'other']! += 1
    return out
  }
  const byOutcome = (outcome: string) =>
    Object.fromEntries(
      (['link', 'prompt', 'session'] as Via[]).map((via) => [via, returns.filter((r) => r.outcome === outcome && r.via === via).length]),
    )

  const ids = [...new Set(known.flatMap(({ event }) => (event.type !== 'return' ? [event.conversationId] : [])))]
  let disconnects = 0
  const resumed: Record<Via, number> = { link: 0, prompt: 0, session: 0 }
  let expiredUnused = 0
  let endedWhileAway = 0
  let heldAway = 0
  let wasted = 0
  let open = 0
  let awaitingReturn = 0
  let untracked = 0
  const times: number[] = []

  for (const id of ids) {
    const mine = known.filter(({ event }) => event.type !== 'return' && event.conversationId === id)
    // Windows: from a transition into an away state to the first transition out of it.
    const windows: NaiveWindow[] = []
    for (const { event, index } of mine) {
      if (event.type !== 'transition') continue
      const current = windows.at(-1)
      const isOpen = current !== undefined && current.closeIndex === null
      if (!isAway(event.from) && isAway(event.to) && !isOpen) {
        windows.push({ openIndex: index, openAt: event.at, closeIndex: null, closeAt: null, closeTo: null, closeEvent: null })
      } else if (isAway(event.from) && !isAway(event.to) && isOpen) {
        Object.assign(current, { closeIndex: index, closeAt: event.at, closeTo: event.to, closeEvent: event.event })
      }
    }
    // Capacity: intervals between capacity.held and capacity.released.
    const held: [number, number][] = []
    let since: number | null = null
    for (const { event } of mine) {
      if (event.type === 'capacity.held' && since === null) since = event.at
      if (event.type === 'capacity.released' && since !== null) {
        held.push([since, event.at])
        since = null
      }
    }
    if (since !== null) held.push([since, Infinity])
    const heldWithin = (from: number, to: number) => held.reduce((sum, [a, b]) => sum + Math.max(0, Math.min(b, to) - Math.max(a, from)), 0)

    disconnects += windows.length
    const myReturns = returns.filter((r) => r.outcome === 'resume' && r.conversationId === id)
    windows.forEach((w, i) => {
      if (w.closeIndex === null) {
        open += 1
        return
      }
      const capacity = heldWithin(w.openAt, w.closeAt!)
      heldAway += capacity
      if (w.closeTo === 'active' || w.closeTo === 'queued') {
        const nextOpen = windows[i + 1]?.openIndex ?? Infinity
        const before = myReturns.filter((r) => r.index > w.openIndex && r.index < w.closeIndex!).at(-1)
        const after = myReturns.find((r) => r.index > w.closeIndex! && r.index < nextOpen)
        const match = before ?? after
        if (match === undefined) {
          if (nextOpen === Infinity) awaitingReturn += 1
          else untracked += 1
          return
        }
        resumed[match.via] += 1
        times.push(w.closeAt! - w.openAt)
      } else if (w.closeEvent!.endsWith('.elapsed')) {
        expiredUnused += 1
        wasted += capacity
      } else {
        endedWhileAway += 1
      }
    })
  }
  const sorted = [...times].sort((a, b) => a - b)
  const resumedTotal = resumed.link + resumed.prompt + resumed.session
  const ended = resumedTotal + expiredUnused + endedWhileAway
  return {
    disconnects,
    resumed,
    expiredUnused,
    endedWhileAway,
    reconnectRate: ended === 0 ? null : resumedTotal / ended,
    timeToReconnect: {
      count: sorted.length,
      p50: exactPercentile(sorted, 0.5),
      p90: exactPercentile(sorted, 0.9),
      p99: exactPercentile(sorted, 0.99),
      max: sorted.at(-1) ?? null,
    },
    capacityHeldAwayMs: heldAway,
    capacityWastedMs: wasted,
    redirects: count(
      LOST,
      returns.filter((r) => r.outcome === 'redirect').map((r) => r.reason),
    ),
    newChats: count(
      NEW_CHAT,
      returns.filter((r) => r.outcome === 'new-chat').map((r) => r.reason),
    ),
    returns: {
      resume: byOutcome('resume'),
      prompt: byOutcome('prompt'),
      redirect: byOutcome('redirect'),
      'new-chat': byOutcome('new-chat'),
    },
    windows: { open, awaitingReturn, untracked },
    ignoredEvents: events.length - known.length,
  }
}

function withinTwoPercent(actual: number | null, exact: number | null): boolean {
  if (exact === null || actual === null) return actual === exact
  return Math.abs(actual - exact) <= 0.02 * exact
}

function recordAll(events: readonly ServiceEvent[], options?: Parameters<typeof createReconnectMetrics>[0]) {
  const metrics = createReconnectMetrics(options)
  for (const event of events) metrics.record(event)
  return metrics
}

function numbers(value: unknown): number[] {
  if (typeof value === 'number') return [value]
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(numbers)
  return []
}

function ordered({ timeToReconnect: t }: ReconnectMetricsSnapshot): boolean {
  if (t.count === 0) return t.p50 === null && t.p90 === null && t.p99 === null && t.max === null
  return t.p50! <= t.p90! && t.p90! <= t.p99! && t.p99! <= t.max!
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
