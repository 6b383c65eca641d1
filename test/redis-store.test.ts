import fc from 'fast-check'
import type { Cluster, Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRedisStore, DEFAULT_REDIS_PREFIX } from '../src/adapters/redis'
import { isConflictError, isReconnectError, isSettingsError, isStoreError, type StoreError } from '../src/errors'
import type { ConversationStore } from '../src/store/conversation-store'
import { createMemoryStore } from '../src/store/memory-store'
import { sampleRecord, storeContract } from '../src/testing/store-contract'
import type { ConversationRecord, State } from '../src/types'
import { dueClaimCases, dueRecords } from './support/due-claims'
import { replayParameters } from './support/fc-replay'
import { legacyPut } from './support/legacy-redis'
import { serviceAcrossOutage } from './support/stores'
import {
  connect,
  describeWithRedis,
  describeWithRedisServer,
  dropPrefixes,
  freePort,
  keysUnder,
  randomPrefix,
  startOwnedRedis,
  type OwnedRedis,
} from './support/redis'

const T0 = 1_700_000_000_000

async function storeError(promise: Promise<unknown>): Promise<StoreError> {
  const error: unknown = await promise.then(
    () => new Error('expected a StoreError, but the call succeeded'),
    (e: unknown) => e,
  )
  if (!isStoreError(error)) throw error
  return error
}

/** Records every command the client sends; one command is one round trip. */
function recordCommands(client: Redis): string[] {
  const sent: string[] = []
  const send = client.sendCommand.bind(client)
  client.sendCommand = ((command, stream) => {
    sent.push(command.name)
    return send(command, stream)
  }) as typeof client.sendCommand
  return sent
}

describe('redis store: options', () => {
  const fake = { evalsha: () => Promise.resolve(1), options: {}, isCluster: false }

  /** The path of the one issue of the SettingsError that `create` throws. */
  function settingsIssue(create: () => unknown): string {
    let thrown: unknown
    try {
      create()
    } catch (error) {
      thrown = error
    }
    if (!isSettingsError(thrown)) throw new Error(`expected a SettingsError, got ${String(thrown)}`)
    expect(thrown.issues).toHaveLength(1)
    return thrown.issues[0]!.path
  }

  it('refuses a missing or foreign client with SettingsError naming the field', () => {
    expect(settingsIssue(() => createRedisStore(undefined as never))).toBe('')
    expect(settingsIssue(() => createRedisStore(null as never))).toBe('')
    for (const bad of [{}, { client: null }, { client: {} }, { client: { get: () => 1 } }]) {
      expect(
        settingsIssue(() => createRedisStore(bad as never)),
        JSON.stringify(bad),
      ).toBe('client')
    }
  })

  it('refuses a non-string prefix with SettingsError naming the field', () => {
    expect(settingsIssue(() => createRedisStore({ client: fake as never, prefix: 42 as never }))).toBe('prefix')
    expect(() => createRedisStore({ client: fake as never, prefix: 42 as never })).toThrow(/prefix: must be a string/)
  })

  it('on Redis Cluster insists on a hash tag, so every key shares one slot', () => {
    const cluster = { ...fake, isCluster: true }
    for (const prefix of [DEFAULT_REDIS_PREFIX, 'a{}b{c}:', 'open{only:', '']) {
      expect(settingsIssue(() => createRedisStore({ client: cluster as never, prefix }))).toBe('prefix')
      expect(() => createRedisStore({ client: cluster as never, prefix })).toThrow(/hash tag/)
    }
    expect(() => createRedisStore({ client: cluster as never, prefix: '{chat-reconnect}:' })).not.toThrow()
    const tagged = { ...cluster, options: { keyPrefix: '{app}:' } }
    expect(() => createRedisStore({ client: tagged as never })).not.toThrow()
  })
})

describe('redis store: an unreachable server', () => {
  it('turns every failure into a StoreError naming the operation and conversation', async () => {
    const port = await freePort()
    const { Redis } = await import('ioredis')
    const client = new Redis(port, '127.0.0.1', {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    client.on('error', () => undefined)
    const store = createRedisStore({ client })
    try {
      const record = sampleRecord()
      const put = await storeError(store.put(record, null))
      expect(put.operation).toBe('put')
      expect(put.conversationId).toBe(record.id)
      expect(put.cause).toBeInstanceOf(Error)
      const get = await storeError(store.get('conv-x'))
      expect([get.operation, get.conversationId]).toEqual(['get', 'conv-x'])
      const calls: [string, () => Promise<unknown>][] = [
        ['getByReconnectId', () => store.getByReconnectId('r')],
        ['findResumable', () => store.findResumable('default', 'c', T0)],
        ['due', () => store.due(T0, 10)],
        ['nextDueAt', () => store.nextDueAt()],
        ['heldBy', () => store.heldBy('agent-1')],
      ]
      for (const [operation, call] of calls) expect((await storeError(call())).operation).toBe(operation)
    } finally {
      client.disconnect()
    }
  })
})

describeWithRedis('redis store', (url) => {
  let client: Awaited<ReturnType<typeof connect>>
  const prefixes: string[] = []
  const fresh = (label?: string): string => {
    const prefix = randomPrefix(label)
    prefixes.push(prefix)
    return prefix
  }

  beforeAll(async () => {
    client = await connect(url)
  })
  afterAll(async () => {
    await dropPrefixes(client, prefixes)
    client.disconnect()
  })

  describe('storeContract', () => {
    for (const c of storeContract(() => createRedisStore({ client, prefix: fresh('contract') }))) it(c.name, c.run)
  })

  describe('due claims the records it returns', () => {
    const CLAIM_MS = 30_000
    let other: Awaited<ReturnType<typeof connect>>
    beforeAll(async () => {
      other = await connect(url)
    })
    afterAll(() => {
      other.disconnect()
    })

    /** One prefix seen by two nodes, each with its own connection, and `count` records due at T0 + 0, 1, 2… */
    async function twoNodes(count: number) {
      const prefix = fresh('claims')
      const a = createRedisStore({ client, prefix })
      const b = createRedisStore({ client: other, prefix })
      const records = dueRecords(count)
      for (const r of records) await a.put(r, null)
      return { a, b, records, prefix }
    }

    for (const c of dueClaimCases(twoNodes, CLAIM_MS)) it(c.name, c.run)

    it('nextDueAt counts a record another node claimed from the end of the claim', async () => {
      const { a, b, records, prefix } = await twoNodes(3)
      const later = sampleRecord({ state: 'reconnectable', timers: { window: T0 + 50_000 }, nextDueAt: T0 + 50_000 })
      await a.put(later, null)
      await a.due(T0 + 10, 2)
      expect(await a.nextDueAt()).toBe(T0) // a's own claims: as if unclaimed
      expect(await b.nextDueAt()).toBe(T0 + 2) // the one record a did not claim
      await b.due(T0 + 10, 10)
      expect(await b.nextDueAt()).toBe(T0 + 2)
      // A third node: b claimed records[2] at T0 + 10, a the first two; both count from the claims' end.
      expect(await createRedisStore({ client: other, prefix }).nextDueAt()).toBe(T0 + 10 + CLAIM_MS)
      for (const r of records) await a.put({ ...r, version: 2, state: 'closed', timers: {}, nextDueAt: null }, 1)
      expect(await b.nextDueAt()).toBe(T0 + 50_000)
    })

    it('a delete drops the claim with the record; a moved record leaves a claim that Redis expires', async () => {
      const { a, records, prefix } = await twoNodes(2)
      await a.due(T0 + 10, 10)
      expect((await client.keys(`${prefix}claim:*`)).sort()).toEqual(records.map((r) => `${prefix}claim:${r.id}`).sort())
      expect(await a.delete(records[0]!.id, 1)).toBe(true)
      expect(await client.keys(`${prefix}claim:*`)).toEqual([`${prefix}claim:${records[1]!.id}`])
      const ttl = await client.pttl(`${prefix}claim:${records[1]!.id}`)
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(CLAIM_MS)
    })

    it('refuses a claimMs that is not a whole number of milliseconds of at least 1', () => {
      for (const claimMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '30000', null]) {
        let error: unknown
        try {
          createRedisStore({ client, claimMs: claimMs as number })
        } catch (caught) {
          error = caught
        }
        expect(isSettingsError(error), String(claimMs)).toBe(true)
        expect((error as { issues: { path: string }[] }).issues[0]?.path).toBe('claimMs')
      }
      expect(() => createRedisStore({ client, claimMs: 1 })).not.toThrow()
    })
  })

  it('drops due entries whose record key is gone, so they never crowd out live work', async () => {
    const prefix = fresh('leftover')
    const store = createRedisStore({ client, prefix })
    const at = (i: number) => T0 + i
    const records = Array.from({ length: 6 }, (_, i) =>
      sampleRecord({ id: `r${i}`, state: 'reconnectable', timers: { window: at(i) }, nextDueAt: at(i) }),
    )
    for (const record of records) await store.put(record, null)
    // Someone deletes the record keys of the three earliest by hand (or Redis evicts them).
    await client.del(...records.slice(0, 3).map((r) => `${prefix}conv:${r.id}`))

    expect((await store.due(at(10), 2)).map((r) => r.id)).toEqual(['r3', 'r4'])
    expect(await client.zrange(`${prefix}due`, 0, -1)).toEqual(['r3', 'r4', 'r5'])
    expect(await store.nextDueAt()).toBe(at(3))
    expect((await store.due(at(10), Number.POSITIVE_INFINITY)).map((r) => r.id)).toEqual(['r3', 'r4', 'r5'])
  })

  it('costs one round trip per put and per read once its scripts are cached', async () => {
    const counted = await connect(url)
    try {
      const store = createRedisStore({ client: counted, prefix: fresh('trips') })
      const warmUp = sampleRecord({ agentId: 'warm-up' })
      await store.put(warmUp, null)
      await store.getByReconnectId(warmUp.reconnectId)
      await store.findResumable('default', 'c-1', T0)
      await store.due(T0, 1)
      await store.nextDueAt()
      await store.heldBy('warm-up')
      const sent = recordCommands(counted)
      const trips = async (call: () => Promise<unknown>): Promise<string[]> => {
        sent.length = 0
        await call()
        return [...sent]
      }

      const record = sampleRecord({ state: 'reconnectable', customerId: 'c-1', timers: { window: T0 + 10 }, nextDueAt: T0 + 10 })
      expect(await trips(() => store.put(record, null))).toEqual(['evalsha'])
      expect(await trips(() => store.put({ ...record, version: 2 }, 1))).toEqual(['evalsha'])
      expect(await trips(() => store.put({ ...record, version: 3 }, 1).catch(() => undefined))).toEqual(['evalsha'])
      expect(await trips(() => store.get(record.id))).toEqual(['get'])
      expect(await trips(() => store.getByReconnectId(record.reconnectId))).toEqual(['evalsha'])
      expect(await trips(() => store.findResumable('default', 'c-1', T0))).toEqual(['evalsha'])
      expect(await trips(() => store.due(T0 + 10, 10))).toEqual(['evalsha'])
      expect(await trips(() => store.nextDueAt())).toEqual(['evalsha'])
      expect(await trips(() => store.heldBy('agent-1'))).toEqual(['evalsha'])
    } finally {
      counted.disconnect()
    }
  })

  it('falls back to EVAL when the server has forgotten its scripts', async () => {
    const counted = await connect(url)
    try {
      const store = createRedisStore({ client: counted, prefix: fresh('noscript') })
      const record = sampleRecord()
      await store.put(record, null)
      await counted.script('FLUSH')
      const sent = recordCommands(counted)
      await store.put({ ...record, version: 2, state: 'wrap-up', endedBy: 'agent' }, 1)
      expect(sent).toEqual(['evalsha', 'eval'])
      expect((await store.get(record.id))?.state).toBe('wrap-up')
      sent.length = 0
      await store.put({ ...record, version: 3, state: 'closed' }, 2)
      expect(sent).toEqual(['evalsha'])
    } finally {
      counted.disconnect()
    }
  })

  it('reads an index longer than the 256 bytes a write looks at first (long ids): entries move, conflicts are refused, delete leaves nothing', async () => {
    const prefix = fresh('long-index')
    const store = createRedisStore({ client, prefix })
    const long = (tag: string) => `${tag}-${'é'.repeat(60)}${'x'.repeat(40)}`
    const record = sampleRecord({
      id: 'long-1',
      reconnectId: long('rid'),
      widgetId: long('widget'),
      customerId: long('customer'),
      agentId: long('agent'),
      state: 'reconnectable',
      capacityHeld: true,
      timers: { window: T0 + 50 },
      nextDueAt: T0 + 50,
    })
    await store.put(record, null)
    const stored = (await client.get(`${prefix}conv:${record.id}`))!
    expect(Buffer.byteLength(stored.slice(0, stored.indexOf('],"~":0,')))).toBeGreaterThan(256)
    expect(await store.findResumable(record.widgetId, record.customerId!, T0)).toEqual(record)
    expect(await store.heldBy(record.agentId!)).toEqual([record])

    const moved = { ...record, version: 2, state: 'active' as const, timers: {}, nextDueAt: null, agentId: long('other') }
    await expect(store.put({ ...moved, version: 3 }, 2)).rejects.toSatisfy(isConflictError)
    await store.put(moved, 1)
    expect(await store.findResumable(record.widgetId, record.customerId!, T0)).toBeUndefined()
    expect(await store.heldBy(record.agentId!)).toEqual([])
    expect(await store.heldBy(moved.agentId)).toEqual([moved])
    expect(await store.due(Infinity, 10)).toEqual([])
    expect(await store.getByReconnectId(record.reconnectId)).toEqual(moved)
    await expect(store.delete(moved.id, 1)).rejects.toSatisfy(isConflictError)
    expect(await store.delete(moved.id, 2)).toBe(true)
    expect(await keysUnder(client, prefix)).toEqual([])
  })

  it('keeps every epoch ms exact through Lua and sorted-set scores', async () => {
    const prefix = fresh('precision')
    const store = createRedisStore({ client, prefix })
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), async (at) => {
        const record = sampleRecord({ state: 'reconnectable', customerId: 'c', timers: { window: at }, nextDueAt: at, updatedAt: at })
        await store.put(record, null)
        expect(await store.get(record.id)).toEqual(record)
        expect((await store.due(at, 1_000)).some((r) => r.id === record.id)).toBe(true)
        expect((await store.due(at - 1, 1_000)).some((r) => r.id === record.id)).toBe(false)
        expect(await store.nextDueAt()).toBeLessThanOrEqual(at)
        await store.put({ ...record, version: 2, state: 'closed', timers: {}, nextDueAt: null }, 1)
      }),
      replayParameters(40),
    )
    expect(await store.nextDueAt()).toBeNull()
  })

  describe('corrupted data', () => {
    it('a record key holding something that is not a record is a StoreError on read', async () => {
      const prefix = fresh('corrupt')
      const store = createRedisStore({ client, prefix })
      const record = sampleRecord({
        nextDueAt: T0,
        timers: { queue: T0 },
        state: 'queued',
        agentId: null,
        capacityHeld: false,
        capacitySince: null,
      })
      await store.put(record, null)
      const unreadable = ['{not json', '"a string"', JSON.stringify({ ...record, state: 'lost' })]
      for (const bad of [...unreadable, JSON.stringify({ ...record, id: 'other' })]) {
        await client.set(`${prefix}conv:${record.id}`, bad)
        const error = await storeError(store.get(record.id))
        expect(error.operation).toBe('get')
        expect(error.conversationId).toBe(record.id)
        expect(error.cause).toBeInstanceOf(Error)
        if (unreadable.includes(bad)) expect((await storeError(store.due(T0, 10))).operation).toBe('due')
      }
      await client.set(`${prefix}conv:${record.id}`, '{not json')
      expect((await storeError(store.getByReconnectId(record.reconnectId))).operation).toBe('getByReconnectId')
      const put = await storeError(store.put({ ...record, version: 2 }, 1))
      expect(put.message).toMatch(/not valid JSON/)
      expect(await client.get(`${prefix}conv:${record.id}`)).toBe('{not json')
    })

    it('a script that cannot apply every write applies none', async () => {
      const prefix = fresh('wrongtype')
      const store = createRedisStore({ client, prefix })
      const record = sampleRecord({ agentId: 'agent-a' })
      await store.put(record, null)
      await client.set(`${prefix}held:agent-b`, 'not a set')
      const moved = {
        ...record,
        version: 2,
        agentId: 'agent-b',
        reconnectId: 'moved-reconnect-id-00',
        nextDueAt: T0 + 5,
        timers: { window: T0 + 5 },
        state: 'reconnectable' as State,
      }
      const error = await storeError(store.put(moved, 1))
      expect(error.message).toMatch(/WRONGTYPE/)
      expect(await store.get(record.id)).toEqual(record)
      expect((await store.heldBy('agent-a')).map((r) => r.id)).toEqual([record.id])
      expect(await store.getByReconnectId(moved.reconnectId)).toBeUndefined()
      expect(await store.nextDueAt()).toBeNull()
    })

    it('the same on a value the version before wrote: its index entries stay where they were', async () => {
      for (const broken of ['outbox:pending', 'outbox:events']) {
        const prefix = fresh('wrongtype-outbox-legacy')
        const store = createRedisStore({ client, prefix })
        const record = sampleRecord({
          agentId: 'agent-a',
          customerId: 'c-1',
          state: 'reconnectable',
          nextDueAt: T0 + 5,
          timers: { window: T0 + 5 },
        })
        expect(await legacyPut(client, prefix, record, null)).toBe(1)
        await client.set(`${prefix}${broken}`, 'not a hash or sorted set')
        const resumed = { ...record, version: 2, agentId: 'agent-b', nextDueAt: null, timers: {}, state: 'active' as State }
        const events = [
          {
            type: 'transition' as const,
            id: `${record.id}:2:0`,
            conversationId: record.id,
            at: T0,
            emittedAt: T0,
            from: 'reconnectable' as State,
            to: 'active' as State,
            event: 'customer.returned',
          },
        ]
        const error = await storeError(store.put(resumed, 1, { events, visibleAt: T0 }))
        expect(error.message).toMatch(/WRONGTYPE/)
        expect(await store.get(record.id)).toEqual(record)
        expect(await store.nextDueAt()).toBe(T0 + 5)
        expect(await store.findResumable(record.widgetId, 'c-1', T0)).toEqual(record)
        expect((await store.heldBy('agent-a')).map((r) => r.id)).toEqual([record.id])
      }
    })

    it('a write whose outbox key holds another type applies none of its writes, events included', async () => {
      for (const broken of ['outbox:pending', 'outbox:events']) {
        const prefix = fresh('wrongtype-outbox')
        const store = createRedisStore({ client, prefix })
        const record = sampleRecord({ agentId: 'agent-a' })
        await store.put(record, null)
        await client.set(`${prefix}${broken}`, 'not a hash or sorted set')
        const moved = {
          ...record,
          version: 2,
          agentId: 'agent-b',
          nextDueAt: T0 + 5,
          timers: { window: T0 + 5 },
          state: 'reconnectable' as State,
        }
        const events = [0, 1].map((i) => ({
          type: 'transition' as const,
          id: `${record.id}:2:${i}`,
          conversationId: record.id,
          at: T0,
          emittedAt: T0,
          from: 'active' as State,
          to: 'reconnectable' as State,
          event: 'customer.disconnected',
        }))
        const error = await storeError(store.put(moved, 1, { events, visibleAt: T0 }))
        expect(error.message).toMatch(/WRONGTYPE/)
        expect(await store.get(record.id)).toEqual(record)
        expect((await store.heldBy('agent-a')).map((r) => r.id)).toEqual([record.id])
        expect(await store.heldBy('agent-b')).toEqual([])
        expect(await store.nextDueAt()).toBeNull()
        await client.del(`${prefix}${broken}`)
        expect(await store.claimEvents(T0 + 1_000, 1_000, 10)).toEqual([])
      }
    })

    it('refuses to store a value that is not a record, with a typed error', async () => {
      const store = createRedisStore({ client, prefix: fresh('refuse') })
      const invalid = [
        { ...sampleRecord(), state: 'gone' },
        { ...sampleRecord(), nextDueAt: Number.NaN },
        { ...sampleRecord(), id: 'lone\ud800surrogate' },
      ]
      for (const record of invalid) {
        let thrown: unknown
        await store.put(record as ConversationRecord, null).catch((e: unknown) => (thrown = e))
        expect(isReconnectError(thrown) && thrown.code === 'invalid-argument').toBe(true)
      }
      await expect(store.put(sampleRecord(), 1.5)).rejects.toThrow(/expectedVersion must be an integer/)
      await expect(store.due(Number.NaN, 1)).rejects.toThrow(/due\(now\)/)
    })
  })

  it('refuses a reconnect id another conversation holds with StoreError, writing nothing', async () => {
    const prefix = fresh('rid-clash')
    const store = createRedisStore({ client, prefix })
    const first = sampleRecord()
    const second = sampleRecord({ state: 'reconnectable', customerId: 'c-1', timers: { window: T0 + 5 }, nextDueAt: T0 + 5 })
    await store.put(first, null)
    await store.put(second, null)
    const before = await contentsUnder(client, prefix)

    const moved = {
      ...second,
      version: 2,
      reconnectId: first.reconnectId,
      agentId: 'agent-z',
      state: 'active' as State,
      timers: {},
      nextDueAt: null,
    }
    const clash = await storeError(store.put(moved, 1))
    expect(clash).toMatchObject({ code: 'store-failure', operation: 'put', conversationId: second.id })
    expect(String(clash.cause)).toMatch(/already belongs to another conversation/)
    const created = sampleRecord({ reconnectId: first.reconnectId })
    expect((await storeError(store.put(created, null))).conversationId).toBe(created.id)
    expect(await contentsUnder(client, prefix)).toEqual(before)
    expect((await store.getByReconnectId(first.reconnectId))?.id).toBe(first.id)

    // A version conflict is reported first, as on PostgreSQL.
    expect(isConflictError(await store.put({ ...moved, version: 6 }, 5).catch((e: unknown) => e))).toBe(true)
    expect(isConflictError(await store.put({ ...first, reconnectId: second.reconnectId }, null).catch((e: unknown) => e))).toBe(true)

    // An index entry whose conversation no longer holds the id (or is gone) does not block it.
    await client.set(`${prefix}rid:left-behind-rid-00000`, first.id)
    await client.set(`${prefix}rid:vanished-rid-0000000`, 'conv-that-is-gone')
    await store.put({ ...second, version: 2, reconnectId: 'left-behind-rid-00000' }, 1)
    await store.put({ ...first, version: 2, reconnectId: 'vanished-rid-0000000' }, 1)
    expect((await store.getByReconnectId('left-behind-rid-00000'))?.id).toBe(second.id)
    expect((await store.getByReconnectId('vanished-rid-0000000'))?.id).toBe(first.id)
  })

  it('works under an ioredis keyPrefix: every key lands under keyPrefix + prefix', async () => {
    const keyPrefix = fresh('ioredis')
    const prefixed = await connect(url, { keyPrefix })
    try {
      const store = createRedisStore({ client: prefixed, prefix: 'inner:' })
      const a = sampleRecord({
        state: 'reconnectable',
        customerId: 'c-1',
        agentId: 'agent-k',
        timers: { window: T0 + 9 },
        nextDueAt: T0 + 9,
      })
      await store.put(a, null)
      await store.put({ ...a, version: 2, reconnectId: 'renewed-reconnect-id0', agentId: 'agent-m' }, 1)
      expect((await store.heldBy('agent-m')).map((r) => r.id)).toEqual([a.id])
      expect(await store.heldBy('agent-k')).toEqual([])
      expect((await store.findResumable('default', 'c-1', T0))?.id).toBe(a.id)
      expect(await store.getByReconnectId('renewed-reconnect-id0')).toMatchObject({ id: a.id, version: 2 })
      // The reconnect id check compares key names built in Lua with the prefixed one ioredis sent.
      expect((await storeError(store.put(sampleRecord({ reconnectId: 'renewed-reconnect-id0' }), null))).operation).toBe('put')
      expect(await keysUnder(client, keyPrefix)).toEqual(
        [
          `${keyPrefix}inner:conv:${a.id}`,
          `${keyPrefix}inner:customer:c-1`,
          `${keyPrefix}inner:due`,
          `${keyPrefix}inner:held:agent-m`,
          `${keyPrefix}inner:resumable:7:default:c-1`,
          `${keyPrefix}inner:rid:renewed-reconnect-id0`,
        ].sort(),
      )
    } finally {
      prefixed.disconnect()
    }
  })

  it('reads, rewrites and deletes records the version before wrote, and that version can still rewrite ours', async () => {
    const prefix = fresh('upgrade')
    const store = createRedisStore({ client, prefix })
    const waiting = sampleRecord({
      id: 'old-1',
      state: 'reconnectable',
      customerId: 'c-1',
      agentId: 'agent-1',
      timers: { window: T0 + 50 },
      nextDueAt: T0 + 50,
      history: [{ at: T0, event: 'customer.disconnected', from: 'active', to: 'reconnectable' }],
    })
    const other = sampleRecord({ id: 'old-2', customerId: 'c-1', agentId: 'agent-1' })
    expect(await legacyPut(client, prefix, waiting, null)).toBe(1)
    expect(await legacyPut(client, prefix, other, null)).toBe(1)
    expect((await client.get(`${prefix}conv:${waiting.id}`))?.startsWith('{"id":')).toBe(true)

    expect(await store.get(waiting.id)).toEqual(waiting)
    expect(await store.getByReconnectId(waiting.reconnectId)).toEqual(waiting)
    expect(await store.findResumable(waiting.widgetId, 'c-1', T0)).toEqual(waiting)
    expect(await store.due(T0 + 50, 10)).toEqual([waiting])
    expect((await store.heldBy('agent-1')).map((r) => r.id).sort()).toEqual([waiting.id, other.id])
    expect((await store.byCustomer('c-1')).map((r) => r.id).sort()).toEqual([waiting.id, other.id])
    expect(isConflictError(await store.put({ ...waiting, version: 3 }, 2).catch((e: unknown) => e))).toBe(true)

    // The next write moves it out of every index it left, and stores the index in front of the JSON.
    const resumed = { ...waiting, version: 2, state: 'active' as State, timers: {}, nextDueAt: null, agentId: 'agent-2' }
    await store.put(resumed, 1)
    expect(await store.get(waiting.id)).toEqual(resumed)
    expect((await client.get(`${prefix}conv:${waiting.id}`))?.startsWith('{"~index":[')).toBe(true)
    expect(await store.findResumable(waiting.widgetId, 'c-1', T0)).toBeUndefined()
    expect(await store.nextDueAt()).toBeNull()
    expect((await store.heldBy('agent-1')).map((r) => r.id)).toEqual([other.id])

    // A node still on the version before reads our value as JSON and rewrites it in its own form.
    const ended = { ...resumed, version: 3, state: 'wrap-up' as State, endedBy: 'agent' as const }
    expect(await legacyPut(client, prefix, ended, 1)).toBe(0)
    expect(await legacyPut(client, prefix, ended, 2)).toBe(1)
    expect(await store.get(waiting.id)).toEqual(ended)
    expect((await store.heldBy('agent-2')).map((r) => r.id)).toEqual([waiting.id])

    expect(await store.migrate()).toBeDefined()
    expect(await store.delete(other.id, 1)).toBe(true)
    expect(await store.delete(waiting.id, 3)).toBe(true)
    expect(await keysUnder(client, prefix)).toEqual([])
  })

  it('a value a node of the version before rewrote with our index still in front is written and deleted by its own version', async () => {
    const prefix = fresh('stale-index')
    const store = createRedisStore({ client, prefix })
    const first = sampleRecord({ id: 'stale-1', customerId: 'c-1', agentId: 'agent-1' })
    await store.put(first, null)
    // That node reads the stored JSON whole, keeps the two members it does not know, and writes
    // the next version back with them: the index in front still says version 1.
    const raw = JSON.parse((await client.get(`${prefix}conv:${first.id}`)) ?? 'null') as Record<string, unknown>
    expect(Array.isArray(raw['~index'])).toBe(true)
    const rewritten = { ...raw, version: 2, agentId: 'agent-2' } as unknown as ConversationRecord
    expect(await legacyPut(client, prefix, rewritten, 1)).toBe(1)
    expect((await client.get(`${prefix}conv:${first.id}`))?.startsWith('{"~index":[1,')).toBe(true)

    const second = { ...first, version: 2, agentId: 'agent-2' }
    expect(await store.get(first.id)).toEqual(second)
    const third = { ...second, version: 3, agentId: 'agent-3' }
    await store.put(third, 2)
    expect(await store.get(first.id)).toEqual(third)
    expect((await store.heldBy('agent-1')).map((r) => r.id)).toEqual([])
    expect((await store.heldBy('agent-3')).map((r) => r.id)).toEqual([first.id])

    // The same once more, then a delete on the version the record holds.
    const again = JSON.parse((await client.get(`${prefix}conv:${first.id}`)) ?? 'null') as Record<string, unknown>
    expect(await legacyPut(client, prefix, { ...again, version: 4 } as unknown as ConversationRecord, 3)).toBe(1)
    expect(await store.delete(first.id, 4)).toBe(true)
    expect(await keysUnder(client, prefix)).toEqual([])
  })

  it('answers every query like the memory store and leaves no stale index key, also over values the version before wrote (model-based)', async () => {
    const ids = ['conv-0', 'conv-1', 'conv-2', 'conv-3']
    const reconnectIds = ['rid-aaaaaaaaaaaaaaaaaa', 'rid-b:bbbbbbbbbbbbbbbb', 'rid-ü☃ccccccccccccccc']
    const widgets = ['default', 'w:1', 'ñ{x}']
    const customers = [null, 'c1', 'c:1', '☃ü']
    const agents = [null, 'a1', 'a:2', 'é']
    const states: State[] = ['queued', 'active', 'disconnected', 'reconnectable', 'wrap-up', 'closed']
    const write = fc.record({
      slot: fc.nat({ max: ids.length - 1 }),
      wrongVersion: fc.boolean(),
      reconnectId: fc.constantFrom(...reconnectIds),
      widgetId: fc.constantFrom(...widgets),
      customerId: fc.constantFrom(...customers),
      agentId: fc.constantFrom(...agents),
      state: fc.constantFrom(...states),
      capacityHeld: fc.boolean(),
      window: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
      remove: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
      // Written by a node of the version before, whose values carry no index (a rolling upgrade).
      legacy: fc.integer({ min: 0, max: 2 }).map((n) => n === 0),
    })

    await fc.assert(
      fc.asyncProperty(fc.array(write, { minLength: 1, maxLength: 25 }), fc.integer({ min: 0, max: 100 }), async (writes, probe) => {
        const prefix = fresh('model')
        const redisStore = createRedisStore({ client, prefix })
        const memory = createMemoryStore()
        let clock = T0
        for (const { slot, wrongVersion, window, remove, legacy, ...fields } of writes) {
          const id = ids[slot]!
          const current = await memory.get(id)
          if (remove) {
            const version = wrongVersion ? (current?.version ?? 0) + 7 : (current?.version ?? 1)
            const deleted = await Promise.allSettled([memory.delete!(id, version), redisStore.delete(id, version)])
            if (deleted[0]!.status === 'fulfilled') expect(deleted[1]).toEqual(deleted[0])
            else expect(deleted.map((o) => o.status === 'rejected' && isConflictError(o.reason))).toEqual([true, true])
            continue
          }
          clock += 1
          const version = (current?.version ?? 0) + 1
          const record = sampleRecord({
            ...fields,
            id,
            timers: window === undefined ? {} : { window: T0 + window },
            nextDueAt: window === undefined ? null : T0 + window,
            capacitySince: fields.capacityHeld ? clock : null,
            createdAt: current?.createdAt ?? clock,
            updatedAt: clock,
            version,
          })
          const expected = wrongVersion ? version + 7 : current === undefined ? null : current.version
          // The memory store re-points a reconnect id that another conversation holds; Redis refuses
          // that write (after the version check), like PostgreSQL, so the model skips it.
          const holder = await memory.getByReconnectId(record.reconnectId)
          if (!wrongVersion && holder !== undefined && holder.id !== id) {
            expect((await storeError(redisStore.put(record, expected))).message).toMatch(/already belongs to another conversation/)
            continue
          }
          if (legacy) {
            const written = await legacyPut(client, prefix, record, expected)
            const outcome = await memory.put(record, expected).then(
              () => 1,
              () => 0,
            )
            expect(written).toBe(outcome)
            continue
          }
          const outcomes = await Promise.allSettled([memory.put(record, expected), redisStore.put(record, expected)])
          expect(outcomes.map((o) => o.status)).toEqual([outcomes[0]!.status, outcomes[0]!.status])
          for (const o of outcomes) if (o.status === 'rejected') expect(isConflictError(o.reason)).toBe(true)
        }
        await expectSameAnswers(memory, redisStore, { ids, reconnectIds, widgets, customers, agents, now: T0 + probe })
        // The claims of the due calls above are no index: Redis expires them after claimMs.
        const left = (await keysUnder(client, prefix)).filter((key) => !key.startsWith(`${prefix}claim:`))
        expect(left).toEqual(await expectedKeys(memory, prefix, { ids, reconnectIds }))
        await dropPrefixes(client, [prefix])
      }),
      replayParameters(80),
    )
  })

  it('never lets two concurrent writers both win, across clients', async () => {
    const prefix = fresh('race')
    const other = await connect(url)
    try {
      const stores = [createRedisStore({ client, prefix }), createRedisStore({ client: other, prefix })]
      const records = Array.from({ length: 50 }, () => sampleRecord())
      await Promise.all(records.map((r) => stores[0]!.put(r, null)))
      const attempts = records.flatMap((r) =>
        [0, 1, 2, 3].map((n) => ({ store: stores[n % 2]!, record: { ...r, version: 2, agentId: `agent-${n}` } })),
      )
      const results = await Promise.allSettled(attempts.map((a) => a.store.put(a.record, 1)))
      for (const record of records) {
        const won = attempts.filter((a, i) => a.record.id === record.id && results[i]!.status === 'fulfilled')
        expect(won).toHaveLength(1)
        expect(await stores[1]!.get(record.id)).toEqual(won[0]!.record)
      }
      for (const r of results) if (r.status === 'rejected') expect(isConflictError(r.reason)).toBe(true)
    } finally {
      other.disconnect()
    }
  })
})

async function expectSameAnswers(
  memory: ConversationStore,
  redis: ConversationStore,
  domain: {
    ids: string[]
    reconnectIds: string[]
    widgets: string[]
    customers: (string | null)[]
    agents: (string | null)[]
    now: number
  },
): Promise<void> {
  for (const id of domain.ids) expect(await redis.get(id)).toEqual(await memory.get(id))
  for (const rid of domain.reconnectIds) expect(await redis.getByReconnectId(rid)).toEqual(await memory.getByReconnectId(rid))
  for (const widget of domain.widgets) {
    for (const customer of domain.customers) {
      if (customer === null) continue
      expect(await redis.findResumable(widget, customer, domain.now)).toEqual(await memory.findResumable(widget, customer, domain.now))
    }
  }
  const byId = (a: ConversationRecord, b: ConversationRecord): number => (a.id < b.id ? -1 : 1)
  for (const customer of domain.customers) {
    if (customer === null) continue
    expect((await redis.byCustomer!(customer)).sort(byId)).toEqual((await memory.byCustomer!(customer)).sort(byId))
  }
  for (const agent of domain.agents) {
    if (agent === null) continue
    expect((await redis.heldBy(agent)).sort(byId)).toEqual((await memory.heldBy(agent)).sort(byId))
  }
  // Earliest first is the contract; among equal deadlines any order (and, at the limit, any of them) will do.
  for (const limit of [1, 2, 100]) {
    const [fromRedis, fromMemory] = [await redis.due(domain.now, limit), await memory.due(domain.now, limit)]
    expect(fromRedis.map((r) => r.nextDueAt)).toEqual(fromMemory.map((r) => r.nextDueAt))
    expect(new Set(fromRedis.map((r) => r.id)).size).toBe(fromRedis.length)
    for (const record of fromRedis) expect(record).toEqual(await memory.get(record.id))
  }
  expect(await redis.nextDueAt()).toBe(await memory.nextDueAt())
}

/** Every key under `prefix` with its type and whole value, to show that a refused write changed nothing. */
async function contentsUnder(client: Redis, prefix: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for (const key of await keysUnder(client, prefix)) {
    const type = await client.type(key)
    if (type === 'string') out[key] = await client.get(key)
    else if (type === 'zset') out[key] = await client.zrange(key, 0, -1, 'WITHSCORES')
    else if (type === 'set') out[key] = (await client.smembers(key)).sort()
    else out[key] = type
  }
  return out
}

/** The keys the Redis store should hold for the memory store's records, built independently of keys.ts. */
async function expectedKeys(
  memory: ConversationStore,
  prefix: string,
  domain: { ids: string[]; reconnectIds: string[] },
): Promise<string[]> {
  const keys = new Set<string>()
  for (const id of domain.ids) {
    const r = await memory.get(id)
    if (r === undefined) continue
    keys.add(`${prefix}conv:${r.id}`)
    if (r.nextDueAt !== null) keys.add(`${prefix}due`)
    if (r.state === 'reconnectable' && r.customerId !== null) {
      keys.add(`${prefix}resumable:${Buffer.byteLength(r.widgetId)}:${r.widgetId}:${r.customerId}`)
    }
    if (r.capacityHeld && r.agentId !== null) keys.add(`${prefix}held:${r.agentId}`)
    if (r.customerId !== null) keys.add(`${prefix}customer:${r.customerId}`)
  }
  for (const rid of domain.reconnectIds) if ((await memory.getByReconnectId(rid)) !== undefined) keys.add(`${prefix}rid:${rid}`)
  return [...keys].sort()
}

describeWithRedisServer('redis store: a server killed mid-run', () => {
  let server: OwnedRedis | undefined
  afterAll(async () => {
    await server?.dispose()
  })

  it('rejects with StoreError while down, then has every acknowledged write and works again', async () => {
    server = await startOwnedRedis()
    const owned = server
    const client = await connect(owned.url)
    const prefix = randomPrefix('fault')
    const store = createRedisStore({ client, prefix })
    try {
      const service = await serviceAcrossOutage(store)
      // Latest acknowledged version of each record, and writes whose outcome the kill left unknown.
      const acknowledged = new Map<string, ConversationRecord>()
      const unknown = new Map<string, ConversationRecord>()
      const failures: unknown[] = []
      let killing: Promise<void> | undefined

      async function lane(lane: number): Promise<void> {
        for (let i = 0; failures.length < 12 && i < 2_000; i += 1) {
          const previous = i % 3 === 2 ? acknowledged.get(`fault-${lane}-${i - 1}`) : undefined
          const record =
            previous === undefined
              ? sampleRecord({
                  id: `fault-${lane}-${i}`,
                  state: 'reconnectable',
                  customerId: `c-${lane}`,
                  timers: { window: T0 + i },
                  nextDueAt: T0 + i,
                })
              : {
                  ...previous,
                  version: previous.version + 1,
                  state: 'wrap-up' as const,
                  endedBy: 'agent' as const,
                  timers: { wrapUp: T0 + i },
                  nextDueAt: T0 + i,
                }
          try {
            await store.put(record, previous === undefined ? null : previous.version)
            acknowledged.set(record.id, record)
          } catch (error) {
            failures.push(error)
            unknown.set(record.id, record)
          }
          if (acknowledged.size >= 150) killing ??= owned.kill()
        }
      }
      await Promise.all([0, 1, 2, 3].map(lane))
      await killing

      expect(failures.length).toBeGreaterThan(0)
      for (const failure of failures) expect(isStoreError(failure)).toBe(true)
      expect((await storeError(store.get('fault-0-0'))).operation).toBe('get')
      expect((await storeError(store.nextDueAt())).operation).toBe('nextDueAt')
      await service.whileDown()

      await owned.restart()
      await waitUntilReady(client)
      await service.afterRestart()

      for (const [id, record] of acknowledged) {
        const stored = await store.get(id)
        const maybe = unknown.get(id)
        if (maybe !== undefined && stored?.version === maybe.version) expect(stored).toEqual(maybe)
        else expect(stored).toEqual(record)
      }
      for (const [id, record] of unknown) {
        if (acknowledged.has(id)) continue
        const stored = await store.get(id)
        if (stored !== undefined) expect(stored).toEqual(record)
      }
      // Indexes came back with the records: nothing was half-written.
      const stored = (await Promise.all([...new Set([...acknowledged.keys(), ...unknown.keys()])].map((id) => store.get(id)))).filter(
        (r): r is ConversationRecord => r !== undefined,
      )
      const due = await store.due(Number.MAX_SAFE_INTEGER, Number.POSITIVE_INFINITY)
      expect(due.map((r) => r.id).sort()).toEqual(stored.map((r) => r.id).sort())
      for (const r of stored) expect((await store.getByReconnectId(r.reconnectId))?.id).toBe(r.id)

      const after = sampleRecord()
      await store.put(after, null)
      expect(await store.get(after.id)).toEqual(after)
      const first = stored[0]!
      await store.put({ ...first, version: first.version + 1, state: 'closed', timers: {}, nextDueAt: null }, first.version)
      expect((await store.get(first.id))?.state).toBe('closed')
    } finally {
      client.disconnect()
    }
  })
})

async function waitUntilReady(client: Redis): Promise<void> {
  const deadline = Date.now() + 10_000
  while (client.status !== 'ready') {
    if (Date.now() > deadline) throw new Error(`client did not reconnect (status ${client.status})`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describeWithRedisServer('redis store: Redis Cluster with a hash-tagged prefix', () => {
  let server: OwnedRedis | undefined
  let admin: Redis | undefined
  let cluster: Cluster | undefined

  beforeAll(async () => {
    server = await startOwnedRedis([
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-announce-ip',
      '127.0.0.1',
    ])
    // One node serving every slot: Redis still enforces the cluster's same-slot rule inside scripts.
    admin = await connect(server.url)
    await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383')
    const deadline = Date.now() + 10_000
    while (!String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error('single-node cluster did not become ready')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const { Cluster } = await import('ioredis')
    cluster = new Cluster([{ host: '127.0.0.1', port: server.port }], { enableOfflineQueue: true })
    await new Promise<void>((resolve, reject) => {
      cluster!.once('ready', resolve)
      cluster!.once('error', reject)
    })
  })
  afterAll(async () => {
    cluster?.disconnect()
    admin?.disconnect()
    await server?.dispose()
  })

  for (const c of storeContract(() => createRedisStore({ client: cluster!, prefix: `{${randomPrefix('cluster')}}` }))) {
    it(c.name, c.run)
  }

  it('needs the hash tag: keys built inside a script must share the slot of the declared ones', async () => {
    // Hide the cluster flag to get past the prefix check and show why it exists.
    const disguised = new Proxy(cluster!, { get: (target, key) => (key === 'isCluster' ? false : Reflect.get(target, key)) })
    const store = createRedisStore({ client: disguised, prefix: randomPrefix('untagged') })
    const error = await storeError(store.put(sampleRecord({ state: 'reconnectable', customerId: 'c-1' }), null))
    expect(String(error.cause)).toMatch(/slot|CROSSSLOT/i)
  })
})
