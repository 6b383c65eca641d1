// Round trips per service call and throughput with 64 concurrent callers on the Redis and
// PostgreSQL stores, against the raw driver doing one GET / SELECT per call.
//   REDIS_URL=redis://127.0.0.1:6379 DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node bench/stores.mjs
import { importDist, main, median, quick, row } from './lib.mjs'

const lib = await importDist()
const { createManualClock } = await importDist('testing')

const CALLERS = 64
const SECONDS = quick ? 1 : 2
const ROUNDS = quick ? 1 : 3
const POOL_SIZE = 16
const settingsInput = {
  enabled: true,
  authenticated: true,
  timeLimit: { minutes: 30 },
  portalUrl: 'https://shop.example/help',
}
const tag = `bench${process.pid}`

/** Counts the requests a driver sends; run one call at a time so each request is one round trip. */
function counter() {
  let n = 0
  return {
    hit: () => {
      n += 1
    },
    take: () => {
      const value = n
      n = 0
      return value
    },
  }
}

async function redisBackend(url) {
  const { default: Redis } = await import('ioredis')
  const { createRedisStore } = await importDist('redis')
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await client.connect()
  const prefix = `${tag}:`
  const trips = counter()
  // ioredis writes each command, and each pipeline or MULTI block, to the socket in one call.
  // The hook slows writes down, so it is only in place while round trips are being counted.
  const stream = client.stream
  const write = stream.write
  trips.install = () => {
    stream.write = function countedWrite(...args) {
      trips.hit()
      return write.apply(this, args)
    }
  }
  trips.uninstall = () => {
    delete stream.write
  }
  return {
    name: 'Redis',
    raw: 'GET',
    store: createRedisStore({ client, prefix }),
    trips,
    async rawRead(id) {
      const json = await client.get(`${prefix}conv:${id}`)
      if (json === null) throw new Error(`raw GET found nothing for ${id}`)
      return JSON.parse(json)
    },
    async close() {
      let cursor = '0'
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
        if (keys.length > 0) await client.del(...keys)
        cursor = next
      } while (cursor !== '0')
      await client.quit()
    },
  }
}

async function postgresBackend(url) {
  const { default: pg } = await import('pg')
  const { createPostgresStore } = await importDist('postgres')
  const trips = counter()
  // pg sends one query at a time per connection and waits for its result: one query, one round trip.
  const query = pg.Client.prototype.query
  trips.install = () => {
    pg.Client.prototype.query = function countedQuery(...args) {
      trips.hit()
      return query.apply(this, args)
    }
  }
  trips.uninstall = () => {
    pg.Client.prototype.query = query
  }
  const pool = new pg.Pool({ connectionString: url, max: POOL_SIZE })
  const table = `${tag}_conversations`
  const store = createPostgresStore({ pool, table })
  await store.migrate()
  return {
    name: 'PostgreSQL',
    raw: 'SELECT',
    store,
    trips,
    async rawRead(id) {
      const result = await pool.query(`SELECT record FROM ${table} WHERE id = $1`, [id])
      if (result.rows.length !== 1) throw new Error(`raw SELECT found nothing for ${id}`)
      return result.rows[0].record
    },
    async close() {
      await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_outbox`)
      await pool.end()
    },
  }
}

/** The store as one without the outbox methods (its events are then delivered best effort). */
function withoutOutbox(store) {
  const hidden = new Set(['claimEvents', 'ackEvents', 'nextEventAt'])
  const out = {}
  for (const key of Object.keys(store)) {
    if (!hidden.has(key) && typeof store[key] === 'function') out[key] = (...args) => store[key](...args)
  }
  // A store without an outbox takes no third argument to put.
  out.put = (record, expected) => store.put(record, expected)
  return out
}

/** Round trips of each service call, one call at a time, after a warm-up that loads scripts and connections. */
async function roundTrips(backend) {
  const clock = createManualClock(Date.now())
  const service = lib.createReconnectService({ settings: settingsInput, store: backend.store, clock })
  const warm = await service.start({ agentId: 'agent-w', customerId: 'customer-w' })
  await service.disconnect(warm.id)
  await service.returnCustomer({ reconnectId: warm.reconnectId, customerId: 'customer-w' })
  // A link return no longer looks up the customer's resumable chat, so the prompt path warms its own
  // script: otherwise the first prompt below pays a NOSCRIPT reply and an EVAL on Redis.
  await service.disconnect(warm.id)
  await service.returnCustomer({ customerId: 'customer-w' })
  await service.answerPrompt(warm.id, 'continue', 'customer-w')
  await service.endByAgent(warm.id)
  await service.closeByAgent(warm.id)
  await service.runDueTimers()

  const counts = []
  const measure = async (label, call) => {
    backend.trips.take()
    await call()
    counts.push([label, backend.trips.take()])
  }
  let chat
  await measure('start', async () => {
    chat = await service.start({ agentId: 'agent-1', customerId: 'customer-1' })
  })
  await measure('get', () => service.get(chat.id))
  await measure('disconnect', () => service.disconnect(chat.id))
  await measure('returnCustomer (link)', async () => {
    const decision = await service.returnCustomer({ reconnectId: chat.reconnectId, customerId: 'customer-1' })
    if (decision.type !== 'resume') throw new Error(`expected a resume, got ${decision.type}`)
  })
  await service.disconnect(chat.id)
  await measure('returnCustomer (prompt)', async () => {
    const decision = await service.returnCustomer({ customerId: 'customer-1' })
    if (decision.type !== 'prompt') throw new Error(`expected a prompt, got ${decision.type}`)
  })
  await measure('answerPrompt (continue)', () => service.answerPrompt(chat.id, 'continue', 'customer-1'))
  await measure('endByAgent', () => service.endByAgent(chat.id))
  await measure('closeByAgent', () => service.closeByAgent(chat.id))
  await measure('runDueTimers (nothing due)', () => service.runDueTimers())
  const late = await service.start({ agentId: 'agent-2' })
  await service.disconnect(late.id)
  clock.advance(31 * 60_000)
  await measure('runDueTimers (1 due)', async () => {
    if ((await service.runDueTimers()) !== 1) throw new Error('expected one deadline to be applied')
  })
  return counts
}

/** Runs `CALLERS` loops for `seconds`, each calling `call(i)` back to back; returns calls per second. */
async function throughput(call, seconds = SECONDS) {
  let calls = 0
  const until = performance.now() + seconds * 1000
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: CALLERS }, async (_, i) => {
      while (performance.now() < until) {
        const done = await call(i) // not `calls += await …`: that reads `calls` before the await and loses updates
        calls += done
      }
    }),
  )
  return calls / ((performance.now() - t0) / 1000)
}

async function measureBackend(backend) {
  backend.trips.install()
  let counts
  try {
    counts = await roundTrips(backend)
  } finally {
    backend.trips.uninstall()
  }
  const service = lib.createReconnectService({ settings: settingsInput, store: backend.store })
  const chats = []
  for (let i = 0; i < CALLERS; i += 1) chats.push(await service.start({ agentId: `agent-${i}`, customerId: `customer-${i}` }))
  const ids = chats.map((c) => c.id)

  const raw = async (i) => {
    await backend.rawRead(ids[i])
    return 1
  }
  const read = async (i) => {
    await service.get(ids[i])
    return 1
  }
  const write = async (i) => {
    await service.disconnect(ids[i])
    const decision = await service.returnCustomer({ reconnectId: chats[i].reconnectId, customerId: `customer-${i}` })
    if (decision.type !== 'resume') throw new Error(`expected a resume, got ${decision.type}`)
    return 2
  }
  // Warm every path, then alternate the three over several rounds so that load from other
  // processes on the machine hits all of them alike; each rate is the median of its rounds.
  for (const call of [raw, read, write]) await throughput(call, 0.3)
  const rates = { raw: [], read: [], write: [] }
  for (let round = 0; round < ROUNDS; round += 1) {
    rates.raw.push(await throughput(raw))
    rates.read.push(await throughput(read))
    rates.write.push(await throughput(write))
  }
  const rawRate = median(rates.raw)
  const getRate = median(rates.read)
  const writeRate = median(rates.write)

  // The outbox's cost: a lifecycle whose events onEvent receives, with the events stored beside each
  // write and acked afterwards, against the same store with its outbox methods hidden (best-effort
  // delivery, as a store without an outbox gets). Alternated like the rows above.
  const onEvent = () => {}
  const withOutbox = lib.createReconnectService({ settings: settingsInput, store: backend.store, onEvent })
  const bestEffort = lib.createReconnectService({ settings: settingsInput, store: withoutOutbox(backend.store), onEvent })
  const lifecycleOf = (svc) => async (i) => {
    const chat = await svc.start({ agentId: `agent-${i}` })
    await svc.endByAgent(chat.id)
    await svc.closeByAgent(chat.id)
    return 3
  }
  const outboxed = lifecycleOf(withOutbox)
  const plain = lifecycleOf(bestEffort)
  for (const call of [outboxed, plain]) await throughput(call, 0.3)
  const lifecycles = { outbox: [], plain: [] }
  for (let round = 0; round < ROUNDS; round += 1) {
    lifecycles.plain.push(await throughput(plain))
    lifecycles.outbox.push(await throughput(outboxed))
  }
  await withOutbox.idle()
  const outboxRate = median(lifecycles.outbox)
  const plainRate = median(lifecycles.plain)

  const perCall = counts.map(([label, n]) => `${label} ${n}`).join(', ')
  const lifecycle = counts
    .filter(([label]) => ['start', 'disconnect', 'returnCustomer (link)', 'endByAgent', 'closeByAgent'].includes(label))
    .reduce((sum, [, n]) => sum + n, 0)
  const extra = backend.name === 'PostgreSQL' ? `, pool of ${POOL_SIZE} connections` : ', one connection'
  return [
    row({
      name: `${backend.name}: round trips per call`,
      value: lifecycle / 5,
      unit: 'count',
      note: `mean over start → disconnect → return → end → close (${lifecycle} in all); ${perCall}`,
    }),
    row({
      name: `${backend.name}: get, ${CALLERS} callers`,
      value: getRate,
      unit: 'calls/s',
      baseline: `raw ${backend.raw}`,
      baselineValue: rawRate,
      ratio: getRate / rawRate,
      note: `127.0.0.1${extra}; the raw ${backend.raw} reads the same ${backend.name === 'Redis' ? 'key' : 'row'} and parses its JSON; median of ${ROUNDS} × ${SECONDS} s`,
    }),
    row({
      name: `${backend.name}: disconnect + returnCustomer, ${CALLERS} callers`,
      value: writeRate,
      unit: 'calls/s',
      baseline: `raw ${backend.raw}`,
      baselineValue: rawRate,
      ratio: writeRate / rawRate,
      note: 'each caller drops and resumes its own conversation (compare-and-set writes); 2 calls per loop',
    }),
    row({
      name: `${backend.name}: lifecycle with onEvent and the outbox, ${CALLERS} callers`,
      value: outboxRate,
      unit: 'calls/s',
      baseline: 'the same without an outbox',
      baselineValue: plainRate,
      ratio: outboxRate / plainRate,
      note: `start → endByAgent → closeByAgent, 3 calls per loop (6 events stored with their writes, acked in batches) against the store with its outbox methods hidden (best effort); median of ${ROUNDS} × ${SECONDS} s`,
    }),
  ]
}

export async function run() {
  const rows = []
  for (const [variable, open] of [
    ['REDIS_URL', redisBackend],
    ['DATABASE_URL', postgresBackend],
  ]) {
    const url = process.env[variable]
    const name = variable === 'REDIS_URL' ? 'Redis' : 'PostgreSQL'
    if (url === undefined || url === '') {
      rows.push(row({ name: `${name} store`, value: null, unit: 'text', note: `skipped: set ${variable}` }))
      continue
    }
    const backend = await open(url)
    try {
      rows.push(...(await measureBackend(backend)))
    } finally {
      await backend.close()
    }
  }
  return rows
}

await main(import.meta.url, run)
