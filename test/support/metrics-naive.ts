import type { ReconnectMetricsSnapshot } from '../../src/metrics/index'
import type { ServiceEvent, State } from '../../src/types'

// The figures of docs/metrics.md, computed the slow and obvious way from the whole event list:
// conversations one at a time, windows as intervals, capacity as intervals intersected with them,
// percentiles by sorting. createReconnectMetrics must agree with it for any generated run
// (test/metrics.test.ts) and for the events of any model-based run of the service
// (test/metrics-service-model.test.ts).

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

export function exactPercentile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!
}

export function naive(events: readonly ServiceEvent[]) {
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

export function withinTwoPercent(actual: number | null, exact: number | null): boolean {
  if (exact === null || actual === null) return actual === exact
  return Math.abs(actual - exact) <= 0.02 * exact
}

export function numbers(value: unknown): number[] {
  if (typeof value === 'number') return [value]
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(numbers)
  return []
}

export function ordered({ timeToReconnect: t }: ReconnectMetricsSnapshot): boolean {
  if (t.count === 0) return t.p50 === null && t.p90 === null && t.p99 === null && t.max === null
  return t.p50! <= t.p90! && t.p90! <= t.p99! && t.p99! <= t.max!
}
