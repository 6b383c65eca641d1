import { nanoid } from 'nanoid'
import { ConflictError, ReconnectError, SettingsError, StoreError, isConflictError, isReconnectError } from '../../errors'
import type { ConversationStore, OutboxStore, OutboxWrite, StoreWrite, StoreWriteResult } from '../../store/conversation-store'
import { describeStoredId, parseOutboxEvent } from '../../store/outbox-entry'
import { readStoredRecord, storedRecordJson } from '../../store/history-codec'
import { checkRecordForPut } from '../../store/record'
import type { ConversationRecord, ServiceEvent } from '../../types'
import { backfillRetention, type RetentionBackfill, type RetentionBackfillResult } from '../../store/retention-backfill'
import { schemaSql, shortHash, tableNames, type TableNames } from './schema'

/** What the store reads from a query result; `pg`'s `QueryResult` has this shape. */
export interface PostgresQueryResult {
  rows: unknown[]
  rowCount: number | null
}

/**
 * A statement sent as a prepared statement: `pg` parses and plans `text` once per connection under
 * `name`, then only binds `values`. `pg`'s `QueryConfig` has this shape.
 */
export interface PostgresQueryConfig {
  /** The prepared statement's name, the same for the same `text` on every connection. */
  name: string
  text: string
  values?: unknown[]
}

/** A connection checked out of the pool; `pg`'s `PoolClient` has this shape. */
export interface PostgresPoolClient {
  /** Runs one statement on this connection. */
  query(text: string, values?: unknown[]): Promise<PostgresQueryResult>
  /** Returns the connection; passing an error or `true` destroys it instead. */
  release(destroy?: Error | boolean): void
  /** Listens for connection errors (`pg` emits `'error'` when the server drops a checked-out connection). */
  on?(event: 'error', listener: (error: Error) => void): unknown
  /** Stops listening, see {@link PostgresPoolClient.on}. */
  removeListener?(event: 'error', listener: (error: Error) => void): unknown
}

/**
 * The part of a `pg` `Pool` the store uses. Declared structurally so that the published types do not
 * depend on `@types/pg`; a `pg.Pool` (or a wrapper that counts or traces queries) fits as it is.
 */
export interface PostgresPool {
  /**
   * Runs one statement on any idle connection. The store passes a {@link PostgresQueryConfig}
   * unless {@link PostgresStoreOptions.preparedStatements} is `false`; then always `(text, values)`.
   */
  query(text: string | PostgresQueryConfig, values?: unknown[]): Promise<PostgresQueryResult>
  /** Checks out one connection for a transaction. */
  connect(): Promise<PostgresPoolClient>
}

/** A connection that can `LISTEN`; `pg`'s `Client` and `PoolClient` have this shape. */
export interface PostgresListenClient {
  /** Runs one statement on this connection. */
  query(text: string, values?: unknown[]): Promise<PostgresQueryResult>
  /** `pg` emits `'notification'` for each `NOTIFY` on a channel this connection listens to. */
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown
  /** Stops listening, see {@link PostgresListenClient.on}. */
  removeListener(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown
}

/** Options of {@link createPostgresStore}. */
export interface PostgresStoreOptions {
  /** A pool the caller built and owns (`new pg.Pool(...)`); the store never ends it. */
  pool: PostgresPool
  /**
   * Table name, optionally `schema.table`. The default is {@link POSTGRES_DEFAULT_TABLE}.
   * @default 'chat_reconnect_conversations'
   */
  table?: string
  /**
   * How long, in ms of the service's clock, rows that `due` returned stay hidden from the `due` of
   * every other store object. A node that stops mid-sweep delays its rows by this much at most; a
   * sweep that takes longer lets another node load the same rows (compare-and-set still applies
   * each deadline once).
   * @default 30000
   */
  claimMs?: number
  /**
   * Wake-ups for deadlines other nodes write (the store gets `watchDue`): `true` checks one
   * connection out of the pool for `LISTEN` while a scheduler watches (released when it stops), or
   * pass a connection of your own (a connected `pg.Client`), which the store never ends.
   * @default false — no `watchDue`
   */
  listen?: boolean | PostgresListenClient
  /**
   * `NOTIFY` after each write a deadline that comes before every other stored one, for the nodes
   * that listen: one more short statement (one round trip) after each write with a deadline; its
   * failure never fails the write. Nodes that only write (and never listen) turn it on.
   * @default true when `listen` is set, otherwise false
   */
  announceDeadlines?: boolean
  /**
   * Send each statement through the pool as a named prepared statement (`{ name, text, values }`),
   * which the server parses and plans once per connection instead of on every call: about 40% less
   * database CPU per call. Turn it off behind a proxy that pools connections per transaction and
   * cannot keep prepared statements (PgBouncer before 1.21 in `transaction` mode), or for a pool
   * wrapper that only takes `(text, values)`.
   * @default true
   */
  preparedStatements?: boolean
}

/** A {@link ConversationStore} backed by one PostgreSQL table. */
export interface PostgresStore extends ConversationStore {
  /** The table as configured, e.g. `'chat_reconnect_conversations'`. */
  readonly table: string
  /**
   * Creates the table and its indexes when missing; safe to call on every start, from many nodes at
   * once (it only creates, so it takes no lock that blocks readers of an existing table). With
   * `keepClosedFor`, it then gives every `closed` row that has no retention deadline (closed before
   * the upgrade) its deadline, by compare-and-set, and resolves to what that did.
   */
  migrate(options?: RetentionBackfill): Promise<RetentionBackfillResult | undefined>
  /** Compare-and-set delete of one row (its indexes go with it): one statement. */
  delete(id: string, expectedVersion: number): Promise<boolean>
  /** Every row of the customer, from the `customer_id` index. */
  byCustomer(customerId: string): Promise<ConversationRecord[]>
  /** The outbox (`<table>_outbox`): pending events, claimed with `FOR UPDATE SKIP LOCKED`. */
  claimEvents: OutboxStore['claimEvents']
  /** Several compare-and-set writes (and their events) in one statement and one commit. */
  putMany: NonNullable<ConversationStore['putMany']>
  /** Deletes delivered events from the outbox table: one statement. */
  ackEvents: OutboxStore['ackEvents']
  /** The earliest visibility time in the outbox table, or `null`. */
  nextEventAt: OutboxStore['nextEventAt']
}

// Any two integers identify a session-level advisory lock; these keep migrate() of one table
// serialised across nodes without blocking anything else (0x63_72 is "cr").
const MIGRATE_LOCK_NAMESPACE = 0x6372
const UNIQUE_VIOLATION = '23505'
const COLUMNS = 'id, version, record::text AS record'
/** Default {@link PostgresStoreOptions.claimMs}: long enough for any sweep batch, short enough to wait out. */
const DEFAULT_CLAIM_MS = 30_000

// NUL cannot live in PostgreSQL text or jsonb, and the driver would replace an unpaired surrogate
// with U+FFFD, so such a key could match another one: no stored key contains either.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function storable(key: string): boolean {
  return typeof key === 'string' && !UNSTORABLE.test(key)
}

// Epoch ms beyond ±2^53 cannot be compared exactly as numbers anyway; clamping keeps bigint
// columns in range and the order of every realistic instant intact.
function clamp(ms: number): number {
  return Math.min(Number.MAX_SAFE_INTEGER, Math.max(-Number.MAX_SAFE_INTEGER, ms))
}

/**
 * Deadlines are indexed at whole milliseconds rounded up, and queried with `now` rounded down, so a
 * fractional deadline is never reported early (at worst it is due in the next millisecond).
 */
function deadlineColumn(at: number | null): number | null {
  return at === null ? null : clamp(Math.ceil(at))
}

/** A window end rounded down: a fractional window never looks open after it has ended. */
function windowColumn(at: number | undefined): number | null {
  return at === undefined ? null : clamp(Math.floor(at))
}

function instant(ms: number): number {
  return clamp(Math.floor(ms))
}

function toSafeInteger(value: unknown): number | undefined {
  const n = typeof value === 'string' ? Number(value) : typeof value === 'bigint' ? Number(value) : value
  return typeof n === 'number' && Number.isSafeInteger(n) ? n : undefined
}

/**
 * `\u0000` or a `\ud800`–`\udfff` escape whose backslash is not itself escaped: JSON.stringify writes
 * NUL and only lone surrogates (never a pair) that way.
 */
const UNSTORABLE_ESCAPE = /(?:^|[^\\])(?:\\\\)*\\u(?:0000|d[89a-f])/i

/** Serialises a record, refusing strings that PostgreSQL text could not hold. */
function serialise(record: ConversationRecord): string {
  const plain = storedRecordJson(record)
  // The common case, checked on the output in one pass: no escape of either kind anywhere.
  if (!plain.includes('\\u') || !UNSTORABLE_ESCAPE.test(plain)) return plain
  let bad: string | undefined
  JSON.stringify(record, (key, value: unknown) => {
    if (bad === undefined && typeof value === 'string' && !storable(value)) bad = key === '' ? 'record' : key
    return value
  })
  if (bad !== undefined) {
    throw new ReconnectError(
      'invalid-argument',
      `put: ${bad} of conversation ${describeStoredId(record.id)} contains a NUL character or an unpaired surrogate, which PostgreSQL cannot store`,
    )
  }
  return plain
}

/** The extra parameters of a put that stores events (visible-at, ids, JSON), or `undefined` for none. */
function outboxValues(outbox: OutboxWrite | undefined): [number, string[], string[]] | undefined {
  if (outbox === undefined) return undefined
  if (typeof outbox !== 'object' || outbox === null || !Array.isArray(outbox.events) || !Number.isFinite(outbox.visibleAt)) {
    throw new ReconnectError('invalid-argument', 'put: outbox must be { events: ServiceEvent[], visibleAt: epoch ms }')
  }
  if (outbox.events.length === 0) return undefined
  const ids: string[] = []
  const json: string[] = []
  for (const event of outbox.events) {
    const id = (event as { id?: unknown } | null)?.id
    if (typeof id !== 'string' || id === '' || !storable(id)) {
      throw new ReconnectError('invalid-argument', 'put: outbox events need a non-empty id without NUL characters or unpaired surrogates')
    }
    ids.push(id)
    // JSON escapes NUL and lone surrogates inside strings, so the text column can hold any event.
    json.push(JSON.stringify(event))
  }
  return [instant(outbox.visibleAt), ids, json]
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
}

function isPool(value: unknown): value is PostgresPool {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as PostgresPool).query === 'function' &&
    typeof (value as PostgresPool).connect === 'function'
  )
}

/**
 * A shared store for several backend nodes: one row per conversation in a PostgreSQL table, the
 * whole record in a `jsonb` column and the fields the queries need in indexed columns. `put` is a
 * single conditional `INSERT`/`UPDATE` (compare-and-set on `version`). `due` is one statement that
 * picks rows with `FOR UPDATE SKIP LOCKED` and claims them for `claimMs`: until then (or until a
 * `put` moves their deadline) the `due` and `nextDueAt` of other store objects — other nodes — pass
 * them by, so nodes sweeping at once or one after the other load disjoint rows. A store object's
 * own claims never hide rows from itself; correctness still rests on compare-and-set. Call
 * `migrate()` once at start-up, or apply `postgresSchema()` with your own migration tool.
 *
 * Driver failures reject with `StoreError` (the driver's error in `cause`); a row whose record is
 * not a valid conversation rejects with `StoreError` instead of being passed on.
 *
 * @example
 * import pg from 'pg'
 * import { createPostgresStore } from 'chat-reconnect/postgres'
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 5_000 })
 * pool.on('error', (error) => log.warn(error)) // an idle connection dropped; the pool replaces it
 * const store = createPostgresStore({ pool })
 * await store.migrate()
 * const service = createReconnectService({ settings, store })
 */
export function createPostgresStore(options: PostgresStoreOptions): PostgresStore {
  if (typeof options !== 'object' || options === null) {
    throw new SettingsError([{ path: '', message: 'createPostgresStore needs an options object with `pool`' }])
  }
  const names: TableNames = tableNames(options.table)
  if (!isPool(options.pool)) {
    throw new SettingsError([{ path: 'pool', message: 'must be a pg Pool (an object with query() and connect())' }])
  }
  const claimMs = options.claimMs === undefined ? DEFAULT_CLAIM_MS : options.claimMs
  if (typeof claimMs !== 'number' || !Number.isSafeInteger(claimMs) || claimMs < 1) {
    throw new SettingsError([{ path: 'claimMs', message: `must be a whole number of milliseconds, at least 1; got ${String(claimMs)}` }])
  }
  const pool = options.pool
  const listen = options.listen ?? false
  if (typeof listen !== 'boolean' && (typeof listen !== 'object' || listen === null || typeof listen.on !== 'function')) {
    throw new SettingsError([{ path: 'listen', message: 'must be a boolean or a pg Client to LISTEN on' }])
  }
  const announce = options.announceDeadlines ?? listen !== false
  if (typeof announce !== 'boolean') {
    throw new SettingsError([{ path: 'announceDeadlines', message: `must be a boolean, got ${typeof announce}` }])
  }
  const prepared = options.preparedStatements === undefined ? true : options.preparedStatements
  if (typeof prepared !== 'boolean') {
    throw new SettingsError([{ path: 'preparedStatements', message: `must be a boolean, got ${typeof prepared}` }])
  }
  // A channel is an identifier of at most 63 bytes: name it after a hash of the table.
  const channel = `chat_reconnect_due_${shortHash(names.name)}`
  // Names this store object in `claimed_by`: its own claims never hide rows from itself.
  const claimer = nanoid()
  const t = names.table
  const o = names.outboxTable
  const withEvents = (write: string, first: number): string =>
    `WITH w AS (${write}), o AS (INSERT INTO ${o} (id, visible_at, event)` +
    ` SELECT e.id, $${first}, e.event FROM w, unnest($${first + 1}::text[], $${first + 2}::text[]) AS e(id, event)` +
    ` ON CONFLICT (id) DO UPDATE SET visible_at = EXCLUDED.visible_at, event = EXCLUDED.event)` +
    ` SELECT count(*)::int AS written FROM w`
  const sql = {
    get: `SELECT ${COLUMNS} FROM ${t} WHERE id = $1`,
    byReconnectId: `SELECT ${COLUMNS} FROM ${t} WHERE reconnect_id = $1`,
    resumable:
      `SELECT ${COLUMNS} FROM ${t} WHERE widget_id = $1 AND customer_id = $2 AND state = 'reconnectable'` +
      ` AND window_ends_at > $3 ORDER BY updated_at DESC, id LIMIT 1`,
    insert:
      `INSERT INTO ${t} (id, widget_id, reconnect_id, customer_id, agent_id, state, next_due_at, capacity_held,` +
      ` window_ends_at, updated_at, version, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)` +
      ` ON CONFLICT (id) DO NOTHING`,
    update:
      `UPDATE ${t} SET widget_id = $2, reconnect_id = $3, customer_id = $4, agent_id = $5, state = $6,` +
      ` next_due_at = $7, capacity_held = $8, window_ends_at = $9, updated_at = $10, version = $11,` +
      ` record = $12::jsonb,` +
      // A moved deadline is new work: whoever claimed the old one must not hide it.
      ` claimed_until = CASE WHEN next_due_at IS DISTINCT FROM $7 THEN NULL ELSE claimed_until END,` +
      ` claimed_by = CASE WHEN next_due_at IS DISTINCT FROM $7 THEN NULL ELSE claimed_by END` +
      ` WHERE id = $1 AND version = $13`,
    exists: `SELECT 1 FROM ${t} WHERE id = $1`,
    // putMany: every write of the batch in one statement. $1–$12 the column arrays, $13 the expected
    // versions (null = create); $14–$17 the events: owner id, visible-at, event id, event JSON. Each
    // row is version-checked on its own, and an event is stored only with the row that owns it.
    putMany:
      `WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],` +
      ` $7::bigint[], $8::boolean[], $9::bigint[], $10::bigint[], $11::int[], $12::text[], $13::int[])` +
      ` AS i(id, widget_id, reconnect_id, customer_id, agent_id, state, next_due_at, capacity_held, window_ends_at,` +
      ` updated_at, version, record, expected)),` +
      ` u AS (UPDATE ${t} AS c SET widget_id = i.widget_id, reconnect_id = i.reconnect_id, customer_id = i.customer_id,` +
      ` agent_id = i.agent_id, state = i.state, next_due_at = i.next_due_at, capacity_held = i.capacity_held,` +
      ` window_ends_at = i.window_ends_at, updated_at = i.updated_at, version = i.version, record = i.record::jsonb,` +
      ` claimed_until = CASE WHEN c.next_due_at IS DISTINCT FROM i.next_due_at THEN NULL ELSE c.claimed_until END,` +
      ` claimed_by = CASE WHEN c.next_due_at IS DISTINCT FROM i.next_due_at THEN NULL ELSE c.claimed_by END` +
      ` FROM i WHERE i.expected IS NOT NULL AND c.id = i.id AND c.version = i.expected RETURNING c.id),` +
      ` n AS (INSERT INTO ${t} (id, widget_id, reconnect_id, customer_id, agent_id, state, next_due_at, capacity_held,` +
      ` window_ends_at, updated_at, version, record) SELECT id, widget_id, reconnect_id, customer_id, agent_id, state,` +
      ` next_due_at, capacity_held, window_ends_at, updated_at, version, record::jsonb FROM i WHERE i.expected IS NULL` +
      ` ON CONFLICT (id) DO NOTHING RETURNING id),` +
      ` w AS (SELECT id FROM u UNION ALL SELECT id FROM n),` +
      ` o AS (INSERT INTO ${o} (id, visible_at, event) SELECT e.id, e.visible_at, e.event` +
      ` FROM unnest($14::text[], $15::bigint[], $16::text[], $17::text[]) AS e(owner, visible_at, id, event) JOIN w ON w.id = e.owner` +
      ` ON CONFLICT (id) DO UPDATE SET visible_at = EXCLUDED.visible_at, event = EXCLUDED.event)` +
      ` SELECT id FROM w`,
    // The write and its events in one statement: the outbox rows exist exactly when the record row
    // was written ($13/$14 visible-at, $14/$15 ids, $15/$16 event JSON after the record's values).
    insertWithEvents: withEvents(
      `INSERT INTO ${t} (id, widget_id, reconnect_id, customer_id, agent_id, state, next_due_at, capacity_held,` +
        ` window_ends_at, updated_at, version, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)` +
        ` ON CONFLICT (id) DO NOTHING RETURNING id`,
      13,
    ),
    updateWithEvents: withEvents(
      `UPDATE ${t} SET widget_id = $2, reconnect_id = $3, customer_id = $4, agent_id = $5, state = $6,` +
        ` next_due_at = $7, capacity_held = $8, window_ends_at = $9, updated_at = $10, version = $11,` +
        ` record = $12::jsonb,` +
        ` claimed_until = CASE WHEN next_due_at IS DISTINCT FROM $7 THEN NULL ELSE claimed_until END,` +
        ` claimed_by = CASE WHEN next_due_at IS DISTINCT FROM $7 THEN NULL ELSE claimed_by END` +
        ` WHERE id = $1 AND version = $13 RETURNING id`,
      14,
    ),
    // $1 now, $2 limit, $3 lease end. SKIP LOCKED keeps claims that run at once apart; the moved
    // visibility keeps apart those that run one after the other.
    claimEvents:
      `WITH picked AS (SELECT id, visible_at FROM ${o} WHERE visible_at <= $1 ORDER BY visible_at, id LIMIT $2 FOR UPDATE SKIP LOCKED),` +
      ` claimed AS (UPDATE ${o} AS e SET visible_at = $3 FROM picked WHERE e.id = picked.id RETURNING e.id, e.event)` +
      // RETURNING keeps no order: the rows come back earliest visibility first, as picked.
      ` SELECT claimed.id, claimed.event FROM claimed JOIN picked ON picked.id = claimed.id ORDER BY picked.visible_at, picked.id`,
    ackEvents: `DELETE FROM ${o} WHERE id = ANY($1::text[])`,
    nextEventAt: `SELECT min(visible_at)::text AS at FROM ${o}`,
    // $1 now, $2 limit, $3 this store's claimer id, $4 claim end. SKIP LOCKED keeps sweeps that run
    // at the same moment apart; the claim keeps apart those that run one after the other.
    due:
      `WITH picked AS (SELECT id FROM ${t} WHERE next_due_at IS NOT NULL AND next_due_at <= $1` +
      ` AND (claimed_until IS NULL OR claimed_until <= $1 OR claimed_by = $3)` +
      ` ORDER BY next_due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED),` +
      ` claimed AS (UPDATE ${t} AS c SET claimed_until = $4, claimed_by = $3 FROM picked WHERE c.id = picked.id` +
      ` RETURNING c.id, c.version, c.record, c.next_due_at)` +
      ` SELECT ${COLUMNS} FROM claimed ORDER BY next_due_at, id`,
    // A row another store claimed counts from the end of its claim: waking for it earlier would
    // find nothing to do, again and again until the claim ends.
    nextDueAt:
      `SELECT LEAST(` +
      `(SELECT next_due_at FROM ${t} WHERE next_due_at IS NOT NULL AND (claimed_until IS NULL OR claimed_by = $1)` +
      ` ORDER BY next_due_at LIMIT 1),` +
      ` (SELECT min(GREATEST(next_due_at, claimed_until)) FROM ${t} WHERE claimed_until IS NOT NULL` +
      ` AND claimed_by IS DISTINCT FROM $1 AND next_due_at IS NOT NULL))::text AS at`,
    heldBy: `SELECT ${COLUMNS} FROM ${t} WHERE agent_id = $1 AND capacity_held ORDER BY id`,
    // One statement: the DELETE and the look at the row it may have left see the same snapshot, so
    // `stored` is the version before the delete (null = no row).
    delete:
      `WITH gone AS (DELETE FROM ${t} WHERE id = $1 AND version = $2 RETURNING id)` +
      ` SELECT (SELECT count(*) FROM gone)::int AS deleted, (SELECT version FROM ${t} WHERE id = $1) AS stored`,
    byCustomer: `SELECT ${COLUMNS} FROM ${t} WHERE customer_id = $1 ORDER BY id`,
    closedWithoutRetention: `SELECT id FROM ${t} WHERE state = 'closed' AND NOT (record -> 'timers' ? 'retention') AND id > $1 ORDER BY id LIMIT 500`,
    // Only a deadline that nothing stored comes before can find another node asleep past it.
    wake: `SELECT pg_notify($1, $2::text) WHERE NOT EXISTS (SELECT 1 FROM ${t} WHERE next_due_at < $3)`,
  }

  // One name per statement text (64 bits of two hashes): the same on every connection, in every
  // store object and copy of the library, and never one name for two texts, which \`pg\` refuses.
  const statements = new Map<string, string>()
  if (prepared) {
    for (const text of Object.values(sql)) statements.set(text, `chat_reconnect_${shortHash(text)}${shortHash(text, 0x050c5d1f)}`)
  }

  /** Sends one of the statements in `sql` through the pool, prepared unless that is turned off. */
  function send(text: string, values?: unknown[]): Promise<PostgresQueryResult> {
    const name = statements.get(text)
    if (name !== undefined) return pool.query(values === undefined ? { name, text } : { name, text, values })
    return values === undefined ? pool.query(text) : pool.query(text, values)
  }

  /**
   * Awaited, so a node that dies right after a write has told the others; a failure is swallowed:
   * a lost wake-up costs at most `schedulerMaxSleepMs`, never the write.
   */
  async function announceDeadline(at: number): Promise<void> {
    await Promise.resolve()
      .then(() => send(sql.wake, [channel, String(at), deadlineColumn(at)]))
      .catch(() => undefined)
  }

  const wakeListeners = new Set<(at: number) => void>()
  let listening: { client: PostgresListenClient; release?: (destroy?: boolean) => void } | undefined
  let connecting = false

  function onNotification(message: { channel: string; payload?: string }): void {
    if (message.channel !== channel) return
    const at = Number(message.payload)
    if (!Number.isFinite(at)) return
    for (const listener of wakeListeners) {
      try {
        listener(at)
      } catch {
        // One listener's failure must not keep the others from waking.
      }
    }
  }

  async function startListening(): Promise<void> {
    if (listening !== undefined || connecting) return
    connecting = true
    try {
      if (typeof listen === 'object') {
        listening = { client: listen }
      } else {
        const client = await pool.connect()
        const onError = () => {
          // The server dropped the connection: destroy it and listen again on a fresh one.
          if (listening?.client !== (client as unknown)) return
          stopListening(true)
          if (wakeListeners.size > 0) setTimeout(() => void startListening().catch(() => undefined), 1_000)
        }
        client.on?.('error', onError)
        listening = {
          client: client as unknown as PostgresListenClient,
          release: (destroy) => {
            client.removeListener?.('error', onError)
            client.release(destroy === true ? true : undefined)
          },
        }
      }
      listening.client.on('notification', onNotification)
      await listening.client.query(`LISTEN ${channel}`)
      if (wakeListeners.size === 0) stopListening(false)
    } finally {
      connecting = false
    }
  }

  function stopListening(broken: boolean): void {
    const current = listening
    listening = undefined
    if (current === undefined) return
    current.client.removeListener('notification', onNotification)
    if (!broken) current.client.query(`UNLISTEN ${channel}`).catch(() => undefined)
    current.release?.(broken)
  }

  function watchDue(onWake: (at: number) => void): () => void {
    const listener = (at: number) => onWake(at)
    wakeListeners.add(listener)
    startListening().catch(() => undefined)
    return () => {
      if (!wakeListeners.delete(listener) || wakeListeners.size > 0) return
      stopListening(false)
    }
  }

  function failure(operation: string, conversationId: string | undefined, error: unknown): Error {
    if (isConflictError(error) || (isReconnectError(error) && error.code === 'store-failure')) return error
    return new StoreError(operation, { cause: error, ...(conversationId === undefined ? {} : { conversationId }) })
  }

  async function query(operation: string, conversationId: string | undefined, text: string, values?: unknown[]) {
    try {
      return await send(text, values)
    } catch (error) {
      throw failure(operation, conversationId, error)
    }
  }

  /** Runs `work` in one transaction on one connection; rolls back and releases whatever happens. */
  async function transaction<T>(operation: string, work: (client: PostgresPoolClient) => Promise<T>): Promise<T> {
    let client: PostgresPoolClient
    try {
      client = await pool.connect()
    } catch (error) {
      throw failure(operation, undefined, error)
    }
    // A server that goes away between two statements makes `pg` emit 'error' on the checked-out
    // connection; unheard, that would crash the host's process. The next statement fails anyway.
    let dropped: Error | undefined
    const onError = (error: Error) => {
      dropped = error
    }
    client.on?.('error', onError)
    const stopListening = () => client.removeListener?.('error', onError)
    try {
      await client.query('BEGIN')
      const result = await work(client)
      await client.query('COMMIT')
      stopListening()
      if (dropped === undefined) client.release()
      else client.release(dropped)
      return result
    } catch (error) {
      let broken: Error | undefined
      try {
        await client.query('ROLLBACK')
      } catch (rollbackError) {
        // A connection that cannot even roll back is not fit to go back into the pool.
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError))
      }
      stopListening()
      client.release(broken ?? dropped)
      throw failure(operation, undefined, error)
    }
  }

  function decode(row: unknown, operation: string): ConversationRecord {
    const { id, version, record } = (row ?? {}) as { id?: unknown; version?: unknown; record?: unknown }
    const conversationId = typeof id === 'string' ? id : undefined
    let value: unknown = record
    if (typeof record === 'string') {
      try {
        value = JSON.parse(record)
      } catch (error) {
        throw new StoreError(operation, { conversationId, cause: error })
      }
    }
    const stored = readStoredRecord(value)
    if (stored === undefined) {
      throw new StoreError(operation, {
        conversationId,
        cause: new Error(`the row of ${describeStoredId(String(id))} in ${names.name} does not hold a valid conversation record`),
      })
    }
    if (stored.id !== id || stored.version !== toSafeInteger(version)) {
      throw new StoreError(operation, {
        conversationId,
        cause: new Error(`the id or version columns of ${describeStoredId(String(id))} in ${names.name} disagree with its record`),
      })
    }
    return stored
  }

  async function one(operation: string, conversationId: string | undefined, text: string, values: unknown[]) {
    const result = await query(operation, conversationId, text, values)
    const row = result.rows[0]
    return row === undefined ? undefined : decode(row, operation)
  }

  function columns(record: ConversationRecord, json: string): unknown[] {
    return [
      record.id,
      record.widgetId,
      record.reconnectId,
      record.customerId,
      record.agentId,
      record.state,
      deadlineColumn(record.nextDueAt),
      record.capacityHeld,
      windowColumn(record.timers.window),
      instant(record.updatedAt),
      record.version,
      json,
    ]
  }

  /** A unique violation is either a lost create race (a conflict) or a reconnect id owned by another conversation. */
  async function explainUniqueViolation(record: ConversationRecord, expectedVersion: number | null, error: unknown): Promise<Error> {
    if (expectedVersion === null) {
      const existing = await query('put', record.id, sql.exists, [record.id])
      if (existing.rows.length > 0) return new ConflictError(record.id, null, { cause: error })
    }
    const reason = new Error(`reconnect id ${describeStoredId(record.reconnectId)} already belongs to another conversation`, {
      cause: error,
    })
    return new StoreError('put', { conversationId: record.id, cause: reason })
  }

  const store: PostgresStore = {
    table: names.name,

    async migrate(backfill) {
      await transaction('migrate', async (client) => {
        await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATE_LOCK_NAMESPACE, t])
        // No parameters: the driver then uses the simple protocol, which accepts several statements.
        await client.query(schemaSql(names))
      })
      if (backfill?.keepClosedFor === undefined) return undefined
      const closedIds = async function* (): AsyncGenerator<string> {
        let after = ''
        for (;;) {
          const page = await query('migrate', undefined, sql.closedWithoutRetention, [after])
          for (const row of page.rows) {
            after = (row as { id: string }).id
            yield after
          }
          if (page.rows.length < 500) return
        }
      }
      return backfillRetention(store, closedIds(), backfill)
    },

    async delete(id, expectedVersion) {
      if (!Number.isInteger(expectedVersion)) {
        throw new ReconnectError('invalid-argument', `delete: expectedVersion must be an integer, got ${String(expectedVersion)}`)
      }
      if (!storable(id)) return false
      const result = await query('delete', id, sql.delete, [id, expectedVersion])
      const row = result.rows[0] as { deleted?: unknown; stored?: unknown } | undefined
      if (row?.deleted === 1) return true
      if (row?.stored === null || row?.stored === undefined) return false
      throw new ConflictError(id, expectedVersion)
    },

    async byCustomer(customerId) {
      if (!storable(customerId)) return []
      const result = await query('byCustomer', undefined, sql.byCustomer, [customerId])
      return result.rows.map((row) => decode(row, 'byCustomer'))
    },

    async get(id) {
      if (!storable(id)) return undefined
      return one('get', id, sql.get, [id])
    },

    async getByReconnectId(reconnectId) {
      if (!storable(reconnectId)) return undefined
      return one('getByReconnectId', undefined, sql.byReconnectId, [reconnectId])
    },

    async findResumable(widgetId, customerId, now) {
      if (!storable(widgetId) || !storable(customerId) || Number.isNaN(now)) return undefined
      return one('findResumable', undefined, sql.resumable, [widgetId, customerId, instant(now)])
    },

    async put(record, expectedVersion, outbox) {
      checkRecordForPut(record, expectedVersion, 'put')
      const values = columns(record, serialise(record))
      const events = outboxValues(outbox)
      let rowCount: number | null
      try {
        if (events === undefined) {
          const result = expectedVersion === null ? await send(sql.insert, values) : await send(sql.update, [...values, expectedVersion])
          rowCount = result.rowCount
        } else {
          const result =
            expectedVersion === null
              ? await send(sql.insertWithEvents, [...values, ...events])
              : await send(sql.updateWithEvents, [...values, expectedVersion, ...events])
          rowCount = toSafeInteger((result.rows[0] as { written?: unknown } | undefined)?.written) ?? null
        }
      } catch (error) {
        if (errorCode(error) === UNIQUE_VIOLATION) throw await explainUniqueViolation(record, expectedVersion, error)
        throw failure('put', record.id, error)
      }
      if (rowCount !== 1) throw new ConflictError(record.id, expectedVersion)
      if (announce && record.nextDueAt !== null) await announceDeadline(record.nextDueAt)
    },

    async putMany(writes) {
      if (!Array.isArray(writes)) throw new ReconnectError('invalid-argument', 'putMany: needs an array of writes')
      if (writes.length === 0) return []
      const columnValues: unknown[][] = Array.from({ length: 13 }, () => [])
      const eventValues: unknown[][] = [[], [], [], []]
      const ids = new Set<string>()
      let earliest: number | null = null
      for (const write of writes as readonly StoreWrite[]) {
        if (typeof write !== 'object' || write === null) {
          throw new ReconnectError('invalid-argument', 'putMany: each write must be { record, expectedVersion, outbox? }')
        }
        const { record, expectedVersion } = write
        checkRecordForPut(record, expectedVersion, 'putMany')
        if (ids.has(record.id)) {
          throw new ReconnectError('invalid-argument', `putMany: conversation ${describeStoredId(record.id)} is written twice in one call`)
        }
        ids.add(record.id)
        const values = columns(record, serialise(record))
        for (let k = 0; k < 12; k += 1) columnValues[k]!.push(values[k])
        columnValues[12]!.push(expectedVersion)
        const events = outboxValues(write.outbox)
        if (events !== undefined) {
          for (let k = 0; k < events[1].length; k += 1) {
            eventValues[0]!.push(record.id)
            eventValues[1]!.push(events[0])
            eventValues[2]!.push(events[1][k])
            eventValues[3]!.push(events[2][k])
          }
        }
      }
      let result: PostgresQueryResult
      try {
        result = await send(sql.putMany, [...columnValues, ...eventValues])
      } catch (error) {
        throw failure('putMany', undefined, error)
      }
      const written = new Set<string>()
      for (const row of result.rows) written.add(String((row as { id?: unknown }).id))
      const results = (writes as readonly StoreWrite[]).map(({ record }): StoreWriteResult => {
        if (!written.has(record.id)) return 'conflict'
        if (record.nextDueAt !== null && (earliest === null || record.nextDueAt < earliest)) earliest = record.nextDueAt
        return 'written'
      })
      if (announce && earliest !== null) await announceDeadline(earliest)
      return results
    },

    async due(now, limit, dueOptions) {
      if (Number.isNaN(now) || !(limit > 0)) return []
      const at = instant(now)
      // Like the memory store, a fractional limit rounds up.
      const count = Math.min(Math.ceil(limit), Number.MAX_SAFE_INTEGER)
      const result = await query('due', undefined, sql.due, [at, count, claimer, clamp(at + claimMs)])
      const onBadRecord = dueOptions?.onBadRecord
      if (onBadRecord === undefined) return result.rows.map((row) => decode(row, 'due'))
      const records: ConversationRecord[] = []
      for (const row of result.rows) {
        try {
          records.push(decode(row, 'due'))
        } catch (error) {
          // One unreadable row must not stop the sweep of every other one.
          const id = (row as { id?: unknown } | null)?.id
          onBadRecord(String(id), isReconnectError(error) && error.cause !== undefined ? error.cause : error)
        }
      }
      return records
    },

    async nextDueAt() {
      const result = await query('nextDueAt', undefined, sql.nextDueAt, [claimer])
      const row = result.rows[0] as { at?: unknown } | undefined
      if (row === undefined || row.at === null) return null
      const at = toSafeInteger(row.at)
      if (at === undefined) {
        throw new StoreError('nextDueAt', { cause: new Error(`next_due_at ${String(row.at)} in ${names.name} is not an epoch ms`) })
      }
      return at
    },

    async claimEvents(now, leaseMs, limit, claimOptions) {
      if (Number.isNaN(now) || Number.isNaN(leaseMs) || !(limit > 0)) return []
      const at = instant(now)
      const count = Math.min(Math.ceil(limit), 100_000)
      const result = await query('claimEvents', undefined, sql.claimEvents, [at, count, clamp(at + leaseMs)])
      const onBadEntry = claimOptions?.onBadEntry
      const claimed: ServiceEvent[] = []
      for (const row of result.rows) {
        const { id, event } = (row ?? {}) as { id?: unknown; event?: unknown }
        try {
          claimed.push(parseOutboxEvent(String(id), event))
        } catch (error) {
          // One unreadable entry must not keep every other event from its delivery.
          if (onBadEntry === undefined) throw new StoreError('claimEvents', { cause: error })
          onBadEntry(String(id), error)
        }
      }
      return claimed
    },

    async ackEvents(ids) {
      if (!Array.isArray(ids)) throw new ReconnectError('invalid-argument', 'ackEvents: needs an array of event ids')
      const storableIds = ids.filter((id) => storable(id))
      if (storableIds.length === 0) return
      await query('ackEvents', undefined, sql.ackEvents, [storableIds])
    },

    async nextEventAt() {
      const result = await query('nextEventAt', undefined, sql.nextEventAt)
      const row = result.rows[0] as { at?: unknown } | undefined
      if (row === undefined || row.at === null || row.at === undefined) return null
      const at = toSafeInteger(row.at)
      if (at === undefined)
        throw new StoreError('nextEventAt', { cause: new Error(`visible_at ${String(row.at)} in ${o} is not an epoch ms`) })
      return at
    },

    async heldBy(agentId) {
      if (!storable(agentId)) return []
      const result = await query('heldBy', undefined, sql.heldBy, [agentId])
      return result.rows.map((row) => decode(row, 'heldBy'))
    },
  }
  if (listen !== false) store.watchDue = watchDue
  return store
}
