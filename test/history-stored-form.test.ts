import type { Redis } from 'ioredis'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createPostgresStore } from '../src/adapters/postgres'
import { createRedisStore } from '../src/adapters/redis'
import { isStoreError, type StoreError } from '../src/errors'
import type { ConversationStore } from '../src/store/conversation-store'
import { sampleRecord } from '../src/testing/store-contract'
import type { ConversationRecord, HistoryEntry } from '../src/types'
import { createTestPool, describeWithPostgres, randomTableName } from './support/postgres'
import { connect, describeWithRedis, dropPrefixes, randomPrefix } from './support/redis'

// The stored form of `history` (src/store/history-codec.ts) on real servers: a long history is
// stored as one short string, records stored with the array (what every earlier build wrote) are
// read and rewritten, and a damaged string is a StoreError like any other damaged record.

const T0 = 1_700_000_000_000

/** A record as 16 disconnect + return cycles leave it: 32 history entries, due at T0. */
function longLived(overrides: Partial<ConversationRecord> = {}): ConversationRecord {
  const history: HistoryEntry[] = []
  let at = T0 - 3_600_000
  for (let i = 0; i < 16; i += 1) {
    history.push({ at: (at += 60_000), event: 'customer.disconnected', from: 'active', to: 'reconnectable' })
    history.push({ at: (at += 5_000), event: 'customer.returned', from: 'reconnectable', to: 'active' })
  }
  return sampleRecord({ customerId: 'customer-1', timers: { warn: T0 }, nextDueAt: T0, version: 33, history, ...overrides })
}

async function storeError(promise: Promise<unknown>): Promise<StoreError> {
  const error: unknown = await promise.then(
    () => new Error('expected a StoreError, but the call succeeded'),
    (e: unknown) => e,
  )
  if (!isStoreError(error)) throw error
  return error
}

/** What the cases need from each server: the store, and the stored history of a record as it is. */
interface Backend {
  store(): Promise<ConversationStore>
  /** The stored `history` member: a string in the compact form, an array in the earlier one. */
  storedHistory(store: ConversationStore, id: string): Promise<unknown>
  /** Replaces the stored `history` member with `value` (JSON), leaving the rest as it is. */
  setStoredHistory(store: ConversationStore, id: string, value: unknown): Promise<void>
}

function storedFormCases(backend: () => Backend): void {
  it('stores a long history as one short string and reads it back as the same entries', async () => {
    const { store, storedHistory } = backend()
    const s = await store()
    const record = longLived()
    await s.put(record, null)
    const stored = await storedHistory(s, record.id)
    expect(typeof stored).toBe('string')
    expect((stored as string).length).toBeLessThan(JSON.stringify(record.history).length / 8)
    expect(await s.get(record.id)).toEqual(record)
    expect(await s.getByReconnectId(record.reconnectId)).toEqual(record)
    expect(await s.due(T0, 10)).toEqual([record])
  })

  it('keeps a history the compact form cannot hold as the array', async () => {
    const { store, storedHistory } = backend()
    const s = await store()
    const record = longLived()
    record.history[3] = { ...record.history[3]!, event: 'host.note ✓' }
    record.history[7] = { ...record.history[7]!, at: T0 + 0.25 }
    await s.put(record, null)
    expect(await storedHistory(s, record.id)).toEqual(record.history)
    expect(await s.get(record.id)).toEqual(record)
  })

  it('reads and rewrites a record whose history is stored as the array, as earlier builds wrote it', async () => {
    const { store, storedHistory, setStoredHistory } = backend()
    const s = await store()
    const record = longLived()
    await s.put(record, null)
    await setStoredHistory(s, record.id, record.history)
    expect(await storedHistory(s, record.id)).toEqual(record.history)
    expect(await s.get(record.id)).toEqual(record)
    expect(await s.getByReconnectId(record.reconnectId)).toEqual(record)
    expect(await s.due(T0, 10)).toEqual([record])
    expect(await s.byCustomer!('customer-1')).toEqual([record])
    const next: ConversationRecord = {
      ...record,
      version: 34,
      history: [...record.history.slice(1), { at: T0, event: 'warn.elapsed', from: 'active', to: 'active' }],
    }
    await s.put(next, 33)
    expect(typeof (await storedHistory(s, record.id))).toBe('string')
    expect(await s.get(record.id)).toEqual(next)
  })

  it('refuses a damaged stored history with StoreError, and a sweep passes it by', async () => {
    const { store, setStoredHistory } = backend()
    const s = await store()
    const damaged = longLived()
    const intact = longLived()
    await s.put(damaged, null)
    await s.put(intact, null)
    for (const bad of ['h1:1AAZ', 'h1:1', 'history', 'h1:1AAA1']) {
      await setStoredHistory(s, damaged.id, bad)
      const error = await storeError(s.get(damaged.id))
      expect(error).toMatchObject({ operation: 'get', conversationId: damaged.id })
      expect(String(error.cause)).toMatch(/valid conversation record/)
      expect((await storeError(s.getByReconnectId(damaged.reconnectId))).operation).toBe('getByReconnectId')
      const skipped: string[] = []
      expect(await s.due(T0, 10, { onBadRecord: (id) => skipped.push(id) })).toEqual([intact])
      expect(skipped).toEqual([damaged.id])
    }
  })
}

describeWithRedis('stored form of history: Redis', (url) => {
  let client: Redis
  const prefixes: string[] = []
  beforeAll(async () => {
    client = await connect(url)
  })
  afterAll(async () => {
    await dropPrefixes(client, prefixes)
    client.disconnect()
  })
  const prefixOf = new WeakMap<ConversationStore, string>()
  const key = (s: ConversationStore, id: string) => `${prefixOf.get(s)!}conv:${id}`
  // The record's members follow the store's index in the stored value; only `history` is rewritten.
  const splice = (value: string, history: unknown) =>
    value.replace(/"history":("[^"]*"|\[[^\]]*\])/, `"history":${JSON.stringify(history)}`)
  storedFormCases(() => ({
    async store() {
      const prefix = randomPrefix('history')
      prefixes.push(prefix)
      const s = createRedisStore({ client, prefix })
      prefixOf.set(s, prefix)
      return s
    },
    async storedHistory(s, id) {
      const value = (await client.get(key(s, id)))!
      return (JSON.parse(value) as { history: unknown }).history
    },
    async setStoredHistory(s, id, history) {
      const value = (await client.get(key(s, id)))!
      const changed = splice(value, history)
      expect(changed).not.toBe(value)
      await client.set(key(s, id), changed)
    },
  }))
})

describeWithPostgres('stored form of history: PostgreSQL', (url) => {
  let pool: pg.Pool
  const tables: string[] = []
  beforeAll(() => {
    pool = createTestPool(url)
  })
  afterAll(async () => {
    for (const table of tables) await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_outbox"`)
    await pool.end()
  })
  const tableOf = new WeakMap<ConversationStore, string>()
  storedFormCases(() => ({
    async store() {
      const table = randomTableName('cr_history')
      tables.push(table)
      const s = createPostgresStore({ pool, table })
      await s.migrate()
      tableOf.set(s, table)
      return s
    },
    async storedHistory(s, id) {
      const result = await pool.query(`SELECT record->'history' AS history FROM "${tableOf.get(s)!}" WHERE id = $1`, [id])
      return (result.rows[0] as { history: unknown }).history
    },
    async setStoredHistory(s, id, history) {
      const result = await pool.query(`UPDATE "${tableOf.get(s)!}" SET record = jsonb_set(record, '{history}', $2::jsonb) WHERE id = $1`, [
        id,
        JSON.stringify(history),
      ])
      expect(result.rowCount).toBe(1)
    },
  }))
})
