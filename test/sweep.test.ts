import fc from 'fast-check'
import type { Redis } from 'ioredis'
import type pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { createPostgresStore } from '../src/adapters/postgres'
import { createRedisStore } from '../src/adapters/redis'
import { isBadRecordError, isReconnectError } from '../src/errors'
import { BAD_RECORD_RETRY_MS, SWEEP_SETTINGS_TIMEOUT_MS } from '../src/service/sweep'
import { createReconnectService } from '../src/service/reconnect-service'
import type { ConversationStore } from '../src/store/conversation-store'
import { createMemoryStore } from '../src/store/memory-store'
import { createManualClock } from '../src/testing/manual-clock'
import type { ReconnectSettingsInput, ServiceEvent } from '../src/types'
import { replayParameters } from './support/fc-replay'
import { createTestPool, databaseUrl, randomTableName } from './support/postgres'
import { connect, dropPrefixes, randomPrefix, redisUrl } from './support/redis'

const MINUTE = 60_000
const SETTINGS: ReconnectSettingsInput = { enabled: true, timeLimit: { minutes: 5 }, portalUrl: 'https://shop.example/help' }

/** A store that can damage one stored record the way a bad deploy or a hand edit would. */
interface DamageableStore {
  name: string
  store: ConversationStore
  /** Overwrites the stored record of `id` with an invalid `state` (or unparseable JSON). */
  damage(id: string, how: 'state' | 'json'): Promise<void>
}

let redis: Promise<Redis> | undefined
let pool: pg.Pool | undefined
const prefixes: string[] = []
const tables: string[] = []

const kinds: Array<{ name: string; make(): Promise<DamageableStore> }> = []
if (redisUrl() !== undefined || process.env.CI === 'true') {
  kinds.push({
    name: 'Redis',
    async make() {
      redis ??= connect(redisUrl() ?? 'redis://unset')
      const client = await redis
      const prefix = randomPrefix('sweep')
      prefixes.push(prefix)
      return {
        name: 'Redis',
        store: createRedisStore({ client, prefix }),
        async damage(id, how) {
          const key = `${prefix}conv:${id}`
          // A stored value is the record's JSON with the index the scripts read in front of it.
          const record = JSON.parse((await client.get(key))!) as { state: string }
          record.state = 'bogus'
          await client.set(key, how === 'state' ? JSON.stringify(record) : '{not json')
        },
      }
    },
  })
}
if (databaseUrl() !== undefined || process.env.CI === 'true') {
  kinds.push({
    name: 'PostgreSQL',
    async make() {
      pool ??= createTestPool(databaseUrl() ?? 'postgres://unset')
      const table = randomTableName('cr_sweep')
      tables.push(table)
      const store = createPostgresStore({ pool, table })
      await store.migrate()
      return {
        name: 'PostgreSQL',
        store,
        async damage(id, how) {
          // jsonb cannot hold unparseable text: a record that is no conversation stands in for it.
          const value = how === 'state' ? `jsonb_set(record, '{state}', '"bogus"')` : `'{"not":"a record"}'::jsonb`
          await pool!.query(`UPDATE ${table} SET record = ${value} WHERE id = $1`, [id])
        },
      }
    },
  })
}

afterAll(async () => {
  if (redis !== undefined) {
    const client = await redis
    await dropPrefixes(client, prefixes)
    client.disconnect()
  }
  if (pool !== undefined) {
    for (const table of tables) await pool.query(`DROP TABLE IF EXISTS ${table}`)
    await pool.end()
  }
})

/** Counts the store's `due` calls. */
function counting(store: ConversationStore): ConversationStore & { dueCalls: number } {
  const counted = Object.create(store) as ConversationStore & { dueCalls: number }
  counted.dueCalls = 0
  counted.due = (...args) => {
    counted.dueCalls += 1
    return store.due(...args)
  }
  return counted
}

for (const kind of kinds) {
  describe(`one bad record on ${kind.name}`, () => {
    for (const how of ['state', 'json'] as const) {
      it(`(${how}) is skipped and reported as bad-record; every other window still expires`, async () => {
        const { store, damage } = await kind.make()
        const clock = createManualClock()
        const errors: unknown[] = []
        const service = createReconnectService({ settings: SETTINGS, store, clock, onError: (e) => errors.push(e) })
        const ids: string[] = []
        for (let i = 0; i < 6; i += 1) {
          const chat = await service.start({ agentId: `agent-${i}`, customerId: `c-${i}` })
          await service.disconnect(chat.id)
          ids.push(chat.id)
          clock.advance(1_000)
        }
        // The earliest deadline is the damaged one: it is the first one `due` meets.
        await damage(ids[0]!, how)
        clock.advance(5 * MINUTE)
        expect(await service.runDueTimers()).toBe(5)
        for (const id of ids.slice(1)) expect((await store.get(id))!.state).toBe('wrap-up')
        expect(errors).toHaveLength(1)
        expect(isBadRecordError(errors[0])).toBe(true)
        expect(errors[0]).toMatchObject({ code: 'bad-record', conversationId: ids[0] })
        // Set aside: neither reported nor counted again by the next sweeps for a while.
        expect(await service.runDueTimers()).toBe(0)
        expect(errors).toHaveLength(1)
        clock.advance(BAD_RECORD_RETRY_MS)
        await service.runDueTimers()
        expect(errors, 'reported again once its back-off has passed').toHaveLength(2)
      })
    }

    it('does not make the scheduler fetch it in a tight loop', async () => {
      const made = await kind.make()
      const store = counting(made.store)
      const clock = createManualClock()
      const errors: unknown[] = []
      const service = createReconnectService({ settings: SETTINGS, store, clock, onError: (e) => errors.push(e) })
      const bad = await service.start({ agentId: 'a', customerId: 'c' })
      await service.disconnect(bad.id)
      await made.damage(bad.id, 'state')
      clock.advance(5 * MINUTE)
      service.startScheduler()
      await service.idle()
      const good = await service.start({ agentId: 'b', customerId: 'd' })
      await service.disconnect(good.id)
      store.dueCalls = 0
      // Ten minutes of clock, stepping through every timeout the scheduler arms.
      const end = clock.now() + 10 * MINUTE
      for (let next = clock.nextTimerAt(); next !== null && next <= end; next = clock.nextTimerAt()) {
        clock.set(Math.max(next, clock.now()))
        await service.idle()
      }
      service.stopScheduler()
      expect((await store.get(good.id))!.state).toBe('wrap-up')
      // Backing off doubles from 1 s up to the longest sleep: 10 minutes take a few dozen sweeps, not one per tick.
      expect(store.dueCalls).toBeLessThan(40)
      expect(errors.filter(isBadRecordError).length).toBeLessThanOrEqual(11)
      expect(errors.every(isBadRecordError)).toBe(true)
    })
  })
}

describe('settings that fail for one widget', () => {
  it('a settings function that throws for one widget skips only its conversations', async () => {
    const clock = createManualClock()
    const errors: unknown[] = []
    let broken = false
    const service = createReconnectService({
      settings: (widgetId) => {
        if (broken && widgetId === 'w-3') throw new Error('settings backend down for w-3')
        return SETTINGS
      },
      clock,
      onError: (e) => errors.push(e),
    })
    const chats = []
    for (let i = 0; i < 10; i += 1) {
      const chat = await service.start({ widgetId: `w-${i % 5}`, agentId: `a-${i}` })
      await service.disconnect(chat.id)
      chats.push(chat)
    }
    broken = true
    clock.advance(5 * MINUTE)
    expect(await service.runDueTimers()).toBe(8)
    const skipped = chats.filter((c) => c.widgetId === 'w-3').map((c) => c.id)
    expect(errors.map((e) => (e as { conversationId?: string }).conversationId).sort()).toEqual(skipped.sort())
    expect(errors.every((e) => isBadRecordError(e) && (e.cause as Error).message.includes('w-3'))).toBe(true)
  })

  it('a settings function that never settles for one widget costs one timeout; the 49 other windows expire', async () => {
    const clock = createManualClock()
    const errors: unknown[] = []
    const store = createMemoryStore()
    const service = createReconnectService({
      store,
      settings: (widgetId) => (widgetId === 'w-hangs' && hanging ? new Promise<never>(() => {}) : SETTINGS),
      clock,
      onError: (e) => errors.push(e),
    })
    let hanging = false
    const ids: string[] = []
    for (let i = 0; i < 50; i += 1) {
      const chat = await service.start({ widgetId: i % 10 === 0 ? 'w-hangs' : `w-${i}`, agentId: `a-${i}` })
      await service.disconnect(chat.id)
      ids.push(chat.id)
    }
    hanging = true
    clock.advance(5 * MINUTE)
    service.startScheduler()
    // The sweep waits for the hanging widget's settings until the timeout, on the service's clock.
    let settled = false
    const idle = service.idle().then(() => (settled = true))
    let waited = 0
    while (!settled && waited < 10 * SWEEP_SETTINGS_TIMEOUT_MS) {
      await new Promise((resolve) => setImmediate(resolve))
      clock.advance(500)
      waited += 500
    }
    await idle
    expect(waited, 'one timeout for the widget, not one per conversation').toBeLessThanOrEqual(2 * SWEEP_SETTINGS_TIMEOUT_MS)
    service.stopScheduler()
    // Read from the store: the service's own reads would ask the hanging settings function again.
    const states = await Promise.all(ids.map(async (id) => (await store.get(id))?.state))
    expect(states.filter((s) => s === 'wrap-up')).toHaveLength(45)
    expect(errors.filter(isBadRecordError)).toHaveLength(5)
  })

  it('sweepSettingsTimeoutMs is an option; a bad value is invalid-argument', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, '5000']) {
      let thrown: unknown
      try {
        createReconnectService({ settings: SETTINGS, sweepSettingsTimeoutMs: bad as number })
      } catch (error) {
        thrown = error
      }
      expect(isReconnectError(thrown) && thrown.code === 'invalid-argument').toBe(true)
    }
  })
})

describe('late window-closing notices', () => {
  it('a sweep after the window has ended sends no window-closing; one in time still does', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 10 * MINUTE }), async (late) => {
        const clock = createManualClock()
        const events: ServiceEvent[] = []
        const service = createReconnectService({
          settings: { ...SETTINGS, warnBefore: { minutes: 1 } },
          store: createMemoryStore(),
          clock,
          onEvent: (e) => void events.push(e),
        })
        const chat = await service.start({ agentId: 'a', customerId: 'c' })
        await service.disconnect(chat.id)
        const warnAt = clock.now() + 4 * MINUTE
        const windowEnds = clock.now() + 5 * MINUTE
        clock.set(warnAt + late)
        await service.runDueTimers()
        const warned = events.some((e) => e.type === 'notice' && e.message === 'window-closing')
        expect(warned).toBe(clock.now() < windowEnds)
      }),
      replayParameters(60),
    )
  })
})
