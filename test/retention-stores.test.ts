import type { Redis } from 'ioredis'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPostgresStore } from '../src/adapters/postgres'
import { createRedisStore } from '../src/adapters/redis'
import { isConflictError, isInvalidTransitionError, isNotFoundError } from '../src/errors'
import { createReconnectService, type ReconnectService } from '../src/service/reconnect-service'
import type { ConversationStore } from '../src/store/conversation-store'
import { createManualClock, type ManualClock } from '../src/testing/manual-clock'
import { sampleRecord } from '../src/testing/store-contract'
import type { ConversationRecord } from '../src/types'
import { createTestPool, describeWithPostgres, randomTableName } from './support/postgres'
import { connect, describeWithRedis, dropPrefixes, keysUnder, randomPrefix } from './support/redis'

const DAY = 24 * 60 * 60_000
const SETTINGS = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://portal.example.com/chat' }
const CONVERSATIONS = 10_000
const VICTIM = 'victim-customer'

/** Runs `work` over `items` with at most `width` calls in flight. */
async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]!)
    }),
  )
}

/** A shared store as two nodes see it: each its own client, one clock. */
interface Shared {
  stores: [ConversationStore, ConversationStore]
  /** What is left in the backend: keys under the prefix, or rows of the table. */
  count(): Promise<number>
  /** Everything stored (keys and values, or rows) that mentions `text`. */
  mentions(text: string): Promise<string[]>
}

function retentionSuite(name: string, open: () => Promise<Shared>): void {
  let shared: Shared
  beforeAll(async () => {
    shared = await open()
  })

  function service(index: 0 | 1, clock: ManualClock): ReconnectService {
    return createReconnectService({ settings: SETTINGS, clock, store: shared.stores[index] })
  }

  it(`${name}: ${CONVERSATIONS} conversations closed and swept leave the store as empty as it started`, { timeout: 240_000 }, async () => {
    const clock = createManualClock()
    const node = service(0, clock)
    const empty = await shared.count()
    const ids = Array.from({ length: CONVERSATIONS }, (_, i) => i)
    await inParallel(ids, 32, async (i) => {
      const chat = await node.start({ customerId: `customer-${i % 500}`, agentId: `agent-${i % 40}` })
      if (i % 3 === 0) {
        await node.disconnect(chat.id) // reconnectable, then the window and wrap-up expire on their own
      } else {
        await node.endByAgent(chat.id)
        if (i % 3 === 1) await node.closeByAgent(chat.id)
      }
    })
    expect(await shared.count()).toBeGreaterThan(empty)
    clock.advance(DAY) // every window and wrap-up has passed: the sweep closes what is still open
    await node.runDueTimers()
    expect(await shared.count()).toBeGreaterThan(empty)
    clock.advance(7 * DAY)
    expect(await node.runDueTimers()).toBe(CONVERSATIONS)
    expect(await shared.count()).toBe(empty)
    expect(await shared.stores[1].nextDueAt()).toBeNull()
  })

  it(`${name}: erase under concurrent writes from a second node loses no other customer's data and leaves nothing naming the customer`, {
    timeout: 120_000,
  }, async () => {
    const clock = createManualClock()
    const eraser = service(0, clock)
    const other = service(1, clock)
    const victims: string[] = []
    for (let i = 0; i < 30; i += 1) {
      const chat = await other.start({ customerId: VICTIM, agentId: i % 2 === 0 ? `agent-${i % 4}` : null })
      if (i % 3 === 1) await other.disconnect(chat.id)
      victims.push(chat.id)
    }
    // What the second node last wrote for every other customer's conversation.
    const latest = new Map<string, ConversationRecord>()
    const keep = (record: ConversationRecord) => void latest.set(record.id, record)
    for (let i = 0; i < 40; i += 1) keep(await other.start({ customerId: `bystander-${i % 7}`, agentId: `agent-${i % 4}` }))

    const busy = (async () => {
      for (let round = 0; round < 120; round += 1) {
        const ids = [...latest.keys()]
        const id = ids[round % ids.length]!
        if (round % 4 === 0) keep(await other.start({ customerId: `bystander-${round % 7}`, agentId: `agent-${round % 4}` }))
        else if (round % 4 === 1) keep(await other.disconnect(id).catch(() => other.get(id)))
        else if (round % 4 === 2) keep(await other.endByAgent(id).catch(() => other.get(id)))
        // The second node also touches the victim's conversations: the eraser must win or retry.
        const victim = victims[round % victims.length]!
        await other.disconnect(victim).catch((error: unknown) => {
          if (!isInvalidTransitionError(error) && !isConflictError(error) && !isNotFoundError(error)) throw error
        })
      }
    })()
    const deleted = await eraser.eraseCustomer(VICTIM)
    await busy
    expect(deleted).toBe(victims.length)
    expect(await eraser.eraseCustomer(VICTIM)).toBe(0)

    for (const [id, record] of latest) {
      const stored = await shared.stores[0].get(id)
      expect(stored?.version, id).toBe(record.version)
      expect(stored?.customerId).toBe(record.customerId)
    }
    for (const id of victims) expect(await shared.stores[1].get(id)).toBeUndefined()
    expect(await shared.stores[1].byCustomer!(VICTIM)).toEqual([])
    for (let a = 0; a < 4; a += 1) for (const r of await shared.stores[1].heldBy(`agent-${a}`)) expect(r.customerId).not.toBe(VICTIM)
    expect(await shared.mentions(VICTIM)).toEqual([])
    for (const id of victims) expect(await shared.mentions(id)).toEqual([])
  })
}

describeWithRedis('retention on Redis', (url) => {
  let client: Redis
  const prefixes: string[] = []
  afterAll(async () => {
    await dropPrefixes(client, prefixes)
    client.disconnect()
  })
  describe('two nodes, one prefix', () => {
    retentionSuite('redis', async () => {
      client = await connect(url)
      const second = await connect(url)
      afterAll(() => second.disconnect())
      const prefix = randomPrefix('retention')
      prefixes.push(prefix)
      return {
        stores: [createRedisStore({ client, prefix }), createRedisStore({ client: second, prefix })],
        count: async () => (await keysUnder(client, prefix)).length,
        async mentions(text) {
          const found: string[] = []
          for (const key of await keysUnder(client, prefix)) {
            if (key.includes(text)) found.push(key)
            const type = await client.type(key)
            const values =
              type === 'string' ? [await client.get(key)] : type === 'set' ? await client.smembers(key) : await client.zrange(key, 0, -1)
            for (const value of values) if (value?.includes(text)) found.push(`${key} → ${value.slice(0, 60)}`)
          }
          return found
        },
      }
    })
  })
})

describeWithPostgres('retention on PostgreSQL', (url) => {
  let pool: pg.Pool
  let table: string
  afterAll(async () => {
    await pool.query(`DROP TABLE IF EXISTS "${table}"`)
    await pool.end()
  })
  describe('two nodes, one table', () => {
    retentionSuite('postgres', async () => {
      pool = createTestPool(url, { max: 16 })
      table = randomTableName('cr_retention')
      const first = createPostgresStore({ pool, table })
      await first.migrate()
      return {
        stores: [first, createPostgresStore({ pool, table })],
        count: async () => Number((await pool.query(`SELECT count(*)::int AS n FROM "${table}"`)).rows[0].n),
        async mentions(text) {
          const rows = await pool.query(
            `SELECT id FROM "${table}" WHERE id = $1 OR customer_id = $1 OR record::text LIKE '%' || $1 || '%'`,
            [text],
          )
          return rows.rows.map((row: { id: string }) => row.id)
        },
      }
    })
  })
})

/** Records as an earlier version left them: a closed one without a retention deadline, a live one. */
function preUpgradeRecords(t0: number, widgetId = 'default'): ConversationRecord[] {
  const closed = sampleRecord({
    customerId: 'old-customer',
    widgetId,
    state: 'closed',
    agentId: null,
    capacityHeld: false,
    capacitySince: null,
    endedBy: 'agent',
    createdAt: t0,
    updatedAt: t0,
  })
  const live = sampleRecord({ customerId: 'old-customer', widgetId, createdAt: t0, updatedAt: t0 })
  return [closed, live]
}

async function expectUpgraded(store: ConversationStore, closed: ConversationRecord, keep: number, clock: ManualClock): Promise<void> {
  const upgraded = await store.get(closed.id)
  expect(upgraded).toMatchObject({
    version: closed.version + 1,
    timers: { retention: closed.updatedAt + keep },
    nextDueAt: closed.updatedAt + keep,
  })
  clock.set(closed.updatedAt + keep)
  const node = createReconnectService({ settings: SETTINGS, clock, store })
  expect(await node.runDueTimers()).toBe(1)
  expect(await store.get(closed.id)).toBeUndefined()
}

describeWithRedis('retention upgrade on Redis', (url) => {
  let client: Redis
  const prefix = randomPrefix('upgrade')
  beforeAll(async () => {
    client = await connect(url)
  })
  afterAll(async () => {
    await dropPrefixes(client, [prefix])
    client.disconnect()
  })

  it('migrate files old records in their customer set and gives old closed records their deadline, once', async () => {
    const clock = createManualClock()
    const store = createRedisStore({ client, prefix })
    const [closed, live] = preUpgradeRecords(clock.now())
    for (const record of [closed!, live!]) await store.put(record, null)
    // Before the upgrade there was no customer set.
    await client.del(`${prefix}customer:old-customer`)
    expect(await store.byCustomer('old-customer')).toEqual([])

    expect(await store.migrate()).toEqual({ scanned: 2, scheduled: 0, failed: [] })
    expect((await store.byCustomer('old-customer')).map((r) => r.id).sort()).toEqual([closed!.id, live!.id].sort())
    expect((await store.get(closed!.id))?.timers).toEqual({})
    expect(await store.migrate({ keepClosedFor: (widget) => (widget === 'default' ? 7 * DAY : null) })).toEqual({
      scanned: 2,
      scheduled: 1,
      failed: [],
    })
    expect(await store.migrate({ keepClosedFor: 7 * DAY })).toEqual({ scanned: 2, scheduled: 0, failed: [] })
    await expectUpgraded(store, closed!, 7 * DAY, clock)
    expect(await store.migrate({ keepClosedFor: -1 }).catch((e: unknown) => e)).toMatchObject({ code: 'invalid-settings' })
  })
})

describeWithPostgres('retention upgrade on PostgreSQL', (url) => {
  let pool: pg.Pool
  const table = randomTableName('cr_upgrade')
  beforeAll(() => {
    pool = createTestPool(url)
  })
  afterAll(async () => {
    await pool.query(`DROP TABLE IF EXISTS "${table}"`)
    await pool.end()
  })

  it('migrate adds the customer index to an existing table and gives old closed rows their deadline, once', async () => {
    const clock = createManualClock()
    const store = createPostgresStore({ pool, table })
    await store.migrate()
    // A table created before the upgrade had no customer index.
    await pool.query(`DROP INDEX "${table}_customer_idx"`)
    const [closed, live] = preUpgradeRecords(clock.now())
    const [keptClosed] = preUpgradeRecords(clock.now(), 'keep-forever')
    for (const record of [closed!, live!, keptClosed!]) await store.put(record, null)

    expect(await store.migrate()).toBeUndefined()
    const indexes = await pool.query('SELECT indexname FROM pg_indexes WHERE tablename = $1', [table])
    expect(indexes.rows.map((r: { indexname: string }) => r.indexname)).toContain(`${table}_customer_idx`)
    const keep = async (widget: string) => (widget === 'keep-forever' ? null : 3 * DAY)
    expect(await store.migrate({ keepClosedFor: keep })).toEqual({ scanned: 2, scheduled: 1, failed: [] })
    expect(await store.migrate({ keepClosedFor: keep })).toEqual({ scanned: 1, scheduled: 0, failed: [] })
    expect((await store.get(keptClosed!.id))?.timers).toEqual({})
    await expectUpgraded(store, closed!, 3 * DAY, clock)
  })
})
