import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { assign, createActor, initialTransition, transition, type Actor } from 'xstate'
import { conversationMachine, type ConversationEvent, type ConversationInput } from '../src/machine/conversation-machine'
import { expireConversation, stepConversation } from '../src/machine/step'
import { createManualClock, type ManualClock } from '../src/testing/manual-clock'
import type { ConversationRecord, ReconnectSettings, State } from '../src/types'
import { lifecycleFields, MINUTE, newConversation, SECOND, T0 } from './support/conversation'
import { replayParameters } from './support/fc-replay'
import { eventPlanArbitrary, machineSettingsArbitrary, type EventPlan } from './support/machine-arbitraries'
import { makeSettings } from './support/settings'

// The same machine as a running actor on a manual clock: its `after` transitions must fire exactly
// at the deadlines stored in context, and agree with the pure path the service takes.

const ON = makeSettings()
const OFF = makeSettings({ enabled: false, timeLimit: null, portalUrl: null })

function inputFor(settings: ReconnectSettings, clock: ManualClock, agentId: string | null): ConversationInput {
  return { id: 'conv-1', widgetId: 'default', reconnectId: 'V1StGXR8_Z5jdHi6B-myT', agentId, now: clock.now(), settings }
}

function startActor(settings: ReconnectSettings, agentId: string | null = 'agent-7', machine = conversationMachine) {
  const clock = createManualClock(T0)
  const actor = createActor(machine, { input: inputFor(settings, clock, agentId), clock })
  actor.start()
  return { clock, actor }
}

type ConversationActor = Actor<typeof conversationMachine>

const stateOf = (actor: ConversationActor): State => actor.getSnapshot().value as State
const contextOf = (actor: ConversationActor) => actor.getSnapshot().context

/** Sends an event stamped with the clock's current time, as a host would. */
function send(actor: ConversationActor, clock: ManualClock, event: DistributiveOmit<ConversationEvent, 'at'>): void {
  actor.send({ ...event, at: clock.now() } as ConversationEvent)
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

describe('after transitions fire at the deadlines stored in context', () => {
  it('reconnectable: warn at window − warnBefore, wrap-up at the window, closed at wrap-up end', () => {
    const settings = makeSettings({ warnBefore: 5 * MINUTE })
    const { clock, actor } = startActor(settings)
    clock.advance(MINUTE)
    send(actor, clock, { type: 'customer.disconnected' })
    const { window, warn } = contextOf(actor).timers
    expect(window).toBe(T0 + 31 * MINUTE)
    expect(warn).toBe(T0 + 26 * MINUTE)

    clock.set(warn! - 1)
    expect(contextOf(actor).timers.warn).toBe(warn)
    clock.set(warn!)
    expect(stateOf(actor)).toBe('reconnectable')
    expect(contextOf(actor).timers).toEqual({ window })
    expect(contextOf(actor).updatedAt).toBe(warn)

    clock.set(window! - 1)
    expect(stateOf(actor)).toBe('reconnectable')
    clock.set(window!)
    expect(stateOf(actor)).toBe('wrap-up')
    expect(contextOf(actor)).toMatchObject({ endedBy: 'timeout', updatedAt: window, capacityHeld: true })
    const wrapUp = contextOf(actor).timers.wrapUp!
    expect(wrapUp).toBe(window! + 15 * MINUTE)

    clock.set(wrapUp - 1)
    expect(stateOf(actor)).toBe('wrap-up')
    clock.set(wrapUp)
    expect(stateOf(actor)).toBe('closed')
    expect(actor.getSnapshot().status).toBe('done')
    expect(contextOf(actor)).toMatchObject({ updatedAt: wrapUp, capacityHeld: false, timers: {} })
    expect(clock.pending()).toBe(0)
  })

  it('disconnected: wrap-up exactly when the grace ends', () => {
    const { clock, actor } = startActor(OFF)
    clock.advance(MINUTE)
    send(actor, clock, { type: 'customer.disconnected' })
    const grace = contextOf(actor).timers.grace!
    expect(grace).toBe(T0 + 4 * MINUTE)
    clock.set(grace - 1)
    expect(stateOf(actor)).toBe('disconnected')
    clock.set(grace)
    expect(stateOf(actor)).toBe('wrap-up')
    expect(contextOf(actor).updatedAt).toBe(grace)
  })

  it('queued: closes exactly at queueAutoClose', () => {
    const { clock, actor } = startActor(ON, null)
    const queue = contextOf(actor).timers.queue!
    clock.set(queue - 1)
    expect(stateOf(actor)).toBe('queued')
    clock.set(queue)
    expect(stateOf(actor)).toBe('closed')
    expect(contextOf(actor)).toMatchObject({ endedBy: null, updatedAt: queue })
  })

  it('wrap-up: capacity given back at entry + wrapUpCapacity, conversation closed later', () => {
    const settings = makeSettings({ wrapUpCapacity: 2 * MINUTE })
    const { clock, actor } = startActor(settings)
    clock.advance(MINUTE)
    send(actor, clock, { type: 'agent.ended' })
    const { capacity, wrapUp } = contextOf(actor).timers
    expect(capacity).toBe(T0 + 3 * MINUTE)
    clock.set(capacity! - 1)
    expect(contextOf(actor).capacityHeld).toBe(true)
    clock.set(capacity!)
    expect(stateOf(actor)).toBe('wrap-up')
    expect(contextOf(actor)).toMatchObject({ capacityHeld: false, timers: { wrapUp }, updatedAt: capacity })
    clock.set(wrapUp!)
    expect(stateOf(actor)).toBe('closed')
  })

  it('agent.closed while reconnectable does not restart the window', () => {
    const { clock, actor } = startActor(ON)
    send(actor, clock, { type: 'customer.disconnected' })
    const window = contextOf(actor).timers.window!
    clock.advance(10 * MINUTE)
    send(actor, clock, { type: 'agent.closed' })
    expect(contextOf(actor)).toMatchObject({ agentId: null, capacityHeld: false, timers: { window } })
    clock.set(window - 1)
    expect(stateOf(actor)).toBe('reconnectable')
    clock.set(window)
    expect(stateOf(actor)).toBe('wrap-up')
  })

  it('a return inside the window cancels its timers', () => {
    const { clock, actor } = startActor(makeSettings({ warnBefore: MINUTE }))
    send(actor, clock, { type: 'customer.disconnected' })
    clock.advance(10 * MINUTE)
    send(actor, clock, { type: 'customer.returned', via: 'link' })
    expect(stateOf(actor)).toBe('active')
    expect(clock.pending()).toBe(0)
    clock.advance(24 * 60 * MINUTE)
    expect(stateOf(actor)).toBe('active')
  })
})

describe('machine.provide swaps named implementations', () => {
  it('a provided guard decides the route (reconnectEnabled)', () => {
    const never = conversationMachine.provide({ guards: { reconnectEnabled: () => false } })
    const input = { id: 'c', widgetId: 'w', reconnectId: 'r', agentId: 'agent-7', now: T0, settings: ON }
    const [start] = initialTransition(never, input)
    const [next] = transition(never, start, { type: 'customer.disconnected', at: T0 })
    expect(next.value).toBe('disconnected')
    // The original is untouched.
    const [original] = transition(conversationMachine, initialTransition(conversationMachine, input)[0], {
      type: 'customer.disconnected',
      at: T0,
    })
    expect(original.value).toBe('reconnectable')
  })

  it('a provided action changes the deadline, and the actor fires at the new one (enterReconnectable)', () => {
    const quick = conversationMachine.provide({
      actions: { enterReconnectable: assign(({ context }) => ({ timers: { window: context.updatedAt + 7 * SECOND } })) },
    })
    const { clock, actor } = startActor(ON, 'agent-7', quick)
    send(actor, clock, { type: 'customer.disconnected' })
    expect(contextOf(actor).timers).toEqual({ window: T0 + 7 * SECOND })
    clock.advance(7 * SECOND - 1)
    expect(stateOf(actor)).toBe('reconnectable')
    clock.advance(1)
    expect(stateOf(actor)).toBe('wrap-up')
  })
})

// ---------------------------------------------------------------------------------------------------
// The actor and the pure path agree on every script.

const actorScripts = fc.record({
  settings: machineSettingsArbitrary,
  agentId: fc.constantFrom<string | null>(null, 'agent-1'),
  // Timers are the actor's own business here: it fires them itself.
  moves: fc.array(
    eventPlanArbitrary.filter((p) => p.type !== 'timer.elapsed').map((plan) => ({ plan })),
    { maxLength: 25 },
  ),
  tail: fc.integer({ min: 0, max: 4 * 60 * MINUTE }),
})

/** Where a plan puts the clock: a while after now, or next to one of the record's deadlines. */
function targetTime(plan: EventPlan, record: ConversationRecord, now: number): number {
  if ('after' in plan.time) return now + plan.time.after
  const deadlines = Object.values(record.timers).sort((a, b) => a - b)
  const chosen = deadlines[plan.time.deadline % Math.max(1, deadlines.length)]
  return Math.max(now, chosen === undefined ? now : chosen + plan.time.offset)
}

function eventAt(plan: EventPlan, at: number): ConversationEvent {
  switch (plan.type) {
    case 'agent.assigned':
      return { type: 'agent.assigned', agentId: plan.pick % 3 === 0 ? 'agent-2' : 'agent-1', at }
    case 'customer.returned':
      return { type: 'customer.returned', via: (['link', 'prompt', 'session'] as const)[plan.pick % 3]!, at }
    case 'customer.ended':
      return plan.releaseCapacity ? { type: 'customer.ended', releaseCapacity: true, at } : { type: 'customer.ended', at }
    case 'timer.elapsed':
      throw new Error('timers are fired by the actor')
    default:
      return { type: plan.type, at }
  }
}

function expectSame(actor: ConversationActor, record: ConversationRecord, when: string): void {
  expect(stateOf(actor), when).toBe(record.state)
  expect(lifecycleFields(contextOf(actor)), when).toEqual(lifecycleFields(record))
  expect(actor.getSnapshot().status === 'done', when).toBe(record.state === 'closed')
}

describe('running actor ≡ stepConversation + expireConversation', () => {
  it('yields the same states and context for the same script', () => {
    fc.assert(
      fc.property(actorScripts, ({ settings, agentId, moves, tail }) => {
        const clock = createManualClock(T0)
        const actor = createActor(conversationMachine, { input: inputFor(settings, clock, agentId), clock }).start()
        let record = newConversation(settings, { agentId })
        try {
          expectSame(actor, record, 'start')
          for (const [index, { plan }] of moves.entries()) {
            clock.set(targetTime(plan, record, clock.now()))
            record = expireConversation(record, settings, clock.now()).at(-1)?.record ?? record
            expectSame(actor, record, `before move ${index} at ${clock.now()}`)
            const event = eventAt(plan, clock.now())
            const step = stepConversation(record, settings, event)
            // A finished actor takes no events (XState warns); the pure path changes nothing either
            // (a retried end is a no-op there, test/retries-after-end.test.ts, anything else refused).
            if (actor.getSnapshot().status === 'done') expect(step.kind).not.toBe('changed')
            else actor.send(event)
            if (step.kind === 'changed') record = step.record
            expectSame(actor, record, `after ${event.type} (move ${index}, ${step.kind})`)
          }
          clock.advance(tail)
          record = expireConversation(record, settings, clock.now()).at(-1)?.record ?? record
          expectSame(actor, record, 'at the end')
        } finally {
          actor.stop()
        }
      }),
      replayParameters(200),
    )
  })
})
