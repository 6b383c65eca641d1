import { ReconnectError } from '../errors'
import type { LostReason, ReturnDecision, ServiceEvent, State } from '../types'
import { createLogHistogram } from './log-histogram'

/** How a customer came back: a reconnect link, the signed-in prompt, or the widget's own session. */
export type ReturnVia = 'link' | 'prompt' | 'session'

/** What a return decided: `ReturnDecision['type']`. */
export type ReturnOutcome = ReturnDecision['type']

/** Keys of {@link ReconnectMetricsSnapshot.redirects}: the lost reasons, and `other` for any reason not listed. */
export type RedirectReasonKey = LostReason | 'other'

/** Keys of {@link ReconnectMetricsSnapshot.newChats}: the new-chat reasons, and `other` for any reason not listed. */
export type NewChatReasonKey = Extract<ReturnDecision, { type: 'new-chat' }>['reason'] | 'other'

/** Time to reconnect in milliseconds; every figure but `count` is `null` until a window was resumed. */
export interface TimeToReconnect {
  count: number
  p50: number | null
  p90: number | null
  p99: number | null
  max: number | null
}

/** The reconnect figures at one moment; docs/metrics.md defines each one. */
export interface ReconnectMetricsSnapshot {
  /** Away windows opened: the customer dropped while an agent had the chat. */
  disconnects: number
  /** Windows that ended with the customer back, by how they came back. */
  resumed: Record<ReturnVia, number>
  /** Windows whose deadline passed with nobody back and nobody ending the chat. */
  expiredUnused: number
  /** Windows the agent or the customer ended while the customer was away (e.g. "start new"). */
  endedWhileAway: number
  /** Resumed ÷ windows that ended (resumed + expired unused + ended while away); `null` before any ended. */
  reconnectRate: number | null
  /** From the disconnect to the resume, over resumed windows (percentiles within 1 %). */
  timeToReconnect: TimeToReconnect
  /** Agent capacity held during windows that ended, in capacity-milliseconds. */
  capacityHeldAwayMs: number
  /** The part of `capacityHeldAwayMs` held for windows that expired unused. */
  capacityWastedMs: number
  /** Returns answered with a redirect, by reason. */
  redirects: Record<RedirectReasonKey, number>
  /** Returns answered with a new chat, by reason. */
  newChats: Record<NewChatReasonKey, number>
  /** Every return, by outcome and then by `via`. */
  returns: Record<ReturnOutcome, Record<ReturnVia, number>>
  /** The per-conversation table: windows open now, resumed ones waiting for their return event, and forgotten ones. */
  windows: { open: number; awaitingReturn: number; untracked: number }
  /** Events that were not service events this version understands (skipped, never thrown). */
  ignoredEvents: number
}

/** Options of {@link createReconnectMetrics}. */
export interface ReconnectMetricsOptions {
  /**
   * Most conversations tracked at once (open windows, and resumed ones waiting for their return
   * event). Beyond it the window opened longest ago is forgotten and counted in
   * `windows.untracked`. About 100 bytes each, besides the conversation id.
   * @default 50000
   */
  maxTrackedWindows?: number
}

/** Bookkeeping over a service's events: feed it every `ServiceEvent`, read the figures any time. */
export interface ReconnectMetrics {
  /** Takes one service event; never throws on an event it does not understand. */
  record(event: ServiceEvent): void
  /** The figures so far, as a fresh plain object (JSON-safe). */
  snapshot(): ReconnectMetricsSnapshot
  /** Forgets everything: figures and open windows. */
  reset(): void
}

/** How an away window ended. */
export type WindowOutcome = 'resumed' | 'expired' | 'ended'

/** @internal What the OpenTelemetry bridge is told as the figures change. */
export interface MetricsObserver {
  opened(event: ServiceEvent): void
  /** A window closed; its capacity-ms are known now (for a resume, before its return is matched). */
  closed(outcome: WindowOutcome, heldMs: number, event: ServiceEvent): void
  /** A window counts as ended: at once for expired/ended, once matched with its return for a resume. */
  ended(outcome: WindowOutcome, via: ReturnVia | null, awayMs: number, event: ServiceEvent): void
  /** `reason` (redirect and new-chat only) is already one of the snapshot's keys, `other` for any unknown one. */
  returned(via: ReturnVia, outcome: ReturnOutcome, reason: string | undefined, event: ServiceEvent): void
}

const DEFAULT_MAX_TRACKED = 50_000

const VIAS: readonly ReturnVia[] = ['link', 'prompt', 'session']
const OUTCOMES: readonly ReturnOutcome[] = ['resume', 'prompt', 'redirect', 'new-chat']
const REDIRECT_REASONS: readonly RedirectReasonKey[] = [
  'expired',
  'ended-by-agent',
  'ended-by-customer',
  'closed',
  'not-found',
  'malformed',
  'other',
]
const NEW_CHAT_REASONS: readonly NewChatReasonKey[] = [
  'expired',
  'ended-by-agent',
  'ended-by-customer',
  'closed',
  'not-found',
  'malformed',
  'none',
  'disabled',
  'identity-mismatch',
  'other',
]

/** One conversation whose customer is away (or was, until its return event arrives). */
interface AwayWindow {
  openedAt: number
  /** Since when the agent's capacity is held in this window, or `null` while it is not. */
  heldSince: number | null
  heldMs: number
  /** `via` of a resume return seen while the window was still open. */
  via: ReturnVia | null
  /** When the window closed into active/queued; `null` while open. */
  resumedAt: number | null
}

const isAway = (state: State): boolean => state === 'reconnectable' || state === 'disconnected'

function zeros<K extends string>(keys: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>
  for (const key of keys) out[key] = 0
  return out
}

function reasonKey<K extends string>(reason: unknown, keys: readonly K[]): K {
  return typeof reason === 'string' && (keys as readonly string[]).includes(reason) && reason !== 'other' ? (reason as K) : ('other' as K)
}

/**
 * Creates the reconnect metrics: pure bookkeeping (no clock, no I/O) over
 * `ServiceEvent`s, in bounded memory, in Node and in browsers.
 *
 * @example
 * const metrics = createReconnectMetrics()
 * const service = createReconnectService({ settings, onEvent: metrics.record })
 * // later
 * const { reconnectRate, timeToReconnect } = metrics.snapshot()
 */
export function createReconnectMetrics(options: ReconnectMetricsOptions = {}): ReconnectMetrics {
  return createObservedMetrics(options, undefined)
}

/** @internal {@link createReconnectMetrics} that also tells `observer` every change. */
export function createObservedMetrics(options: ReconnectMetricsOptions, observer: MetricsObserver | undefined): ReconnectMetrics {
  const maxTracked = options.maxTrackedWindows ?? DEFAULT_MAX_TRACKED
  if (!Number.isInteger(maxTracked) || maxTracked < 1) {
    throw new ReconnectError('invalid-argument', `maxTrackedWindows must be a positive integer, got ${String(maxTracked)}`)
  }

  const windows = new Map<string, AwayWindow>()
  const timeToReconnect = createLogHistogram()
  let disconnects = 0
  let resumed = zeros(VIAS)
  let expiredUnused = 0
  let endedWhileAway = 0
  let capacityHeldAwayMs = 0
  let capacityWastedMs = 0
  let redirects = zeros(REDIRECT_REASONS)
  let newChats = zeros(NEW_CHAT_REASONS)
  let returns = returnTable()
  let awaitingReturn = 0
  let untracked = 0
  let ignoredEvents = 0

  function returnTable(): Record<ReturnOutcome, Record<ReturnVia, number>> {
    return { resume: zeros(VIAS), prompt: zeros(VIAS), redirect: zeros(VIAS), 'new-chat': zeros(VIAS) }
  }

  function forget(id: string, window: AwayWindow): void {
    windows.delete(id)
    if (window.resumedAt !== null) awaitingReturn -= 1
    untracked += 1
  }

  function countResume(via: ReturnVia, awayMs: number, event: ServiceEvent): void {
    resumed[via] += 1
    timeToReconnect.add(awayMs)
    observer?.ended('resumed', via, awayMs, event)
  }

  function open(id: string, at: number, fromActive: boolean, event: ServiceEvent): void {
    const existing = windows.get(id)
    if (existing !== undefined) {
      if (existing.resumedAt === null) return // the same disconnect delivered twice: already open
      forget(id, existing) // resumed, but its return event never came before it dropped again
    }
    if (windows.size >= maxTracked) {
      const oldest = windows.keys().next().value as string
      forget(oldest, windows.get(oldest)!)
    }
    // In `active` the agent's capacity is always held, so a window opened from it starts held.
    windows.set(id, { openedAt: at, heldSince: fromActive ? at : null, heldMs: 0, via: null, resumedAt: null })
    disconnects += 1
    observer?.opened(event)
  }

  function close(id: string, at: number, to: State, name: string, event: ServiceEvent): void {
    const window = windows.get(id)
    // Opened before this recorder saw it, forgotten, or the same close delivered twice: not ours to count.
    if (window === undefined || window.resumedAt !== null) return
    if (window.heldSince !== null) window.heldMs += Math.max(0, at - window.heldSince)
    window.heldSince = null
    capacityHeldAwayMs += window.heldMs
    if (to === 'active' || to === 'queued') {
      observer?.closed('resumed', window.heldMs, event)
      if (window.via !== null) {
        windows.delete(id)
        countResume(window.via, Math.max(0, at - window.openedAt), event)
      } else {
        window.resumedAt = at
        awaitingReturn += 1
      }
      return
    }
    windows.delete(id)
    // A deadline closed it (`window.elapsed`, `grace.elapsed`): nobody came back, nobody ended it.
    const outcome: WindowOutcome = name.endsWith('.elapsed') ? 'expired' : 'ended'
    if (outcome === 'expired') {
      expiredUnused += 1
      capacityWastedMs += window.heldMs
    } else {
      endedWhileAway += 1
    }
    observer?.closed(outcome, window.heldMs, event)
    observer?.ended(outcome, null, Math.max(0, at - window.openedAt), event)
  }

  function onReturn(event: Extract<ServiceEvent, { type: 'return' }>): void {
    const { via, outcome, conversationId } = event
    if (!VIAS.includes(via) || !OUTCOMES.includes(outcome) || (conversationId !== null && typeof conversationId !== 'string')) {
      ignoredEvents += 1
      return
    }
    returns[outcome][via] += 1
    let reason: string | undefined
    if (outcome === 'redirect') {
      reason = reasonKey(event.reason, REDIRECT_REASONS)
      redirects[reason as RedirectReasonKey] += 1
    } else if (outcome === 'new-chat') {
      reason = reasonKey(event.reason, NEW_CHAT_REASONS)
      newChats[reason as NewChatReasonKey] += 1
    }
    observer?.returned(via, outcome, reason, event)
    if (outcome !== 'resume' || conversationId === null) return
    const window = windows.get(conversationId)
    if (window === undefined) return // a resume of a chat that was not away (another tab)
    if (window.resumedAt === null) {
      window.via = via // the return came before its transition
      return
    }
    windows.delete(conversationId)
    awaitingReturn -= 1
    countResume(via, Math.max(0, window.resumedAt - window.openedAt), event)
  }

  function record(event: ServiceEvent): void {
    if (typeof event !== 'object' || event === null) {
      ignoredEvents += 1
      return
    }
    if (event.type === 'return') {
      onReturn(event)
      return
    }
    const { conversationId, at } = event
    if (typeof conversationId !== 'string' || typeof at !== 'number' || !Number.isFinite(at)) {
      ignoredEvents += 1
      return
    }
    switch (event.type) {
      case 'transition': {
        const fromAway = isAway(event.from)
        const toAway = isAway(event.to)
        if (!fromAway && toAway) open(conversationId, at, event.from === 'active', event)
        else if (fromAway && !toAway) close(conversationId, at, event.to, String(event.event), event)
        return
      }
      case 'capacity.held': {
        const window = windows.get(conversationId)
        if (window !== undefined && window.resumedAt === null && window.heldSince === null) window.heldSince = at
        return
      }
      case 'capacity.released': {
        const window = windows.get(conversationId)
        if (window === undefined || window.resumedAt !== null || window.heldSince === null) return
        window.heldMs += Math.max(0, at - window.heldSince)
        window.heldSince = null
        return
      }
      case 'notice':
        return
      default:
        ignoredEvents += 1 // a newer service's event type
    }
  }

  return {
    record,
    snapshot() {
      const resumedTotal = resumed.link + resumed.prompt + resumed.session
      const ended = resumedTotal + expiredUnused + endedWhileAway
      return {
        disconnects,
        resumed: { ...resumed },
        expiredUnused,
        endedWhileAway,
        reconnectRate: ended === 0 ? null : resumedTotal / ended,
        timeToReconnect: timeToReconnect.summary(),
        capacityHeldAwayMs,
        capacityWastedMs,
        redirects: { ...redirects },
        newChats: { ...newChats },
        returns: {
          resume: { ...returns.resume },
          prompt: { ...returns.prompt },
          redirect: { ...returns.redirect },
          'new-chat': { ...returns['new-chat'] },
        },
        windows: { open: windows.size - awaitingReturn, awaitingReturn, untracked },
        ignoredEvents,
      }
    },
    reset() {
      windows.clear()
      timeToReconnect.clear()
      disconnects = 0
      resumed = zeros(VIAS)
      expiredUnused = 0
      endedWhileAway = 0
      capacityHeldAwayMs = 0
      capacityWastedMs = 0
      redirects = zeros(REDIRECT_REASONS)
      newChats = zeros(NEW_CHAT_REASONS)
      returns = returnTable()
      awaitingReturn = 0
      untracked = 0
      ignoredEvents = 0
    },
  }
}
