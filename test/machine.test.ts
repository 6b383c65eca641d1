import { describe, expect, it } from 'vitest'
import type { ConversationEvent } from '../src/machine/conversation-machine'
import { describeCreation, describeTransition } from '../src/machine/effects'
import { earliestDeadline, expireConversation, firstDueTimer, HISTORY_LIMIT, stepConversation } from '../src/machine/step'
import { defineSettings } from '../src/settings'
import type { ConversationRecord, ReconnectSettings, ServiceEvent } from '../src/types'
import { applyAll, applyOk, MINUTE, newConversation, SECOND, T0 } from './support/conversation'
import { makeSettings } from './support/settings'

// One example per row of driven through the pure API the service uses.

const ON = makeSettings()
const OFF = makeSettings({ enabled: false, timeLimit: null, portalUrl: null })
const AGENT = 'agent-7'

const at = (ms: number): number => T0 + ms
/** When the service emits the events in these tests: any clock reading, told apart from every `at`. */
const EMITTED = T0 + 999_999_999

function active(settings: ReconnectSettings = ON): ConversationRecord {
  return newConversation(settings, { agentId: AGENT })
}

/** The service events of one applied step, as the service would emit them. */
function effectsOf(record: ConversationRecord, settings: ReconnectSettings, event: ConversationEvent): ServiceEvent[] {
  const step = applyOk(record, settings, event)
  return describeTransition(record, step.record, step.event, EMITTED)
}

function notices(events: ServiceEvent[]): string[] {
  return events.flatMap((e) => (e.type === 'notice' ? [`${e.audience}:${e.message}`] : []))
}

function expectRejected(record: ConversationRecord, settings: ReconnectSettings, event: ConversationEvent): void {
  expect(stepConversation(record, settings, event), `${event.type} in '${record.state}'`).toEqual({ kind: 'rejected' })
}

function expectNoop(record: ConversationRecord, settings: ReconnectSettings, event: ConversationEvent): void {
  const copy = structuredClone(record)
  expect(stepConversation(record, settings, event), `${event.type} in '${record.state}'`).toEqual({ kind: 'noop' })
  expect(record).toEqual(copy)
}

describe('creation', () => {
  it('starts queued with a queue deadline and no capacity when no agent is given', () => {
    const record = newConversation(ON)
    expect(record).toMatchObject({
      state: 'queued',
      agentId: null,
      capacityHeld: false,
      timers: { queue: at(20 * MINUTE) },
      nextDueAt: at(20 * MINUTE),
      version: 1,
      history: [],
      createdAt: T0,
      updatedAt: T0,
    })
    expect(describeCreation(record, EMITTED)).toEqual([])
  })

  it('starts active holding the agent capacity when an agent is given', () => {
    const record = active()
    expect(record).toMatchObject({ state: 'active', agentId: AGENT, capacityHeld: true, capacitySince: T0, timers: {}, nextDueAt: null })
    expect(describeCreation(record, EMITTED)).toEqual([
      { type: 'capacity.held', id: '', conversationId: 'conv-1', at: T0, emittedAt: EMITTED, agentId: AGENT },
    ])
  })
})

describe('queued', () => {
  it('agent.assigned → active, capacity held from that moment', () => {
    const queued = newConversation(ON)
    const step = applyOk(queued, ON, { type: 'agent.assigned', agentId: AGENT, at: at(5 * SECOND) })
    expect(step.record).toMatchObject({
      state: 'active',
      agentId: AGENT,
      capacityHeld: true,
      capacitySince: at(5 * SECOND),
      timers: {},
      nextDueAt: null,
      version: 2,
      updatedAt: at(5 * SECOND),
    })
    expect(step.record.history).toEqual([{ at: at(5 * SECOND), event: 'agent.assigned', from: 'queued', to: 'active' }])
    expect(describeTransition(queued, step.record, step.event, EMITTED)).toEqual([
      {
        type: 'transition',
        id: '',
        conversationId: 'conv-1',
        at: at(5 * SECOND),
        emittedAt: EMITTED,
        from: 'queued',
        to: 'active',
        event: 'agent.assigned',
      },
      { type: 'capacity.held', id: '', conversationId: 'conv-1', at: at(5 * SECOND), emittedAt: EMITTED, agentId: AGENT },
    ])
  })

  it('customer.disconnected → closed, ended by nobody', () => {
    const step = applyOk(newConversation(ON), ON, { type: 'customer.disconnected', at: at(MINUTE) })
    const retention = at(MINUTE) + ON.keepClosedFor!
    expect(step.record).toMatchObject({ state: 'closed', endedBy: null, capacityHeld: false, timers: { retention }, nextDueAt: retention })
  })

  it('customer.ended → closed, ended by the customer', () => {
    const step = applyOk(newConversation(ON), ON, { type: 'customer.ended', at: at(MINUTE) })
    expect(step.record).toMatchObject({ state: 'closed', endedBy: 'customer', capacityHeld: false, timers: {} })
  })

  it('queueAutoClose elapses → closed, exactly at the deadline and not a millisecond before', () => {
    const queued = newConversation(ON)
    const deadline = queued.timers.queue!
    expectRejected(queued, ON, { type: 'timer.elapsed', timer: 'queue', at: deadline - 1 })
    expect(expireConversation(queued, ON, deadline - 1)).toEqual([])
    const step = applyOk(queued, ON, { type: 'timer.elapsed', timer: 'queue', at: deadline })
    expect(step.record).toMatchObject({ state: 'closed', endedBy: null, updatedAt: deadline, timers: {} })
    expect(step.event).toBe('queue.elapsed')
    expect(notices(describeTransition(queued, step.record, step.event, EMITTED))).toEqual([])
  })

  it('a conversation re-queued by agent.closed auto-closes queueAutoClose after the close', () => {
    const queued = applyOk(active(), ON, { type: 'agent.closed', at: at(2 * MINUTE) }).record
    expect(queued.timers).toEqual({ queue: at(22 * MINUTE) })
    const [step] = expireConversation(queued, ON, at(22 * MINUTE))
    expect(step?.record).toMatchObject({ state: 'closed', endedBy: null, previousAgentId: AGENT, updatedAt: at(22 * MINUTE) })
  })

  it('a return while queued (another tab) is a no-op', () => {
    expectNoop(newConversation(ON), ON, { type: 'customer.returned', via: 'link', at: at(1) })
  })

  it('rejects events that have no meaning while queued', () => {
    const queued = newConversation(ON)
    expectRejected(queued, ON, { type: 'agent.ended', at: at(1) })
    // Never assigned: there is no agent whose close could have happened already.
    expectRejected(queued, ON, { type: 'agent.closed', at: at(1) })
    expectRejected(queued, ON, { type: 'timer.elapsed', timer: 'window', at: at(99 * MINUTE) })
  })
})

describe('active', () => {
  it('customer.disconnected with reconnect on → reconnectable, window ends at now + timeLimit', () => {
    const step = applyOk(active(), ON, { type: 'customer.disconnected', at: at(MINUTE) })
    expect(step.record).toMatchObject({
      state: 'reconnectable',
      agentId: AGENT,
      capacityHeld: true,
      capacitySince: T0,
      timers: { window: at(31 * MINUTE) },
      nextDueAt: at(31 * MINUTE),
    })
    expect(Object.keys(step.record.timers)).toEqual(['window'])
  })

  it('customer.disconnected with reconnect off → disconnected, grace ends at now + disconnectGrace', () => {
    const step = applyOk(active(OFF), OFF, { type: 'customer.disconnected', at: at(MINUTE) })
    expect(step.record).toMatchObject({
      state: 'disconnected',
      agentId: AGENT,
      capacityHeld: true,
      timers: { grace: at(4 * MINUTE) },
      nextDueAt: at(4 * MINUTE),
    })
  })

  it('customer.ended → wrap-up, ended by the customer, no notice', () => {
    const record = active()
    const step = applyOk(record, ON, { type: 'customer.ended', at: at(MINUTE) })
    expect(step.record).toMatchObject({ state: 'wrap-up', endedBy: 'customer', capacityHeld: true, timers: { wrapUp: at(16 * MINUTE) } })
    expect(notices(describeTransition(record, step.record, step.event, EMITTED))).toEqual([])
  })

  it('agent.ended → wrap-up, ended by the agent, agent-ended notice to the customer', () => {
    const record = active()
    const events = effectsOf(record, ON, { type: 'agent.ended', at: at(MINUTE) })
    expect(events).toContainEqual({
      type: 'notice',
      id: '',
      conversationId: 'conv-1',
      at: at(MINUTE),
      emittedAt: EMITTED,
      audience: 'customer',
      message: 'agent-ended',
    })
    expect(applyOk(record, ON, { type: 'agent.ended', at: at(MINUTE) }).record).toMatchObject({ state: 'wrap-up', endedBy: 'agent' })
  })

  it('agent.closed → queued: capacity released, previousAgentId kept, agent gone', () => {
    const record = active()
    const step = applyOk(record, ON, { type: 'agent.closed', at: at(90 * SECOND) })
    expect(step.record).toMatchObject({
      state: 'queued',
      agentId: null,
      previousAgentId: AGENT,
      capacityHeld: false,
      capacitySince: null,
      endedBy: null,
    })
    expect(describeTransition(record, step.record, step.event, EMITTED)).toContainEqual({
      type: 'capacity.released',
      id: '',
      conversationId: 'conv-1',
      at: at(90 * SECOND),
      emittedAt: EMITTED,
      agentId: AGENT,
      heldMs: 90 * SECOND,
      reason: 'agent.closed',
    })
    // The host re-routes with affinity; a second close has nothing left to close.
    expectNoop(step.record, ON, { type: 'agent.closed', at: at(91 * SECOND) })
  })

  it('a return while active (another tab) is a no-op, and so is re-assigning the same agent', () => {
    const record = active()
    expectNoop(record, ON, { type: 'customer.returned', via: 'session', at: at(1) })
    expectNoop(record, ON, { type: 'agent.assigned', agentId: AGENT, at: at(1) })
  })

  it('rejects assigning a different agent or a timer it does not have', () => {
    const record = active()
    expectRejected(record, ON, { type: 'agent.assigned', agentId: 'agent-9', at: at(1) })
    expectRejected(record, ON, { type: 'timer.elapsed', timer: 'window', at: at(99 * MINUTE) })
  })
})

describe('disconnected (reconnect off)', () => {
  const disconnected = (): ConversationRecord => applyOk(active(OFF), OFF, { type: 'customer.disconnected', at: at(MINUTE) }).record

  it('customer.returned via session within the grace → active with the same agent', () => {
    const record = disconnected()
    const grace = record.timers.grace!
    const step = applyOk(record, OFF, { type: 'customer.returned', via: 'session', at: grace - 1 })
    expect(step.record).toMatchObject({
      state: 'active',
      agentId: AGENT,
      capacityHeld: true,
      capacitySince: T0,
      timers: {},
      nextDueAt: null,
    })
    // Capacity never left the agent, so nothing is released or re-taken.
    expect(describeTransition(record, step.record, step.event, EMITTED).map((e) => e.type)).toEqual(['transition'])
  })

  it('a return at the grace deadline is late and rejected', () => {
    const record = disconnected()
    expectRejected(record, OFF, { type: 'customer.returned', via: 'session', at: record.timers.grace! })
  })

  it('only a session return resumes; a link or prompt return is rejected', () => {
    const record = disconnected()
    expectRejected(record, OFF, { type: 'customer.returned', via: 'link', at: at(MINUTE + 1) })
    expectRejected(record, OFF, { type: 'customer.returned', via: 'prompt', at: at(MINUTE + 1) })
  })

  it('grace elapses → wrap-up at the deadline with a customer-disconnected notice to the agent', () => {
    const record = disconnected()
    const grace = record.timers.grace!
    expectRejected(record, OFF, { type: 'timer.elapsed', timer: 'grace', at: grace - 1 })
    const step = applyOk(record, OFF, { type: 'timer.elapsed', timer: 'grace', at: grace })
    expect(step.record).toMatchObject({ state: 'wrap-up', endedBy: 'timeout', updatedAt: grace, timers: { wrapUp: grace + 15 * MINUTE } })
    expect(notices(describeTransition(record, step.record, step.event, EMITTED))).toEqual(['agent:customer-disconnected'])
  })

  it('agent.ended → wrap-up with an agent-ended notice', () => {
    const record = disconnected()
    const step = applyOk(record, OFF, { type: 'agent.ended', at: at(2 * MINUTE) })
    expect(step.record).toMatchObject({ state: 'wrap-up', endedBy: 'agent' })
    expect(notices(describeTransition(record, step.record, step.event, EMITTED))).toEqual(['customer:agent-ended'])
  })

  it('agent.closed keeps the state and the grace, releases capacity; a second close is a no-op', () => {
    const record = disconnected()
    const step = applyOk(record, OFF, { type: 'agent.closed', at: at(2 * MINUTE) })
    expect(step.record).toMatchObject({
      state: 'disconnected',
      agentId: null,
      previousAgentId: AGENT,
      capacityHeld: false,
      timers: record.timers,
      nextDueAt: record.nextDueAt,
    })
    expect(describeTransition(record, step.record, step.event, EMITTED)).toContainEqual(
      expect.objectContaining({ type: 'capacity.released', agentId: AGENT, heldMs: 2 * MINUTE }),
    )
    expectNoop(step.record, OFF, { type: 'agent.closed', at: at(3 * MINUTE) })
  })

  it('a session return after the agent closed goes back to the queue, not to a missing agent', () => {
    const closed = applyOk(disconnected(), OFF, { type: 'agent.closed', at: at(2 * MINUTE) }).record
    const step = applyOk(closed, OFF, { type: 'customer.returned', via: 'session', at: at(3 * MINUTE) })
    expect(step.record).toMatchObject({ state: 'queued', agentId: null, previousAgentId: AGENT, capacityHeld: false })
  })

  it('a retried customer.disconnected is a no-op that keeps the version', () => {
    expectNoop(disconnected(), OFF, { type: 'customer.disconnected', at: at(2 * MINUTE) })
  })
})

describe('reconnectable (reconnect on)', () => {
  const reconnectable = (settings: ReconnectSettings = ON): ConversationRecord =>
    applyOk(active(settings), settings, { type: 'customer.disconnected', at: at(MINUTE) }).record

  it.each(['link', 'prompt', 'session'] as const)('customer.returned via %s within the window → active, same agent', (via) => {
    const record = reconnectable()
    const window = record.timers.window!
    const step = applyOk(record, ON, { type: 'customer.returned', via, at: window - 1 })
    expect(step.record).toMatchObject({ state: 'active', agentId: AGENT, capacityHeld: true, capacitySince: T0, timers: {} })
  })

  it.each(['link', 'prompt', 'session'] as const)('customer.returned via %s at the window deadline is late and rejected', (via) => {
    const record = reconnectable()
    expectRejected(record, ON, { type: 'customer.returned', via, at: record.timers.window! })
  })

  it('customer.returned with no agent assigned → queued (host re-queues with affinity)', () => {
    const closed = applyOk(reconnectable(), ON, { type: 'agent.closed', at: at(2 * MINUTE) }).record
    const step = applyOk(closed, ON, { type: 'customer.returned', via: 'link', at: at(3 * MINUTE) })
    expect(step.record).toMatchObject({
      state: 'queued',
      agentId: null,
      previousAgentId: AGENT,
      capacityHeld: false,
      timers: { queue: at(23 * MINUTE) },
    })
    expectRejected(closed, ON, { type: 'customer.returned', via: 'link', at: closed.timers.window! })
  })

  it('time limit elapses → wrap-up at the deadline with a customer-disconnected notice', () => {
    const record = reconnectable()
    const window = record.timers.window!
    expectRejected(record, ON, { type: 'timer.elapsed', timer: 'window', at: window - 1 })
    const step = applyOk(record, ON, { type: 'timer.elapsed', timer: 'window', at: window })
    expect(step.record).toMatchObject({ state: 'wrap-up', endedBy: 'timeout', updatedAt: window, capacityHeld: true })
    expect(step.event).toBe('window.elapsed')
    expect(notices(describeTransition(record, step.record, step.event, EMITTED))).toEqual(['agent:customer-disconnected'])
  })

  it('a late timer.elapsed (after the deadline) still applies', () => {
    const record = reconnectable()
    const step = applyOk(record, ON, { type: 'timer.elapsed', timer: 'window', at: record.timers.window! + 5 * MINUTE })
    expect(step.record.state).toBe('wrap-up')
  })

  it('customer.ended → wrap-up; with releaseCapacity (start new) the agent is freed at once', () => {
    const record = reconnectable()
    const keeps = applyOk(record, ON, { type: 'customer.ended', at: at(2 * MINUTE) })
    expect(keeps.record).toMatchObject({ state: 'wrap-up', endedBy: 'customer', capacityHeld: true })
    const frees = applyOk(record, ON, { type: 'customer.ended', releaseCapacity: true, at: at(2 * MINUTE) })
    expect(frees.record).toMatchObject({ state: 'wrap-up', endedBy: 'customer', capacityHeld: false, agentId: AGENT })
    expect(frees.record.timers.capacity).toBeUndefined()
    expect(describeTransition(record, frees.record, frees.event, EMITTED)).toContainEqual(
      expect.objectContaining({ type: 'capacity.released', agentId: AGENT, heldMs: 2 * MINUTE, reason: 'customer.ended' }),
    )
  })

  it('agent.ended → wrap-up with an agent-ended notice', () => {
    const record = reconnectable()
    const step = applyOk(record, ON, { type: 'agent.ended', at: at(2 * MINUTE) })
    expect(step.record).toMatchObject({ state: 'wrap-up', endedBy: 'agent' })
    expect(notices(describeTransition(record, step.record, step.event, EMITTED))).toEqual(['customer:agent-ended'])
  })

  it('agent.closed keeps the state and the window deadline, releases capacity; a second close is a no-op', () => {
    const record = reconnectable()
    const step = applyOk(record, ON, { type: 'agent.closed', at: at(5 * MINUTE) })
    expect(step.record).toMatchObject({
      state: 'reconnectable',
      agentId: null,
      previousAgentId: AGENT,
      capacityHeld: false,
      capacitySince: null,
      timers: { window: at(31 * MINUTE) },
      nextDueAt: at(31 * MINUTE),
      version: record.version + 1,
    })
    expect(describeTransition(record, step.record, step.event, EMITTED)).toContainEqual(
      expect.objectContaining({ type: 'capacity.released', agentId: AGENT, heldMs: 5 * MINUTE, reason: 'agent.closed' }),
    )
    expectNoop(step.record, ON, { type: 'agent.closed', at: at(6 * MINUTE) })
    // The window keeps running: it still expires on time, into a wrap-up without capacity.
    const [expired] = expireConversation(step.record, ON, at(31 * MINUTE))
    expect(expired?.record).toMatchObject({ state: 'wrap-up', capacityHeld: false, agentId: null })
    expect(expired?.record.timers.capacity).toBeUndefined()
  })

  it('a retried customer.disconnected is a no-op', () => {
    expectNoop(reconnectable(), ON, { type: 'customer.disconnected', at: at(2 * MINUTE) })
  })

  it('rejects an agent assignment: a resume goes through customer.returned', () => {
    expectRejected(reconnectable(), ON, { type: 'agent.assigned', agentId: 'agent-9', at: at(2 * MINUTE) })
  })

  describe('warnBefore', () => {
    const WARN = makeSettings({ warnBefore: 5 * MINUTE })

    it('sets a warn deadline warnBefore ahead of the window end', () => {
      expect(reconnectable(WARN).timers).toEqual({ window: at(31 * MINUTE), warn: at(26 * MINUTE) })
      expect(reconnectable(WARN).nextDueAt).toBe(at(26 * MINUTE))
    })

    it('fires at the warn deadline (not before), keeps the window and tells the agent window-closing', () => {
      const record = reconnectable(WARN)
      const warn = record.timers.warn!
      expectRejected(record, WARN, { type: 'timer.elapsed', timer: 'warn', at: warn - 1 })
      const step = applyOk(record, WARN, { type: 'timer.elapsed', timer: 'warn', at: warn })
      expect(step.record).toMatchObject({ state: 'reconnectable', timers: { window: at(31 * MINUTE) }, nextDueAt: at(31 * MINUTE) })
      expect(step.record.timers.warn).toBeUndefined()
      expect(notices(describeTransition(record, step.record, step.event, EMITTED))).toEqual(['agent:window-closing'])
      // Once warned, the warning does not fire again.
      expectRejected(step.record, WARN, { type: 'timer.elapsed', timer: 'warn', at: warn })
    })

    it('sets no warning when warnBefore does not fit into the window', () => {
      const wide = makeSettings({ timeLimit: 2 * MINUTE, warnBefore: 2 * MINUTE })
      expect(reconnectable(wide).timers).toEqual({ window: at(3 * MINUTE) })
    })

    it('works with settings made by defineSettings', () => {
      const settings = defineSettings({
        enabled: true,
        timeLimit: 'PT10M',
        portalUrl: 'https://portal.example.com/chat',
        warnBefore: { minutes: 2 },
      })
      expect(reconnectable(settings).timers).toEqual({ window: at(11 * MINUTE), warn: at(9 * MINUTE) })
    })
  })
})

describe('wrap-up', () => {
  const wrapUp = (settings: ReconnectSettings, by: 'agent.ended' | 'customer.ended' = 'agent.ended'): ConversationRecord =>
    applyOk(active(settings), settings, { type: by, at: at(MINUTE) }).record

  it("wrapUpCapacity 'always' holds capacity until closed", () => {
    const record = wrapUp(ON)
    expect(record).toMatchObject({ capacityHeld: true, timers: { wrapUp: at(16 * MINUTE) } })
    expect(expireConversation(record, ON, at(16 * MINUTE) - 1)).toEqual([])
    const [step, ...more] = expireConversation(record, ON, at(16 * MINUTE))
    expect(more).toEqual([])
    expect(step?.record).toMatchObject({ state: 'closed', capacityHeld: false, updatedAt: at(16 * MINUTE) })
    expect(describeTransition(record, step!.record, step!.event, EMITTED)).toContainEqual(
      expect.objectContaining({ type: 'capacity.released', heldMs: 16 * MINUTE, reason: 'wrapUp.elapsed' }),
    )
  })

  it("wrapUpCapacity 'never' releases capacity on entry", () => {
    const settings = makeSettings({ wrapUpCapacity: 'never' })
    const before = active(settings)
    const step = applyOk(before, settings, { type: 'agent.ended', at: at(MINUTE) })
    expect(step.record).toMatchObject({ state: 'wrap-up', capacityHeld: false, capacitySince: null, agentId: AGENT })
    expect(describeTransition(before, step.record, step.event, EMITTED)).toContainEqual(
      expect.objectContaining({ type: 'capacity.released', agentId: AGENT, heldMs: MINUTE, reason: 'agent.ended' }),
    )
  })

  it('a wrapUpCapacity duration releases capacity at entry + duration and stays in wrap-up', () => {
    const settings = makeSettings({ wrapUpCapacity: 5 * MINUTE })
    const record = wrapUp(settings)
    expect(record.timers).toEqual({ wrapUp: at(16 * MINUTE), capacity: at(6 * MINUTE) })
    expect(record.nextDueAt).toBe(at(6 * MINUTE))
    expectRejected(record, settings, { type: 'timer.elapsed', timer: 'capacity', at: at(6 * MINUTE) - 1 })
    const step = applyOk(record, settings, { type: 'timer.elapsed', timer: 'capacity', at: at(6 * MINUTE) })
    expect(step.record).toMatchObject({
      state: 'wrap-up',
      capacityHeld: false,
      timers: { wrapUp: at(16 * MINUTE) },
      nextDueAt: at(16 * MINUTE),
    })
    expect(describeTransition(record, step.record, step.event, EMITTED)).toContainEqual(
      expect.objectContaining({ type: 'capacity.released', heldMs: 6 * MINUTE, reason: 'capacity.elapsed' }),
    )
    const [closed] = expireConversation(step.record, settings, at(16 * MINUTE))
    expect(closed?.record.state).toBe('closed')
  })

  it('a wrapUpCapacity longer than wrapUpAutoClose closes at the later of the two', () => {
    const settings = makeSettings({ wrapUpCapacity: 20 * MINUTE, wrapUpAutoClose: 15 * MINUTE })
    const record = wrapUp(settings)
    expect(record.timers).toEqual({ wrapUp: at(21 * MINUTE), capacity: at(21 * MINUTE) })
    expect(expireConversation(record, settings, at(16 * MINUTE))).toEqual([])
    expectRejected(record, settings, { type: 'timer.elapsed', timer: 'wrapUp', at: at(16 * MINUTE) })
    const steps = expireConversation(record, settings, at(21 * MINUTE))
    // Deadlines at the same instant apply in a fixed order: the capacity is released before the close.
    expect(steps.map((step) => step.event)).toEqual(['capacity.elapsed', 'wrapUp.elapsed'])
    expect(steps.at(-1)?.record).toMatchObject({ state: 'closed', capacityHeld: false, updatedAt: at(21 * MINUTE) })
  })

  it('agent.closed → closed; session-ended notice to the customer only when the agent ended it', () => {
    const afterEnd = wrapUp(ON, 'agent.ended')
    const closing = applyOk(afterEnd, ON, { type: 'agent.closed', at: at(3 * MINUTE) })
    const retention = at(3 * MINUTE) + ON.keepClosedFor!
    expect(closing.record).toMatchObject({
      state: 'closed',
      capacityHeld: false,
      timers: { retention },
      nextDueAt: retention,
      endedBy: 'agent',
    })
    const events = describeTransition(afterEnd, closing.record, closing.event, EMITTED)
    expect(notices(events)).toEqual(['customer:session-ended'])
    expect(events).toContainEqual(expect.objectContaining({ type: 'capacity.released', heldMs: 3 * MINUTE, reason: 'agent.closed' }))

    const afterCustomer = wrapUp(ON, 'customer.ended')
    const quiet = applyOk(afterCustomer, ON, { type: 'agent.closed', at: at(3 * MINUTE) })
    expect(notices(describeTransition(afterCustomer, quiet.record, quiet.event, EMITTED))).toEqual([])
  })

  it('wrapUpAutoClose elapses → closed at the deadline', () => {
    const record = wrapUp(ON)
    expectRejected(record, ON, { type: 'timer.elapsed', timer: 'wrapUp', at: at(16 * MINUTE) - 1 })
    const step = applyOk(record, ON, { type: 'timer.elapsed', timer: 'wrapUp', at: at(16 * MINUTE) })
    expect(step.record).toMatchObject({ state: 'closed', endedBy: 'agent', updatedAt: at(16 * MINUTE) })
    expect(notices(describeTransition(record, step.record, step.event, EMITTED))).toEqual([])
  })

  it('never resumes: returns and assignments are rejected', () => {
    const record = wrapUp(ON)
    for (const via of ['link', 'prompt', 'session'] as const) {
      expectRejected(record, ON, { type: 'customer.returned', via, at: at(2 * MINUTE) })
    }
    expectRejected(record, ON, { type: 'agent.assigned', agentId: AGENT, at: at(2 * MINUTE) })
  })

  it('an end that already happened is a no-op', () => {
    const record = wrapUp(ON)
    expectNoop(record, ON, { type: 'agent.ended', at: at(2 * MINUTE) })
    expectNoop(record, ON, { type: 'customer.ended', at: at(2 * MINUTE) })
    expectNoop(record, ON, { type: 'customer.disconnected', at: at(2 * MINUTE) })
  })
})

describe('closed', () => {
  const LATE = at(60 * MINUTE)
  const REFUSED: ConversationEvent[] = [
    { type: 'agent.assigned', agentId: AGENT, at: LATE },
    { type: 'customer.returned', via: 'link', at: LATE },
    { type: 'customer.returned', via: 'prompt', at: LATE },
    { type: 'customer.returned', via: 'session', at: LATE },
    ...(['queue', 'grace', 'window', 'warn', 'wrapUp', 'capacity'] as const).map(
      (timer): ConversationEvent => ({ type: 'timer.elapsed', timer, at: LATE }),
    ),
  ]
  // Retries of an end that already holds: no-ops, never an error.
  const RETRIES: ConversationEvent[] = [
    { type: 'customer.disconnected', at: LATE },
    { type: 'customer.ended', at: LATE },
    { type: 'customer.ended', releaseCapacity: true, at: LATE },
    { type: 'agent.ended', at: LATE },
    { type: 'agent.closed', at: LATE },
  ]

  it.each([
    ['queued', () => applyOk(newConversation(ON), ON, { type: 'customer.ended', at: at(1) }).record],
    [
      'wrap-up',
      () =>
        applyAll(active(), ON, [
          { type: 'agent.ended', at: at(1) },
          { type: 'agent.closed', at: at(2) },
        ]),
    ],
  ])('refuses an assignment, a return and every deadline, and takes a retried end as a no-op (closed from %s)', (_from, make) => {
    const record = make()
    expect(record.state).toBe('closed')
    for (const event of REFUSED) expectRejected(record, ON, event)
    for (const event of RETRIES) expectNoop(record, ON, event)
    expect(expireConversation(record, ON, Number.MAX_SAFE_INTEGER)).toEqual([])
  })
})

describe('full journeys and bookkeeping', () => {
  it('expireConversation applies each passed deadline at its own time, earliest first', () => {
    const settings = makeSettings({ warnBefore: 5 * MINUTE, wrapUpCapacity: 2 * MINUTE })
    const reconnectable = applyOk(active(settings), settings, { type: 'customer.disconnected', at: at(MINUTE) }).record
    const steps = expireConversation(reconnectable, settings, at(2 * 60 * MINUTE))
    expect(steps.map((s) => [s.event, s.record.state, s.record.updatedAt])).toEqual([
      ['warn.elapsed', 'reconnectable', at(26 * MINUTE)],
      ['window.elapsed', 'wrap-up', at(31 * MINUTE)],
      ['capacity.elapsed', 'wrap-up', at(33 * MINUTE)],
      ['wrapUp.elapsed', 'closed', at(46 * MINUTE)],
    ])
    expect(steps.map((s) => s.record.version)).toEqual([3, 4, 5, 6])
  })

  it('a resume then a second disconnect opens a fresh window from the new disconnect', () => {
    const record = applyAll(active(), ON, [
      { type: 'customer.disconnected', at: at(MINUTE) },
      { type: 'customer.returned', via: 'link', at: at(10 * MINUTE) },
      { type: 'customer.disconnected', at: at(20 * MINUTE) },
    ])
    expect(record).toMatchObject({ state: 'reconnectable', timers: { window: at(50 * MINUTE) }, capacitySince: T0, version: 4 })
    expect(record.history.map((h) => `${h.from}>${h.to}`)).toEqual(['active>reconnectable', 'reconnectable>active', 'active>reconnectable'])
  })

  it(`keeps at most HISTORY_LIMIT (${HISTORY_LIMIT}) history entries, dropping the oldest`, () => {
    let record = active()
    let t = T0
    for (let i = 0; i < HISTORY_LIMIT + 5; i += 1) {
      t += SECOND
      record = applyOk(record, ON, {
        type: i % 2 === 0 ? 'customer.disconnected' : 'customer.returned',
        via: 'link',
        at: t,
      } as ConversationEvent).record
    }
    expect(record.history).toHaveLength(HISTORY_LIMIT)
    expect(record.version).toBe(HISTORY_LIMIT + 6)
    expect(record.history.at(-1)).toEqual({ at: t, event: 'customer.disconnected', from: 'active', to: 'reconnectable' })
    expect(record.history[0]?.at).toBe(T0 + 6 * SECOND)
  })

  it('an event stamped before the last update (a lagging node) counts from the last update instead', () => {
    const record = applyOk(active(), ON, { type: 'agent.closed', at: at(MINUTE) }).record
    const step = applyOk(record, ON, { type: 'agent.assigned', agentId: AGENT, at: at(MINUTE) - 5 * SECOND })
    expect(step.record).toMatchObject({ updatedAt: at(MINUTE), capacitySince: at(MINUTE) })
    const gone = applyOk(step.record, ON, { type: 'customer.disconnected', at: at(MINUTE) - SECOND })
    expect(gone.record.timers).toEqual({ window: at(31 * MINUTE) })
    expect(gone.record.history.at(-1)?.at).toBe(at(MINUTE))
  })

  it('never mutates the record it is given', () => {
    const record = active()
    const copy = structuredClone(record)
    applyOk(record, ON, { type: 'customer.disconnected', at: at(MINUTE) })
    applyOk(record, ON, { type: 'agent.closed', at: at(MINUTE) })
    expect(record).toEqual(copy)
  })
})

describe('deadlines of a record', () => {
  it('ignores keys that are not timers, also names every object has', () => {
    const timers = { constructor: at(1), toString: at(2), wrapUp: at(10) } as unknown as ConversationRecord['timers']
    expect(earliestDeadline(timers)).toBe(at(10))
    const record = { ...active(), timers }
    expect(firstDueTimer(record, at(20))).toEqual({ timer: 'wrapUp', at: at(10) })
    expect(firstDueTimer(record, at(5))).toBeUndefined()
  })

  it('finds the earliest passed deadline, ties in a fixed order', () => {
    const record = { ...active(), timers: { wrapUp: at(5), capacity: at(5), window: at(3) } }
    expect(firstDueTimer(record, at(4))).toEqual({ timer: 'window', at: at(3) })
    expect(firstDueTimer({ ...record, timers: { wrapUp: at(5), capacity: at(5) } }, at(5))).toEqual({ timer: 'capacity', at: at(5) })
    expect(firstDueTimer({ ...record, timers: { capacity: at(5), wrapUp: at(5) } }, at(5))).toEqual({ timer: 'capacity', at: at(5) })
    expect(earliestDeadline({})).toBeNull()
  })
})
