import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  createMemoryStore,
  createReconnectService,
  isConflictError,
  isInvalidTransitionError,
  type ConversationRecord,
  type ReconnectService,
  type ReconnectSettingsInput,
  type ReturnDecision,
  type ServiceEvent,
} from '../src/index'
import { createManualClock, type ManualClock } from '../src/testing/manual-clock'
import { replayParameters } from './support/fc-replay'
import { scheduledStore } from './support/scheduled-store'

// Two backend nodes share one store and one clock; the fast-check scheduler decides the order in which
// their store calls (and the clock reaching the window's end) happen.

const MINUTE = 60_000
const WINDOW = 10 * MINUTE

interface Node {
  name: 'A' | 'B'
  service: ReconnectService
}

interface Cluster {
  clock: ManualClock
  store: ReturnType<typeof scheduledStore>
  a: Node
  b: Node
  events: Array<ServiceEvent & { node: 'A' | 'B' }>
}

function cluster(s: fc.Scheduler, settings: ReconnectSettingsInput, options: { singleUseLinks?: boolean } = {}): Cluster {
  const clock = createManualClock()
  const store = scheduledStore(createMemoryStore(), s)
  const events: Cluster['events'] = []
  const node = (name: 'A' | 'B'): Node => ({
    name,
    service: createReconnectService({
      settings,
      clock,
      store,
      onEvent: (event) => void events.push({ ...event, node: name }),
      ...options,
    }),
  })
  return { clock, store, a: node('A'), b: node('B'), events }
}

type Outcome = { op: string; ok: true; value: unknown } | { op: string; ok: false; error: unknown }

async function settleAll(s: fc.Scheduler, ops: Array<[string, () => Promise<unknown>]>): Promise<Outcome[]> {
  const running = ops.map(([op, run]) =>
    run().then(
      (value): Outcome => ({ op, ok: true, value }),
      (error: unknown): Outcome => ({ op, ok: false, error }),
    ),
  )
  return s.waitFor(Promise.all(running))
}

/** Capacity taken once per hold and given back exactly once, counted over both nodes' events. */
function expectCapacityBalanced(events: Cluster['events'], record: ConversationRecord): void {
  const mine = events.filter((e) => e.conversationId === record.id)
  const held = mine.filter((e) => e.type === 'capacity.held').length
  const released = mine.filter((e) => e.type === 'capacity.released').length
  const holds = 1 + record.history.filter((h) => h.event === 'agent.assigned').length
  expect(held, 'capacity.held events').toBe(holds)
  expect(released, 'capacity.released events').toBe(held - (record.capacityHeld ? 1 : 0))
  let holding = 0
  for (const e of mine) {
    if (e.type === 'capacity.held') holding += 1
    if (e.type === 'capacity.released') holding -= 1
    expect(holding === 0 || holding === 1, `capacity balance went to ${holding}`).toBe(true)
  }
}

/** A resume decision means the customer came back while the conversation could still resume, once. */
function expectResumesSound(decisions: ReturnDecision[], record: ConversationRecord, deadline: number): void {
  const returned = record.history.filter((h) => h.event === 'customer.returned')
  expect(returned.length, 'customer.returned transitions').toBeLessThanOrEqual(1)
  if (!decisions.some((d) => d.type === 'resume')) {
    expect(returned, 'a transition back without any resume decision').toEqual([])
    return
  }
  expect(returned).toHaveLength(1)
  const entry = returned[0]!
  expect(['active', 'queued']).toContain(entry.to)
  expect(entry.from).toBe('reconnectable')
  expect(entry.at, 'resumed at or after the window closed').toBeLessThan(deadline)
  const index = record.history.indexOf(entry)
  const endedBefore = record.history.slice(0, index).filter((h) => h.to === 'wrap-up' || h.to === 'closed')
  expect(endedBefore, 'resumed after the conversation had ended').toEqual([])
}

function expectTyped(outcomes: Outcome[]): void {
  for (const outcome of outcomes) {
    if (outcome.ok) continue
    expect(isInvalidTransitionError(outcome.error) || isConflictError(outcome.error), `${outcome.op}: ${String(outcome.error)}`).toBe(true)
  }
}

const settingsArbitrary = fc.record({
  enabled: fc.constant(true),
  timeLimit: fc.constant(WINDOW),
  portalUrl: fc.constant('https://portal.example.com/chat'),
  redirectUrl: fc.option(fc.constant('https://portal.example.com/expired'), { nil: undefined }),
  wrapUpCapacity: fc.constantFrom<ReconnectSettingsInput['wrapUpCapacity']>('always', 'never', { minutes: 1 }),
})

const racers = fc.record({
  secondTab: fc.boolean(),
  expireAndSweepOnB: fc.boolean(),
  sweepOnA: fc.boolean(),
  agentEndsOnB: fc.boolean(),
  agentClosesOnA: fc.boolean(),
  customerEndsOnB: fc.boolean(),
  /** How long before the window's end the race starts. */
  lead: fc.constantFrom(1, 1_000, 0),
  /** A signed-in customer answers the prompt (and a second tab comes back signed in) instead of using the link. */
  signedIn: fc.boolean(),
  startsNewOnB: fc.boolean(),
})

describe('two nodes racing on one conversation', () => {
  it('never resumes an ended conversation, resumes at most once, and balances capacity', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), settingsArbitrary, racers, async (s, settings, plan) => {
        const widget = plan.signedIn ? { ...settings, authenticated: true, prompt: false } : settings
        const { clock, store, a, b, events } = cluster(s, widget)
        const customerId = plan.signedIn ? 'cust-1' : null
        const chat = await a.service.start({ agentId: 'agent-1', customerId })
        const dropped = await a.service.disconnect(chat.id)
        const deadline = dropped.timers.window!
        clock.set(deadline - plan.lead)
        store.gated = true

        const ops: Array<[string, () => Promise<unknown>]> = [
          plan.signedIn
            ? ['A.return', () => a.service.answerPrompt(chat.id, 'continue', 'cust-1')]
            : ['A.return', () => a.service.returnCustomer({ reconnectId: chat.reconnectId })],
        ]
        if (plan.secondTab) {
          const request = plan.signedIn ? { customerId: 'cust-1' } : { reconnectId: chat.reconnectId }
          ops.push(['B.return', () => b.service.returnCustomer(request)])
        }
        if (plan.signedIn && plan.startsNewOnB) ops.push(['B.startNew', () => b.service.answerPrompt(chat.id, 'new', 'cust-1')])
        if (plan.expireAndSweepOnB) {
          ops.push([
            'clock→deadline, B.runDueTimers',
            () =>
              s.schedule(Promise.resolve('clock reaches the deadline'), 'tick').then(() => {
                clock.set(Math.max(clock.now(), deadline))
                return b.service.runDueTimers()
              }),
          ])
        }
        if (plan.sweepOnA) ops.push(['A.runDueTimers', () => a.service.runDueTimers()])
        if (plan.agentEndsOnB) ops.push(['B.endByAgent', () => b.service.endByAgent(chat.id)])
        if (plan.agentClosesOnA) ops.push(['A.closeByAgent', () => a.service.closeByAgent(chat.id)])
        if (plan.customerEndsOnB) ops.push(['B.endByCustomer', () => b.service.endByCustomer(chat.id)])

        const outcomes = await settleAll(s, ops)
        store.gated = false
        expectTyped(outcomes)

        const decisions = outcomes.flatMap((o) => (o.ok && o.op.endsWith('.return') ? [o.value as ReturnDecision] : []))
        const stored = (await store.get(chat.id))!
        expectResumesSound(decisions, stored, deadline)
        // The event log of both nodes tells the same story: nothing ended the conversation before the resume.
        const transitions = events.filter((e) => e.type === 'transition')
        const resumedAt = transitions.findIndex((e) => e.event === 'customer.returned')
        if (resumedAt >= 0) {
          expect(transitions[resumedAt]).toMatchObject({ from: 'reconnectable', to: expect.stringMatching(/^(active|queued)$/) })
          expect(transitions.slice(0, resumedAt).filter((e) => e.to === 'wrap-up' || e.to === 'closed')).toEqual([])
        }
        expectCapacityBalanced(events, stored)

        // The two tabs agree: a conversation is never resumed into two different states at once.
        const resumed = decisions.filter((d) => d.type === 'resume')
        if (resumed.length === 2 && !plan.agentClosesOnA) expect(resumed[0]).toEqual(resumed[1])

        // A resume handed out is still in force unless someone ended or closed it afterwards.
        const current = await a.service.get(chat.id)
        const endedByOthers = plan.agentEndsOnB || plan.customerEndsOnB || (plan.signedIn && plan.startsNewOnB)
        if (resumed.length > 0 && !endedByOthers) {
          expect(['active', 'queued']).toContain(current.state)
        }
        // The window's expiry is applied once however many nodes sweep.
        const expiries = events.filter((e) => e.type === 'transition' && e.event === 'window.elapsed')
        expect(expiries.length).toBeLessThanOrEqual(1)
        const disconnectNotices = events.filter((e) => e.type === 'notice' && e.message === 'customer-disconnected')
        expect(disconnectNotices).toHaveLength(expiries.length)
      }),
      replayParameters(300),
    )
  })

  it('creates a conversation once when both nodes start the same conversationId', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.constantFrom('agent-1', null), async (s, agentB) => {
        const { store, a, b, events } = cluster(s, { enabled: false })
        store.gated = true
        const outcomes = await settleAll(s, [
          ['A.start', () => a.service.start({ conversationId: 'c-1', agentId: 'agent-1' })],
          ['B.start', () => b.service.start({ conversationId: 'c-1', agentId: agentB })],
        ])
        store.gated = false
        expectTyped(outcomes)
        const records = outcomes.map((o) => (o.ok ? (o.value as ConversationRecord) : undefined))
        const stored = (await store.get('c-1'))!
        expect(stored.version).toBe(1)
        for (const record of records) if (record !== undefined) expect(record).toEqual(stored)
        expect(events.filter((e) => e.type === 'capacity.held')).toHaveLength(stored.capacityHeld ? 1 : 0)
      }),
      replayParameters(100),
    )
  })

  it('a single-use link resumes at most one return, and never hands its renewal to a second holder', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const { store, a, b } = cluster(
          s,
          { enabled: true, timeLimit: WINDOW, portalUrl: 'https://portal.example.com/chat' },
          {
            singleUseLinks: true,
          },
        )
        const chat = await a.service.start({ agentId: 'agent-1' })
        await a.service.disconnect(chat.id)
        store.gated = true
        const outcomes = await settleAll(s, [
          ['A.return', () => a.service.returnCustomer({ reconnectId: chat.reconnectId })],
          ['B.return', () => b.service.returnCustomer({ reconnectId: chat.reconnectId })],
        ])
        store.gated = false
        expectTyped(outcomes)
        const resumed = outcomes.filter((o) => o.ok && (o.value as ReturnDecision).type === 'resume')
        expect(resumed, 'both holders of one single-use link were resumed').toHaveLength(1)
      }),
      replayParameters(100),
    )
  })
})
