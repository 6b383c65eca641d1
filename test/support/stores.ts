import type { Redis } from 'ioredis'
import { expect } from 'vitest'
import type pg from 'pg'
import { createPostgresStore } from '../../src/adapters/postgres'
import { createRedisStore } from '../../src/adapters/redis'
import { isStoreError } from '../../src/errors'
import { createReconnectService } from '../../src/service/reconnect-service'
import { createMemoryStore } from '../../src/store/memory-store'
import { createManualClock } from '../../src/testing/manual-clock'
import type { ConversationStore } from '../../src/store/conversation-store'
import { createTestPool, databaseUrl, randomTableName } from './postgres'
import { connect, dropPrefixes, randomPrefix, redisUrl } from './redis'

/** One kind of store the service suites run on; `make` returns a fresh, empty store. */
export interface StoreKind {
  name: string
  make(): Promise<ConversationStore>
}

let redis: Promise<Redis> | undefined
let pool: pg.Pool | undefined
const prefixes: string[] = []
const tables: string[] = []

function missing(name: string, hint: string): StoreKind | undefined {
  // Under CI=true a missing server fails the suite instead of skipping it.
  if (process.env.CI === 'true') {
    return {
      name,
      make: () => Promise.reject(new Error(`${hint} (CI=true: the ${name} service tests must run)`)),
    }
  }
  console.warn(`service tests on ${name} skipped: ${hint}`)
  return undefined
}

/**
 * The memory store, plus Redis and PostgreSQL when REDIS_URL / DATABASE_URL name a server, so a
 * service suite can run unchanged on each. Call {@link closeStores} in `afterAll`.
 */
export function storeKinds(): StoreKind[] {
  const kinds: (StoreKind | undefined)[] = [{ name: 'memory', make: async () => createMemoryStore() }]
  const redisAt = redisUrl()
  kinds.push(
    redisAt === undefined
      ? missing('Redis', 'set REDIS_URL (e.g. `export REDIS_URL=$(.ci/start-redis /tmp/redis)`)')
      : {
          name: 'Redis',
          async make() {
            redis ??= connect(redisAt)
            const prefix = randomPrefix('service')
            prefixes.push(prefix)
            return createRedisStore({ client: await redis, prefix })
          },
        },
  )
  const postgresAt = databaseUrl()
  kinds.push(
    postgresAt === undefined
      ? missing('PostgreSQL', 'set DATABASE_URL (e.g. `export DATABASE_URL=$(.ci/start-postgres /tmp/pg)`)')
      : {
          name: 'PostgreSQL',
          async make() {
            pool ??= createTestPool(postgresAt)
            const table = randomTableName('cr_service')
            tables.push(table)
            const store = createPostgresStore({ pool, table })
            await store.migrate()
            return store
          },
        },
  )
  return kinds.filter((kind): kind is StoreKind => kind !== undefined)
}

/** Removes what the stores made here wrote, and closes their connections. */
export async function closeStores(): Promise<void> {
  if (redis !== undefined) {
    const client = await redis
    await dropPrefixes(client, prefixes.splice(0))
    client.disconnect()
    redis = undefined
  }
  if (pool !== undefined) {
    for (const table of tables.splice(0)) await pool.query(`DROP TABLE IF EXISTS ${table}`)
    await pool.end()
    pool = undefined
  }
}

/**
 * A service on `store` around a server outage: one conversation is written before the outage,
 * every kind of call must fail with StoreError while the server is down, and afterwards the
 * acknowledged state is there and the service carries on.
 */
export async function serviceAcrossOutage(store: ConversationStore) {
  const service = createReconnectService({
    settings: { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://portal.example.com/chat' },
    store,
    clock: createManualClock(),
  })
  const chat = await service.start({ agentId: 'agent-1' })
  const dropped = await service.disconnect(chat.id)
  return {
    async whileDown(): Promise<void> {
      const calls: Record<string, () => Promise<unknown>> = {
        get: () => service.get(chat.id),
        start: () => service.start({ agentId: 'agent-2' }),
        endByAgent: () => service.endByAgent(chat.id),
        returnCustomer: () => service.returnCustomer({ reconnectId: chat.reconnectId }),
        runDueTimers: () => service.runDueTimers(),
      }
      for (const [name, call] of Object.entries(calls)) {
        const error = await call().then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(isStoreError(error), `service.${name} while the server is down: ${String(error)}`).toBe(true)
      }
    },
    async afterRestart(): Promise<void> {
      expect(await service.get(chat.id)).toEqual(dropped)
      expect(await service.returnCustomer({ reconnectId: chat.reconnectId })).toEqual({
        type: 'resume',
        conversationId: chat.id,
        agentId: 'agent-1',
        via: 'link',
      })
      expect((await service.get(chat.id)).state).toBe('active')
    },
  }
}
