import fc from 'fast-check'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  POSTGRES_DEFAULT_TABLE,
  createPostgresStore,
  postgresSchema,
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresQueryConfig,
  type PostgresQueryResult,
  type PostgresStore,
} from '../src/adapters/postgres'
import { ConflictError, StoreError, isConflictError, isSettingsError, isStoreError } from '../src/errors'
import { createMemoryStore } from '../src/store/memory-store'
import type { ConversationStore } from '../src/store/conversation-store'
import { sampleRecord, storeContract } from '../src/testing/store-contract'
import type { ConversationRecord, State } from '../src/types'
import { dueClaimCases, dueRecords } from './support/due-claims'
import { serviceAcrossOutage } from './support/stores'
import {
  canStartServers,
  createTestPool,
  describeWithPostgres,
  freePort,
  randomTableName,
  startPrivateServer,
  type PrivateServer,
} from './support/postgres'

const T0 = 1_700_000_000_000
const VALID_PART = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection, but the promise resolved')
}

/** A scripted stand-in for a pool: every query answers from `answer`, and every call is logged. */
function fakePool(answer: (text: string, values?: unknown[]) => PostgresQueryResult | Error) {
  const log: string[] = []
  const releases: unknown[][] = []
  const run = async (sent: string | PostgresQueryConfig, given?: unknown[]) => {
    // Statements come as prepared-statement configs unless the store is told otherwise.
    const text = typeof sent === 'string' ? sent : sent.text
    const values = typeof sent === 'string' ? given : sent.values
    log.push(text.split(' ')[0]!)
    const result = answer(text, values)
    if (result instanceof Error) throw result
    return result
  }
  const pool: PostgresPool = {
    query: run,
    async connect() {
      log.push('connect')
      return { query: run, release: (...args: unknown[]) => void releases.push(args) }
    },
  }
  return { pool, log, releases }
}

const empty: PostgresQueryResult = { rows: [], rowCount: 0 }

describe('postgres store: options and schema', () => {
  it('refuses a table name that is not an identifier or schema.identifier', () => {
    for (const table of ['', 'a-b', '1abc', 'a.b.c', 'x;DROP TABLE y', '"quoted"', 'a'.repeat(64), 'a.', 'é']) {
      const error = (() => {
        try {
          createPostgresStore({ pool: fakePool(() => empty).pool, table })
        } catch (e) {
          return e
        }
        return undefined
      })()
      expect(isSettingsError(error), table).toBe(true)
      expect((error as { issues: { path: string }[] }).issues[0]?.path).toBe('table')
    }
    expect(() => createPostgresStore({ pool: fakePool(() => empty).pool, table: 42 as unknown as string })).toThrow(/table/)
  })

  it('accepts a table name exactly when every dot-separated part is an identifier (property)', () => {
    const part = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,70}$/)
    const name = fc.oneof(
      fc.string({ maxLength: 80 }),
      part,
      fc.tuple(part, part).map(([a, b]) => `${a}.${b}`),
    )
    fc.assert(
      fc.property(name, (table) => {
        const parts = table.split('.')
        const valid = parts.length <= 2 && parts.every((p) => VALID_PART.test(p))
        let accepted = true
        try {
          postgresSchema(table)
        } catch (error) {
          if (!isSettingsError(error)) throw error
          accepted = false
        }
        expect(accepted).toBe(valid)
      }),
    )
  })

  it('writes the schema with quoted names and distinct index names of at most 63 characters', () => {
    const sql = postgresSchema()
    expect(sql).toContain(`CREATE TABLE IF NOT EXISTS "${POSTGRES_DEFAULT_TABLE}"`)
    expect(sql).toMatch(/record jsonb NOT NULL/)
    expect(sql).toMatch(/claimed_until bigint,\s+claimed_by text\s+\)/)
    // Safe to run at every start-up: nothing that takes a lock blocking readers of an existing table.
    expect(sql).not.toMatch(/ALTER TABLE|DROP /)
    expect(sql.match(/CREATE (UNIQUE )?INDEX IF NOT EXISTS/g)).toHaveLength(7)
    expect(sql).toContain(`CREATE TABLE IF NOT EXISTS "${POSTGRES_DEFAULT_TABLE}_outbox"`)
    expect(postgresSchema('app.Conversations')).toContain('ON "app"."Conversations" (reconnect_id)')
    expect(postgresSchema('app.Conversations')).toContain('CREATE TABLE IF NOT EXISTS "app"."Conversations_outbox"')
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z_][a-z0-9_]{0,62}$/), (table) => {
        const names = [...postgresSchema(table).matchAll(/INDEX IF NOT EXISTS "([^"]+)"/g)].map((m) => m[1]!)
        expect(names).toHaveLength(7)
        expect(new Set(names).size).toBe(7)
        const outbox = postgresSchema(table).match(/CREATE TABLE IF NOT EXISTS "([^"]+)" \(\s+id text PRIMARY KEY,\s+visible_at/)?.[1]
        expect(outbox?.length).toBeLessThanOrEqual(63)
        expect(outbox).not.toBe(table)
        for (const n of names) expect(n.length).toBeLessThanOrEqual(63)
      }),
    )
    // Long names that share their first 55 characters still get different index names.
    const a = postgresSchema(`${'t'.repeat(55)}_one`)
    const b = postgresSchema(`${'t'.repeat(55)}_two`)
    expect(a.match(/"([^"]+_due_idx)"/)?.[1]).not.toBe(b.match(/"([^"]+_due_idx)"/)?.[1])
  })

  it('refuses a missing or wrong pool with SettingsError naming the field', () => {
    for (const pool of [undefined, null, {}, { query: () => 0 }]) {
      const error = (() => {
        try {
          createPostgresStore({ pool: pool as unknown as PostgresPool })
        } catch (e) {
          return e
        }
        return undefined
      })()
      expect(isSettingsError(error)).toBe(true)
      expect((error as { issues: { path: string }[] }).issues[0]?.path).toBe('pool')
    }
  })

  it('turns a refused connection into StoreError with operation, conversation id and cause', async () => {
    const pool = createTestPool(`postgres://postgres@127.0.0.1:${await freePort()}/postgres`, { connectionTimeoutMillis: 1_000 })
    try {
      const store = createPostgresStore({ pool })
      const error = await rejection(store.get('conv-1'))
      expect(error).toBeInstanceOf(StoreError)
      expect(error).toMatchObject({ code: 'store-failure', operation: 'get', conversationId: 'conv-1' })
      expect((error as StoreError).cause).toBeInstanceOf(Error)
      expect(isStoreError(await rejection(store.put(sampleRecord(), null)))).toBe(true)
      expect(await rejection(store.due(T0, 10))).toMatchObject({ operation: 'due' })
      expect(await rejection(store.migrate())).toMatchObject({ operation: 'migrate' })
    } finally {
      await pool.end()
    }
  })

  it('rolls a failed transaction back and releases its connection', async () => {
    const failing = fakePool((text) => (text.startsWith('CREATE') ? new Error('boom') : empty))
    const error = await rejection(createPostgresStore({ pool: failing.pool }).migrate())
    expect(error).toMatchObject({ code: 'store-failure', operation: 'migrate' })
    expect(failing.log).toEqual(['connect', 'BEGIN', 'SELECT', 'CREATE', 'ROLLBACK'])
    expect(failing.releases).toEqual([[undefined]])

    // A connection that cannot roll back is destroyed rather than returned to the pool.
    const broken = fakePool((text) => (text === 'BEGIN' || text === 'COMMIT' ? empty : new Error('connection lost')))
    await rejection(createPostgresStore({ pool: broken.pool }).migrate())
    expect(broken.log).toEqual(['connect', 'BEGIN', 'SELECT', 'ROLLBACK'])
    expect(broken.releases).toHaveLength(1)
    expect(broken.releases[0]?.[0]).toBeInstanceOf(Error)

    const committed = fakePool(() => empty)
    await createPostgresStore({ pool: committed.pool }).migrate()
    expect(committed.log).toEqual(['connect', 'BEGIN', 'SELECT', 'CREATE', 'COMMIT'])
    expect(committed.releases).toEqual([[]])
  })

  it('claims due rows in one statement on any pooled connection, with no transaction around it', async () => {
    const fake = fakePool(() => empty)
    await createPostgresStore({ pool: fake.pool }).due(T0, 10)
    expect(fake.log).toEqual(['WITH'])
  })

  it('refuses a claimMs that is not a whole number of milliseconds of at least 1', () => {
    const { pool } = fakePool(() => empty)
    for (const claimMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '30000', null]) {
      const error = (() => {
        try {
          createPostgresStore({ pool, claimMs: claimMs as number })
        } catch (e) {
          return e
        }
        return undefined
      })()
      expect(isSettingsError(error), String(claimMs)).toBe(true)
      expect((error as { issues: { path: string }[] }).issues[0]?.path).toBe('claimMs')
    }
    expect(() => createPostgresStore({ pool, claimMs: 1 })).not.toThrow()
  })

  it('refuses a preparedStatements that is not a boolean', () => {
    const { pool } = fakePool(() => empty)
    for (const preparedStatements of ['yes', 1, null]) {
      const error = (() => {
        try {
          createPostgresStore({ pool, preparedStatements: preparedStatements as unknown as boolean })
        } catch (e) {
          return e
        }
        return undefined
      })()
      expect(isSettingsError(error), String(preparedStatements)).toBe(true)
      expect((error as { issues: { path: string }[] }).issues[0]?.path).toBe('preparedStatements')
    }
  })

  it('sends each statement prepared, one name per text across tables, or as plain text and values when told not to', async () => {
    const sent: (string | PostgresQueryConfig)[] = []
    const answering = (text: string) => (text.startsWith('UPDATE') || text.startsWith('INSERT') ? { rows: [], rowCount: 1 } : empty)
    const recordingPool = (strict: boolean): PostgresPool => ({
      async query(text, values) {
        // A wrapper that only takes (text, values), as a host's tracing pool may.
        if (strict && typeof text !== 'string') throw new Error('this pool takes only (text, values)')
        if (typeof text === 'string') expect(Array.isArray(values), text).toBe(true)
        sent.push(typeof text === 'string' ? text : { ...text })
        return answering(typeof text === 'string' ? text : text.text)
      },
      connect: () => Promise.reject(new Error('no transactions here')),
    })
    const exercise = async (store: PostgresStore) => {
      const record = sampleRecord({ state: 'reconnectable', customerId: 'c', timers: { window: T0 + 5 }, nextDueAt: T0 + 5 })
      await store.put(record, null)
      await store.put({ ...record, version: 2 }, 1)
      await store.get(record.id)
      await store.get('another')
      await store.getByReconnectId(record.reconnectId)
      await store.findResumable('default', 'c', T0)
      await store.due(T0 + 5, 10)
      await store.nextDueAt()
      await store.heldBy('agent-1')
      await store.putMany([{ record: { ...record, version: 3 }, expectedVersion: 2 }])
    }
    const nameOf = new Map<string, string>()
    for (const table of ['t_one', 'schema_two.t_two']) {
      sent.length = 0
      await exercise(createPostgresStore({ pool: recordingPool(false), table }))
      expect(sent).toHaveLength(10)
      for (const config of sent) {
        expect(typeof config).toBe('object')
        const { name, text, values } = config as PostgresQueryConfig
        expect(name).toMatch(/^chat_reconnect_[0-9a-f]{16}$/)
        expect(Array.isArray(values), text).toBe(true)
        if (nameOf.has(text)) expect(nameOf.get(text)).toBe(name)
        else nameOf.set(text, name)
      }
    }
    // get, put and the rest on two tables: a name for each text, never one name for two texts.
    expect(nameOf.size).toBe(2 * 9)
    expect(new Set(nameOf.values()).size).toBe(nameOf.size)

    sent.length = 0
    await exercise(createPostgresStore({ pool: recordingPool(true), table: 't_one', preparedStatements: false }))
    expect(sent).toHaveLength(10)
    expect(sent.every((text) => typeof text === 'string')).toBe(true)
    // The same statements as prepared, only sent as text.
    for (const text of sent) expect(nameOf.has(text as string), text as string).toBe(true)
  })

  it('reports a refused compare-and-set as ConflictError, not StoreError', async () => {
    const { pool } = fakePool(() => ({ rows: [], rowCount: 0 }))
    const store = createPostgresStore({ pool })
    expect(await rejection(store.put(sampleRecord(), null))).toBeInstanceOf(ConflictError)
    expect(await rejection(store.put(sampleRecord({ version: 2 }), 1))).toMatchObject({ code: 'conflict', expectedVersion: 1 })
  })

  it('refuses a record exactly when one of its strings holds NUL or an unpaired surrogate, and sends it as it is otherwise', async () => {
    const unstorable = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
    // Backslashes and the letters of an escape, so that text which only looks like "\u0000" is in the mix.
    const unit = fc.constantFrom('a', '\\', 'u', '0', 'd', '8', 'c', '"', '\u0000', '\u0001', '\uD800', '\uDC00', '😀', 'é')
    await fc.assert(
      fc.asyncProperty(fc.string({ unit, maxLength: 12 }), fc.string({ unit, maxLength: 6 }), async (customerId, event) => {
        let sent: unknown
        const fake = fakePool((_text, values) => {
          sent = values?.[11]
          return { rows: [], rowCount: 1 }
        })
        const store = createPostgresStore({ pool: fake.pool })
        const record = sampleRecord({ customerId, history: [{ at: T0, event, from: 'active', to: 'reconnectable' }] })
        const outcome = await store.put(record, null).then(
          () => 'stored',
          (error: unknown) => (error as { code?: string }).code,
        )
        const expected = unstorable.test(customerId) || unstorable.test(event) ? 'invalid-argument' : 'stored'
        expect(outcome).toBe(expected)
        if (outcome === 'stored') expect(sent).toBe(JSON.stringify(record))
      }),
      { numRuns: 400 },
    )
  })

  it('refuses records PostgreSQL could not hold, and looks up impossible keys without a query', async () => {
    const fake = fakePool(() => empty)
    const store = createPostgresStore({ pool: fake.pool })
    for (const bad of [sampleRecord({ customerId: 'a\u0000b' }), sampleRecord({ agentId: 'x\uD800' })]) {
      const error = await rejection(store.put(bad, null))
      expect(error).toMatchObject({ code: 'invalid-argument' })
      expect(String((error as Error).message)).toMatch(/NUL character or an unpaired surrogate/)
    }
    expect(await rejection(store.put({ id: 'x' } as unknown as ConversationRecord, null))).toMatchObject({ code: 'invalid-argument' })
    expect(await store.get('a\u0000')).toBeUndefined()
    expect(await store.getByReconnectId('\uDC00')).toBeUndefined()
    expect(await store.heldBy('\u0000')).toEqual([])
    expect(await store.findResumable('default', '\uD800', T0)).toBeUndefined()
    expect(await store.due(Number.NaN, 10)).toEqual([])
    expect(await store.due(T0, 0)).toEqual([])
    expect(fake.log).toEqual([])
  })
})

/** Counts statements sent to the server: through the pool and through checked-out clients. */
function countingPool(inner: pg.Pool): { pool: PostgresPool; count: () => number; reset: () => void } {
  let n = 0
  const pool: PostgresPool = {
    query(text, values) {
      n += 1
      return inner.query(text, values)
    },
    async connect() {
      const client = await inner.connect()
      const counted: PostgresPoolClient = {
        query(text, values) {
          n += 1
          return client.query(text, values)
        },
        release: (destroy) => client.release(destroy),
      }
      return counted
    },
  }
  return { pool, count: () => n, reset: () => void (n = 0) }
}

describeWithPostgres('postgres store: storeContract', (url) => {
  let pool: pg.Pool
  const tables: string[] = []

  beforeAll(() => {
    pool = createTestPool(url)
  })
  afterAll(async () => {
    for (const table of tables) await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_outbox"`)
    await pool.end()
  })

  for (const c of storeContract(async () => {
    const table = randomTableName()
    tables.push(table)
    const store = createPostgresStore({ pool, table })
    await store.migrate()
    return store
  })) {
    it(c.name, c.run)
  }
})

describeWithPostgres('postgres store', (url) => {
  let pool: pg.Pool
  const tables: string[] = []

  async function freshStore(table = randomTableName()): Promise<PostgresStore> {
    tables.push(table)
    const store = createPostgresStore({ pool, table })
    await store.migrate()
    return store
  }

  beforeAll(() => {
    pool = createTestPool(url)
  })
  afterAll(async () => {
    for (const table of tables)
      await pool.query(
        `DROP TABLE IF EXISTS ${table
          .split('.')
          .map((p) => `"${p}"`)
          .join('.')}`,
      )
    await pool.query('DROP SCHEMA IF EXISTS cr_test_schema CASCADE')
    await pool.end()
  })

  it('migrate is idempotent, also when several nodes run it at once', async () => {
    const table = randomTableName()
    tables.push(table)
    const stores = Array.from({ length: 4 }, () => createPostgresStore({ pool, table }))
    await Promise.all(stores.map((s) => s.migrate()))
    await stores[0]!.migrate()
    const record = sampleRecord()
    await stores[1]!.put(record, null)
    await stores[2]!.migrate() // a later migrate keeps the data
    expect(await stores[3]!.get(record.id)).toEqual(record)
    const indexes = await pool.query('SELECT indexname FROM pg_indexes WHERE tablename = $1', [table])
    expect(indexes.rows).toHaveLength(7) // primary key + six
  })

  it('uses the default table name unless told, and works in a schema-qualified table', async () => {
    await pool.query('CREATE SCHEMA IF NOT EXISTS cr_test_schema')
    const store = await freshStore(`cr_test_schema.${randomTableName('Mixed_Case')}`)
    const record = sampleRecord()
    await store.put(record, null)
    expect(await store.get(record.id)).toEqual(record)
    expect(store.table).toMatch(/^cr_test_schema\.Mixed_Case_/)
    expect(createPostgresStore({ pool }).table).toBe(POSTGRES_DEFAULT_TABLE)
  })

  it('needs one round trip per put and per get', async () => {
    const table = randomTableName()
    tables.push(table)
    const counting = countingPool(pool)
    const store = createPostgresStore({ pool: counting.pool, table })
    await store.migrate()
    const record = sampleRecord({ state: 'reconnectable', customerId: 'c', timers: { window: T0 + 5 }, nextDueAt: T0 + 5 })
    const checks: [string, () => Promise<unknown>, number][] = [
      ['create', () => store.put(record, null), 1],
      ['update', () => store.put({ ...record, version: 2 }, 1), 1],
      ['conflicting update', () => store.put({ ...record, version: 2 }, 1).catch(() => {}), 1],
      ['get', () => store.get(record.id), 1],
      ['get of a missing id', () => store.get('missing'), 1],
      ['getByReconnectId', () => store.getByReconnectId(record.reconnectId), 1],
      ['findResumable', () => store.findResumable('default', 'c', T0), 1],
      ['nextDueAt', () => store.nextDueAt(), 1],
      ['due, nothing due', () => store.due(T0, 10), 1],
      ['due, one due', () => store.due(T0 + 5, 10), 1],
      ['heldBy', () => store.heldBy('agent-1'), 1],
    ]
    for (const [what, run, expected] of checks) {
      counting.reset()
      await run()
      expect(counting.count(), what).toBe(expected)
    }
  })

  it('prepares each statement once per connection, and not at all when told not to', async () => {
    const preparedOn = async (preparedStatements: boolean) => {
      // One connection, so the server's list of prepared statements is the store's.
      const single = createTestPool(url, { max: 1 })
      try {
        const table = randomTableName()
        tables.push(table)
        const store = createPostgresStore({ pool: single, table, preparedStatements })
        await store.migrate()
        const record = sampleRecord()
        await store.put(record, null)
        for (let i = 0; i < 8; i += 1) expect(await store.get(record.id)).toEqual(record)
        await store.put({ ...record, version: 2 }, 1)
        const listed = await single.query(
          `SELECT statement FROM pg_prepared_statements WHERE name LIKE 'chat\\_reconnect\\_%' ORDER BY statement`,
        )
        return listed.rows.map((row: { statement: string }) => row.statement)
      } finally {
        await single.end()
      }
    }
    const statements = await preparedOn(true)
    // The create, the update and the get: each once, however often it ran.
    expect(statements).toHaveLength(3)
    expect(statements.filter((text) => text.startsWith('SELECT'))).toHaveLength(1)
    expect(await preparedOn(false)).toEqual([])
  })

  it('keeps working with prepared statements when its table is dropped and migrated again', async () => {
    const single = createTestPool(url, { max: 1 })
    try {
      const table = randomTableName()
      tables.push(table)
      const store = createPostgresStore({ pool: single, table })
      await store.migrate()
      const record = sampleRecord({ state: 'reconnectable', timers: { window: T0 + 5 }, nextDueAt: T0 + 5 })
      await store.put(record, null)
      expect(await store.due(T0 + 5, 10)).toEqual([record])
      await single.query(`DROP TABLE "${table}", "${table}_outbox"`)
      await store.migrate()
      expect(await store.get(record.id)).toBeUndefined()
      await store.put(record, null)
      expect(await store.get(record.id)).toEqual(record)
      expect(await store.due(T0 + 5, 10)).toEqual([record])
    } finally {
      await single.end()
    }
  })

  it('due skips rows another connection holds locked', async () => {
    const store = await freshStore()
    const records = [1, 2, 3, 4, 5].map((d) => sampleRecord({ state: 'reconnectable', timers: { window: T0 + d }, nextDueAt: T0 + d }))
    for (const r of records) await store.put(r, null)
    const holder = await pool.connect()
    try {
      await holder.query('BEGIN')
      await holder.query(`SELECT id FROM "${store.table}" WHERE id = ANY($1) FOR UPDATE`, [[records[0]!.id, records[2]!.id]])
      const seen = await store.due(T0 + 10, 10)
      expect(seen.map((r) => r.id)).toEqual([records[1]!.id, records[3]!.id, records[4]!.id])
      await holder.query('COMMIT')
    } finally {
      holder.release()
    }
    expect((await store.due(T0 + 10, 10)).map((r) => r.id)).toEqual(records.map((r) => r.id))
  })

  describe('due claims the rows it returns', () => {
    const CLAIM_MS = 30_000
    let other: pg.Pool
    beforeAll(() => {
      other = createTestPool(url)
    })
    afterAll(async () => {
      await other.end()
    })

    /** One table seen by two nodes, each with its own pool, and `count` rows due at T0 + 0, 1, 2… */
    async function twoNodes(count: number) {
      const a = await freshStore()
      const b = createPostgresStore({ pool: other, table: a.table })
      const records = dueRecords(count)
      for (const r of records) await a.put(r, null)
      return { a, b, records }
    }
    const ids = (rows: ConversationRecord[]) => rows.map((r) => r.id)

    for (const c of dueClaimCases(twoNodes, CLAIM_MS)) it(c.name, c.run)

    it('nextDueAt counts a row another node claimed from the end of the claim', async () => {
      const { a, b, records } = await twoNodes(3)
      const later = sampleRecord({ state: 'reconnectable', timers: { window: T0 + 50_000 }, nextDueAt: T0 + 50_000 })
      await a.put(later, null)
      await a.due(T0 + 10, 2)
      expect(await a.nextDueAt()).toBe(T0) // a's own claims: as if unclaimed
      expect(await b.nextDueAt()).toBe(T0 + 2) // the one row a did not claim
      await b.due(T0 + 10, 10)
      expect(await b.nextDueAt()).toBe(T0 + 2) // its own claim; a's two count from their end
      expect(await a.nextDueAt()).toBe(T0) // b claimed only records[2]; a's are still a's
      expect(await createPostgresStore({ pool: other, table: a.table }).nextDueAt()).toBe(T0 + 10 + CLAIM_MS)
      await b.put({ ...records[2]!, version: 2, state: 'closed', timers: {}, nextDueAt: null }, 1)
      await a.put({ ...records[0]!, version: 2, state: 'closed', timers: {}, nextDueAt: null }, 1)
      await a.put({ ...records[1]!, version: 2, state: 'closed', timers: {}, nextDueAt: null }, 1)
      expect(await b.nextDueAt()).toBe(T0 + 50_000)
    })

    it('honours claimMs', async () => {
      const { a, records } = await twoNodes(2)
      const short = createPostgresStore({ pool: other, table: a.table, claimMs: 5 })
      expect(ids(await short.due(T0 + 10, 10))).toEqual(ids(records))
      expect(await createPostgresStore({ pool, table: a.table }).due(T0 + 14, 10)).toEqual([])
      expect(ids(await createPostgresStore({ pool, table: a.table }).due(T0 + 15, 10))).toEqual(ids(records))
    })
  })

  it('refuses a corrupted row with StoreError instead of passing it on', async () => {
    const store = await freshStore()
    const good = sampleRecord({ nextDueAt: T0, timers: { window: T0 }, state: 'reconnectable' })
    await store.put(good, null)
    const corrupt = sampleRecord({ agentId: 'agent-9', nextDueAt: T0 })
    await store.put(corrupt, null)
    await pool.query(`UPDATE "${store.table}" SET record = record - 'state' WHERE id = $1`, [corrupt.id])
    const get = await rejection(store.get(corrupt.id))
    expect(get).toBeInstanceOf(StoreError)
    expect(get).toMatchObject({ operation: 'get', conversationId: corrupt.id })
    expect(String((get as StoreError).cause)).toMatch(/not hold a valid conversation record/)
    expect(await rejection(store.heldBy('agent-9'))).toMatchObject({ operation: 'heldBy', conversationId: corrupt.id })
    expect(await rejection(store.due(T0, 10))).toMatchObject({ operation: 'due' })
    expect(await store.get(good.id)).toEqual(good)

    // Columns that disagree with the record would break compare-and-set: refused as well.
    await pool.query(`UPDATE "${store.table}" SET version = 7 WHERE id = $1`, [good.id])
    expect(String(((await rejection(store.get(good.id))) as StoreError).cause)).toMatch(/disagree/)
    await pool.query(`UPDATE "${store.table}" SET version = 1, record = '"text"'::jsonb WHERE id = $1`, [good.id])
    expect(isStoreError(await rejection(store.getByReconnectId(good.reconnectId)))).toBe(true)
  })

  it('refuses a reconnect id that already belongs to another conversation with StoreError', async () => {
    const store = await freshStore()
    const first = sampleRecord()
    const second = sampleRecord()
    await store.put(first, null)
    await store.put(second, null)
    const clash = await rejection(store.put({ ...second, version: 2, reconnectId: first.reconnectId }, 1))
    expect(clash).toMatchObject({ code: 'store-failure', operation: 'put', conversationId: second.id })
    expect(String((clash as StoreError).cause)).toMatch(/already belongs to another conversation/)
    expect(isStoreError(await rejection(store.put({ ...sampleRecord(), reconnectId: first.reconnectId }, null)))).toBe(true)
    expect(await store.get(second.id)).toEqual(second)
  })

  it('keeps fractional instants on the safe side: never due early, never resumable late', async () => {
    const store = await freshStore()
    const record = sampleRecord({
      state: 'reconnectable',
      customerId: 'c',
      timers: { window: T0 + 10.5 },
      nextDueAt: T0 + 10.5,
      updatedAt: T0 + 0.25,
    })
    await store.put(record, null)
    expect(await store.get(record.id)).toEqual(record)
    expect(await store.due(T0 + 10.4, 10)).toEqual([])
    expect((await store.due(T0 + 11, 10)).map((r) => r.id)).toEqual([record.id])
    expect(await store.nextDueAt()).toBe(T0 + 11)
    expect((await store.findResumable('default', 'c', T0 + 9.9))?.id).toBe(record.id)
    expect(await store.findResumable('default', 'c', T0 + 10.5)).toBeUndefined()
  })

  it('concurrent creates of one id with one reconnect id: one wins, the rest get ConflictError', async () => {
    const store = await freshStore()
    for (let round = 0; round < 10; round += 1) {
      const base = sampleRecord()
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.put({ ...base, agentId: `a${i}` }, null)))
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
      for (const r of results) if (r.status === 'rejected') expect(isConflictError(r.reason)).toBe(true)
    }
  })

  it('agrees with the memory store on random operation sequences (model-based)', async () => {
    const store = await freshStore()
    const ids = ['c1', 'c2', 'c3', 'c4']
    const agents = ['agent-a', 'agent-b', null]
    const customers = ['k1', 'k2', null]
    const recordArb = fc.record({
      id: fc.constantFrom(...ids),
      state: fc.constantFrom<State>('queued', 'active', 'reconnectable', 'wrap-up', 'closed'),
      agentId: fc.constantFrom(...agents),
      customerId: fc.constantFrom(...customers),
      widgetId: fc.constantFrom('default', 'w2'),
      window: fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }),
      capacityHeld: fc.boolean(),
      rid: fc.integer({ min: 0, max: 7 }),
      expected: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
    })
    type Step =
      | { op: 'put'; r: typeof recordArb extends fc.Arbitrary<infer R> ? R : never }
      | { op: 'read'; now: number; limit: number; key: number }
    const stepArb: fc.Arbitrary<Step> = fc.oneof(
      { weight: 3, arbitrary: recordArb.map((r) => ({ op: 'put' as const, r })) },
      {
        weight: 1,
        arbitrary: fc
          .record({ now: fc.integer({ min: 0, max: 60 }), limit: fc.integer({ min: 1, max: 4 }), key: fc.nat(11) })
          .map((x) => ({ op: 'read' as const, ...x })),
      },
    )
    let run = 0
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { maxLength: 25 }), async (steps) => {
        run += 1
        await pool.query(`TRUNCATE "${store.table}"`)
        const model: ConversationStore = createMemoryStore()
        let clock = 0
        const outcome = async (s: ConversationStore, f: (s: ConversationStore) => Promise<unknown>) => {
          try {
            return { ok: await f(s) }
          } catch (error) {
            return { error: isConflictError(error) ? 'conflict' : String(error) }
          }
        }
        for (const step of steps) {
          let call: (s: ConversationStore) => Promise<unknown>
          if (step.op === 'put') {
            const { r } = step
            // Reconnect ids are unique per conversation, as the service guarantees.
            const rid = `run${run}-${r.id}-${r.rid}`.padEnd(21, '0')
            const record = sampleRecord({
              id: r.id,
              state: r.state,
              agentId: r.agentId,
              customerId: r.customerId,
              widgetId: r.widgetId,
              timers: r.window === undefined ? {} : { window: T0 + r.window },
              nextDueAt: r.window === undefined ? null : T0 + r.window,
              capacityHeld: r.capacityHeld,
              updatedAt: T0 + (clock += 1),
              reconnectId: rid,
              version: (r.expected ?? 0) + 1,
            })
            call = (s) => s.put(record, r.expected)
          } else {
            const now = T0 + step.now
            const key = step.key
            call = async (s) => [
              await s.due(now, step.limit).then((rs) => rs.map((x) => x.id)),
              await s.nextDueAt(),
              await s.get(ids[key % 4]!),
              await s.heldBy(agents[key % 2]!).then((rs) => rs.map((x) => x.id).sort()),
              await s.findResumable(key % 2 === 0 ? 'default' : 'w2', customers[key % 3] ?? 'k1', now).then((x) => x?.id),
            ]
          }
          const [expected, actual] = [await outcome(model, call), await outcome(store, call)]
          expect(actual).toEqual(expected)
        }
      }),
      { numRuns: 25 },
    )
  })
})

describeWithPostgres('postgres store: server failure', () => {
  let server: PrivateServer | undefined
  let pool: pg.Pool | undefined

  afterAll(async () => {
    await pool?.end().catch(() => {})
    await server?.destroy()
  })

  it.runIf(canStartServers() || process.env.CI === 'true')(
    'rejects with StoreError while the server is down, keeps every acknowledged write, and recovers',
    async () => {
      server = await startPrivateServer()
      pool = createTestPool(server.url, { connectionTimeoutMillis: 1_000, query_timeout: 3_000, max: 6 })
      const store = createPostgresStore({ pool })
      await store.migrate()
      const service = await serviceAcrossOutage(store)

      const acknowledged = new Map<string, ConversationRecord>()
      const failures: unknown[] = []
      let stop = false
      async function writer(n: number) {
        for (let i = 0; !stop; i += 1) {
          const record = sampleRecord({ id: `w${n}-${i}`, nextDueAt: T0 + i, timers: { window: T0 + i }, state: 'reconnectable' })
          try {
            await store.put(record, null)
            acknowledged.set(record.id, record)
            const next = { ...record, version: 2, state: 'active' as const, timers: {}, nextDueAt: null }
            await store.put(next, 1)
            acknowledged.set(record.id, next)
          } catch (error) {
            failures.push(error)
            await new Promise((resolve) => setTimeout(resolve, 50))
          }
        }
      }
      const writers = [0, 1, 2, 3].map(writer)
      while (acknowledged.size < 50) await new Promise((resolve) => setTimeout(resolve, 5))

      await server.kill('SIGKILL') // mid-run: writes are in flight
      const down = await Promise.allSettled([
        store.get('w0-0'),
        store.put(sampleRecord(), null),
        store.due(T0 + 1_000, 10),
        store.nextDueAt(),
      ])
      for (const result of down) {
        expect(result.status).toBe('rejected')
        if (result.status === 'rejected') expect(isStoreError(result.reason), String(result.reason)).toBe(true)
      }
      await service.whileDown()

      await server.restart()
      await service.afterRestart()
      // Give the writers time to notice the server is back and write more.
      const before = acknowledged.size
      const resumeDeadline = Date.now() + 10_000
      while (acknowledged.size < before + 20 && Date.now() < resumeDeadline) await new Promise((resolve) => setTimeout(resolve, 20))
      stop = true
      await Promise.all(writers)

      expect(failures.length).toBeGreaterThan(0)
      for (const failure of failures) expect(isStoreError(failure) || isConflictError(failure), String(failure)).toBe(true)
      expect(acknowledged.size).toBeGreaterThan(before)
      for (const [id, record] of acknowledged) {
        const stored = await store.get(id)
        // An update whose acknowledgement was lost may have landed: then the stored one is newer.
        if (stored?.version !== record.version)
          expect(stored, id).toEqual({ ...record, version: 2, state: 'active', timers: {}, nextDueAt: null })
        else expect(stored, id).toEqual(record)
      }
      const fresh = sampleRecord()
      await store.put(fresh, null)
      expect(await store.get(fresh.id)).toEqual(fresh)
    },
    60_000,
  )
})
