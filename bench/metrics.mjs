// chat-reconnect/metrics: what record(event) costs, and that memory stays flat over 10 M events.
import { compare, importDist, main, quick, row, settledHeap } from './lib.mjs'

const { createReconnectMetrics } = await importDist('metrics')

const TOTAL = quick ? 2_000_000 : 10_000_000
const EARLY = 1_000_000

/** A small deterministic PRNG, so every run replays the same traffic. */
function random(seed) {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

/**
 * Service events of `count` conversations, interleaved by time as a busy contact centre emits
 * them: most drop and come back (link, session, prompt; the return event before or after its
 * transition), some expire, some choose "start new", some try a late link. `idPrefix` names them;
 * with `leak`, that share of drops never gets its closing transition (lost events, say).
 */
function traffic(count, { idPrefix = 'c', leak = 0, seed = 7 } = {}) {
  const next = random(seed)
  const events = []
  for (let i = 0; i < count; i += 1) {
    const id = `${idPrefix}${i}`
    let t = 1_700_000_000_000 + Math.floor(next() * 3_600_000)
    const ev = (e) => events.push({ conversationId: id, at: t, ...e })
    const away = Math.floor(1_000 * 600 ** next()) // 1 s to 10 min, log-uniform
    ev({ type: 'capacity.held', agentId: 'agent-1' })
    t += 60_000
    ev({ type: 'transition', from: 'active', to: 'reconnectable', event: 'customer.disconnected' })
    if (next() < leak) continue
    t += away
    const kind = next()
    if (kind < 0.6) {
      const via = kind < 0.3 ? 'link' : kind < 0.5 ? 'session' : 'prompt'
      const ret = { type: 'return', emittedAt: t, via, outcome: 'resume', sinceDisconnectMs: away }
      if (kind < 0.45) ev(ret)
      ev({ type: 'transition', from: 'reconnectable', to: 'active', event: 'customer.returned' })
      if (kind >= 0.45) ev(ret)
      t += 120_000
      ev({ type: 'transition', from: 'active', to: 'wrap-up', event: 'agent.ended' })
      ev({ type: 'notice', audience: 'customer', message: 'agent-ended' })
    } else if (kind < 0.85) {
      ev({ type: 'transition', from: 'reconnectable', to: 'wrap-up', event: 'window.elapsed' })
      ev({ type: 'notice', audience: 'agent', message: 'customer-disconnected' })
      t += 5_000
      events.push({ type: 'return', conversationId: null, at: t, emittedAt: t, via: 'link', outcome: 'redirect', reason: 'expired' })
    } else {
      ev({ type: 'return', emittedAt: t, via: 'prompt', outcome: 'new-chat', reason: 'none' })
      ev({ type: 'transition', from: 'reconnectable', to: 'wrap-up', event: 'customer.ended' })
    }
    ev({ type: 'capacity.released', agentId: 'agent-1', heldMs: 0, reason: 'agent.closed' })
    t += 30_000
    ev({ type: 'transition', from: 'wrap-up', to: 'closed', event: 'agent.closed' })
  }
  return events.sort((a, b) => a.at - b.at)
}

/** Feeds `total` events from `chunk()` (called again whenever its events are used up) and returns the heap at `marks`. */
function feed(metrics, total, chunk, marks) {
  const heaps = {}
  let events = chunk(0)
  let round = 0
  let i = 0
  for (let n = 1; n <= total; n += 1) {
    if (i === events.length) {
      round += 1
      events = chunk(round)
      i = 0
    }
    metrics.record(events[i])
    i += 1
    if (marks.includes(n)) heaps[n] = settledHeap()
  }
  return heaps
}

export async function run() {
  const rows = []

  // Cost per event: the same realistic traffic replayed into one long-lived recorder.
  const buffer = traffic(2_000)
  const metrics = createReconnectMetrics()
  let sink = 0
  const noop = (event) => {
    sink += event.at & 1
  }
  const speed = await compare([
    { name: 'record', batch: buffer.length, fn: () => buffer.forEach(metrics.record) },
    { name: 'noop', batch: buffer.length, fn: () => buffer.forEach(noop) },
  ])
  if (sink < 0) throw new Error('unreachable: keeps the baseline handler from being optimised away')
  const perEvent = 1e6 / speed.record
  rows.push(
    row({
      name: 'metrics: record(event), realistic service traffic',
      value: perEvent,
      unit: 'µs',
      baseline: 'a handler that reads one field',
      baselineValue: 1e6 / speed.noop,
      ratio: perEvent / (1e6 / speed.noop),
      target: '< 0.5 µs',
      met: perEvent < 0.5,
      note: `${buffer.length.toLocaleString('en-US')} events (transitions, capacity, notices, returns) of 2 000 conversations, replayed`,
    }),
  )

  // Memory over 10 M events, all windows closing: the same 20 000 conversations over and over.
  const pool = traffic(20_000, { seed: 11 })
  const before = settledHeap()
  const steady = createReconnectMetrics()
  const heaps = feed(steady, TOTAL, () => pool, [EARLY, TOTAL])
  const early = heaps[EARLY] - before
  const late = heaps[TOTAL] - before
  rows.push(
    row({
      name: `metrics: heap after ${TOTAL.toLocaleString('en-US')} events`,
      value: late,
      unit: 'bytes',
      baseline: `after ${EARLY.toLocaleString('en-US')}`,
      baselineValue: early,
      ratio: late / Math.max(1, early),
      target: 'constant (ratio ≤ 1.1)',
      met: late <= early * 1.1 + 64 * 1024,
      note: `heapUsed after gc() minus before the recorder; snapshot: ${steady.snapshot().disconnects.toLocaleString('en-US')} disconnects, ${steady.snapshot().timeToReconnect.count.toLocaleString('en-US')} resumes`,
    }),
  )

  // Memory when windows never close (fresh ids, a third of the closes lost): the table stops at its bound.
  const leakyBefore = settledHeap()
  const leaky = createReconnectMetrics()
  const leakyHeaps = feed(leaky, TOTAL, (round) => traffic(20_000, { idPrefix: `r${round}-`, leak: 1 / 3, seed: round + 1 }), [
    EARLY,
    TOTAL,
  ])
  const leakyEarly = leakyHeaps[EARLY] - leakyBefore
  const leakyLate = leakyHeaps[TOTAL] - leakyBefore
  const { windows } = leaky.snapshot()
  rows.push(
    row({
      name: `metrics: heap after ${TOTAL.toLocaleString('en-US')} events, a third of the windows never closing`,
      value: leakyLate,
      unit: 'bytes',
      baseline: `after ${EARLY.toLocaleString('en-US')}`,
      baselineValue: leakyEarly,
      ratio: leakyLate / Math.max(1, leakyEarly),
      target: 'constant (ratio ≤ 1.1)',
      met: leakyLate <= leakyEarly * 1.1 + 64 * 1024,
      note: `${(windows.open + windows.awaitingReturn).toLocaleString('en-US')} windows tracked (the bound is 50 000), ${windows.untracked.toLocaleString('en-US')} forgotten; the heap includes the current chunk of generated events`,
    }),
  )
  return rows
}

await main(import.meta.url, run)
