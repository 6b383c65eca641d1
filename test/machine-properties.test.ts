import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { ConversationEvent } from '../src/machine/conversation-machine'
import { eventName, expireConversation, HISTORY_LIMIT, stepConversation, type StepResult } from '../src/machine/step'
import type { ConversationRecord, ReconnectSettings, State } from '../src/types'
import { newConversation, T0 } from './support/conversation'
import { replayParameters } from './support/fc-replay'
import { eventPlanArbitrary, expectedNextDueAt, machineSettingsArbitrary, planEvent, type EventPlan } from './support/machine-arbitraries'
import { deepFreeze } from './support/freeze'

// Random settings and random event scripts (non-decreasing `at`, timers at or after their
// deadlines, returns on every route), with SPEC §3–§4 invariants checked after every single step.

const ENDED: ReadonlySet<State> = new Set(['wrap-up', 'closed'])
const RETRIED_AFTER_CLOSE: ReadonlySet<string> = new Set(['agent.closed', 'agent.ended', 'customer.ended', 'customer.disconnected'])

/** What SPEC §3 says about capacity in each state, plus the bookkeeping that goes with it. */
function checkCapacity(record: ConversationRecord, settings: ReconnectSettings): void {
  const { state, capacityHeld, agentId } = record
  if (capacityHeld) {
    expect(agentId, 'capacity is always held by someone').not.toBeNull()
    expect(record.capacitySince).not.toBeNull()
    expect(record.capacitySince!).toBeLessThanOrEqual(record.updatedAt)
  } else {
    expect(record.capacitySince).toBeNull()
  }
  switch (state) {
    case 'active':
      expect(capacityHeld).toBe(true)
      break
    case 'queued':
    case 'closed':
      expect(capacityHeld).toBe(false)
      expect(agentId === null || state === 'closed').toBe(true)
      break
    case 'disconnected':
    case 'reconnectable':
      expect(capacityHeld).toBe(agentId !== null)
      break
    case 'wrap-up': {
      const policy = settings.wrapUpCapacity
      if (policy === 'never') expect(capacityHeld).toBe(false)
      else if (policy === 'always') expect(record.timers.capacity).toBeUndefined()
      else expect(capacityHeld).toBe(record.timers.capacity !== undefined)
      break
    }
  }
}

function checkTimers(record: ConversationRecord, settings: ReconnectSettings): void {
  expect(record.nextDueAt).toBe(expectedNextDueAt(record))
  const names = Object.keys(record.timers).sort()
  const allowed: Record<State, string[]> = {
    queued: ['queue'],
    active: [],
    disconnected: ['grace'],
    reconnectable: ['warn', 'window'],
    'wrap-up': ['capacity', 'wrapUp'],
    closed: ['retention'],
  }
  for (const name of names) expect(allowed[record.state]).toContain(name)
  if (record.state === 'queued') expect(names).toEqual(['queue'])
  if (record.state === 'disconnected') expect(names).toEqual(['grace'])
  if (record.state === 'reconnectable') {
    expect(names).toContain('window')
    expect(settings.enabled).toBe(true)
  }
  if (record.state === 'wrap-up') expect(names).toContain('wrapUp')
  // Retention: a closed conversation is deleted keepClosedFor after it closed (null keeps it).
  if (record.state === 'closed') {
    expect(record.timers).toEqual(settings.keepClosedFor === null ? {} : { retention: record.updatedAt + settings.keepClosedFor })
  }
  if (record.timers.warn !== undefined) expect(record.timers.warn).toBeLessThan(record.timers.window!)
}

interface Trace {
  settings: ReconnectSettings
  steps: { event: ConversationEvent; result: StepResult; before: ConversationRecord }[]
}

/** Plays the plans from a fresh conversation, checking every step; returns what happened. */
function play(settings: ReconnectSettings, agentId: string | null, plans: readonly EventPlan[]): Trace {
  let record = newConversation(settings, { agentId })
  checkCapacity(record, settings)
  checkTimers(record, settings)
  let lastAt = T0
  let ended = false
  const trace: Trace = { settings, steps: [] }
  for (const plan of plans) {
    const event = planEvent(plan, record, lastAt)
    expect(event.at).toBeGreaterThanOrEqual(lastAt)
    lastAt = event.at
    const before = record
    const frozen = structuredClone(before)
    // Frozen all the way down: a transition that wrote to the record it was given (its timers, say,
    // which the context it builds shares) would throw here.
    const result = stepConversation(deepFreeze(before), settings, event)
    trace.steps.push({ event, result, before })
    expect(before, 'stepConversation never mutates its input').toEqual(frozen)

    if (before.state === 'closed') {
      // Closed is absorbing: a retried end changes nothing, anything else is refused.
      expect(result.kind, 'closed is absorbing').toBe(RETRIED_AFTER_CLOSE.has(event.type) ? 'noop' : 'rejected')
    }
    if (result.kind !== 'changed') continue
    const after = result.record

    // Bookkeeping: one version per change, time never runs backwards, history bounded.
    expect(after.version).toBe(before.version + 1)
    expect(after.updatedAt).toBeGreaterThanOrEqual(before.updatedAt)
    expect(after.updatedAt).toBeLessThanOrEqual(event.at)
    expect(after.createdAt).toBe(before.createdAt)
    expect(after.history.length).toBe(Math.min(before.history.length + 1, HISTORY_LIMIT))
    expect(after.history.at(-1)).toEqual({ at: after.updatedAt, event: eventName(event), from: before.state, to: after.state })
    expect(result.from).toBe(before.state)

    // Deadlines never move backwards: a kept timer keeps its deadline, a new one is set from now.
    for (const [name, deadline] of Object.entries(after.timers)) {
      const previous = before.timers[name as keyof typeof before.timers]
      if (previous !== deadline) expect(deadline, `${name} set at ${after.updatedAt}`).toBeGreaterThan(after.updatedAt)
      if (before.state === after.state && previous !== undefined) expect(deadline).toBe(previous)
    }

    // Boundaries: a deadline applies at now >= deadline, a return resumes only at now < deadline.
    if (event.type === 'timer.elapsed') expect(event.at).toBeGreaterThanOrEqual(before.timers[event.timer]!)
    if (event.type === 'customer.returned') {
      if (before.state === 'reconnectable') expect(event.at).toBeLessThan(before.timers.window!)
      if (before.state === 'disconnected') {
        expect(event.via).toBe('session')
        expect(event.at).toBeLessThan(before.timers.grace!)
      }
    }

    // Who holds what: previousAgentId remembers the agent who closed.
    if (before.agentId !== null && after.agentId === null) expect(after.previousAgentId).toBe(before.agentId)
    if (event.type === 'agent.closed' && before.state !== 'wrap-up') expect(after.agentId).toBeNull()

    ended ||= ENDED.has(after.state)
    if (ended) expect(['wrap-up', 'closed']).toContain(after.state)
    if (after.state === 'active') expect(ended).toBe(false)
    if (before.state === 'wrap-up' && after.state === 'wrap-up') {
      // Inside wrap-up capacity can only be given back, never taken.
      expect(after.capacityHeld && !before.capacityHeld).toBe(false)
      if (settings.wrapUpCapacity === 'always') expect(after.capacityHeld).toBe(before.capacityHeld)
    }
    if (after.state === 'wrap-up' && before.state !== 'wrap-up') {
      expect(after.timers.wrapUp).toBe(
        after.updatedAt + Math.max(settings.wrapUpAutoClose, typeof settings.wrapUpCapacity === 'number' ? settings.wrapUpCapacity : 0),
      )
      if (typeof settings.wrapUpCapacity === 'number' && after.capacityHeld) {
        expect(after.timers.capacity).toBe(after.updatedAt + settings.wrapUpCapacity)
      }
    }
    if (after.endedBy !== before.endedBy) expect(before.endedBy).toBeNull()

    checkCapacity(after, settings)
    checkTimers(after, settings)
    record = after
  }
  return trace
}

const scripts = fc.record({
  settings: machineSettingsArbitrary,
  agentId: fc.constantFrom<string | null>(null, 'agent-1'),
  plans: fc.array(eventPlanArbitrary, { maxLength: 40 }),
})

describe('conversation machine invariants under random event scripts', () => {
  it('hold after every step', () => {
    fc.assert(
      fc.property(scripts, ({ settings, agentId, plans }) => {
        play(settings, agentId, plans)
      }),
      replayParameters(300),
    )
  })

  it('noops and rejections change nothing, and a noop repeated stays a noop', () => {
    fc.assert(
      fc.property(scripts, ({ settings, agentId, plans }) => {
        for (const { event, result, before } of play(settings, agentId, plans).steps) {
          if (result.kind === 'changed') continue
          // Same input, same answer: retries are safe.
          expect(stepConversation(before, settings, event)).toEqual(result)
        }
      }),
      replayParameters(100),
    )
  })

  it('the scripts reach every state and exercise all three outcomes (the generator is not vacuous)', () => {
    const states = new Set<State>()
    const kinds = new Set<string>()
    fc.assert(
      fc.property(scripts, ({ settings, agentId, plans }) => {
        for (const { result } of play(settings, agentId, plans).steps) {
          kinds.add(result.kind)
          if (result.kind === 'changed') states.add(result.record.state)
        }
      }),
      { numRuns: 200, seed: 42 },
    )
    expect([...states].sort()).toEqual(['active', 'closed', 'disconnected', 'queued', 'reconnectable', 'wrap-up'])
    expect([...kinds].sort()).toEqual(['changed', 'noop', 'rejected'])
  })

  it('expireConversation at any time applies exactly the passed deadlines, each at its own time', () => {
    fc.assert(
      fc.property(scripts, fc.integer({ min: 0, max: 10 * 60 * 60_000 }), ({ settings, agentId, plans }, later) => {
        const { steps } = play(settings, agentId, plans)
        let record = newConversation(settings, { agentId })
        for (const { result } of steps) if (result.kind === 'changed') record = result.record
        const now = record.updatedAt + later
        const expired = expireConversation(deepFreeze(record), settings, now)
        let previous = record
        for (const step of expired) {
          expect(step.record.version).toBe(previous.version + 1)
          // Each deadline is applied at its own time (or at the record's time, if a late event got there first).
          expect(step.record.updatedAt).toBe(Math.max(previous.updatedAt, previous.nextDueAt!))
          expect(step.record.updatedAt).toBeLessThanOrEqual(now)
          previous = step.record
        }
        // Nothing due is left behind, and applying again is a no-op.
        expect(previous.nextDueAt === null || previous.nextDueAt > now).toBe(true)
        expect(expireConversation(previous, settings, now)).toEqual([])
      }),
      replayParameters(200),
    )
  })

  it('an event stamped before the record’s last update (a lagging node) never moves time or deadlines back', () => {
    fc.assert(
      fc.property(
        machineSettingsArbitrary,
        fc.constantFrom<string | null>(null, 'agent-1'),
        fc.array(fc.tuple(eventPlanArbitrary, fc.integer({ min: -10 * 60_000, max: 0 })), { maxLength: 30 }),
        (settings, agentId, plans) => {
          let record = newConversation(settings, { agentId })
          let lastAt = T0
          for (const [plan, skew] of plans) {
            const planned = planEvent(plan, record, lastAt)
            lastAt = planned.at
            const event = { ...planned, at: planned.at + skew }
            const result = stepConversation(record, settings, event)
            if (result.kind !== 'changed') continue
            const after = result.record
            expect(after.updatedAt).toBeGreaterThanOrEqual(record.updatedAt)
            expect(after.updatedAt).toBeGreaterThanOrEqual(after.createdAt)
            for (const [name, deadline] of Object.entries(after.timers)) {
              if (record.timers[name as keyof typeof record.timers] !== deadline) expect(deadline).toBeGreaterThan(after.updatedAt)
            }
            checkCapacity(after, settings)
            checkTimers(after, settings)
            record = after
          }
        },
      ),
      replayParameters(200),
    )
  })
})
