import fc from 'fast-check'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createRedisStore } from '../src/adapters/redis'
import { isConflictError, isInvalidTransitionError } from '../src/errors'
import { createReconnectService, type ReconnectService } from '../src/service/reconnect-service'
import type { ConversationStore } from '../src/store/conversation-store'
import { isConversationRecord } from '../src/store/record'
import { createManualClock } from '../src/testing/manual-clock'
import type { ConversationRecord, ReconnectSettingsInput, ReturnDecision, ServiceEvent } from '../src/types'
import { replayParameters } from './support/fc-replay'
import { connect, describeWithRedis, dropPrefixes, randomPrefix } from './support/redis'

const MINUTE = 60_000
const TIME_LIMIT = 30 * MINUTE
const CONVERSATIONS = 200

const settings: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: TIME_LIMIT,
  portalUrl: 'https://portal.example.com/chat',
  wrapUpCapacity: { minutes: 5 },
}

/** Every (from, event, to) SPEC §4 allows for the events these races use. */
const ALLOWED = new Set([
  'active customer.disconnected reconnectable',
  'reconnectable customer.returned active',
  'reconnectable customer.returned queued',
  'active agent.ended wrap-up',
  'reconnectable agent.ended wrap-up',
  'active agent.closed queued',
  'reconnectable agent.closed reconnectable',
  'wrap-up agent.closed closed',
  'reconnectable window.elapsed wrap-up',
  'wrap-up capacity.elapsed wrap-up',
  'wrap-up wrapUp.elapsed closed',
  'queued queue.elapsed closed',
])

type Node = 'A' | 'B'
type Op = 'return' | 'end' | 'close'

/** What one conversation goes through: racing calls before the window ends and at its end. */
interface Plan {
  beforeDeadline: { op: Op; node: Node }[]
  atDeadline: { op: Op; node: Node }[]
}

const call = fc.record({ op: fc.constantFrom<Op>('return', 'end', 'close'), node: fc.constantFrom<Node>('A', 'B') })
// At most four writers per conversation and round (two sweepers included at the deadline), so the
// service's five compare-and-set attempts always suffice and a ConflictError would be a real bug.
const plan: fc.Arbitrary<Plan> = fc.record({
  beforeDeadline: fc.array(call, { maxLength: 4 }),
  atDeadline: fc.array(call, { maxLength: 2 }),
})

interface Outcome {
  node: Node
  op: Op
  round: 'before' | 'at'
  record?: ConversationRecord
  decision?: ReturnDecision
  error?: unknown
}

describeWithRedis('redis store: two service nodes racing on one Redis', (url) => {
  let clients: Awaited<ReturnType<typeof connect>>[] = []
  const prefixes: string[] = []

  beforeAll(async () => {
    clients = await Promise.all([connect(url), connect(url)])
  })
  afterAll(async () => {
    if (clients[0] !== undefined) await dropPrefixes(clients[0], prefixes)
    for (const client of clients) client.disconnect()
  })

  it('every conversation ends in one valid state, capacity is released once per hold, no update is lost', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(plan, { minLength: CONVERSATIONS, maxLength: CONVERSATIONS }), async (plans) => {
        const prefix = randomPrefix('two-nodes')
        prefixes.push(prefix)
        const clock = createManualClock()
        const events: { node: Node; event: ServiceEvent }[] = []
        let conflicts = 0
        const countConflicts = (store: ConversationStore): ConversationStore => ({
          ...store,
          put: (record, expected) =>
            store.put(record, expected).catch((error: unknown) => {
              if (isConflictError(error)) conflicts += 1
              throw error
            }),
        })
        const stores: Record<Node, ConversationStore> = {
          A: countConflicts(createRedisStore({ client: clients[0]!, prefix })),
          B: countConflicts(createRedisStore({ client: clients[1]!, prefix })),
        }
        const nodes: Record<Node, ReconnectService> = {
          A: createReconnectService({ settings, clock, store: stores.A, onEvent: (event) => void events.push({ node: 'A', event }) }),
          B: createReconnectService({ settings, clock, store: stores.B, onEvent: (event) => void events.push({ node: 'B', event }) }),
        }

        const chats = await Promise.all(plans.map((_, i) => nodes[i % 2 === 0 ? 'A' : 'B'].start({ agentId: `agent-${i % 7}` })))
        await Promise.all(chats.map((chat, i) => nodes[i % 2 === 0 ? 'B' : 'A'].disconnect(chat.id)))
        const deadline = clock.now() + TIME_LIMIT
        const outcomes = new Map<string, Outcome[]>(chats.map((c) => [c.id, []]))

        const race = async (chat: ConversationRecord, calls: Plan['beforeDeadline'], round: Outcome['round']): Promise<void> => {
          await Promise.all(
            calls.map(async ({ op, node }) => {
              const service = nodes[node]
              const outcome: Outcome = { node, op, round }
              try {
                if (op === 'return') outcome.decision = await service.returnCustomer({ reconnectId: chat.reconnectId })
                else outcome.record = await (op === 'end' ? service.endByAgent(chat.id) : service.closeByAgent(chat.id))
              } catch (error) {
                outcome.error = error
              }
              outcomes.get(chat.id)!.push(outcome)
            }),
          )
        }
        const sweeps = async (): Promise<number> =>
          (await Promise.all([nodes.A.runDueTimers(), nodes.B.runDueTimers(), nodes.A.runDueTimers()])).reduce((a, b) => a + b, 0)

        clock.advance(TIME_LIMIT - 1)
        const [beforeSwept] = await Promise.all([sweeps(), ...chats.map((chat, i) => race(chat, plans[i]!.beforeDeadline, 'before'))])
        expect(beforeSwept).toBe(0)

        clock.advance(1)
        await Promise.all([sweeps(), ...chats.map((chat, i) => race(chat, plans[i]!.atDeadline, 'at'))])

        // Long after every deadline: whatever is still open but not active winds down to closed.
        clock.advance(2 * 60 * MINUTE)
        for (let round = 0; round < 5 && (await sweeps()) > 0; round += 1) clock.advance(MINUTE)
        // Nothing is due any more; what stays pending is the closed conversations' retention (7 days).
        expect(await stores.B.due(clock.now(), 1_000)).toEqual([])
        expect(await stores.B.nextDueAt()).toBeGreaterThan(clock.now() + 6 * 24 * 60 * MINUTE)

        for (const chat of chats) {
          const final = await stores.A.get(chat.id)
          if (final === undefined) throw new Error(`conversation ${chat.id} vanished`)
          checkConversation(
            final,
            deadline,
            outcomes.get(chat.id)!,
            events.filter((e) => e.event.conversationId === chat.id),
          )
        }

        // The nodes really raced: compare-and-set refused some writes, and no call lost because of it.
        expect(conflicts).toBeGreaterThan(0)

        // The Redis indexes agree with the records both nodes left behind.
        const finals = (await Promise.all(chats.map((c) => stores.B.get(c.id)))) as ConversationRecord[]
        for (let agent = 0; agent < 7; agent += 1) {
          const expected = finals
            .filter((r) => r.capacityHeld && r.agentId === `agent-${agent}`)
            .map((r) => r.id)
            .sort()
          expect((await stores.A.heldBy(`agent-${agent}`)).map((r) => r.id).sort()).toEqual(expected)
        }
      }),
      // No shrinking: each run drives 200 conversations through Redis; the seed replays a failure.
      { ...replayParameters(3), endOnFailure: true },
    )
  })
})

function checkConversation(
  final: ConversationRecord,
  deadline: number,
  outcomes: Outcome[],
  events: { node: Node; event: ServiceEvent }[],
): void {
  const where = `conversation ${final.id}`
  expect(isConversationRecord(final), where).toBe(true)

  // One valid state, reached through allowed steps only.
  expect(final.history[0]?.from, where).toBe('active')
  final.history.forEach((entry, i) => {
    expect(ALLOWED.has(`${entry.from} ${entry.event} ${entry.to}`), `${where}: ${entry.from} -${entry.event}-> ${entry.to}`).toBe(true)
    if (i > 0) expect(entry.from, where).toBe(final.history[i - 1]!.to)
  })
  expect(final.history.at(-1)?.to, where).toBe(final.state)
  expect(['active', 'closed'], where).toContain(final.state)
  expect(final.capacityHeld, where).toBe(final.state === 'active')

  // Never resumed at or after the deadline, and never resumed once the window had expired.
  for (const entry of final.history) if (entry.event === 'customer.returned') expect(entry.at, where).toBeLessThan(deadline)

  // Exactly once: the transitions both nodes reported are the history, no more, no fewer.
  const key = (e: { at: number; event: string; from: string; to: string }): string => `${e.at} ${e.from} ${e.event} ${e.to}`
  const reported = events.flatMap(({ event }) => (event.type === 'transition' ? [key(event)] : []))
  expect(reported.sort(), where).toEqual(final.history.map(key).sort())

  // Capacity: one release per hold across both nodes, and the final hold matches the record.
  const held = events.filter(({ event }) => event.type === 'capacity.held').length
  const released = events.filter(({ event }) => event.type === 'capacity.released').length
  expect(held, where).toBeGreaterThanOrEqual(1)
  expect(held - released, where).toBe(final.capacityHeld ? 1 : 0)

  // No lost update: every call that reported success is part of what is stored.
  for (const outcome of outcomes) {
    if (outcome.error !== undefined) {
      expect(isInvalidTransitionError(outcome.error), `${where}: ${outcome.op} failed with ${String(outcome.error)}`).toBe(true)
      expect(outcome.op, where).not.toBe('return')
      continue
    }
    if (outcome.record !== undefined) {
      expect(final.version, where).toBeGreaterThanOrEqual(outcome.record.version)
      expect(final.history.slice(0, outcome.record.history.length), where).toEqual(outcome.record.history)
    }
    if (outcome.decision?.type === 'resume') {
      expect(
        final.history.some((e) => e.event === 'customer.returned'),
        `${where}: resume decision without a stored return`,
      ).toBe(true)
    }
    if (outcome.decision !== undefined && outcome.round === 'at' && outcome.decision.type === 'resume') {
      expect(
        final.history.some((e) => e.event === 'customer.returned' && e.at < deadline),
        where,
      ).toBe(true)
    }
  }
}
