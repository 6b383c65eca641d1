import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createPostgresStore, type PostgresStore } from '../src/adapters/postgres'
import { isConflictError, isInvalidTransitionError } from '../src/errors'
import { createReconnectService, type ReconnectService } from '../src/service/reconnect-service'
import { createManualClock, type ManualClock } from '../src/testing/manual-clock'
import type { ConversationRecord, ReconnectSettingsInput, ServiceEvent, State } from '../src/types'
import { createTestPool, describeWithPostgres, randomTableName } from './support/postgres'

const MINUTE = 60_000
const CONVERSATIONS = 100
const settings: ReconnectSettingsInput = {
  enabled: true,
  timeLimit: { minutes: 10 },
  portalUrl: 'https://portal.example.com/chat',
  redirectUrl: 'https://portal.example.com/expired',
}
const STATES: readonly State[] = ['queued', 'active', 'disconnected', 'reconnectable', 'wrap-up', 'closed']

/** Settles every call; anything but a lost race (conflict, transition no longer valid) fails the test. */
async function race(calls: Promise<unknown>[]): Promise<PromiseSettledResult<unknown>[]> {
  const results = await Promise.allSettled(calls)
  for (const result of results) {
    if (result.status === 'rejected' && !isConflictError(result.reason) && !isInvalidTransitionError(result.reason)) {
      throw result.reason
    }
  }
  return results
}

describeWithPostgres('two nodes on one PostgreSQL table', (url) => {
  let pools: pg.Pool[] = []
  let table: string
  let clock: ManualClock
  let nodes: ReconnectService[]
  let stores: PostgresStore[]
  const events: ServiceEvent[] = []
  // What each node's due() handed out, as id@version: a claim keeps one version with one node.
  const loaded: [Set<string>, Set<string>] = [new Set(), new Set()]
  // What the sweeps' batched writes (putMany) came to: the race runs through them.
  const batched = { written: 0, conflict: 0 }
  function expectDisjointSweeps(what: string): void {
    const both = [...loaded[0]].filter((key) => loaded[1].has(key))
    expect(both, what).toEqual([])
    expect(loaded[0].size + loaded[1].size, what).toBeGreaterThan(0)
    for (const seen of loaded) seen.clear()
  }

  beforeAll(async () => {
    table = randomTableName()
    pools = [createTestPool(url, { max: 10 }), createTestPool(url, { max: 10 })]
    stores = pools.map((pool) => createPostgresStore({ pool, table }))
    await stores[0]!.migrate()
    clock = createManualClock()
    nodes = stores.map((store, i) => {
      const recording: PostgresStore = {
        ...store,
        async due(now, limit) {
          const rows = await store.due(now, limit)
          for (const r of rows) loaded[i]!.add(`${r.id}@${r.version}`)
          return rows
        },
        async putMany(writes) {
          const results = await store.putMany(writes)
          for (const result of results) batched[result] += 1
          return results
        },
      }
      return createReconnectService({ settings, store: recording, clock, maxAttempts: 10, onEvent: (event) => void events.push(event) })
    })
  })

  afterAll(async () => {
    await pools[0]?.query(`DROP TABLE IF EXISTS "${table}"`)
    await Promise.all(pools.map((pool) => pool.end()))
  })

  it('racing returns, timers, ends and closes: one state each, capacity released once per hold, no lost update', async () => {
    const [a, b] = nodes as [ReconnectService, ReconnectService]
    const chats: ConversationRecord[] = []
    for (let i = 0; i < CONVERSATIONS; i += 1) chats.push(await (i % 2 === 0 ? a : b).start({ agentId: `agent-${i % 7}` }))
    await race(chats.map((chat, i) => (i % 2 === 0 ? b : a).disconnect(chat.id)))
    const written: ConversationRecord[] = []
    const keep = (record: unknown) => void written.push(record as ConversationRecord)

    // Round 1, windows open: resumes from both nodes against ends and closes from both nodes.
    clock.advance(5 * MINUTE)
    await race(
      chats.flatMap((chat, i) => {
        const [x, y] = i % 2 === 0 ? [a, b] : [b, a]
        // A third of the customers stay away, so round 2 has windows to expire.
        const returns =
          i % 3 === 2 ? [] : [x.returnCustomer({ reconnectId: chat.reconnectId }), y.returnCustomer({ reconnectId: chat.reconnectId })]
        return [
          ...returns,
          ...(i % 3 === 0 ? [y.endByAgent(chat.id).then(keep)] : []),
          ...(i % 4 === 0 ? [x.closeByAgent(chat.id).then(keep)] : []),
          x.runDueTimers(),
        ]
      }),
    )

    // Round 2, at the exact end of every window still open: sweepers on both nodes against late returns.
    const reconnectable = new Set(
      (await Promise.all(chats.map((c) => a.get(c.id)))).filter((r) => r.state === 'reconnectable').map((r) => r.id),
    )
    expect(reconnectable.size).toBeGreaterThan(0)
    clock.advance(5 * MINUTE)
    for (const seen of loaded) seen.clear()
    const late = await race(
      chats.flatMap((chat, i) => {
        const [x, y] = i % 2 === 0 ? [a, b] : [b, a]
        return [
          x.returnCustomer({ reconnectId: chat.reconnectId }).then((decision) => ({ id: chat.id, decision })),
          y.runDueTimers({ limit: 7 }),
          x.runDueTimers({ limit: 7 }),
          ...(i % 5 === 0 ? [y.closeByAgent(chat.id).then(keep)] : []),
        ]
      }),
    )
    for (const result of late) {
      if (result.status !== 'fulfilled' || typeof result.value !== 'object' || result.value === null) continue
      const { id, decision } = result.value as { id: string; decision: { type: string } }
      if (reconnectable.has(id)) expect(decision.type, `late return to ${id}`).not.toBe('resume')
    }
    await Promise.all([a.runDueTimers(), b.runDueTimers()])
    // The clock stood still through round 2, so no claim ran out: no version went to both nodes.
    expectDisjointSweeps('round 2')
    for (const id of reconnectable) expect(['wrap-up', 'closed']).toContain((await b.get(id)).state)

    // Round 3: agents end what is still active, then every wrap-up and queue deadline passes.
    await race(
      chats.map((chat, i) =>
        (i % 2 === 0 ? a : b)
          .get(chat.id)
          .then((r) => (r.state === 'active' ? (i % 2 === 0 ? b : a).endByAgent(chat.id).then(keep) : undefined)),
      ),
    )
    clock.advance(30 * MINUTE)
    for (const seen of loaded) seen.clear()
    const applied = await Promise.all([a.runDueTimers(), b.runDueTimers(), a.runDueTimers({ limit: 3 }), b.runDueTimers()])
    expectDisjointSweeps('round 3')
    expect(applied.reduce((sum, n) => sum + n, 0)).toBeGreaterThan(0)

    for (const chat of chats) {
      const [fromA, fromB] = await Promise.all([stores[0]!.get(chat.id), stores[1]!.get(chat.id)])
      expect(fromA, chat.id).toEqual(fromB)
      const final = fromA!
      expect(STATES).toContain(final.state)
      expect(final.state, chat.id).toBe('closed')
      expect(final.capacityHeld).toBe(false)

      const mine = events.filter((e) => e.conversationId === chat.id)
      const held = mine.filter((e) => e.type === 'capacity.held').length
      const released = mine.filter((e) => e.type === 'capacity.released').length
      expect(held, `${chat.id} holds`).toBeGreaterThanOrEqual(1)
      expect(released, `${chat.id}: one release per hold`).toBe(held)

      // Every transition some node reported is in the stored history, and nothing else is:
      // a write lost to a concurrent one would leave its reported transitions out.
      const reported = mine.flatMap((e) => (e.type === 'transition' ? [`${e.at} ${e.from}>${e.to} ${e.event}`] : [])).sort()
      const stored = final.history
        .slice(chat.history.length)
        .map((h) => `${h.at} ${h.from}>${h.to} ${h.event}`)
        .sort()
      expect(final.history.length, 'history below its limit').toBeLessThan(32)
      expect(reported, chat.id).toEqual(stored)
    }

    // No two successful writes of one conversation produced the same version. A call that changed
    // nothing (closing a closed conversation) returns the stored record as it is: that one may repeat.
    const byVersion = new Map<string, ConversationRecord>()
    for (const record of written) {
      const key = `${record.id}@${record.version}`
      expect(record, key).toEqual(byVersion.get(key) ?? record)
      byVersion.set(key, record)
    }
    expect(written.length).toBeGreaterThan(0)
    expect(batched.written).toBeGreaterThan(0)
  })
})
