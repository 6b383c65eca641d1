import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { getInitialSnapshot, transition } from 'xstate'
import type { ConversationContext, ConversationEvent, ConversationInput } from '../src/machine/context'
import { conversationMachine } from '../src/machine/conversation-machine'
import { runInitial, runTransition, type TransitionOutcome } from '../src/machine/interpreter'
import { lifecycle, STATES, TIMER_NAMES, type DeadlineEntry, type LifecycleTable } from '../src/machine/lifecycle'
import { createConversationRecord, stepConversation } from '../src/machine/step'
import type { ConversationRecord, EndedBy, State, TimerName } from '../src/types'
import { newConversation, T0 } from './support/conversation'
import { replayParameters } from './support/fc-replay'
import { eventPlanArbitrary, machineSettingsArbitrary, planEvent } from './support/machine-arbitraries'

// The service runs the lifecycle table (src/machine/lifecycle.ts) through our interpreter
// (src/machine/interpreter.ts), and hosts run `conversationMachine`, the XState machine built from
// the same table. These properties hold the two to each other: for any state, context and event, the
// outcome (rejected, no-op, or the next state and context) is the one XState's own `transition`
// computes.

/** What XState's pure `transition` makes of `event`, in the interpreter's terms. */
function throughXState(state: State, context: ConversationContext, event: { type: string }): TransitionOutcome {
  const snapshot = conversationMachine.resolveState({ value: state, context })
  if (snapshot.status !== 'active') return { kind: 'rejected' }
  const [next] = transition(conversationMachine, snapshot, event as ConversationEvent)
  if (next.value === state && next.context === snapshot.context) {
    return conversationMachine.getTransitionData(snapshot, event as ConversationEvent).length === 0
      ? { kind: 'rejected' }
      : { kind: 'noop' }
  }
  return { kind: 'changed', state: next.value as State, context: next.context }
}

const table: LifecycleTable = lifecycle

const idArbitrary = fc.constantFrom('agent-1', 'agent-2')
const timeArbitrary = fc.integer({ min: T0, max: T0 + 4 * 3_600_000 })

/** Any context at all, reachable or not: the two must agree everywhere, not only on the usual paths. */
const contextArbitrary: fc.Arbitrary<ConversationContext> = fc
  .record({
    settings: machineSettingsArbitrary,
    customerId: fc.option(fc.constant('customer-1'), { nil: null }),
    agentId: fc.option(idArbitrary, { nil: null }),
    previousAgentId: fc.option(idArbitrary, { nil: null }),
    timers: fc.dictionary(fc.constantFrom(...TIMER_NAMES), timeArbitrary, { maxKeys: 4 }),
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
  fc.record({ type: fc.constant('timer.elapsed' as const), timer: fc.constantFrom(...TIMER_NAMES), at: timeArbitrary }),
)

/** The type of the delayed event a running actor raises for `timer`'s deadline in `state`, if any. */
function afterEventType(state: State, timer: TimerName): string | undefined {
  return conversationMachine.states[state]?.after.find((after) => after.delay === `${timer}Delay`)?.eventType
}

const RETRIED_AFTER_CLOSE: ReadonlySet<string> = new Set(['agent.closed', 'agent.ended', 'customer.ended', 'customer.disconnected'])

function isRetryAfterClose(state: State, event: ConversationEvent): boolean {
  return state === 'closed' && RETRIED_AFTER_CLOSE.has(event.type)
}

/** The record's lifecycle fields as the machine's context (what `stepConversation` hands over). */
function contextOf(record: ConversationRecord, settings: ConversationContext['settings']): ConversationContext {
  const { state: _s, nextDueAt: _n, version: _v, history: _h, writeId: _w, ...fields } = record
  return { ...fields, settings }
}

describe('our interpreter of the lifecycle table ≡ XState', () => {
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
            // The one place the service's step differs: a retry after the end is a no-op on a closed
            // conversation, which XState (and our table) keep final (test/retries-after-end.test.ts).
            expect(step.kind).toBe(isRetryAfterClose(record.state, event) ? 'noop' : expected.kind)
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

  it("takes a deadline's timer.elapsed as a running actor takes its delayed event", () => {
    const deadlines = STATES.flatMap((state) =>
      Object.entries(table.states[state].deadlines ?? {}).map(([timer, deadline]) => ({
        state,
        timer: timer as TimerName,
        deadline: deadline as DeadlineEntry,
      })),
    )
    expect(deadlines.map(({ state, timer }) => `${state}:${timer}`).sort()).toEqual([
      'disconnected:grace',
      'queued:queue',
      'reconnectable:warn',
      'reconnectable:window',
      'wrap-up:capacity',
      'wrap-up:wrapUp',
    ])
    fc.assert(
      fc.property(fc.constantFrom(...deadlines), contextArbitrary, ({ state, timer, deadline }, context) => {
        const type = afterEventType(state, timer)
        expect(type).toBeDefined()
        const at = context.timers[timer]
        const delayed = throughXState(state, context, { type: type! })
        if (at === undefined) {
          if (deadline.optional === true) expect(delayed).toEqual({ kind: 'rejected' })
          expect(runTransition(state, context, { type: 'timer.elapsed', timer, at: context.updatedAt })).toEqual({ kind: 'rejected' })
        } else {
          expect(runTransition(state, context, { type: 'timer.elapsed', timer, at })).toEqual(delayed)
        }
      }),
      replayParameters(1000),
    )
  })

  it('has a delayed transition in XState for each deadline of the table, and no other', () => {
    for (const state of STATES) {
      const delays = conversationMachine.states[state]!.after.map((after) => String(after.delay)).sort()
      expect(delays).toEqual(
        Object.keys(table.states[state].deadlines ?? {})
          .map((timer) => `${timer}Delay`)
          .sort(),
      )
    }
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
