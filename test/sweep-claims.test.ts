import type { Redis } from 'ioredis'
import type pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { createPostgresStore } from '../src/adapters/postgres'
import { createRedisStore } from '../src/adapters/redis'
import { isConflictError } from '../src/errors'
import { createReconnectService } from '../src/service/reconnect-service'
import type { ConversationStore } from '../src/store/conversation-store'
import { createManualClock, type ManualClock } from '../src/testing/manual-clock'
import type { ReconnectSettingsInput, ServiceEvent } from '../src/types'
import { createTestPool, databaseUrl, randomTableName } from './support/postgres'
import { connect, dropPrefixes, randomPrefix, redisUrl } from './support/redis'

const MINUTE = 60_000
const CLAIM_MS = 30_000
const SETTINGS: ReconnectSettingsInput = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://shop.example/help' }

/** Two store objects on one Redis prefix or PostgreSQL table, as two nodes have them, each over its own connection(s). */
interface Shared {
  name: string
  open(): Promise<[ConversationStore, ConversationStore]>
}

const clients: Redis[] = []
const prefixes: string[] = []
const pools: pg.Pool[] = []
const tables: string[] = []

const kinds: Shared[] = []
if (redisUrl() !== undefined || process.env.CI === 'true') {
  kinds.push({
    name: 'Redis',
    async open() {
      const url = redisUrl() ?? 'redis://unset'
      const [a, b] = await Promise.all([connect(url), connect(url)])
      clients.push(a, b)
      const prefix = randomPrefix('claims')
      prefixes.push(prefix)
      return [createRedisStore({ client: a, prefix, claimMs: CLAIM_MS }), createRedisStore({ client: b, prefix, claimMs: CLAIM_MS })]
    },
  })
}
if (databaseUrl() !== undefined || process.env.CI === 'true') {
  kinds.push({
    name: 'PostgreSQL',
    async open() {
      const url = databaseUrl() ?? 'postgres://unset'
      const [a, b] = [createTestPool(url), createTestPool(url)]
      pools.push(a, b)
      const table = randomTableName('cr_claims')
      tables.push(table)
      const first = createPostgresStore({ pool: a, table, claimMs: CLAIM_MS })
      await first.migrate()
      return [first, createPostgresStore({ pool: b, table, claimMs: CLAIM_MS })]
    },
  })
}

afterAll(async () => {
  if (clients[0] !== undefined) await dropPrefixes(clients[0], prefixes)
  for (const client of clients) client.disconnect()
  for (const table of tables) await pools[0]?.query(`DROP TABLE IF EXISTS "${table}"`)
  for (const pool of pools) await pool.end()
})

/** Counts the compare-and-set conflicts of a store's writes. */
function countingConflicts(store: ConversationStore): { store: ConversationStore; conflicts: () => number } {
  let conflicts = 0
  const counted = Object.create(store) as ConversationStore
  counted.put = (record, expected) =>
    store.put(record, expected).catch((error: unknown) => {
      if (isConflictError(error)) conflicts += 1
      throw error
    })
  return { store: counted, conflicts: () => conflicts }
}

/** `count` conversations whose windows have all passed at the clock's time once this returns. */
async function dueConversations(store: ConversationStore, clock: ManualClock, count: number): Promise<string[]> {
  const writer = createReconnectService({ settings: SETTINGS, store, clock })
  const ids: string[] = []
  for (let i = 0; i < count; i += 1) {
    const chat = await writer.start({ agentId: `agent-${i % 7}` })
    await writer.disconnect(chat.id)
    ids.push(chat.id)
  }
  clock.advance(31 * MINUTE)
  return ids
}

for (const kind of kinds) {
  describe(`sweep claims on ${kind.name}`, () => {
    it('two nodes sweeping at once take disjoint batches: each window is applied once, with no compare-and-set conflict', async () => {
      const [storeA, storeB] = await kind.open()
      const clock = createManualClock()
      const ids = await dueConversations(storeA, clock, 600)
      const events: ServiceEvent[] = []
      const a = countingConflicts(storeA)
      const b = countingConflicts(storeB)
      const nodes = [a, b].map(({ store }) =>
        createReconnectService({ settings: SETTINGS, store, clock, onEvent: (e) => void events.push(e), sweepConcurrency: 8 }),
      )
      const applied = await Promise.all(nodes.map((node) => node.runDueTimers()))
      expect(applied[0]! + applied[1]!).toBe(600)
      expect(a.conflicts() + b.conflicts()).toBe(0)
      const expired = events.filter((e) => e.type === 'transition' && e.event === 'window.elapsed').map((e) => e.conversationId)
      expect(expired.sort()).toEqual([...ids].sort())
      for (const id of ids) expect((await storeA.get(id))?.state).toBe('wrap-up')
    })

    it("a node that died holding a claim delays those deadlines by claimMs, no more: a survivor's scheduler applies them when the claim ends", async () => {
      const [dead, alive] = await kind.open()
      const clock = createManualClock()
      const ids = await dueConversations(dead, clock, 40)
      // The dead node's last act: its sweep claimed every due conversation, then it was gone.
      expect(await dead.due(clock.now(), 100)).toHaveLength(40)
      const survivor = createReconnectService({ settings: SETTINGS, store: alive, clock })
      expect(await survivor.runDueTimers()).toBe(0)
      // The survivor's scheduler counts the claimed deadlines from the end of the claim.
      expect(await alive.nextDueAt()).toBe(clock.now() + CLAIM_MS)
      survivor.startScheduler()
      await survivor.idle()
      clock.advance(CLAIM_MS - 1)
      await survivor.idle()
      for (const id of ids) expect((await alive.get(id))?.state).toBe('reconnectable')
      clock.advance(1)
      await survivor.idle()
      for (const id of ids) expect((await alive.get(id))?.state).toBe('wrap-up')
      survivor.stopScheduler()
    })
  })
}

if (kinds.length === 0) {
  // A file with no suite at all fails in vitest: say why it has none instead.
  describe.skip('sweep claims on Redis and PostgreSQL (skipped: set REDIS_URL or DATABASE_URL; under CI=true they run)', () => {
    it('needs a server', () => {})
  })
}
