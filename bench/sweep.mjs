// The sweep at scale: one node against two sweeping the same due conversations, and the longest
// single put on a big memory store.
//
//   node --expose-gc bench/sweep.mjs [--json] [--quick]
//   REDIS_URL=… DATABASE_URL=… enable the Redis and PostgreSQL rows.
//
// Sizes (the by default; --quick divides them by ten):
//   BENCH_SWEEP_MEMORY   conversations on the memory store      (1 000 000)
//   BENCH_SWEEP_STORES   conversations on Redis and PostgreSQL   (100 000)
//
// Redis and PostgreSQL: every node is a child process of its own (bench/sweep.mjs --node=…), on
// one store the parent seeded; the parent times from "go" until the last node is done. The memory
// store cannot be shared by two processes: its "two nodes" are two services on one store in this
// process (one JS thread), so that row shows that two sweepers do not collapse, not a speed-up.
import { fork } from 'node:child_process'
import { PerformanceObserver } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { importDist, main, median, quick, row } from './lib.mjs'

const lib = await importDist()
const { createManualClock } = await importDist('testing')

const scale = quick ? 10 : 1
const MEMORY_COUNT = Number(process.env.BENCH_SWEEP_MEMORY ?? 1_000_000 / scale)
const STORE_COUNT = Number(process.env.BENCH_SWEEP_STORES ?? 100_000 / scale)
const T0 = Date.UTC(2026, 0, 5, 9)
const MINUTE = 60_000
// Every window has passed (30 minutes, deadlines spread over ten), no wrap-up deadline has.
const SWEEP_AT = T0 + 41 * MINUTE
const settingsInput = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://shop.example/help' }
const self = fileURLToPath(import.meta.url)

/** A reconnectable record, as a service writes it on disconnect, to clone. */
let templateRecord
async function template() {
  if (templateRecord !== undefined) return templateRecord
  const clock = createManualClock(T0)
  const service = lib.createReconnectService({ settings: settingsInput, store: lib.createMemoryStore(), clock })
  const chat = await service.start({ agentId: 'agent-0', customerId: 'customer-0' })
  templateRecord = await service.disconnect(chat.id)
  return templateRecord
}

/** Conversation `i` of the seed: the template with its own ids and its deadlines moved by up to ten minutes. */
function clone(base, i) {
  const shift = (i % 6000) * 100
  const timers = {}
  for (const [name, at] of Object.entries(base.timers)) timers[name] = at + shift
  return {
    ...base,
    id: `c${i.toString(36)}x${base.id}`,
    reconnectId: `r${i.toString(36)}x${base.reconnectId}`,
    customerId: `customer-${i}`,
    agentId: `agent-${i % 500}`,
    timers,
    nextDueAt: base.nextDueAt + shift,
    createdAt: base.createdAt + shift,
    updatedAt: base.updatedAt + shift,
    history: base.history.map((h) => ({ ...h, at: h.at + shift })),
  }
}

async function seed(store, count, parallel) {
  const base = await template()
  for (let i = 0; i < count; i += parallel) {
    const puts = []
    for (let j = i; j < Math.min(count, i + parallel); j += 1) puts.push(store.put(clone(base, j), null))
    await Promise.all(puts)
  }
}

/** Sweeps until a sweep applies nothing, as the scheduler does while deadlines stay passed. */
async function sweepAll(service) {
  let total = 0
  for (;;) {
    const applied = await service.runDueTimers()
    if (applied === 0) return total
    total += applied
  }
}

// ─── a node: a child process sweeping a shared store ─────────────────────────────────────────────

async function openStore(kind, name) {
  if (kind === 'redis') {
    const { default: Redis } = await import('ioredis')
    const { createRedisStore } = await importDist('redis')
    const client = new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: 1 })
    return { store: createRedisStore({ client, prefix: `${name}:` }), client, close: () => client.quit() }
  }
  const { default: pg } = await import('pg')
  const { createPostgresStore } = await importDist('postgres')
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 16 })
  return { store: createPostgresStore({ pool, table: name }), pool, close: () => pool.end() }
}

async function node(kind, name) {
  const { store, close } = await openStore(kind, name)
  const service = lib.createReconnectService({ settings: settingsInput, store, clock: createManualClock(SWEEP_AT) })
  await store.nextDueAt() // connected and warm before "go"
  process.send({ ready: true })
  process.once('message', async () => {
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    const applied = await sweepAll(service)
    const ms = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    await close()
    process.send({ applied, ms, cpuUs: cpu.user + cpu.system }, () => process.exit(0))
  })
}

/** Seeds `count` due conversations, lets `nodes` child processes sweep them, returns the wall time. */
async function sweepWith(kind, count, nodes) {
  const name = `bench_sweep_${process.pid}_${nodes}`
  const opened = await openStore(kind, name)
  if (kind === 'postgres') {
    await opened.pool.query(`DROP TABLE IF EXISTS ${name}`)
    await opened.store.migrate()
  }
  await seed(opened.store, count, 200)
  const children = Array.from({ length: nodes }, () =>
    fork(self, [`--node=${kind}:${name}`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] }),
  )
  await Promise.all(children.map((child) => new Promise((resolve) => child.once('message', resolve))))
  const done = children.map(
    (child) =>
      new Promise((resolve, reject) => {
        child.once('message', resolve)
        child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`a ${kind} node exited with ${code}`))))
      }),
  )
  const server0 = kind === 'redis' ? await redisCpuUs(opened.client) : 0
  const t0 = performance.now()
  for (const child of children) child.send('go')
  const results = await Promise.all(done)
  const wall = performance.now() - t0
  // The server's CPU over the sweep (Redis only: one process, one main thread), to set against the nodes'.
  const serverUs = kind === 'redis' ? (await redisCpuUs(opened.client)) - server0 : null
  const applied = results.reduce((sum, r) => sum + r.applied, 0)
  const left = await opened.store.due(SWEEP_AT, 1)
  if (kind === 'redis') await dropPrefix(opened.client, `${name}:`)
  else await opened.pool.query(`DROP TABLE IF EXISTS ${name}`)
  await opened.close()
  if (applied !== count || left.length !== 0)
    throw new Error(`${kind}, ${nodes} node(s): applied ${applied} of ${count}, ${left.length} left`)
  return { wall, shares: results.map((r) => r.applied), nodeUs: results.reduce((sum, r) => sum + r.cpuUs, 0), serverUs }
}

/** The Redis server's CPU time so far (user + system, every thread), in µs. */
async function redisCpuUs(client) {
  const info = await client.info('cpu')
  const field = (name) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)[1])
  return (field('used_cpu_sys') + field('used_cpu_user')) * 1e6
}

async function dropPrefix(client, prefix) {
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await client.unlink(...keys)
  } while (cursor !== '0')
}

// ─── the memory store, in this process ───────────────────────────────────────────────────────────

async function memorySweep(count, services) {
  const store = lib.createMemoryStore()
  await seed(store, count, 1)
  const sweepers = Array.from({ length: services }, () =>
    lib.createReconnectService({ settings: settingsInput, store, clock: createManualClock(SWEEP_AT) }),
  )
  globalThis.gc?.()
  const t0 = performance.now()
  const applied = (await Promise.all(sweepers.map(sweepAll))).reduce((a, b) => a + b, 0)
  const wall = performance.now() - t0
  if (applied !== count) throw new Error(`memory, ${services} service(s): applied ${applied} of ${count}`)
  return { wall }
}

/**
 * The longest single put on a memory store of `count` conversations: writes that move deadlines
 * (the disconnect/return traffic of a busy node), twice as many as there are conversations, so any
 * work a put does once per so many writes (a rebuild of the deadline index) happens in the run.
 */
async function longestPut(count) {
  const store = lib.createMemoryStore()
  await seed(store, count, 1)
  const base = await template()
  const versions = new Uint32Array(count).fill(base.version)
  globalThis.gc?.()
  // Garbage-collection pauses, to tell a put that did work of its own from one a pause landed in.
  const pauses = []
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push([entry.startTime, entry.startTime + entry.duration])
  })
  observer.observe({ entryTypes: ['gc'] })
  let longestCpu = 0
  // Every put's start and length: which of them a pause overlapped is decided for all of them
  // afterwards (the slowest ones are often all hit by a pause, so a short list of them may hold none).
  const starts = new Float64Array(2 * count)
  const times = new Float64Array(2 * count)
  let state = 12345
  for (let n = 0; n < 2 * count; n += 1) {
    state = (state * 1103515245 + 12345) & 0x7fffffff
    const i = state % count
    const record = clone(base, i)
    record.version = versions[i] + 1
    record.nextDueAt += (n % 997) + 1
    record.timers.window = record.nextDueAt
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    await store.put(record, versions[i])
    const ms = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    // CPU time of the process during the put (every thread): unlike wall time, it leaves out the
    // moments a loaded machine gave the CPU to another process.
    const cpuMs = (cpu.user + cpu.system) / 1000
    if (cpuMs > longestCpu) longestCpu = cpuMs
    versions[i] += 1
    starts[n] = t0
    times[n] = ms
  }
  await new Promise((resolve) => setTimeout(resolve, 50)) // let the observer deliver the last entries
  observer.disconnect()
  const clean = longestClear(starts, times, pauses)
  let longest = 0
  for (const ms of times) if (ms > longest) longest = ms
  const sorted = Float64Array.from(times).sort()
  return {
    longest,
    longestCpu,
    longestWithoutGc: clean.ms,
    clearPuts: clean.count,
    p9999: sorted[Math.floor(sorted.length * 0.9999)],
    gcPauses: pauses.length,
    longestPause: Math.max(0, ...pauses.map(([from, to]) => to - from)),
  }
}

/**
 * The longest of the puts (`starts[n]`, lasting `times[n]`) that no pause (`[from, to]`) overlapped,
 * and how many such puts there were; `ms` is null only when a pause overlapped every put. Puts run
 * one after the other, as do the pauses, so one pass over both in time order decides every put.
 */
function longestClear(starts, times, pauses) {
  const sorted = [...pauses].sort((a, b) => a[0] - b[0])
  let p = 0
  let ms = null
  let count = 0
  for (let n = 0; n < starts.length; n += 1) {
    const start = starts[n]
    const end = start + times[n]
    // Pauses that ended before this put started cannot overlap it or any later put.
    while (p < sorted.length && sorted[p][1] <= start) p += 1
    let hit = false
    for (let q = p; q < sorted.length && sorted[q][0] < end; q += 1) {
      if (sorted[q][1] > start) {
        hit = true
        break
      }
    }
    if (hit) continue
    count += 1
    if (ms === null || times[n] > ms) ms = times[n]
  }
  return { ms, count }
}

// ─── rows ────────────────────────────────────────────────────────────────────────────────────────

const ROUNDS = Number(process.env.BENCH_SWEEP_ROUNDS ?? 1)

async function pair(measure) {
  const singles = []
  const doubles = []
  for (let r = 0; r < ROUNDS; r += 1) {
    singles.push(await measure(1))
    doubles.push(await measure(2))
  }
  const wall = (runs) => median(runs.map((run) => run.wall))
  // The CPU figures are those of the middle round.
  return { one: wall(singles), two: wall(doubles), cpu: singles[singles.length >> 1], cpuTwo: doubles[doubles.length >> 1] }
}

function sweepRows(label, count, { one, two }, oneTargetMs, note) {
  const speedup = one / two
  const n = count.toLocaleString('en-US')
  return [
    row({
      name: `sweep, ${label} ${n} due, 1 node`,
      value: one,
      unit: 'ms',
      target: `< ${oneTargetMs.toLocaleString('en-US')} ms`,
      met: one < oneTargetMs,
    }),
    row({
      name: `sweep, ${label} ${n} due, 2 nodes vs 1`,
      value: two,
      unit: 'ms',
      baseline: '1 node',
      baselineValue: one,
      ratio: speedup,
      target: label === 'memory' ? 'no collapse (one JS thread)' : '≥ 1.3× faster',
      met: label === 'memory' ? speedup > 0.7 : speedup >= 1.3,
      note,
    }),
  ]
}

export async function run() {
  const rows = []
  const memory = await pair((services) => memorySweep(MEMORY_COUNT, services))
  rows.push(
    ...sweepRows(
      'memory',
      MEMORY_COUNT,
      memory,
      5000 * (MEMORY_COUNT / 1_000_000),
      'two services on one store in one process: one JS thread, so the ratio is at most about 1×; the row checks that two sweepers do not fetch quadratically',
    ),
  )
  const put = await longestPut(MEMORY_COUNT)
  const n = MEMORY_COUNT.toLocaleString('en-US')
  rows.push(
    row({
      name: `longest single put, memory store of ${n}, no GC pause inside`,
      value: put.longestWithoutGc,
      unit: 'ms',
      target: '< 10 ms',
      met: put.longestWithoutGc === null ? null : put.longestWithoutGc < 10,
      note:
        `${(2 * MEMORY_COUNT).toLocaleString('en-US')} puts that move a deadline; the longest of the ` +
        `${put.clearPuts.toLocaleString('en-US')} puts that no garbage-collection pause overlapped` +
        `${put.longestWithoutGc === null ? ' (none: a GC pause overlapped every put)' : ''}; 99.99th percentile of all ${put.p9999.toFixed(3)} ms`,
    }),
    row({
      name: `longest single put, memory store of ${n}, CPU time`,
      value: put.longestCpu,
      unit: 'ms',
      target: '< 10 ms',
      met: put.longestCpu < 10,
      note: 'process CPU time during the put (all threads, GC helpers included): wall time minus the moments another process had the CPU',
    }),
    row({
      name: `longest single put, memory store of ${n}, any`,
      value: put.longest,
      unit: 'ms',
      note: `GC pauses included: ${put.gcPauses} pauses in the run, the longest ${put.longestPause.toFixed(1)} ms (a heap of ${n} records)`,
    }),
  )
  const stores = [
    ['redis', 'Redis', process.env.REDIS_URL, 4000],
    ['postgres', 'PostgreSQL', process.env.DATABASE_URL, 15000],
  ]
  for (const [kind, label, url, targetMs] of stores) {
    if (url === undefined || url === '') {
      rows.push(
        row({
          name: `sweep, ${label}`,
          value: null,
          unit: 'text',
          note: `skipped: set ${kind === 'redis' ? 'REDIS_URL' : 'DATABASE_URL'}`,
        }),
      )
      continue
    }
    const measured = await pair((nodes) => sweepWith(kind, STORE_COUNT, nodes))
    const perRow = (us) => (us / STORE_COUNT).toFixed(1)
    const cpuNote =
      measured.cpu.serverUs === null
        ? ''
        : `; CPU per swept row with 1 node: node ${perRow(measured.cpu.nodeUs)} µs, Redis ${perRow(measured.cpu.serverUs)} µs; ` +
          `with 2: nodes ${perRow(measured.cpuTwo.nodeUs)} µs, Redis ${perRow(measured.cpuTwo.serverUs)} µs (INFO cpu)`
    rows.push(
      ...sweepRows(
        label,
        STORE_COUNT,
        measured,
        targetMs * (STORE_COUNT / 100_000),
        `each node a child process with its own connection(s), sweeping its share of one store; 1 node measured in the same run${cpuNote}`,
      ),
    )
  }
  return rows
}

const nodeArg = process.argv.find((a) => a.startsWith('--node='))
if (nodeArg !== undefined) {
  const [kind, name] = nodeArg.slice('--node='.length).split(':')
  await node(kind, name)
} else {
  await main(import.meta.url, run)
}
