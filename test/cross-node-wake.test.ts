import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Redis } from 'ioredis'
import type pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { createPostgresStore } from '../src/adapters/postgres'
import { createRedisStore } from '../src/adapters/redis'
import { createReconnectService } from '../src/service/reconnect-service'
import type { ConversationStore } from '../src/store/conversation-store'
import type { ReconnectSettingsInput } from '../src/types'
import { killed, startNode } from './support/child-node'
import { createTestPool, databaseUrl, randomTableName } from './support/postgres'
import { connect, describeWithRedisServer, dropPrefixes, randomPrefix, redisUrl, startOwnedRedis } from './support/redis'

// Two backend nodes: a child process writes a deadline and is killed with SIGKILL; the survivor here
// must apply it. Its scheduler may sleep 10 minutes, so only the wake-up can explain a prompt expiry.

const writer = fileURLToPath(new URL('./support/wake-writer.mjs', import.meta.url))
const built = fileURLToPath(new URL('../dist/index.js', import.meta.url))
const SETTINGS: ReconnectSettingsInput = { enabled: true, timeLimit: { seconds: 2 }, portalUrl: 'https://shop.example/help' }
const TEN_MINUTES = 10 * 60_000

const children: ChildProcess[] = []
const cleanups: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL')
  for (const cleanup of cleanups.reverse()) await cleanup()
})

/** Starts the writer node; resolves with what it wrote once it has written it. */
function startWriter(args: string[]) {
  return startNode<{ id: string; deadline: number }>(writer, [...args, JSON.stringify(SETTINGS)], children)
}

async function survivorApplies(store: ConversationStore, writerArgs: string[]): Promise<void> {
  expect(existsSync(built), 'dist/index.js is missing: run `npm run build` (npm test builds first)').toBe(true)
  const errors: unknown[] = []
  const survivor = createReconnectService({ settings: SETTINGS, store, schedulerMaxSleepMs: TEN_MINUTES, onError: (e) => errors.push(e) })
  survivor.startScheduler()
  await survivor.idle()
  // Let the subscription reach the server before the other node writes.
  await new Promise((resolve) => setTimeout(resolve, 300))
  const { child, id, deadline } = await startWriter(writerArgs)
  await killed(child)
  // Generous bound, far below the 10-minute sleep: only a wake-up explains an expiry before it.
  const giveUp = Date.now() + 60_000
  let state = (await store.get(id))!.state
  while (state === 'reconnectable' && Date.now() < giveUp) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    state = (await store.get(id))!.state
  }
  survivor.stopScheduler()
  await survivor.idle()
  expect(state).toBe('wrap-up')
  expect(Date.now()).toBeGreaterThanOrEqual(deadline)
  expect(errors).toEqual([])
}

describe.runIf(redisUrl() !== undefined || process.env.CI === 'true')('cross-node wake-ups on Redis', () => {
  it('a deadline written by a node that is then killed is applied by a survivor that would sleep 10 minutes', async () => {
    const url = redisUrl()!
    const client = await connect(url)
    const subscriber: Redis = client.duplicate()
    const prefix = randomPrefix('wake')
    cleanups.push(async () => {
      await dropPrefixes(client, [prefix])
      subscriber.disconnect()
      client.disconnect()
    })
    const store = createRedisStore({ client, subscriber, prefix })
    expect(typeof store.watchDue).toBe('function')
    await survivorApplies(store, ['redis', url, prefix])
  }, 90_000)

  it('without a subscriber the store has no watchDue and announces nothing by default', async () => {
    const client = await connect(redisUrl()!)
    cleanups.push(async () => void client.disconnect())
    expect(createRedisStore({ client, prefix: randomPrefix('wake') }).watchDue).toBeUndefined()
  })
})

describe.runIf(databaseUrl() !== undefined || process.env.CI === 'true')('cross-node wake-ups on PostgreSQL', () => {
  it('a deadline written by a node that is then killed is applied by a survivor that would sleep 10 minutes', async () => {
    const url = databaseUrl()!
    const pool: pg.Pool = createTestPool(url)
    const table = randomTableName('cr_wake')
    const store = createPostgresStore({ pool, table, listen: true })
    await store.migrate()
    cleanups.push(async () => {
      await pool.query(`DROP TABLE IF EXISTS ${table}`)
      await pool.end()
    })
    await survivorApplies(store, ['postgres', url, table])
  }, 90_000)
})

describeWithRedisServer('the scheduler after a Redis outage', () => {
  it('retries after the short back-off once the server is back, not after the longest sleep', async () => {
    const server = await startOwnedRedis()
    cleanups.push(() => server.dispose())
    const client = await connect(server.url)
    cleanups.push(async () => void client.disconnect())
    const store = createRedisStore({ client, prefix: randomPrefix('outage') })
    const errors: unknown[] = []
    const service = createReconnectService({ settings: SETTINGS, store, schedulerMaxSleepMs: TEN_MINUTES, onError: (e) => errors.push(e) })
    const chat = await service.start({ agentId: 'agent-1', customerId: 'customer-1' })
    await service.disconnect(chat.id)
    service.startScheduler()
    await service.idle()
    // Down across the deadline: the sweep and nextDueAt both fail.
    await server.kill()
    const failedOnce = Date.now() + 30_000
    while (errors.length < 2 && Date.now() < failedOnce) await new Promise((resolve) => setTimeout(resolve, 100))
    expect(errors.length).toBeGreaterThanOrEqual(2)
    await server.restart()
    // Only the short retry explains an expiry before the 10-minute sleep.
    const giveUp = Date.now() + 60_000
    let state: string | undefined
    while (Date.now() < giveUp) {
      state = await store.get(chat.id).then(
        (r) => r?.state,
        () => undefined,
      )
      if (state === 'wrap-up') break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    service.stopScheduler()
    await service.idle()
    expect(state).toBe('wrap-up')
  }, 120_000)
})
