import type { Clock } from '../clock'
import { ReconnectError } from '../errors'

/** Where a manual clock starts when no start is given: 2025-01-01T00:00:00Z. */
export const MANUAL_CLOCK_EPOCH = 1_735_689_600_000

/** A {@link Clock} that only moves when told to; for tests and simulations. */
export interface ManualClock extends Clock {
  /** Moves time forward by `ms`, firing every callback that falls due, earliest first. */
  advance(ms: number): void
  /** Moves time forward to `epochMs`; refuses to go backwards. */
  set(epochMs: number): void
  /** How many callbacks are scheduled and not yet fired or cleared. */
  pending(): number
  /** The deadline of the next scheduled callback, or `null`. */
  nextTimerAt(): number | null
}

interface Scheduled {
  at: number
  seq: number
  callback: () => void
}

/**
 * A clock for tests: `now()` stays put until `advance` or `set` moves it, and callbacks run in
 * deadline order (a callback due exactly at the new time fires). Usable as XState's actor clock.
 *
 * @example
 * const clock = createManualClock()
 * const service = createReconnectService({ settings, clock })
 * clock.advance(30 * 60_000)
 */
export function createManualClock(start: number = MANUAL_CLOCK_EPOCH): ManualClock {
  if (!Number.isFinite(start)) {
    throw new ReconnectError('invalid-argument', `createManualClock: start must be a finite epoch ms, got ${String(start)}`)
  }
  let now = start
  let seq = 0
  const timers = new Map<number, Scheduled>()

  function nextDue(until: number): Scheduled | undefined {
    let next: Scheduled | undefined
    for (const timer of timers.values()) {
      if (timer.at > until) continue
      if (next === undefined || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq)) next = timer
    }
    return next
  }

  function moveTo(target: number, what: string): void {
    if (!Number.isFinite(target)) {
      throw new ReconnectError('invalid-argument', `ManualClock.${what}: time must be finite, got ${String(target)}`)
    }
    if (target < now) {
      throw new ReconnectError('invalid-argument', `ManualClock.${what}: refuses to go backwards (now ${now}, asked ${target})`)
    }
    for (let timer = nextDue(target); timer !== undefined; timer = nextDue(target)) {
      timers.delete(timer.seq)
      now = Math.max(now, timer.at)
      timer.callback()
    }
    now = target
  }

  return {
    now: () => now,
    setTimeout(callback, ms) {
      seq += 1
      const delay = Number.isFinite(ms) && ms > 0 ? ms : 0
      timers.set(seq, { at: now + delay, seq, callback })
      return seq
    },
    clearTimeout(handle) {
      if (typeof handle === 'number') timers.delete(handle)
    },
    advance(ms) {
      if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
        throw new ReconnectError('invalid-argument', `ManualClock.advance: ms must be a finite number >= 0, got ${String(ms)}`)
      }
      moveTo(now + ms, 'advance')
    },
    set(epochMs) {
      moveTo(epochMs, 'set')
    },
    pending: () => timers.size,
    nextTimerAt() {
      let at: number | null = null
      for (const timer of timers.values()) if (at === null || timer.at < at) at = timer.at
      return at
    },
  }
}
