// Round trips per service call and throughput with 64 concurrent callers on the Redis and
// PostgreSQL stores, against the raw driver: the same client doing one GET / SELECT per read and,
// per write, a read plus a bare compare-and-set (a Lua script on Redis, UPDATE … WHERE version on
// PostgreSQL) of the same JSON, with no index. Also Redis server time per disconnect + return, and a
// long-lived record (32 history entries) against a fresh one.
//   REDIS_URL=redis://127.0.0.1:6379 DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node bench/stores.mjs
import { concurrentRate, deleteRedisPrefix, importDist, main, median, quick, row } from './lib.mjs'

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
const HISTORY_LIMIT = 32
/** Conversations per caller in the long-lived vs fresh comparison. */
const AGED_PER_CALLER = quick ? 10 : 25
/** disconnect + return cycles over which Redis server time is averaged. */
const SERVER_CYCLES = quick ? 1_000 : 3_000
const SERVER_ROUNDS = quick ? 3 : 5

// The bare compare-and-set a host would write: the version sits in a key of its own, so the script
// reads one short string and writes two.
const RAW_CAS = `
if ARGV[1] == '' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
elseif redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2])
return 1
`

/**
 * The steps a host would write by hand on the raw driver: plain objects, a version and a history
 * entry per step (bounded like the library's), the same deadlines. No validation, no indexes.
 */
function rawStep(record, event, to, patch, at) {
  const history = record.history.length < HISTORY_LIMIT ? [...record.history] : record.history.slice(1)
  history.push({ at, event, from: record.state, to })
  return { ...record, ...patch, state: to, updatedAt: at, version: record.version + 1, history }
}

const rawSteps = {
  disconnect: (r, at) =>
    rawStep(r, 'customer.disconnected', 'reconnectable', { timers: { window: at + 1_800_000 }, nextDueAt: at + 1_800_000 }, at),
  return: (r, at) => rawStep(r, 'customer.returned', 'active', { timers: {}, nextDueAt: null }, at),
  end: (r, at) => rawStep(r, 'agent.ended', 'wrap-up', { timers: { wrapUp: at + 120_000 }, nextDueAt: at + 120_000, endedBy: 'agent' }, at),
  close: (r, at) => rawStep(r, 'agent.closed', 'closed', { timers: {}, nextDueAt: null, capacityHeld: false, capacitySince: null }, at),
}

/** A new record as a host would create it on the raw driver. */
function rawRecord(id, i, now) {
  return {
    id,
    widgetId: 'default',
    reconnectId: lib.createReconnectId(),
    customerId: `customer-${i}`,
    agentId: `agent-${i}`,
    previousAgentId: null,
    state: 'active',
    timers: {},
    nextDueAt: null,
    capacityHeld: true,
    capacitySince: now,
    endedBy: null,
    createdAt: now,
    updatedAt: now,
    version: 1,
    history: [],
  }
}

/** Raw read, step, compare-and-set: one host-written write. */
async function rawChange(raw, id, step) {
  const record = await raw.read(id)
  const next = step(record, Date.now())
  if (!(await raw.cas(next, record.version))) throw new Error(`raw compare-and-set lost on ${id}`)
}

/** `record` as it would look after 16 disconnect + return cycles: 32 history entries, version 33. */
function aged(record) {
  const history = []
  let at = record.createdAt
  for (let i = 0; i < HISTORY_LIMIT / 2; i += 1) {
    history.push({ at: (at += 1_000), event: 'customer.disconnected', from: 'active', to: 'reconnectable' })
    history.push({ at: (at += 1_000), event: 'customer.returned', from: 'reconnectable', to: 'active' })
  }
  return { ...record, history, version: record.version + HISTORY_LIMIT, updatedAt: at }
}

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
  const casSha = await client.script('LOAD', RAW_CAS)
  return {
    name: 'Redis',
    rawName: 'GET',
    rawWrite: 'GET + Lua CAS',
    client,
    store: createRedisStore({ client, prefix }),
    trips,
    raw: {
      async read(id) {
        const json = await client.get(`${prefix}raw:${id}`)
        if (json === null) throw new Error(`raw GET found nothing for ${id}`)
        return JSON.parse(json)
      },
      async cas(record, expectedVersion) {
        const expected = expectedVersion === null ? '' : String(expectedVersion)
        const done = await client.evalsha(
          casSha,
          2,
          `${prefix}raw:${record.id}`,
          `${prefix}rawv:${record.id}`,
          expected,
          String(record.version),
          JSON.stringify(record),
        )
        return done === 1
      },
    },
    async close() {
      await deleteRedisPrefix(client, prefix)
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
  // The host-written table: an id, a version and the JSON; no other column, no other index.
  const rawTable = `${tag}_raw`
  await pool.query(`CREATE TABLE ${rawTable} (id text PRIMARY KEY, version integer NOT NULL, record jsonb NOT NULL)`)
  return {
    name: 'PostgreSQL',
    rawName: 'SELECT',
    rawWrite: 'SELECT + UPDATE … WHERE version',
    store,
    trips,
    raw: {
      async read(id) {
        const result = await pool.query(`SELECT version, record::text AS record FROM ${rawTable} WHERE id = $1`, [id])
        if (result.rows.length !== 1) throw new Error(`raw SELECT found nothing for ${id}`)
        return JSON.parse(result.rows[0].record)
      },
      async cas(record, expectedVersion) {
        const json = JSON.stringify(record)
        const result =
          expectedVersion === null
            ? await pool.query(`INSERT INTO ${rawTable} (id, version, record) VALUES ($1, $2, $3::jsonb) ON CONFLICT (id) DO NOTHING`, [
                record.id,
                record.version,
                json,
              ])
            : await pool.query(`UPDATE ${rawTable} SET version = $2, record = $3::jsonb WHERE id = $1 AND version = $4`, [
                record.id,
                record.version,
                json,
                expectedVersion,
              ])
        return result.rowCount === 1
      },
    },
    async close() {
      await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_outbox`)
      await pool.query(`DROP TABLE IF EXISTS ${rawTable}`)
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

/** Calls per second of `call` at `CALLERS` callers. */
function throughput(call, seconds = SECONDS) {
  return concurrentRate(CALLERS, call, seconds)
}

/**
 * Redis server time per disconnect + return, from INFO commandstats around `SERVER_CYCLES` cycles at
 * `CALLERS` callers: the time of every script (commands a script calls are inside it) plus that of
 * each plain command the client itself sent, as counted on the client. Also the commands scripts
 * called, and the server's CPU time (INFO cpu), which includes reading and writing the sockets.
 */
async function redisServerTime(backend, cycle, label) {
  const { client } = backend
  const sent = new Map()
  const sendCommand = client.sendCommand
  client.sendCommand = function countedSend(command, ...rest) {
    sent.set(command.name, (sent.get(command.name) ?? 0) + 1)
    return sendCommand.call(this, command, ...rest)
  }
  const cpu = async () => {
    const info = await client.info('cpu')
    const field = (name) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)[1])
    return field('used_cpu_sys_main_thread') + field('used_cpu_user_main_thread')
  }
  let stats
  let cpuSeconds
  try {
    await client.config('RESETSTAT')
    sent.clear()
    const cpuBefore = await cpu()
    let left = SERVER_CYCLES
    await Promise.all(
      Array.from({ length: CALLERS }, async (_, i) => {
        while (left > 0) {
          left -= 1
          await cycle(i)
        }
      }),
    )
    cpuSeconds = (await cpu()) - cpuBefore
    stats = await client.info('commandstats')
  } finally {
    delete client.sendCommand
  }
  const byName = new Map()
  for (const [, name, calls, usec] of stats.matchAll(/cmdstat_([a-z|]+):calls=(\d+),usec=(\d+)/g)) {
    byName.set(name, { calls: Number(calls), usec: Number(usec) })
  }
  let usec = 0
  let inside = 0
  let types = 0
  for (const [name, { calls, usec: spent }] of byName) {
    if (name === 'info' || name.startsWith('config')) continue
    const fromClient = sent.get(name) ?? 0
    if (name === 'evalsha' || name === 'eval') usec += spent
    else {
      usec += fromClient * (spent / calls)
      inside += calls - fromClient
      if (name === 'type') types += calls - fromClient
    }
  }
  const perCycle = usec / SERVER_CYCLES
  return {
    value: perCycle,
    note: `${label}: ${(inside / SERVER_CYCLES).toFixed(1)} commands inside scripts per cycle (${(types / SERVER_CYCLES).toFixed(1)} TYPE), server CPU ${((cpuSeconds * 1e6) / SERVER_CYCLES).toFixed(0)} µs per cycle with socket I/O`,
  }
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
  const raw = backend.raw
  const rawIds = ids.map((id) => `raw-${id}`)
  for (let i = 0; i < CALLERS; i += 1) await raw.cas(rawRecord(rawIds[i], i, Date.now()), null)

  // The host's own copy of a conversation that has been through as many steps (its history as an
  // array of objects): the store's key or row holds the history in the store's short form instead.
  const rawGet = async (i) => {
    await raw.read(rawIds[i])
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
  const rawWrite = async (i) => {
    await rawChange(raw, rawIds[i], rawSteps.disconnect)
    await rawChange(raw, rawIds[i], rawSteps.return)
    return 2
  }
  let lifecycles = 0
  const lifecycle = async (i) => {
    const chat = await service.start({ agentId: `agent-${i}`, customerId: `customer-${i}` })
    await service.disconnect(chat.id)
    const decision = await service.returnCustomer({ reconnectId: chat.reconnectId, customerId: `customer-${i}` })
    if (decision.type !== 'resume') throw new Error(`expected a resume, got ${decision.type}`)
    await service.endByAgent(chat.id)
    await service.closeByAgent(chat.id)
    return 1
  }
  const rawLifecycle = async (i) => {
    const id = `raw-life-${i}-${(lifecycles += 1)}`
    if (!(await raw.cas(rawRecord(id, i, Date.now()), null))) throw new Error(`raw create lost on ${id}`)
    for (const step of [rawSteps.disconnect, rawSteps.return, rawSteps.end, rawSteps.close]) await rawChange(raw, id, step)
    return 1
  }
  // Warm every path, then alternate them over several rounds so that load from other processes on
  // the machine hits all of them alike; each rate is the median of its rounds.
  const pairs = { get: [read, rawGet], write: [write, rawWrite], lifecycle: [lifecycle, rawLifecycle] }
  for (const [ours, theirs] of Object.values(pairs)) {
    await throughput(ours, 0.3)
    await throughput(theirs, 0.3)
  }
  const rates = Object.fromEntries(Object.keys(pairs).map((k) => [k, { ours: [], raw: [] }]))
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const [name, [ours, theirs]] of Object.entries(pairs)) {
      // Which of the two goes first alternates, so neither always runs on a warmer machine.
      if (round % 2 === 0) {
        rates[name].ours.push(await throughput(ours))
        rates[name].raw.push(await throughput(theirs))
      } else {
        rates[name].raw.push(await throughput(theirs))
        rates[name].ours.push(await throughput(ours))
      }
    }
  }
  const ratioRow = (name, label, unit, baseline, target, note) => {
    const ours = median(rates[name].ours)
    const theirs = median(rates[name].raw)
    const ratio = ours / theirs
    const perRound = rates[name].ours.map((v, k) => (v / rates[name].raw[k]).toFixed(2)).join(', ')
    return row({
      name: `${backend.name}: ${label}, ${CALLERS} callers`,
      value: ours,
      unit,
      baseline,
      baselineValue: theirs,
      ratio,
      target: `≥ ${target}×`,
      met: ratio >= target,
      note: `${note}; ratio per round ${perRound}`,
    })
  }
  const target = backend.name === 'Redis' ? 0.95 : 0.9

  // A long-lived record against a fresh one: the same disconnect + return, on conversations whose
  // history is full (32 entries, stored as the service would have left them) or empty.
  const agedRates = { fresh: [], aged: [] }
  let agedBytes = 0
  let freshBytes = 0
  for (let round = 0; round < ROUNDS; round += 1) {
    const sets = {}
    for (const kind of ['fresh', 'aged']) {
      const set = []
      for (let i = 0; i < CALLERS * AGED_PER_CALLER; i += 1) {
        const chat = await service.start({ agentId: `agent-${i % CALLERS}`, customerId: `aged-${round}-${kind}-${i}` })
        if (kind === 'aged') {
          const old = aged(chat)
          await backend.store.put(old, chat.version)
          agedBytes = JSON.stringify(await backend.store.get(chat.id)).length
        } else freshBytes = JSON.stringify(await backend.store.get(chat.id)).length
        set.push(chat)
      }
      sets[kind] = set
    }
    const order = round % 2 === 0 ? ['fresh', 'aged'] : ['aged', 'fresh']
    for (const kind of order) {
      const set = sets[kind]
      let next = 0
      const t0 = performance.now()
      await Promise.all(
        Array.from({ length: CALLERS }, async () => {
          while (next < set.length) {
            const chat = set[next++]
            await service.disconnect(chat.id)
            const decision = await service.returnCustomer({ reconnectId: chat.reconnectId, customerId: chat.customerId })
            if (decision.type !== 'resume') throw new Error(`expected a resume, got ${decision.type}`)
          }
        }),
      )
      agedRates[kind].push((2 * set.length) / ((performance.now() - t0) / 1000))
    }
  }
  const fresh = median(agedRates.fresh)
  const old = median(agedRates.aged)
  const slower = fresh / old

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
  const outboxRates = { outbox: [], plain: [] }
  for (let round = 0; round < ROUNDS; round += 1) {
    outboxRates.plain.push(await throughput(plain))
    outboxRates.outbox.push(await throughput(outboxed))
  }
  await withOutbox.idle()
  const outboxRate = median(outboxRates.outbox)
  const plainRate = median(outboxRates.plain)

  const perCall = counts.map(([label, n]) => `${label} ${n}`).join(', ')
  const lifecycleTrips = counts
    .filter(([label]) => ['start', 'disconnect', 'returnCustomer (link)', 'endByAgent', 'closeByAgent'].includes(label))
    .reduce((sum, [, n]) => sum + n, 0)
  const extra = backend.name === 'PostgreSQL' ? `, pool of ${POOL_SIZE} connections` : ', one connection'
  const rows = [
    row({
      name: `${backend.name}: round trips per call`,
      value: lifecycleTrips / 5,
      unit: 'count',
      note: `mean over start → disconnect → return → end → close (${lifecycleTrips} in all); ${perCall}`,
    }),
    ratioRow(
      'get',
      'get',
      'calls/s',
      `raw ${backend.rawName}`,
      target,
      `127.0.0.1${extra}; the raw ${backend.rawName} reads the raw loop's own copy of a conversation as far along (history as an array) and parses its JSON; median of ${ROUNDS} × ${SECONDS} s`,
    ),
    ratioRow(
      'write',
      'disconnect + returnCustomer',
      'calls/s',
      `raw ${backend.rawWrite}`,
      target,
      `each caller drops and resumes its own conversation, 2 calls per loop (so records soon hold 32 history entries); the raw loop reads, steps and compare-and-sets a copy of the same JSON ${backend.name === 'Redis' ? 'under its own key, the version in a key beside it' : 'in a table of id, version and record only'}`,
    ),
    ratioRow(
      'lifecycle',
      'lifecycle',
      'ops/s',
      `raw, same steps`,
      target,
      'one op = start → disconnect → return (link) → endByAgent → closeByAgent on a new conversation; raw = create + 4 × (read + compare-and-set)',
    ),
    row({
      name: `${backend.name}: disconnect + return on a long-lived record (32 history entries) vs a fresh one`,
      value: slower,
      unit: 'count',
      target: '≤ 1.2× slower',
      met: slower <= 1.2,
      note: `× slower: ${Math.round(old).toLocaleString('en-US')} vs ${Math.round(fresh).toLocaleString('en-US')} calls/s, records of ${agedBytes} B vs ${freshBytes} B as JSON; ${CALLERS} callers over ${CALLERS * AGED_PER_CALLER} conversations each round, median of ${ROUNDS}`,
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
  if (backend.name === 'Redis') {
    // Rounds alternate the two, and each side reports its median and its quietest round: commandstats
    // times are wall-clock inside the server, so other processes' load inflates them.
    const ours = []
    const theirs = []
    for (let round = 0; round < SERVER_ROUNDS; round += 1) {
      ours.push(await redisServerTime(backend, (i) => write(i), 'store'))
      theirs.push(await redisServerTime(backend, (i) => rawWrite(i), 'raw'))
    }
    const mid = (list) => list.slice().sort((a, b) => a.value - b.value)[list.length >> 1]
    const least = (list) => Math.min(...list.map((r) => r.value))
    const value = mid(ours).value
    rows.push(
      row({
        name: 'Redis: server time per disconnect + return',
        value,
        unit: 'µs',
        baseline: `raw ${backend.rawWrite}`,
        baselineValue: mid(theirs).value,
        ratio: value / mid(theirs).value,
        target: '≤ 30 µs',
        met: value <= 30,
        note: `INFO commandstats over ${SERVER_CYCLES} cycles at ${CALLERS} callers: scripts plus the plain commands the client sent; median of ${SERVER_ROUNDS} rounds (quietest: ${least(ours).toFixed(1)} vs ${least(theirs).toFixed(1)} µs); ${mid(ours).note}; ${mid(theirs).note}`,
      }),
    )
  }
  return rows
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
