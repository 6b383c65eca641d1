import { afterAll, describe, expect, it } from 'vitest'
import { createReconnectMetrics } from '../src/metrics/index'
import type { ServiceEvent } from '../src/types'
import { naive, numbers, ordered, withinTwoPercent } from './support/metrics-naive'
import { runModel, type Real } from './support/service-model'
import { closeStores, storeKinds } from './support/stores'

// The metrics over what the service really emits: every event of a model-based run of the service
// (test/support/service-model.ts, the same commands as test/service-model.test.ts) goes to
// createReconnectMetrics, and its snapshot must equal the figures computed naively from the same
// list (test/support/metrics-naive.ts): counts exactly, percentiles within the histogram's 2 %.
// After every event the snapshot is checked too: nothing negative, p50 ≤ p90 ≤ p99 ≤ max.

/** Runs that reached something worth measuring, so the property cannot pass by seeing nothing. */
const seen = { runs: 0, disconnects: 0, resumed: 0, expired: 0, returns: 0 }

function checkMetrics(real: Real): void {
  const events: readonly ServiceEvent[] = real.events
  const metrics = createReconnectMetrics()
  for (const event of events) {
    metrics.record(event)
    const running = metrics.snapshot()
    expect(
      numbers(running).every((n) => n >= 0),
      'no figure below zero',
    ).toBe(true)
    expect(ordered(running), `p50 ≤ p90 ≤ p99 ≤ max: ${JSON.stringify(running.timeToReconnect)}`).toBe(true)
    expect(running.capacityWastedMs).toBeLessThanOrEqual(running.capacityHeldAwayMs)
  }
  const snapshot = metrics.snapshot()
  const expected = naive(events)
  const { timeToReconnect, ...counts } = snapshot
  const { timeToReconnect: exact, ...expectedCounts } = expected
  expect(counts).toEqual(expectedCounts)
  expect(timeToReconnect.count).toBe(exact.count)
  expect(timeToReconnect.max).toBe(exact.max)
  for (const q of ['p50', 'p90', 'p99'] as const) {
    expect(withinTwoPercent(timeToReconnect[q], exact[q]), `${q}: ${timeToReconnect[q]} vs exact ${exact[q]}`).toBe(true)
  }
  seen.runs += 1
  seen.disconnects += snapshot.disconnects
  seen.resumed += snapshot.resumed.link + snapshot.resumed.prompt + snapshot.resumed.session
  seen.expired += snapshot.expiredUnused
  seen.returns += events.filter((e) => e.type === 'return').length
}

afterAll(closeStores)

// The memory store is enough for the arithmetic; Redis runs a few, since its events come back
// through a real store's writes and read-backs.
const kinds = storeKinds().filter((kind) => kind.name === 'memory' || kind.name === 'Redis')

describe.each(kinds)('metrics of model-based service runs, on the $name store', (kind) => {
  // A run drops a customer less than once on average, so the memory store gets many runs.
  const runs = kind.name === 'memory' ? 300 : 20

  it.each([
    ['reconnect on', { enabled: true }],
    ['reconnect on, signed-in customers (prompt)', { enabled: true, authenticated: true }],
    ['reconnect off', { enabled: false }],
  ] as const)('a snapshot equals the naive figures of the events the service emitted (%s)', async (_name, options) => {
    const before = { ...seen }
    await runModel({ ...options, afterRun: checkMetrics }, kind, runs)
    expect(seen.runs - before.runs).toBe(runs)
    expect(seen.returns - before.returns, 'the runs had customers return').toBeGreaterThan(0)
    // Not vacuous: enough runs drop customers, resume some and let some windows expire.
    if (kind.name === 'memory') {
      expect(seen.disconnects - before.disconnects, 'the runs dropped customers').toBeGreaterThan(20)
      expect(seen.resumed - before.resumed, 'the runs resumed some').toBeGreaterThan(0)
      expect(seen.expired - before.expired, 'some windows expired unused').toBeGreaterThan(0)
    }
  })
})
