import type pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createPostgresStore, type PostgresStore } from '../src/adapters/postgres'
import { isConflictError, isStoreError } from '../src/errors'
import { createReconnectService } from '../src/service/reconnect-service'
import { createStoreGateway } from '../src/service/store-gateway'
import { createManualClock } from '../src/testing/manual-clock'
import { sampleRecord } from '../src/testing/store-contract'
import type { ConversationRecord, ReconnectSettingsInput, ServiceEvent } from '../src/types'
import { createTestPool, describeWithPostgres, randomTableName } from './support/postgres'

const T0 = 1_700_000_000_000
const MINUTE = 60_000
const settings: ReconnectSettingsInput = { enabled: true, timeLimit: { minutes: 10 }, portalUrl: 'https://portal.example.com/chat' }

describeWithPostgres('PostgreSQL putMany', (url) => {
  let pool: pg.Pool
  let admin: pg.Pool
  let table: string
  let store: PostgresStore

  beforeAll(() => {
    pool = createTestPool(url, { max: 10 })
    admin = createTestPool(url, { max: 3 })
  })

  beforeEach(async () => {
    table = randomTableName('cr_many')
    store = createPostgresStore({ pool, table })
    await store.migrate()
  })

  afterAll(async () => {
    await Promise.all([pool.end(), admin.end()])
  })

  /**
   * Runs `write` while another connection holds a lock that blocks every write to the table, kills
   * the backend that waits on it (pg_terminate_backend), then lets the lock go: a batch that fails
   * in flight, on the real server.
   */
  async function withKilledBackend<T>(write: () => Promise<T>): Promise<PromiseSettledResult<T>> {
    const locker = await admin.connect()
    try {
      await locker.query('BEGIN')
      await locker.query(`LOCK TABLE "${table}" IN SHARE MODE`)
      const pending = Promise.allSettled([write()])
      let pid: unknown
      while (pid === undefined) {
        const found = await admin.query(
          `SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH i AS (SELECT * FROM unnest(%' LIMIT 1`,
        )
        pid = found.rows[0]?.pid
        if (pid === undefined) await new Promise((resolve) => setTimeout(resolve, 10))
      }
      await admin.query('SELECT pg_terminate_backend($1)', [pid])
      const [settled] = await pending
      return settled!
    } finally {
      await locker.query('COMMIT')
      locker.release()
    }
  }

  it('a moved deadline lets go of the claim of another store object, an unmoved one keeps it (as put does)', async () => {
    const other = createPostgresStore({ pool, table })
    const moving = sampleRecord({ state: 'reconnectable', timers: { window: T0 + 10 }, nextDueAt: T0 + 10 })
    const staying = sampleRecord({ state: 'reconnectable', timers: { window: T0 + 20 }, nextDueAt: T0 + 20 })
    await store.put(moving, null)
    await store.put(staying, null)
    expect((await store.due(T0 + 100, 10)).map((r) => r.id)).toEqual([moving.id, staying.id])
    expect(await other.due(T0 + 100, 10)).toEqual([])
    const results = await store.putMany([
      { record: { ...moving, version: 2, timers: { window: T0 + 50 }, nextDueAt: T0 + 50 }, expectedVersion: 1 },
      { record: { ...staying, version: 2, agentId: 'agent-2' }, expectedVersion: 1 },
    ])
    expect(results).toEqual(['written', 'written'])
    expect((await other.due(T0 + 100, 10)).map((r) => r.id)).toEqual([moving.id])
  })

  it('a batch whose backend is killed in flight writes none of its rows and rejects with StoreError', async () => {
    const records = Array.from({ length: 5 }, () => sampleRecord())
    for (const record of records) await store.put(record, null)
    const settled = await withKilledBackend(() =>
      store.putMany(records.map((record) => ({ record: { ...record, version: 2, agentId: 'agent-2' }, expectedVersion: 1 }))),
    )
    expect(settled.status).toBe('rejected')
    expect(isStoreError((settled as PromiseRejectedResult).reason)).toBe(true)
    for (const record of records) expect(await store.get(record.id)).toEqual(record)
    // The pool replaced the killed connection: the next batch goes through.
    const again = await store.putMany(records.map((record) => ({ record: { ...record, version: 2 }, expectedVersion: 1 })))
    expect(again).toEqual(records.map(() => 'written'))
  })

  it('a batch refused as a whole (a reconnect id taken) is written again write by write: the others land, that one fails alone', async () => {
    const gateway = createStoreGateway(store)
    const records = Array.from({ length: 3 }, () => sampleRecord())
    for (const record of records) await store.put(record, null)
    const [a, b, c] = records as [ConversationRecord, ConversationRecord, ConversationRecord]
    const outcomes = await gateway.saveMany([
      { record: { ...a, version: 2, agentId: 'agent-2' }, expectedVersion: 1, outbox: undefined },
      { record: { ...b, version: 2, reconnectId: a.reconnectId }, expectedVersion: 1, outbox: undefined },
      { record: { ...c, version: 3 }, expectedVersion: 2, outbox: undefined },
    ])
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, false])
    expect(isStoreError((outcomes[1] as { error: unknown }).error)).toBe(true)
    expect(isConflictError((outcomes[2] as { error: unknown }).error)).toBe(true)
    expect((await store.get(a.id))?.agentId).toBe('agent-2')
    expect(await store.get(b.id)).toEqual(b)
    expect(await store.get(c.id)).toEqual(c)
  })

  describe('a sweep whose batch write fails', () => {
    /** 40 reconnectable conversations whose windows have all passed, and a service with `onEvent` (so an outbox). */
    async function seeded(swept: PostgresStore) {
      const clock = createManualClock(T0)
      const events: ServiceEvent[] = []
      const service = createReconnectService({ settings, store: swept, clock, onEvent: (event) => void events.push(event) })
      const ids: string[] = []
      for (let i = 0; i < 40; i += 1) {
        const chat = await service.start({ agentId: `agent-${i % 3}` })
        await service.disconnect(chat.id)
        ids.push(chat.id)
      }
      clock.advance(11 * MINUTE)
      events.length = 0
      return { service, events, ids }
    }

    async function expectEachAppliedOnce(ids: string[], events: ServiceEvent[], applied: number): Promise<void> {
      expect(applied).toBe(ids.length)
      for (const id of ids) {
        const record = await store.get(id)
        expect(record?.state, id).toBe('wrap-up')
        // disconnect (1→2), the window's end (one write, one version up): no write applied twice.
        expect(record?.version, id).toBe(3)
        const expiries = events.filter((e) => e.conversationId === id && e.type === 'transition' && e.to === 'wrap-up')
        expect(expiries, id).toHaveLength(1)
      }
      expect(await store.due(T0 + 11 * MINUTE, 100)).toEqual([])
      // Every event of the sweep was delivered and acknowledged: none is left to deliver again.
      expect(await store.nextEventAt()).toBeNull()
    }

    it('killed in flight: each record is written on its own instead, once, with its events once', async () => {
      let batches = 0
      const swept: PostgresStore = {
        ...store,
        async putMany(writes) {
          batches += 1
          if (batches > 1) return store.putMany(writes)
          const settled = await withKilledBackend(() => store.putMany(writes))
          if (settled.status === 'rejected') throw settled.reason
          throw new Error('the killed batch was written')
        },
      }
      const { service, events, ids } = await seeded(swept)
      const applied = await service.runDueTimers()
      expect(batches).toBe(1)
      await expectEachAppliedOnce(ids, events, applied)
    })

    it('landed but its reply lost: the read-back of each write finds it, nothing is applied or told twice', async () => {
      let batches = 0
      const swept: PostgresStore = {
        ...store,
        async putMany(writes) {
          batches += 1
          const results = await store.putMany(writes)
          if (batches === 1) throw new Error('the connection dropped before the reply')
          return results
        },
      }
      const { service, events, ids } = await seeded(swept)
      const applied = await service.runDueTimers()
      expect(batches).toBe(1)
      await expectEachAppliedOnce(ids, events, applied)
    })
  })
})
