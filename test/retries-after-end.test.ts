import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { ConversationEvent } from '../src/machine/context'
import { STATES, TIMER_NAMES } from '../src/machine/lifecycle'
import { stepConversation } from '../src/machine/step'
import {
  createMemoryStore,
  createReconnectService,
  isInvalidTransitionError,
  type ConversationRecord,
  type EndedBy,
  type ReconnectSettingsInput,
  type ServiceEvent,
  type State,
} from '../src/index'
import { createManualClock } from '../src/testing/index'
import { T0 } from './support/conversation'
import { replayParameters } from './support/fc-replay'
import { deepFreeze } from './support/freeze'
import { machineSettingsArbitrary } from './support/machine-arbitraries'

// Retries after the end are no-ops: once a conversation has ended, an end offered again (the host
// retrying a call whose reply it lost, a second tab, a late webhook) changes nothing and is no error.
// An assignment or a return stays refused: those would reopen what has ended.

/** The events that repeat an end that already holds, by state; every other event keeps its table outcome. */
const RETRIES: Partial<Record<State, ReadonlySet<string>>> = {
  closed: new Set(['agent.closed', 'agent.ended', 'customer.ended', 'customer.disconnected']),
  'wrap-up': new Set(['agent.ended', 'customer.ended', 'customer.disconnected']),
}

const idArbitrary = fc.constantFrom('agent-1', 'agent-2')
// Lease and detach deadlines belong to connections, which only queued and active conversations keep.
const LIFECYCLE_TIMERS = TIMER_NAMES.filter((name) => name !== 'lease' && name !== 'detach')
const timeArbitrary = fc.integer({ min: T0, max: T0 + 4 * 3_600_000 })

/** A record in any state with any fields, reachable or not: the rule holds whatever the record says. */
const recordArbitrary: fc.Arbitrary<ConversationRecord> = fc
  .record({
    state: fc.constantFrom(...STATES),
    customerId: fc.option(fc.constant('customer-1'), { nil: null }),
    agentId: fc.option(idArbitrary, { nil: null }),
    previousAgentId: fc.option(idArbitrary, { nil: null }),
    timers: fc.dictionary(fc.constantFrom(...LIFECYCLE_TIMERS), timeArbitrary, { maxKeys: 4 }),
    capacityHeld: fc.boolean(),
    capacitySince: fc.option(timeArbitrary, { nil: null }),
    endedBy: fc.constantFrom<EndedBy | null>(null, 'agent', 'customer', 'timeout'),
    updatedAt: timeArbitrary,
    version: fc.integer({ min: 1, max: 50 }),
  })
  .map((fields) => ({
    id: 'conv-1',
    widgetId: 'default',
    reconnectId: 'V1StGXR8_Z5jdHi6B-myT',
    createdAt: T0,
    nextDueAt: Object.values(fields.timers).reduce<number | null>((a, b) => (a === null || b < a ? b : a), null),
    history: [],
    ...fields,
  }))

const eventArbitrary: fc.Arbitrary<ConversationEvent> = fc.oneof(
  fc.record({ type: fc.constant('agent.assigned' as const), agentId: idArbitrary, at: timeArbitrary }),
  fc.record({ type: fc.constant('customer.disconnected' as const), at: timeArbitrary }),
  fc.record({ type: fc.constant('customer.returned' as const), via: fc.constantFrom('link', 'prompt', 'session'), at: timeArbitrary }),
  fc.record({ type: fc.constant('customer.ended' as const), at: timeArbitrary, releaseCapacity: fc.boolean() }),
  fc.record({ type: fc.constant('agent.ended' as const), at: timeArbitrary }),
  fc.record({ type: fc.constant('agent.closed' as const), at: timeArbitrary }),
  fc.record({ type: fc.constant('timer.elapsed' as const), timer: fc.constantFrom(...TIMER_NAMES), at: timeArbitrary }),
)

describe('retries after the end', () => {
  it('are no-ops in closed and wrap-up; on closed everything else is refused (any state × any event)', () => {
    const seen = new Set<string>()
    fc.assert(
      fc.property(machineSettingsArbitrary, recordArbitrary, eventArbitrary, (settings, record, event) => {
        const result = stepConversation(deepFreeze(record), settings, event)
        const retry = RETRIES[record.state]?.has(event.type) === true
        if (retry) {
          expect(result, `${event.type} in ${record.state}`).toEqual({ kind: 'noop' })
          seen.add(`${record.state}:${event.type}`)
        } else if (record.state === 'closed') {
          expect(result, `${event.type} in closed`).toEqual({ kind: 'rejected' })
          seen.add(`closed:${event.type}`)
        }
        // Repeated, the answer is the same: a retry of a retry is still safe.
        if (result.kind !== 'changed') expect(stepConversation(record, settings, event)).toEqual(result)
      }),
      replayParameters(3000),
    )
    // Every retry and every refused kind of event on closed came up at least once.
    expect([...seen].sort()).toEqual(
      [
        'closed:agent.assigned',
        'closed:agent.closed',
        'closed:agent.ended',
        'closed:customer.disconnected',
        'closed:customer.ended',
        'closed:customer.returned',
        'closed:timer.elapsed',
        'wrap-up:agent.ended',
        'wrap-up:customer.disconnected',
        'wrap-up:customer.ended',
      ].sort(),
    )
  })
})

const MINUTE = 60_000
const settings: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 30 },
  portalUrl: 'https://portal.example.com/chat',
}

function setup() {
  const clock = createManualClock()
  const events: ServiceEvent[] = []
  const store = createMemoryStore()
  const service = createReconnectService({ settings, clock, store, onEvent: (e) => void events.push(e) })
  return { clock, events, service, store }
}

type Retry = 'closeByAgent' | 'endByAgent' | 'endByCustomer' | 'disconnect'
const CLOSED_RETRIES: readonly Retry[] = ['closeByAgent', 'endByAgent', 'endByCustomer', 'disconnect']
const WRAP_UP_RETRIES: readonly Retry[] = ['endByAgent', 'endByCustomer', 'disconnect']

describe('service: retries after the end', () => {
  it('closeByAgent twice on a closed conversation resolves to the record, unchanged, with no event', async () => {
    const { service, events, store } = setup()
    const chat = await service.start({ agentId: 'agent-1' })
    await service.endByAgent(chat.id)
    const closed = await service.closeByAgent(chat.id)
    expect(closed.state).toBe('closed')
    const told = events.length
    expect(await service.closeByAgent(chat.id)).toEqual(closed)
    expect(await store.get(chat.id)).toEqual(closed)
    expect(events.length).toBe(told)
  })

  it('disconnect on a queued conversation that closed resolves to the closed record', async () => {
    const { service, clock } = setup()
    const chat = await service.start()
    const closed = await service.endByCustomer(chat.id)
    expect(closed.state).toBe('closed')
    expect(await service.disconnect(chat.id)).toEqual(closed)
    // Also when the queue's own deadline closed it, applied lazily by the call itself.
    const other = await service.start()
    clock.advance(21 * MINUTE)
    const expired = await service.disconnect(other.id)
    expect(expired).toMatchObject({ state: 'closed', endedBy: null })
    expect(await service.disconnect(other.id)).toEqual(expired)
  })

  it.each(CLOSED_RETRIES)('%s on every closed conversation changes nothing', async (retry) => {
    const { service, events } = setup()
    // Closed three ways: after the agent's End, by the customer while queued, by the queue deadline.
    const ended = await service.start({ agentId: 'agent-1' })
    await service.endByAgent(ended.id)
    await service.closeByAgent(ended.id)
    const left = await service.start()
    await service.endByCustomer(left.id)
    for (const id of [ended.id, left.id]) {
      const before = await service.get(id)
      const told = events.length
      const after = await service[retry](id)
      expect(after).toEqual(before)
      expect(after.version).toBe(before.version)
      expect(events.length).toBe(told)
    }
  })

  it.each(WRAP_UP_RETRIES)('%s in wrap-up changes nothing', async (retry) => {
    const { service, events } = setup()
    const chat = await service.start({ agentId: 'agent-1' })
    const wrapUp = await service.endByCustomer(chat.id)
    expect(wrapUp.state).toBe('wrap-up')
    const told = events.length
    expect(await service[retry](chat.id)).toEqual(wrapUp)
    expect(events.length).toBe(told)
  })

  it('an assignment or a return on a closed conversation is still refused', async () => {
    const { service } = setup()
    const chat = await service.start({ agentId: 'agent-1' })
    await service.endByAgent(chat.id)
    await service.closeByAgent(chat.id)
    const error = await service.assign(chat.id, 'agent-2').catch((e: unknown) => e)
    expect(isInvalidTransitionError(error)).toBe(true)
    expect(error).toMatchObject({ state: 'closed', event: 'agent.assigned' })
    const decision = await service.returnCustomer({ reconnectId: chat.reconnectId })
    expect(decision.type).not.toBe('resume')
    expect(await service.attach(chat.id, { connectionId: 'tab-1' }).catch((e: unknown) => e)).toMatchObject({
      code: 'invalid-transition',
    })
  })
})
