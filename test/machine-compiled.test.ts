import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { assign, createMachine, getInitialSnapshot, setup, transition } from 'xstate'
import { compileMachine, runInitial, runTransition, type TransitionOutcome } from '../src/machine/compiled'
import {
  conversationMachine,
  STATES,
  updates,
  type ConversationContext,
  type ConversationEvent,
  type ConversationInput,
} from '../src/machine/conversation-machine'
import { createConversationRecord, stepConversation } from '../src/machine/step'
import type { ConversationRecord, EndedBy, State, TimerName } from '../src/types'
import { newConversation, T0 } from './support/conversation'
import { replayParameters } from './support/fc-replay'
import { eventPlanArbitrary, machineSettingsArbitrary, planEvent } from './support/machine-arbitraries'

// The service runs the conversation machine through src/machine/compiled.ts instead of XState's
// interpreter. These properties hold it to XState: for any state, context and event, the outcome
// (rejected, no-op, or the next state and context) is the one XState's own `transition` computes.

const TIMERS: readonly TimerName[] = ['queue', 'grace', 'window', 'warn', 'wrapUp', 'capacity']

/** What XState's pure `transition` makes of `event`, in the compiled module's terms. */
function throughXState(state: State, context: ConversationContext, event: ConversationEvent): TransitionOutcome {
  const snapshot = conversationMachine.resolveState({ value: state, context })
  if (snapshot.status !== 'active') return { kind: 'rejected' }
  const [next] = transition(conversationMachine, snapshot, event)
  if (next.value === state && next.context === snapshot.context) {
    return conversationMachine.getTransitionData(snapshot, event).length === 0 ? { kind: 'rejected' } : { kind: 'noop' }
  }
  return { kind: 'changed', state: next.value as State, context: next.context }
}

const idArbitrary = fc.constantFrom('agent-1', 'agent-2')
const timeArbitrary = fc.integer({ min: T0, max: T0 + 4 * 3_600_000 })

/** Any context at all, reachable or not: the two must agree everywhere, not only on the usual paths. */
const contextArbitrary: fc.Arbitrary<ConversationContext> = fc
  .record({
    settings: machineSettingsArbitrary,
    customerId: fc.option(fc.constant('customer-1'), { nil: null }),
    agentId: fc.option(idArbitrary, { nil: null }),
    previousAgentId: fc.option(idArbitrary, { nil: null }),
    timers: fc.dictionary(fc.constantFrom(...TIMERS), timeArbitrary, { maxKeys: 4 }),
    capacityHeld: fc.boolean(),
    capacitySince: fc.option(timeArbitrary, { nil: null }),
    endedBy: fc.constantFrom<EndedBy | null>(null, 'agent', 'customer', 'timeout'),
    updatedAt: timeArbitrary,
  })
  .map((fields) => ({ id: 'conv-1', widgetId: 'default', reconnectId: 'V1StGXR8_Z5jdHi6B-myT', createdAt: T0, ...fields }))

const eventArbitrary: fc.Arbitrary<ConversationEvent> = fc.oneof(
  fc.record({ type: fc.constant('agent.assigned' as const), agentId: idArbitrary, at: timeArbitrary }),
  fc.record({ type: fc.constant('customer.disconnected' as const), at: timeArbitrary }),
  fc.record({ type: fc.constant('customer.returned' as const), via: fc.constantFrom('link', 'prompt', 'session'), at: timeArbitrary }),
  fc.record({ type: fc.constant('customer.ended' as const), at: timeArbitrary, releaseCapacity: fc.boolean() }),
  fc.record({ type: fc.constant('agent.ended' as const), at: timeArbitrary }),
  fc.record({ type: fc.constant('agent.closed' as const), at: timeArbitrary }),
  fc.record({ type: fc.constant('timer.elapsed' as const), timer: fc.constantFrom(...TIMERS), at: timeArbitrary }),
  // The delayed events a running actor raises for `after`; the service never sends them, but both must agree.
  fc
    .record({ type: fc.constantFrom(...afterEventTypes()), at: timeArbitrary })
    .map((event) => event as unknown as ConversationEvent),
)

function afterEventTypes(): string[] {
  return Object.values(conversationMachine.root.states).flatMap((node) =>
    [...node.transitions.keys()].filter((type) => type.startsWith('xstate.after.')),
  )
}

/** The record's lifecycle fields as the machine's context (what `stepConversation` hands over). */
function contextOf(record: ConversationRecord, settings: ConversationContext['settings']): ConversationContext {
  const { state: _s, nextDueAt: _n, version: _v, history: _h, writeId: _w, ...fields } = record
  return { ...fields, settings }
}

describe('compiled conversation machine ≡ XState', () => {
  it('gives the same outcome as XState for any state, context and event', () => {
    fc.assert(
      fc.property(fc.constantFrom(...STATES), contextArbitrary, eventArbitrary, (state, context, event) => {
        expect(runTransition(state, context, event)).toEqual(throughXState(state, context, event))
      }),
      replayParameters(3000),
    )
  })

  it('gives the same outcome as XState at every step of random lifecycles', () => {
    fc.assert(
      fc.property(
        machineSettingsArbitrary,
        fc.option(idArbitrary, { nil: null }),
        fc.array(eventPlanArbitrary, { maxLength: 25 }),
        (settings, agentId, plans) => {
          let record = newConversation(settings, { agentId })
          let lastAt = T0
          for (const plan of plans) {
            const event = planEvent(plan, record, lastAt)
            lastAt = event.at
            const context = contextOf(record, settings)
            const expected = throughXState(record.state, context, event)
            expect(runTransition(record.state, context, event)).toEqual(expected)
            const step = stepConversation(record, settings, event)
            expect(step.kind).toBe(expected.kind)
            if (step.kind === 'changed' && expected.kind === 'changed') {
              expect(step.record.state).toBe(expected.state)
              expect(contextOf(step.record, settings)).toEqual(expected.context)
              record = step.record
            }
          }
        },
      ),
      replayParameters(300),
    )
  })

  it('starts every conversation in the state and context XState starts it in', () => {
    fc.assert(
      fc.property(
        machineSettingsArbitrary,
        fc.option(idArbitrary, { nil: null }),
        fc.option(fc.constant('customer-1'), { nil: null }),
        timeArbitrary,
        (settings, agentId, customerId, now) => {
          const input: ConversationInput = { id: 'conv-1', widgetId: 'w', reconnectId: 'r', agentId, customerId, now, settings }
          const snapshot = getInitialSnapshot(conversationMachine, input)
          expect(runInitial(input)).toEqual({ state: snapshot.value, context: snapshot.context })
          const record = createConversationRecord(input)
          expect(record.state).toBe(snapshot.value)
          expect(contextOf(record, settings)).toEqual(snapshot.context)
        },
      ),
      replayParameters(300),
    )
  })

  it('does not change the record or context it is given', () => {
    fc.assert(
      fc.property(fc.constantFrom(...STATES), contextArbitrary, eventArbitrary, (state, context, event) => {
        const before = structuredClone({ ...context, settings: null })
        runTransition(state, context, event)
        expect({ ...context, settings: null }).toEqual(before)
      }),
      replayParameters(500),
    )
  })
})

describe('compileMachine refuses what it cannot run exactly as XState does', () => {
  const update = setup({ actions: { touch: assign({}) } })
  const ours = setup({
    types: { context: {} as ConversationContext, events: {} as ConversationEvent },
    actions: { stamp: assign(updates.stamp) },
  })

  it('compiles the conversation machine', () => {
    const compiled = compileMachine(conversationMachine)
    expect(compiled.initial).toBe('starting')
    expect([...compiled.states.keys()].sort()).toEqual(['starting', ...STATES].sort())
  })

  it.each([
    ['nested states', createMachine({ id: 'm', initial: 'a', states: { a: { initial: 'b', states: { b: {} } } } }), /compound states/],
    ['a parallel machine', createMachine({ id: 'm', type: 'parallel', states: { a: {}, b: {} } }), /parallel machines/],
    ['parallel states', createMachine({ id: 'm', initial: 'a', states: { a: { type: 'parallel', states: { x: {}, y: {} } } } }), /parallel states/],
    ['guards swapped with provide', conversationMachine.provide({ guards: { reconnectEnabled: () => false } }), /guard 'reconnectEnabled' is not one of/],
    ['an update swapped with provide', conversationMachine.provide({ actions: { stamp: assign(() => ({ updatedAt: 0 })) } }), /action 'stamp' is not one of/],
    ['eventless transitions out of a state other than the initial one', ours.createMachine({ id: 'm', context: {} as ConversationContext, initial: 'a', states: { a: { on: { 'agent.ended': 'b' } }, b: { always: 'a' } } }), /only in the initial state/],
    ['an eventless transition without a target', ours.createMachine({ id: 'm', context: {} as ConversationContext, initial: 'a', states: { a: { always: { actions: 'stamp' } } } }), /without a target/],
    ['an action named like an Object method', update.createMachine({ id: 'm', initial: 'a', states: { a: { entry: 'toString' as never } } }), /'toString' is not one of/],
    ['eventless transitions out of a final state', createMachine({ id: 'm', initial: 'a', states: { a: { type: 'final', always: 'b' }, b: {} } } as never), /final state/],
    ['an inline action', createMachine({ id: 'm', initial: 'a', states: { a: { entry: () => {} } } }), /inline actions/],
    ['an inline guard', createMachine({ id: 'm', initial: 'a', states: { a: { on: { go: { guard: () => true } } } } }), /inline guards/],
    ['an action outside the machine’s updates', update.createMachine({ id: 'm', initial: 'a', states: { a: { entry: 'touch' } } }), /'touch' is not one of/],
    ['a wildcard event', createMachine({ id: 'm', initial: 'a', states: { a: { on: { '*': {} } } } }), /wildcard/],
    ['a transition back into its own state', createMachine({ id: 'm', initial: 'a', states: { a: { on: { go: 'a' } } } }), /same state/],
    ['an exit action (never run by a pure transition here)', ours.createMachine({ id: 'm', context: {} as ConversationContext, initial: 'a', states: { a: { exit: 'stamp', on: { 'agent.ended': 'b' } }, b: {} } }), /exit actions/],
    ['root-level transitions', createMachine({ id: 'm', initial: 'a', on: { go: '.a' }, states: { a: {} } }), /root-level/],
  ])('refuses %s', (_name, machine, message) => {
    expect(() => compileMachine(machine)).toThrow(message)
  })
})
