import type { Cluster, Redis } from 'ioredis'
import { nanoid } from 'nanoid'
import { ConflictError, ReconnectError, SettingsError, StoreError, isReconnectError } from '../../errors'
import type { ConversationStore, OutboxStore, OutboxWrite } from '../../store/conversation-store'
import { describeStoredId, parseOutboxEvent } from '../../store/outbox-entry'
import { readStoredRecord, storedRecordJson } from '../../store/history-codec'
import { checkRecordForPut, isStorableKey } from '../../store/record'
import type { ConversationRecord, ServiceEvent } from '../../types'
import { DEFAULT_REDIS_PREFIX, hashTagOf, redisKeys } from './keys'
import { backfillRetention, type RetentionBackfill, type RetentionBackfillResult } from '../../store/retention-backfill'
import {
  ACK_EVENTS_SCRIPT,
  BY_CUSTOMER_SCRIPT,
  CLAIM_EVENTS_SCRIPT,
  DELETE_SCRIPT,
  DUE_SCRIPT,
  GET_BY_RECONNECT_ID_SCRIPT,
  HELD_BY_SCRIPT,
  INDEX_CUSTOMER_SCRIPT,
  NEXT_DUE_SCRIPT,
  PUT_SCRIPT,
  RESUMABLE_CANDIDATES_SCRIPT,
  WAKE_SCRIPT,
} from './scripts'

/** How long records a `due` returned stay claimed by default. */
const DEFAULT_CLAIM_MS = 30_000

/** Options of {@link createRedisStore}. */
export interface RedisStoreOptions {
  /**
   * An ioredis client (or `Cluster`) that the caller built, connects and eventually quits; the
   * store only sends commands through it and never changes it.
   */
  client: Redis | Cluster
  /**
   * Namespace of every key the store writes. With Redis Cluster it must contain a hash tag such
   * as `'{chat-reconnect}:'`, which puts every key in one slot. The default is {@link DEFAULT_REDIS_PREFIX}.
   * @default 'chat-reconnect:'
   */
  prefix?: string
  /**
   * A second ioredis connection the caller built (say `client.duplicate()`), used only to subscribe
   * to deadlines other nodes write, so the store gets `watchDue` and a service's scheduler wakes
   * for them at once instead of within `schedulerMaxSleepMs`. A subscribed connection cannot send
   * other commands, hence a second one; the store subscribes and unsubscribes, the caller quits it.
   * @default undefined — no `watchDue`
   */
  subscriber?: Redis
  /**
   * Publish, after each write, a deadline that comes before every other stored one, for the
   * schedulers of nodes with a `subscriber`: one more small script (one round trip) after each write
   * with a deadline; its failure never fails the write. Nodes that only write (and never subscribe)
   * turn it on.
   * @default true with a `subscriber`, otherwise false
   */
  announceDeadlines?: boolean
  /**
   * How long, in ms of the service's clock, records that `due` returned stay hidden from the `due`
   * of every other store object (another node), so nodes sweeping at once take disjoint batches. A
   * node that stops mid-sweep delays its records by this much at most; a write that moves a
   * record's deadline ends the claim at once. A store object's own claims never hide records from
   * itself; compare-and-set still decides every write. A claim is a key `<prefix>claim:<id>` that
   * Redis also expires after `claimMs` of its own time, so none outlives that.
   * @default 30000
   */
  claimMs?: number
}

/** The few commands the store sends; both `Redis` and `Cluster` have them. */
type Commands = Pick<Redis, 'evalsha' | 'eval' | 'get' | 'zrange'>

/** A {@link ConversationStore} in Redis, with `delete`, `byCustomer`, the outbox and the one-off upgrade step. */
export interface RedisStore extends RetentionConversationStore {
  claimEvents: OutboxStore['claimEvents']
  ackEvents: OutboxStore['ackEvents']
  nextEventAt: OutboxStore['nextEventAt']
  /**
   * The upgrade of a deployment written by an earlier version: one SCAN over the prefix's records
   * that files each in its customer's set (what `byCustomer` and `eraseCustomer` read) and, with
   * `keepClosedFor`, gives each `closed` record without one its retention deadline (compare-and-set,
   * safe while other nodes write and safe to run again). Resolves to what it did.
   */
  migrate(options?: RetentionBackfill): Promise<RetentionBackfillResult>
}

type RetentionConversationStore = ConversationStore & Required<Pick<ConversationStore, 'delete' | 'byCustomer'>>

/** A SCAN MATCH pattern that matches `text` literally. */
function globLiteral(text: string): string {
  return text.replace(/[\\*?[\]]/g, (c) => `\\${c}`)
}

interface LuaScript {
  readonly source: string
  sha: Promise<string | null> | undefined
  /** The SHA-1 once known, so that a call sends EVALSHA without waiting on a promise first. */
  knownSha: string | undefined
}

/** A bad argument to one of the store's methods (bad options are a `SettingsError` instead). */
function invalid(message: string): ReconnectError {
  return new ReconnectError('invalid-argument', `redis store: ${message}`)
}

async function sha1Hex(source: string): Promise<string | null> {
  const subtle = globalThis.crypto?.subtle
  if (subtle === undefined) return null
  const digest = await subtle.digest('SHA-1', new TextEncoder().encode(source))
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('')
}

const INDEX_HEAD = '{"~index":['
const INDEX_END = '],"~":0,'

/**
 * The record's JSON in a stored value: without the index the scripts read in front of it (see
 * STORED_INDEX in scripts.ts), or the whole value as written before the index existed.
 */
function recordJson(stored: string): string {
  if (!stored.startsWith(INDEX_HEAD)) return stored
  const end = stored.indexOf(INDEX_END, INDEX_HEAD.length)
  return end < 0 ? '' : `{${stored.slice(end + INDEX_END.length)}`
}

/** The value `put` stores: the record's JSON with `index` (a JSON array of scalars) in front. */
function storedValue(index: string, json: string): string {
  return `{"~index":${index},"~":0,${json.slice(1)}`
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT')
}

/** A score bound Redis parses exactly: integers and shortest round-trip decimals as JS prints them. */
function scoreArg(value: number, what: string): string {
  if (Number.isNaN(value)) throw invalid(`${what} must be a number of epoch ms, got NaN`)
  if (value === Infinity) return '+inf'
  if (value === -Infinity) return '-inf'
  return String(value)
}

/** The extra ARGV of a put that stores events: visible-at, then id and JSON of each event. */
function outboxArgs(outbox: OutboxWrite | undefined): string[] {
  if (outbox === undefined) return []
  if (typeof outbox !== 'object' || outbox === null || !Array.isArray(outbox.events) || !Number.isFinite(outbox.visibleAt)) {
    throw invalid('put() outbox must be { events: ServiceEvent[], visibleAt: epoch ms }')
  }
  if (outbox.events.length === 0) return []
  const args = [String(outbox.visibleAt)]
  for (const event of outbox.events) {
    const id = (event as { id?: unknown } | null)?.id
    if (typeof id !== 'string' || id === '' || !isStorableKey(id)) {
      throw invalid('put() outbox events need a non-empty id without NUL characters or lone UTF-16 surrogates')
    }
    args.push(id, JSON.stringify(event))
  }
  return args
}

/**
 * A {@link ConversationStore} in Redis, shared by every backend node that uses the same Redis and
 * prefix. Each `put` is one Lua script that compares the version and updates the record with all
 * of its indexes atomically; each read is one round trip.
 *
 * It is written for one Redis primary (standalone, Sentinel or a managed single-shard service).
 * On Redis Cluster give a prefix with a hash tag (`'{chat-reconnect}:'`): every key then lives in
 * one slot, so all conversations of that prefix share one shard.
 *
 * @example
 * import Redis from 'ioredis'
 * import { createRedisStore } from 'chat-reconnect/redis'
 *
 * const client = new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: 1, enableOfflineQueue: false })
 * const store = createRedisStore({ client, prefix: 'support-chat:' })
 * const service = createReconnectService({ settings, store })
 */
export function createRedisStore(options: RedisStoreOptions): RedisStore {
  if (typeof options !== 'object' || options === null) {
    throw new SettingsError([{ path: '', message: 'createRedisStore needs an options object with `client`' }])
  }
  const { client } = options
  if (typeof client !== 'object' || client === null || typeof client.evalsha !== 'function') {
    throw new SettingsError([{ path: 'client', message: 'must be an ioredis Redis or Cluster client' }])
  }
  const prefix = options.prefix ?? DEFAULT_REDIS_PREFIX
  if (typeof prefix !== 'string') {
    throw new SettingsError([{ path: 'prefix', message: `must be a string, got ${typeof prefix}` }])
  }

  // ioredis adds its own `keyPrefix` to KEYS but not to key names the scripts build from ARGV.
  const clientPrefix = (client.options as { keyPrefix?: unknown } | undefined)?.keyPrefix
  const scriptPrefix = (typeof clientPrefix === 'string' ? clientPrefix : '') + prefix
  if (client.isCluster && hashTagOf(scriptPrefix) === undefined) {
    throw new SettingsError([
      {
        path: 'prefix',
        message:
          `with Redis Cluster, must contain a hash tag such as "{chat-reconnect}:" so that every key lives in one ` +
          `slot; got ${JSON.stringify(prefix)}`,
      },
    ])
  }

  const subscriber = options.subscriber
  if (subscriber !== undefined && (typeof subscriber !== 'object' || subscriber === null || typeof subscriber.subscribe !== 'function')) {
    throw new SettingsError([{ path: 'subscriber', message: 'must be an ioredis Redis client (a second connection)' }])
  }
  if (subscriber !== undefined && (subscriber as unknown) === client) {
    throw new SettingsError([{ path: 'subscriber', message: 'must be a second connection, not `client` itself (try client.duplicate())' }])
  }
  const claimMs = options.claimMs === undefined ? DEFAULT_CLAIM_MS : options.claimMs
  if (typeof claimMs !== 'number' || !Number.isSafeInteger(claimMs) || claimMs < 1) {
    throw new SettingsError([{ path: 'claimMs', message: `must be a whole number of milliseconds, at least 1; got ${String(claimMs)}` }])
  }
  // Names this store object in its claims: its own claims never hide records from itself.
  const claimer = nanoid()
  const announce = options.announceDeadlines ?? subscriber !== undefined
  if (typeof announce !== 'boolean') {
    throw new SettingsError([{ path: 'announceDeadlines', message: `must be a boolean, got ${typeof announce}` }])
  }
  // ioredis adds no keyPrefix to channel names: one channel per namespace, as the scripts see it.
  const wakeChannel = `${scriptPrefix}due-wake`

  const redis: Commands = client
  const keys = redisKeys(prefix)
  const scriptKeys = redisKeys(scriptPrefix)

  const script = (source: string): LuaScript => ({ source, sha: undefined, knownSha: undefined })
  const put = script(PUT_SCRIPT)
  const byReconnectId = script(GET_BY_RECONNECT_ID_SCRIPT)
  const resumableCandidates = script(RESUMABLE_CANDIDATES_SCRIPT)
  const dueRecords = script(DUE_SCRIPT)
  const nextDue = script(NEXT_DUE_SCRIPT)
  const heldRecords = script(HELD_BY_SCRIPT)
  const wakeOthers = script(WAKE_SCRIPT)

  /**
   * Awaited, so a node that dies right after a write has told the others; a failure is swallowed:
   * a lost wake-up costs at most `schedulerMaxSleepMs`, never the write.
   */
  async function announceDeadline(at: number): Promise<void> {
    await run(wakeOthers, [keys.due], [wakeChannel, String(at)]).catch(() => undefined)
  }

  const wakeListeners = new Set<(at: number) => void>()
  function onMessage(channel: string, message: string): void {
    if (channel !== wakeChannel) return
    const at = Number(message)
    if (!Number.isFinite(at)) return
    for (const listener of wakeListeners) {
      try {
        listener(at)
      } catch {
        // One listener's failure must not keep the others from waking.
      }
    }
  }

  function subscribeNow(): void {
    if (wakeListeners.size === 0 && subscriber!.listenerCount('message') === 0) return
    subscriber!.subscribe(wakeChannel).catch(() => undefined)
  }

  function watchDue(onWake: (at: number) => void): () => void {
    const sub = subscriber!
    if (wakeListeners.size === 0) {
      sub.on('message', onMessage)
      // A connection not ready yet (or back after an outage, with the offline queue off) refuses
      // SUBSCRIBE: subscribe (again) whenever it becomes ready. SUBSCRIBE twice is harmless.
      sub.on('ready', subscribeNow)
      subscribeNow()
    }
    const listener = (at: number) => onWake(at)
    wakeListeners.add(listener)
    return () => {
      if (!wakeListeners.delete(listener) || wakeListeners.size > 0) return
      sub.removeListener('message', onMessage)
      sub.removeListener('ready', subscribeNow)
      sub.unsubscribe(wakeChannel).catch(() => undefined)
    }
  }

  const deleteRecord = script(DELETE_SCRIPT)
  const claimEvents = script(CLAIM_EVENTS_SCRIPT)
  const ackEvents = script(ACK_EVENTS_SCRIPT)
  const customerRecords = script(BY_CUSTOMER_SCRIPT)
  const indexCustomer = script(INDEX_CUSTOMER_SCRIPT)

  function run(lua: LuaScript, scriptKeyNames: string[], args: string[]): Promise<unknown> {
    const known = lua.knownSha
    if (known !== undefined) return evalsha(lua, known, scriptKeyNames, args)
    return firstRun(lua, scriptKeyNames, args)
  }

  function evalsha(lua: LuaScript, sha: string, scriptKeyNames: string[], args: string[]): Promise<unknown> {
    return redis.evalsha(sha, scriptKeyNames.length, ...scriptKeyNames, ...args).catch((error: unknown) => {
      // The server forgot the script (restart, failover, SCRIPT FLUSH): EVAL also caches it again.
      if (!isNoScript(error)) throw error
      return redis.eval(lua.source, scriptKeyNames.length, ...scriptKeyNames, ...args)
    })
  }

  async function firstRun(lua: LuaScript, scriptKeyNames: string[], args: string[]): Promise<unknown> {
    lua.sha ??= sha1Hex(lua.source).catch(() => null)
    const sha = await lua.sha
    if (sha === null) return redis.eval(lua.source, scriptKeyNames.length, ...scriptKeyNames, ...args)
    lua.knownSha = sha
    return evalsha(lua, sha, scriptKeyNames, args)
  }

  async function guarded<T>(operation: string, conversationId: string | undefined, work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (error) {
      if (isReconnectError(error)) throw error
      throw new StoreError(operation, { cause: error, conversationId })
    }
  }

  /**
   * `guarded` for work that is one promise: one handler on it instead of an async frame. A throw
   * while starting it (a bad argument) becomes a rejection too.
   */
  function guardedPromise<T>(operation: string, conversationId: string | undefined, start: () => Promise<T>): Promise<T> {
    let work: Promise<T>
    try {
      work = start()
    } catch (error) {
      work = Promise.reject(error)
    }
    return work.catch((error: unknown) => {
      if (isReconnectError(error)) throw error
      throw new StoreError(operation, { cause: error, conversationId })
    })
  }

  function parse(stored: unknown, operation: string, conversationId: string | undefined): ConversationRecord {
    let value: unknown
    try {
      value = JSON.parse(recordJson(String(stored)))
    } catch (error) {
      throw new StoreError(operation, { cause: error, conversationId })
    }
    const record = readStoredRecord(value)
    if (record === undefined || (conversationId !== undefined && record.id !== conversationId)) {
      const where = conversationId === undefined ? 'a stored value' : `the value stored for "${conversationId}"`
      throw new StoreError(operation, { conversationId, cause: new Error(`${where} is not a valid conversation record`) })
    }
    return record
  }

  function parseList(reply: unknown, operation: string): ConversationRecord[] {
    if (!Array.isArray(reply)) throw new StoreError(operation, { cause: new Error('unexpected reply from Redis') })
    return reply.map((json) => parse(json, operation, undefined))
  }

  /** Every conversation id under the prefix, one SCAN (on a Cluster, one per primary). */
  async function* scanIds(): AsyncGenerator<string> {
    const head = `${scriptPrefix}conv:`
    const match = `${globLiteral(head)}*`
    const nodes: Pick<Redis, 'scan'>[] = client.isCluster ? (client as Cluster).nodes('master') : [client as Redis]
    for (const node of nodes) {
      let cursor = '0'
      do {
        const [next, found] = await node.scan(cursor, 'MATCH', match, 'COUNT', 500)
        cursor = next
        for (const key of found) if (key.startsWith(head)) yield key.slice(head.length)
      } while (cursor !== '0')
    }
  }

  const store: RedisStore = {
    get(id) {
      return guardedPromise('get', id, () =>
        redis.get(keys.record(id)).then((json) => (json === null ? undefined : parse(json, 'get', id))),
      )
    },

    getByReconnectId(reconnectId) {
      return guardedPromise('getByReconnectId', undefined, () =>
        run(byReconnectId, [keys.reconnectId(reconnectId)], [scriptPrefix]).then((json) => {
          if (json === null || json === undefined) return undefined
          const record = parse(json, 'getByReconnectId', undefined)
          // A reconnect id must never open someone else's conversation, whatever happened to the keys.
          return record.reconnectId === reconnectId ? record : undefined
        }),
      )
    },

    findResumable(widgetId, customerId, now) {
      return guarded('findResumable', undefined, async () => {
        const reply = await run(resumableCandidates, [keys.resumable(widgetId, customerId)], [scriptPrefix])
        // Candidates come most recently updated first; expired windows stay indexed until swept.
        return parseList(reply, 'findResumable').find((record) => {
          const window = record.timers.window
          return record.state === 'reconnectable' && window !== undefined && now < window
        })
      })
    },

    put(record, expectedVersion, outbox) {
      return guardedPromise('put', typeof record?.id === 'string' ? record.id : undefined, () => {
        checkRecordForPut(record, expectedVersion, 'redis store: put()')
        const events = outboxArgs(outbox)
        const resumable = record.state === 'reconnectable' && record.customerId !== null
        const held = record.capacityHeld && record.agentId !== null
        const updatedAt = String(record.updatedAt)
        const dueAt = record.nextDueAt === null ? null : String(record.nextDueAt)
        const tail = resumable ? scriptKeys.resumableTail(record.widgetId, record.customerId!) : null
        // What the scripts read back instead of the JSON: see STORED_INDEX in scripts.ts.
        const index = JSON.stringify([
          record.version,
          record.reconnectId,
          tail,
          resumable ? updatedAt : null,
          held ? record.agentId : null,
          record.customerId,
          dueAt,
        ])
        const recordKeys = [keys.record(record.id), keys.reconnectId(record.reconnectId), keys.due]
        if (events.length > 0) recordKeys.push(keys.outboxEvents, keys.outboxPending)
        return run(put, recordKeys, [
          scriptPrefix,
          record.id,
          expectedVersion === null ? '' : String(expectedVersion),
          storedValue(index, storedRecordJson(record)),
          tail === null ? '' : `${scriptPrefix}resumable:${tail}`,
          updatedAt,
          held ? scriptKeys.held(record.agentId!) : '',
          dueAt ?? '',
          record.customerId === null ? '' : scriptKeys.customer(record.customerId),
          ...events,
        ]).then((written) => {
          if (written === 2) {
            const reason = new Error(`reconnect id ${describeStoredId(record.reconnectId)} already belongs to another conversation`)
            throw new StoreError('put', { conversationId: record.id, cause: reason })
          }
          if (written !== 1) throw new ConflictError(record.id, expectedVersion)
          if (announce && record.nextDueAt !== null) return announceDeadline(record.nextDueAt)
          return undefined
        })
      })
    },

    due(now, limit, dueOptions) {
      return guarded('due', undefined, async () => {
        const until = scoreArg(now, 'due(now)')
        if (!(limit > 0)) return []
        const count = Number.isFinite(limit) ? String(Math.ceil(limit)) : '-1'
        // A sweep at a real instant claims what it takes; due(Infinity) is no sweep and claims nothing.
        const claimUntil = Number.isFinite(now) ? String(Math.min(now + claimMs, Number.MAX_SAFE_INTEGER)) : ''
        const reply = await run(dueRecords, [keys.due], [scriptPrefix, until, count, claimer, claimUntil, String(claimMs)])
        if (!Array.isArray(reply) || reply.length % 2 !== 0) {
          throw new StoreError('due', { cause: new Error('unexpected reply from Redis') })
        }
        const onBadRecord = dueOptions?.onBadRecord
        const records: ConversationRecord[] = []
        for (let i = 0; i < reply.length; i += 2) {
          const id = String(reply[i])
          if (onBadRecord === undefined) {
            records.push(parse(reply[i + 1], 'due', id))
            continue
          }
          try {
            records.push(parse(reply[i + 1], 'due', id))
          } catch (error) {
            // One unreadable record must not stop the sweep of every other one.
            onBadRecord(id, isReconnectError(error) && error.cause !== undefined ? error.cause : error)
          }
        }
        return records
      })
    },

    nextDueAt() {
      return guarded('nextDueAt', undefined, async () => {
        const score = await run(nextDue, [keys.due], [scriptPrefix, claimer])
        return score === null || score === undefined ? null : Number(score)
      })
    },

    heldBy(agentId) {
      return guarded('heldBy', undefined, async () => parseList(await run(heldRecords, [keys.held(agentId)], [scriptPrefix]), 'heldBy'))
    },

    delete(id, expectedVersion) {
      return guarded('delete', id, async () => {
        if (!Number.isInteger(expectedVersion)) throw invalid(`delete() expectedVersion must be an integer, got ${String(expectedVersion)}`)
        const outcome = await run(deleteRecord, [keys.record(id), keys.due], [scriptPrefix, id, String(expectedVersion)])
        if (outcome === -1) throw new ConflictError(id, expectedVersion)
        return outcome === 1
      })
    },

    byCustomer(customerId) {
      return guarded('byCustomer', undefined, async () => {
        const reply = await run(customerRecords, [keys.customer(customerId)], [scriptPrefix])
        return parseList(reply, 'byCustomer').filter((record) => record.customerId === customerId)
      })
    },

    claimEvents(now, leaseMs, limit, claimOptions) {
      return guarded('claimEvents', undefined, async () => {
        if (!(limit > 0)) return []
        const until = scoreArg(now, 'claimEvents(now)')
        const leaseEnd = scoreArg(now + leaseMs, 'claimEvents(now + leaseMs)')
        const count = String(Math.min(Math.ceil(limit), 100_000))
        const reply = await run(claimEvents, [keys.outboxEvents, keys.outboxPending], [until, leaseEnd, count])
        if (!Array.isArray(reply) || reply.length % 2 !== 0) {
          throw new StoreError('claimEvents', { cause: new Error('unexpected reply from Redis') })
        }
        const onBadEntry = claimOptions?.onBadEntry
        const claimed: ServiceEvent[] = []
        for (let i = 0; i < reply.length; i += 2) {
          const id = String(reply[i])
          try {
            claimed.push(parseOutboxEvent(id, reply[i + 1]))
          } catch (error) {
            // One unreadable entry must not keep every other event from its delivery.
            if (onBadEntry === undefined) throw new StoreError('claimEvents', { cause: error })
            onBadEntry(id, error)
          }
        }
        return claimed
      })
    },

    ackEvents(ids) {
      return guarded('ackEvents', undefined, async () => {
        if (!Array.isArray(ids)) throw invalid('ackEvents() needs an array of event ids')
        if (ids.length === 0) return
        await run(ackEvents, [keys.outboxEvents, keys.outboxPending], ids.map(String))
      })
    },

    nextEventAt() {
      return guarded('nextEventAt', undefined, async () => {
        const [, score] = await redis.zrange(keys.outboxPending, 0, 0, 'WITHSCORES')
        return score === undefined ? null : Number(score)
      })
    },

    migrate(backfill) {
      return guarded('migrate', undefined, () =>
        backfillRetention(store, scanIds(), backfill, (id) =>
          run(indexCustomer, [keys.record(id)], [scriptPrefix, id]).then(() => undefined),
        ),
      )
    },
  }
  if (subscriber !== undefined) store.watchDue = watchDue
  return store
}
