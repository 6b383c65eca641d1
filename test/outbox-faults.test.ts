import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, expect, it } from 'vitest'
import { createPostgresStore } from '../src/adapters/postgres'
import { createRedisStore } from '../src/adapters/redis'
import { isConflictError } from '../src/errors'
import { createReconnectService } from '../src/service/reconnect-service'
import type { ConversationStore } from '../src/store/conversation-store'
import type { ConversationRecord, ReconnectSettingsInput, ServiceEvent } from '../src/types'
import { killed, startNode } from './support/child-node'
import { createTestPool, describeWithPostgres, randomTableName } from './support/postgres'
import { connect, describeWithRedis, describeWithRedisServer, dropPrefixes, randomPrefix, startOwnedRedis } from './support/redis'

// Events are never lost, on real servers: a node killed between its writes and their delivery, a
// paused Redis, a locked PostgreSQL table, and a script ioredis re-sent after its reply was lost.
// In each, after de-duplication by id, the host has seen exactly the events of the writes that
// landed — read back from the store — and its capacity ledger agrees with the stored records.

const writer = fileURLToPath(new URL('./support/outbox-writer.mjs', import.meta.url))
const built = fileURLToPath(new URL('../dist/index.js', import.meta.url))
const SETTINGS: ReconnectSettingsInput = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://shop.example/help' }
/** The events each write of the lifecycles used here has: start with an agent, End, Close. */
const EVENTS_PER_VERSION = [0, 1, 2, 3]
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const children: ChildProcess[] = []
const cleanups: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL')
  for (const cleanup of cleanups.reverse()) await cleanup()
})

/** A host that de-duplicates by id and checks that a repeated id always carries the same event. */
function createHost() {
  const seen = new Map<string, ServiceEvent>()
  let deliveries = 0
  return {
    seen,
    get deliveries() {
      return deliveries
    },
    onEvent(event: ServiceEvent): void {
      deliveries += 1
      const before = seen.get(event.id)
      if (before !== undefined) expect(event, `re-delivery of ${event.id}`).toEqual(before)
      seen.set(event.id, structuredClone(event))
    },
  }
}

/** Every event id the stored records' writes produced (the lifecycles here have a fixed shape). */
function expectedIds(records: readonly ConversationRecord[]): string[] {
  return records.flatMap((record) =>
    Array.from({ length: record.version }, (_, i) => i + 1).flatMap((version) =>
      Array.from({ length: EVENTS_PER_VERSION[version]! }, (_, index) => `${record.id}:${version}:${index}`),
    ),
  )
}

async function storedRecords(store: ConversationStore, ids: readonly string[]): Promise<ConversationRecord[]> {
  const records: ConversationRecord[] = []
  for (const id of ids) {
    const record = await store.get(id)
    if (record !== undefined) records.push(record)
  }
  return records
}

/** The host saw exactly the events of what is stored, and its capacity ledger matches the records. */
function expectExactlyTheLanded(seen: ReadonlyMap<string, ServiceEvent>, records: readonly ConversationRecord[]): void {
  expect([...seen.keys()].sort()).toEqual(expectedIds(records).sort())
  for (const record of records) {
    const mine = [...seen.values()].filter((e) => e.conversationId === record.id)
    const held = mine.filter((e) => e.type === 'capacity.held').length - mine.filter((e) => e.type === 'capacity.released').length
    expect(held, `capacity of ${record.id} (${record.state})`).toBe(record.capacityHeld ? 1 : 0)
  }
}

/** Drains until the host has seen every event of `records` (or a generous bound passes). */
async function drainUntilComplete(
  drain: () => Promise<number>,
  seen: ReadonlyMap<string, ServiceEvent>,
  records: () => Promise<ConversationRecord[]>,
): Promise<void> {
  for (let round = 0; round < 200; round += 1) {
    await drain()
    const wanted = expectedIds(await records())
    if (wanted.every((id) => seen.has(id))) return
    await sleep(100)
  }
}

/** Starts the writer node; resolves once it has written (and never acked) its lifecycles. */
function startWriter(args: string[]) {
  return startNode<{ ids: string[]; told: number }>(writer, [...args], children)
}

/** (a) A node dies with SIGKILL before any of its events is acked; a survivor delivers them all. */
async function survivorDelivers(kind: 'redis' | 'postgres', url: string, namespace: string, store: ConversationStore): Promise<void> {
  expect(existsSync(built), 'dist/index.js is missing: run `npm run build` (npm test builds first)').toBe(true)
  const { child, ids, told } = await startWriter([kind, url, namespace, JSON.stringify(SETTINGS), '9', '300'])
  await killed(child)
  const records = () => storedRecords(store, ids)
  expect(await records()).toHaveLength(9)
  // The dead node's host took each event once and never finished: none was acked.
  expect(told).toBe(expectedIds(await records()).length)
  const host = createHost()
  const survivor = createReconnectService({ settings: SETTINGS, store, onEvent: host.onEvent, outboxRedeliverAfterMs: 2_000 })
  await drainUntilComplete(survivor.drainOutbox, host.seen, records)
  await survivor.idle()
  expectExactlyTheLanded(host.seen, await records())
  // Delivered and acked: a later drain finds nothing, however long after.
  expect(await survivor.drainOutbox()).toBe(0)
}

describeWithRedis('outbox faults on Redis', (url) => {
  it('(a) a node killed before its events were acked: a survivor delivers each of them, same ids', async () => {
    const client = await connect(url)
    const prefix = randomPrefix('outbox-kill')
    cleanups.push(async () => {
      await dropPrefixes(client, [prefix])
      client.disconnect()
    })
    await survivorDelivers('redis', url, prefix, createRedisStore({ client, prefix }))
  })

  it('(d) a script ioredis re-sent after its connection was killed: the call succeeds and its events come once', async () => {
    const client = await connect(url, { commandTimeout: 10_000 })
    const admin = await connect(url)
    const prefix = randomPrefix('outbox-resend')
    cleanups.push(async () => {
      await dropPrefixes(admin, [prefix])
      client.disconnect()
      admin.disconnect()
    })
    const inner = createRedisStore({ client, prefix })
    const killer = await connect(url)
    cleanups.push(async () => killer.disconnect())
    // Armed, the next write goes out while Redis is kept busy by a script, and CLIENT KILL of its
    // connection right after it: Redis runs the write, the reply is lost with the connection, and
    // ioredis reconnects and sends the script again, which meets the first run's result.
    let armed = false
    let ownWriteConflicts = 0
    const store: ConversationStore = {
      ...inner,
      put: async (record, expected, outbox) => {
        if (!armed) return inner.put(record, expected, outbox)
        armed = false
        const address = `127.0.0.1:${(client as unknown as { stream: { localPort: number } }).stream.localPort}`
        const busy = admin.eval(BUSY_SCRIPT, 0, '300')
        await sleep(30)
        const writing = inner.put(record, expected, outbox)
        writing.catch(() => undefined)
        await sleep(30)
        await Promise.all([killer.call('CLIENT', 'KILL', 'ADDR', address).catch(() => undefined), busy])
        try {
          await writing
        } catch (error) {
          if (isConflictError(error) && (await inner.get(record.id))?.writeId === record.writeId) ownWriteConflicts += 1
          throw error
        }
      },
    }
    const host = createHost()
    const service = createReconnectService({ settings: SETTINGS, store, onEvent: host.onEvent, outboxRedeliverAfterMs: 60_000 })
    const ids: string[] = []
    // Which of the queued put and CLIENT KILL Redis runs first after the busy script is up to its
    // event loop: rounds go on until the put ran first (its re-send met its own write) at least once.
    for (let round = 0; round < 20 && ownWriteConflicts === 0; round += 1) {
      const chat = await service.start({ agentId: 'agent-1' })
      ids.push(chat.id)
      await service.endByAgent(chat.id)
      armed = true
      const closed = await service.closeByAgent(chat.id)
      expect(closed.state).toBe('closed')
    }
    expect(ownWriteConflicts, 'the re-sent script met its own write at least once').toBeGreaterThan(0)
    await service.idle()
    // Delivered right away, by the call itself: no drain has run.
    expectExactlyTheLanded(host.seen, await storedRecords(inner, ids))
    expect(host.deliveries).toBe(host.seen.size)
  })
})

/** Keeps Redis busy for ARGV[1] ms: nothing else runs meanwhile, commands queue in their sockets. */
const BUSY_SCRIPT = `
local function now() local t = redis.call('TIME') return t[1] * 1000 + math.floor(t[2] / 1000) end
local start = now()
while now() - start < tonumber(ARGV[1]) do end
return 1
`

describeWithRedisServer('outbox faults on a paused Redis', () => {
  it('(b) Redis paused longer than the client timeout: the write lands later, its events arrive once after de-dup', async () => {
    const server = await startOwnedRedis()
    cleanups.push(() => server.dispose())
    const client = await connect(server.url, { commandTimeout: 300 })
    cleanups.push(async () => client.disconnect())
    const prefix = randomPrefix('outbox-pause')
    const inner = createRedisStore({ client, prefix })
    // Redis stops right before the Close's write is sent, and stays stopped for longer than the
    // client's timeout, so the write and its read-back both time out; it lands once Redis resumes.
    let pauseBeforePut = false
    const store: ConversationStore = {
      ...inner,
      put: (record, expected, outbox) => {
        if (pauseBeforePut) {
          pauseBeforePut = false
          server.signal('SIGSTOP')
        }
        return inner.put(record, expected, outbox)
      },
    }
    const host = createHost()
    const service = createReconnectService({ settings: SETTINGS, store, onEvent: host.onEvent, outboxRedeliverAfterMs: 500 })
    const ids: string[] = []
    for (let i = 0; i < 2; i += 1) {
      const chat = await service.start({ agentId: 'agent-1' })
      ids.push(chat.id)
      await service.endByAgent(chat.id)
    }
    await service.closeByAgent(ids[0]!)
    pauseBeforePut = true
    const resumed = sleep(1_000).then(() => server.signal('SIGCONT'))
    const outcome = await service.closeByAgent(ids[1]!).then(
      () => 'resolved',
      () => 'rejected',
    )
    await resumed
    expect(outcome).toBe('rejected')
    const records = () => storedRecords(inner, ids)
    await drainUntilComplete(service.drainOutbox, host.seen, records)
    await service.idle()
    const stored = await records()
    // The write landed although its call rejected: the conversation is closed, capacity released.
    expect(stored.map((r) => r.state)).toEqual(['closed', 'closed'])
    expectExactlyTheLanded(host.seen, stored)
  })
})

describeWithPostgres('outbox faults on PostgreSQL', (url) => {
  it('(a) a node killed before its events were acked: a survivor delivers each of them, same ids', async () => {
    const pool = createTestPool(url)
    const table = randomTableName('cr_outbox_kill')
    const store = createPostgresStore({ pool, table })
    await store.migrate()
    cleanups.push(async () => {
      await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_outbox"`)
      await pool.end()
    })
    await survivorDelivers('postgres', url, table, store)
  })

  it('(c) a table locked longer than the query timeout: the write lands later, its events arrive once after de-dup', async () => {
    const setup = createTestPool(url)
    const table = randomTableName('cr_outbox_lock')
    await createPostgresStore({ pool: setup, table }).migrate()
    const pool = new pg.Pool({ connectionString: url, max: 4, query_timeout: 300 })
    pool.on('error', () => undefined)
    cleanups.push(async () => {
      await pool.end()
      await setup.query(`DROP TABLE IF EXISTS "${table}", "${table}_outbox"`)
      await setup.end()
    })
    const inner = createPostgresStore({ pool, table })
    const locker = await setup.connect()
    cleanups.push(async () => locker.release())
    // Another connection locks the table right before the Close's write, for longer than the query
    // timeout: the write and its read-back time out, and the write runs once the lock is gone.
    let lockBeforePut = false
    const store: ConversationStore = {
      ...inner,
      put: async (record, expected, outbox) => {
        if (lockBeforePut) {
          lockBeforePut = false
          await locker.query('BEGIN')
          await locker.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`)
        }
        return inner.put(record, expected, outbox)
      },
    }
    const host = createHost()
    const service = createReconnectService({ settings: SETTINGS, store, onEvent: host.onEvent, outboxRedeliverAfterMs: 500 })
    const chat = await service.start({ agentId: 'agent-1' })
    await service.endByAgent(chat.id)
    lockBeforePut = true
    const outcome = await service.closeByAgent(chat.id).then(
      () => 'resolved',
      () => 'rejected',
    )
    await sleep(200)
    await locker.query('COMMIT')
    expect(outcome).toBe('rejected')
    const records = () => storedRecords(createPostgresStore({ pool: setup, table }), [chat.id])
    await drainUntilComplete(service.drainOutbox, host.seen, records)
    await service.idle()
    const stored = await records()
    expect(stored.map((r) => r.state)).toEqual(['closed'])
    expectExactlyTheLanded(host.seen, stored)
  })
})
