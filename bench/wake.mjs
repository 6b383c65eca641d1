// What announcing deadlines costs: `disconnect` + `returnCustomer` at 64 callers on a store with
// `announceDeadlines: true` (after each write with a deadline, one more small script on Redis, one
// more statement on PostgreSQL, awaited) against the same store without it, in the same run.
//
//   node --expose-gc bench/wake.mjs [--json] [--quick]
//   REDIS_URL=… DATABASE_URL=… enable the rows.
import { concurrentRate, deleteRedisPrefix, importDist, main, median, quick, row } from './lib.mjs'

const lib = await importDist()

const CALLERS = 64
const SECONDS = quick ? 1 : 2
const ROUNDS = quick ? 3 : 5
const POOL_SIZE = 16
const settingsInput = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://shop.example/help' }
const tag = `benchwake${process.pid}`

/** Calls per second of `call` at `CALLERS` callers. */
function throughput(call, seconds = SECONDS) {
  return concurrentRate(CALLERS, call, seconds)
}

/**
 * Two services on one store's data, one announcing and one not; every caller drops and resumes
 * a conversation of its own, so each `disconnect` writes a reconnect window (a deadline) and
 * each resume clears it. Announcing publishes only a deadline earlier than every other stored one
 * (the script or statement decides on the server), so most announcements cost the round trip only.
 */
async function measure(name, makeStore, close) {
  const variants = {}
  for (const announce of [false, true]) {
    const service = lib.createReconnectService({ settings: settingsInput, store: makeStore(announce) })
    const chats = []
    for (let i = 0; i < CALLERS; i += 1) {
      chats.push(await service.start({ agentId: `agent-${announce}-${i}`, customerId: `customer-${announce}-${i}` }))
    }
    variants[announce ? 'on' : 'off'] = async (i) => {
      await service.disconnect(chats[i].id)
      const decision = await service.returnCustomer({ reconnectId: chats[i].reconnectId, customerId: `customer-${announce}-${i}` })
      if (decision.type !== 'resume') throw new Error(`expected a resume, got ${decision.type}`)
      return 2
    }
  }
  await throughput(variants.off, 0.3)
  await throughput(variants.on, 0.3)
  const rates = { on: [], off: [] }
  for (let round = 0; round < ROUNDS; round += 1) {
    // Which of the two goes first alternates, so neither always runs on a warmer machine.
    const order = round % 2 === 0 ? ['on', 'off'] : ['off', 'on']
    for (const key of order) rates[key].push(await throughput(variants[key]))
  }
  await close()
  const on = median(rates.on)
  const off = median(rates.off)
  const perRound = rates.on.map((v, k) => (v / rates.off[k]).toFixed(2)).join(', ')
  return row({
    name: `${name}: disconnect + returnCustomer with announceDeadlines, ${CALLERS} callers`,
    value: on,
    unit: 'calls/s',
    baseline: 'without announcing',
    baselineValue: off,
    ratio: on / off,
    note: `the same store without announcing, alternating rounds; median of ${ROUNDS} × ${SECONDS} s; ratio per round ${perRound}`,
  })
}

async function redisRow(url) {
  const { default: Redis } = await import('ioredis')
  const { createRedisStore } = await importDist('redis')
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await client.connect()
  const prefix = `${tag}:`
  return measure(
    'Redis',
    (announceDeadlines) => createRedisStore({ client, prefix, announceDeadlines }),
    async () => {
      await deleteRedisPrefix(client, prefix)
      await client.quit()
    },
  )
}

async function postgresRow(url) {
  const { default: pg } = await import('pg')
  const { createPostgresStore } = await importDist('postgres')
  const pool = new pg.Pool({ connectionString: url, max: POOL_SIZE })
  const table = `${tag}_conversations`
  await createPostgresStore({ pool, table }).migrate()
  return measure(
    'PostgreSQL',
    (announceDeadlines) => createPostgresStore({ pool, table, announceDeadlines }),
    async () => {
      await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_outbox`)
      await pool.end()
    },
  )
}

function skipped(name, variable) {
  return row({ name: `${name}: announceDeadlines`, value: null, unit: 'text', note: `skipped: set ${variable}` })
}

await main(import.meta.url, async () => {
  const rows = []
  rows.push(process.env.REDIS_URL ? await redisRow(process.env.REDIS_URL) : skipped('Redis', 'REDIS_URL'))
  rows.push(process.env.DATABASE_URL ? await postgresRow(process.env.DATABASE_URL) : skipped('PostgreSQL', 'DATABASE_URL'))
  return rows
})
