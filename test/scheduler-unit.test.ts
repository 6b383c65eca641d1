import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SCHEDULER_MAX_SLEEP_MS, SCHEDULER_RETRY_MS, createScheduler, type Scheduler } from '../src/service/scheduler'
import { createManualClock, type ManualClock } from '../src/testing/manual-clock'
import { replayParameters } from './support/fc-replay'

// The scheduler alone, against a model of a store: a list of deadlines that a sweep removes once passed.

interface Harness {
  clock: ManualClock
  scheduler: Scheduler
  /** Deadlines in the model store. */
  deadlines: number[]
  /** Passed deadlines a sweep cannot move on (another node's, say): nextDueAt still returns them. */
  stuck: number[]
  /** Every sweep: when it ran and which deadlines it applied. */
  sweeps: Array<{ at: number; applied: number[] }>
  reported: unknown[]
  /** Makes the next sweeps throw (a store failure) while set. */
  failing: { sweep: boolean; nextDueAt: boolean }
  /** While `on`, the sweep (or nextDueAt, after it has read the store) waits for `release()`. */
  hold: { on: boolean; where: 'sweep' | 'nextDueAt'; release: () => void }
}

function harness(): Harness {
  const clock = createManualClock()
  const h: Harness = {
    clock,
    scheduler: undefined as unknown as Scheduler,
    deadlines: [],
    stuck: [],
    sweeps: [],
    reported: [],
    failing: { sweep: false, nextDueAt: false },
    hold: { on: false, where: 'sweep', release: () => {} },
  }
  h.scheduler = createScheduler({
    clock,
    async runDueTimers() {
      const at = clock.now()
      if (h.hold.on && h.hold.where === 'sweep') await new Promise<void>((resolve) => (h.hold.release = resolve))
      if (h.failing.sweep) throw new Error('store down')
      const applied = h.deadlines.filter((d) => d <= at)
      h.deadlines = h.deadlines.filter((d) => d > at)
      h.sweeps.push({ at, applied })
      return applied.length
    },
    async nextDueAt() {
      if (h.failing.nextDueAt) throw new Error('nextDueAt down')
      const all = [...h.deadlines, ...h.stuck]
      const next = all.length === 0 ? null : Math.min(...all)
      if (h.hold.on && h.hold.where === 'nextDueAt') await new Promise<void>((resolve) => (h.hold.release = resolve))
      return next
    },
    report: (error) => h.reported.push(error),
  })
  return h
}

/** Moves to `target`, stopping at every timeout on the way and letting the sweep it starts finish. */
async function runUntil(h: Harness, target: number): Promise<void> {
  for (let next = h.clock.nextTimerAt(); next !== null && next <= target; next = h.clock.nextTimerAt()) {
    h.clock.set(Math.max(next, h.clock.now()))
    await h.scheduler.idle()
  }
  h.clock.set(target)
  await h.scheduler.idle()
}

describe('createScheduler', () => {
  it('sleeps until the store’s earliest deadline, then sweeps once and sleeps again', async () => {
    const h = harness()
    const t0 = h.clock.now()
    h.deadlines.push(t0 + 9_000, t0 + 5_000)
    h.scheduler.start()
    await h.scheduler.idle()
    expect(h.clock.pending()).toBe(1)
    expect(h.clock.nextTimerAt()).toBe(t0 + 5_000)
    h.clock.advance(4_999)
    await h.scheduler.idle()
    expect(h.sweeps).toEqual([])
    h.clock.advance(1)
    await h.scheduler.idle()
    expect(h.sweeps).toEqual([{ at: t0 + 5_000, applied: [t0 + 5_000] }])
    expect(h.clock.nextTimerAt()).toBe(t0 + 9_000)
    expect(h.clock.pending()).toBe(1)
  })

  it('sleeps at most 30 s, with nothing due or a deadline far away', async () => {
    const h = harness()
    const t0 = h.clock.now()
    h.scheduler.start()
    await h.scheduler.idle()
    expect(h.clock.nextTimerAt()).toBe(t0 + SCHEDULER_MAX_SLEEP_MS)
    h.deadlines.push(t0 + 10 * SCHEDULER_MAX_SLEEP_MS)
    h.clock.advance(SCHEDULER_MAX_SLEEP_MS)
    await h.scheduler.idle()
    expect(h.sweeps).toEqual([{ at: t0 + SCHEDULER_MAX_SLEEP_MS, applied: [] }])
    expect(h.clock.nextTimerAt()).toBe(t0 + 2 * SCHEDULER_MAX_SLEEP_MS)
  })

  it('wakes earlier for a deadline noted before its planned wake, and ignores a later one', async () => {
    const h = harness()
    const t0 = h.clock.now()
    h.deadlines.push(t0 + 20_000)
    h.scheduler.start()
    await h.scheduler.idle()
    h.deadlines.push(t0 + 3_000)
    h.scheduler.noteDeadline(t0 + 3_000)
    expect(h.clock.nextTimerAt()).toBe(t0 + 3_000)
    h.scheduler.noteDeadline(t0 + 25_000)
    h.scheduler.noteDeadline(null)
    expect(h.clock.nextTimerAt()).toBe(t0 + 3_000)
    expect(h.clock.pending()).toBe(1)
    await runUntil(h, t0 + 20_000)
    expect(h.sweeps.map((s) => s.at)).toEqual([t0 + 3_000, t0 + 20_000])
  })

  it('takes a deadline noted during a sweep into the wake it arms afterwards', async () => {
    for (const where of ['sweep', 'nextDueAt'] as const) {
      const h = harness()
      const t0 = h.clock.now()
      h.deadlines.push(t0 + 1_000, t0 + 20_000)
      h.scheduler.start()
      await h.scheduler.idle()
      h.hold = { on: true, where, release: () => {} }
      h.clock.advance(1_000)
      for (let i = 0; i < 5; i += 1) await Promise.resolve()
      // The sweep is under way (and, with 'nextDueAt', has already read the store's next deadline):
      // a deadline written now must not wait for the planned wake.
      h.deadlines.push(t0 + 4_000)
      h.scheduler.noteDeadline(t0 + 4_000)
      h.hold.on = false
      h.hold.release()
      await h.scheduler.idle()
      expect(h.clock.nextTimerAt(), where).toBe(t0 + 4_000)
      expect(h.clock.pending()).toBe(1)
    }
  })

  it('backs off for a second after a failed sweep, reports the failure, and recovers', async () => {
    const h = harness()
    const t0 = h.clock.now()
    h.deadlines.push(t0 + 1_000)
    h.scheduler.start()
    await h.scheduler.idle()
    h.failing.sweep = true
    h.clock.advance(1_000)
    await h.scheduler.idle()
    expect(h.reported).toHaveLength(1)
    expect(h.clock.nextTimerAt()).toBe(t0 + 1_000 + SCHEDULER_RETRY_MS)
    h.failing.sweep = false
    h.clock.advance(SCHEDULER_RETRY_MS)
    await h.scheduler.idle()
    expect(h.sweeps).toEqual([{ at: t0 + 1_000 + SCHEDULER_RETRY_MS, applied: [t0 + 1_000] }])
    expect(h.clock.nextTimerAt()).toBe(h.clock.now() + SCHEDULER_MAX_SLEEP_MS)
  })

  it('backs off when a sweep applies nothing to a deadline that stays passed', async () => {
    const h = harness()
    const t0 = h.clock.now()
    h.scheduler.start()
    await h.scheduler.idle()
    h.stuck.push(t0 - 5_000)
    h.scheduler.noteDeadline(t0)
    h.clock.advance(0)
    await h.scheduler.idle()
    expect(h.sweeps.at(-1)).toEqual({ at: t0, applied: [] })
    expect(h.clock.nextTimerAt()).toBe(t0 + SCHEDULER_RETRY_MS)
    h.clock.advance(SCHEDULER_RETRY_MS)
    await h.scheduler.idle()
    expect(h.sweeps).toHaveLength(2)
    expect(h.clock.nextTimerAt(), 'still stuck: backs off longer instead of spinning').toBe(t0 + 3 * SCHEDULER_RETRY_MS)
    // Doubling up to the longest sleep: 10 minutes of being stuck take a handful of sweeps.
    await runUntil(h, t0 + 10 * 60_000)
    expect(h.sweeps.length).toBeLessThan(30)
    // A deadline noted meanwhile still wakes it on time.
    h.deadlines.push(h.clock.now() + 500)
    h.scheduler.noteDeadline(h.clock.now() + 500)
    expect(h.clock.nextTimerAt()).toBe(h.clock.now() + 500)
  })

  it('reports a failing nextDueAt at start and looks again after the short back-off', async () => {
    const h = harness()
    const t0 = h.clock.now()
    h.failing.nextDueAt = true
    h.scheduler.start()
    await h.scheduler.idle()
    expect(h.reported).toHaveLength(1)
    expect(h.clock.nextTimerAt()).toBe(t0 + SCHEDULER_RETRY_MS)
  })

  it('after an outage (sweep and nextDueAt both failing) retries after the back-off, not the longest sleep', async () => {
    const h = harness()
    const t0 = h.clock.now()
    h.deadlines.push(t0 + 1_000, t0 + 40_000)
    h.scheduler.start()
    await h.scheduler.idle()
    h.failing.sweep = true
    h.failing.nextDueAt = true
    h.clock.advance(1_000)
    await h.scheduler.idle()
    expect(h.reported).toHaveLength(2)
    expect(h.clock.nextTimerAt()).toBe(t0 + 1_000 + SCHEDULER_RETRY_MS)
    // Still down at the retry: back off again, never the full sleep.
    h.clock.advance(SCHEDULER_RETRY_MS)
    await h.scheduler.idle()
    expect(h.clock.nextTimerAt()).toBe(t0 + 1_000 + 2 * SCHEDULER_RETRY_MS)
    h.failing.sweep = false
    h.failing.nextDueAt = false
    h.clock.advance(SCHEDULER_RETRY_MS)
    await h.scheduler.idle()
    expect(h.sweeps).toEqual([{ at: t0 + 1_000 + 2 * SCHEDULER_RETRY_MS, applied: [t0 + 1_000] }])
    expect(h.clock.nextTimerAt()).toBe(Math.min(t0 + 40_000, h.clock.now() + SCHEDULER_MAX_SLEEP_MS))
  })

  it('started when a deadline has already passed, sweeps at once without another clock tick', async () => {
    const h = harness()
    const t0 = h.clock.now()
    h.deadlines.push(t0 - 10_000, t0 + 5_000)
    h.scheduler.start()
    await h.scheduler.idle()
    expect(h.sweeps).toEqual([{ at: t0, applied: [t0 - 10_000] }])
    expect(h.clock.nextTimerAt()).toBe(t0 + 5_000)
    expect(h.clock.pending()).toBe(1)
  })

  it('woken for a deadline that has already passed, sweeps at once', async () => {
    const h = harness()
    const t0 = h.clock.now()
    h.scheduler.start()
    await h.scheduler.idle()
    h.deadlines.push(t0 - 1)
    h.scheduler.noteDeadline(t0 - 1)
    await h.scheduler.idle()
    expect(h.sweeps).toEqual([{ at: t0, applied: [t0 - 1] }])
  })

  it('subscribes through watch on start, wakes for what it reports, and unsubscribes on stop', async () => {
    const clock = createManualClock()
    const t0 = clock.now()
    const deadlines: number[] = []
    const swept: number[] = []
    let onWake: ((at: number) => void) | undefined
    let unsubscribed = 0
    const scheduler = createScheduler({
      clock,
      maxSleepMs: 600_000,
      async runDueTimers() {
        const passed = deadlines.filter((d) => d <= clock.now())
        swept.push(clock.now())
        deadlines.splice(0, deadlines.length, ...deadlines.filter((d) => d > clock.now()))
        return passed.length
      },
      async nextDueAt() {
        return deadlines.length === 0 ? null : Math.min(...deadlines)
      },
      report: () => {},
      watch(listener) {
        onWake = listener
        return () => {
          unsubscribed += 1
          onWake = undefined
        }
      },
    })
    scheduler.start()
    await scheduler.idle()
    expect(clock.nextTimerAt()).toBe(t0 + 600_000)
    // Another node wrote a deadline 2 s ahead and told us.
    deadlines.push(t0 + 2_000)
    onWake!(t0 + 2_000)
    expect(clock.nextTimerAt()).toBe(t0 + 2_000)
    clock.advance(2_000)
    await scheduler.idle()
    expect(swept).toEqual([t0 + 2_000])
    scheduler.stop()
    expect(unsubscribed).toBe(1)
    expect(onWake).toBeUndefined()
  })

  it('stop cancels the pending timeout, also when it comes during a sweep; start twice keeps one', async () => {
    const h = harness()
    const t0 = h.clock.now()
    h.deadlines.push(t0 + 1_000, t0 + 2_000)
    h.scheduler.start()
    h.scheduler.start()
    await h.scheduler.idle()
    expect(h.clock.pending()).toBe(1)
    h.scheduler.stop()
    expect(h.clock.pending()).toBe(0)
    h.clock.advance(5_000)
    await h.scheduler.idle()
    expect(h.sweeps).toEqual([])
    h.scheduler.noteDeadline(t0 + 6_000)
    expect(h.clock.pending(), 'a stopped scheduler arms nothing').toBe(0)

    h.scheduler.start()
    await h.scheduler.idle()
    h.hold.on = true
    h.clock.advance(0)
    h.scheduler.stop()
    h.hold.on = false
    h.hold.release()
    await h.scheduler.idle()
    expect(h.sweeps).toHaveLength(1)
    expect(h.clock.pending(), 'the sweep finished after stop and armed nothing').toBe(0)
  })

  it('idle() resolves only once the sweep under way has finished', async () => {
    const h = harness()
    h.deadlines.push(h.clock.now() + 1_000)
    h.scheduler.start()
    await h.scheduler.idle()
    h.hold.on = true
    h.clock.advance(1_000)
    let idle = false
    const waiting = h.scheduler.idle().then(() => (idle = true))
    for (let i = 0; i < 10; i += 1) await Promise.resolve()
    expect(idle).toBe(false)
    h.hold.on = false
    h.hold.release()
    await waiting
    expect(idle).toBe(true)
    expect(h.sweeps).toHaveLength(1)
  })

  it('sweeps every noted deadline exactly on time and any other within 30 s, with one timeout at most', async () => {
    const write = fc.record({ kind: fc.constant('write' as const), delay: fc.nat(90_000), noted: fc.boolean() })
    const wait = fc.record({ kind: fc.constant('wait' as const), ms: fc.nat(120_000) })
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(write, wait), { maxLength: 30 }), async (commands) => {
        const h = harness()
        const written: Array<{ at: number; noted: boolean }> = []
        h.scheduler.start()
        await h.scheduler.idle()
        for (const command of commands) {
          if (command.kind === 'write') {
            const at = h.clock.now() + command.delay
            h.deadlines.push(at)
            written.push({ at, noted: command.noted })
            if (command.noted) h.scheduler.noteDeadline(at)
            // A deadline noted at the current instant is swept at once.
            await h.scheduler.idle()
          } else {
            await runUntil(h, h.clock.now() + command.ms)
          }
          expect(h.clock.pending()).toBe(1)
          expect(h.clock.nextTimerAt()! - h.clock.now()).toBeLessThanOrEqual(SCHEDULER_MAX_SLEEP_MS)
        }
        await runUntil(h, h.clock.now() + 90_000 + SCHEDULER_MAX_SLEEP_MS)
        expect(h.deadlines).toEqual([])
        const sweptAt = new Map<number, number>()
        for (const sweep of h.sweeps) for (const d of sweep.applied) if (!sweptAt.has(d)) sweptAt.set(d, sweep.at)
        for (const { at, noted } of written) {
          const swept = sweptAt.get(at)!
          if (noted) expect(swept, `noted deadline ${at}`).toBe(at)
          else expect(swept - at, `unnoted deadline ${at}`).toBeLessThanOrEqual(SCHEDULER_MAX_SLEEP_MS)
          expect(swept).toBeGreaterThanOrEqual(at)
        }
        h.scheduler.stop()
        expect(h.clock.pending()).toBe(0)
      }),
      replayParameters(150),
    )
  })
})
