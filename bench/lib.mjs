// Shared helpers of the benchmark scripts: timing, rows, table output, machine description.
import { existsSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Bench } from 'tinybench'

export const root = fileURLToPath(new URL('..', import.meta.url))

/** The build under test: dist/ of this checkout unless BENCH_DIST points at another one. */
export const distDir = process.env.BENCH_DIST ?? `${root}dist`

/** Imports a built entry (`''`, `'testing'`, `'redis'`, `'postgres'`) from the build, with a clear error when it is missing. */
export async function importDist(entry = '') {
  const file = `${distDir}/${entry === '' ? '' : `${entry}/`}index.js`
  if (!existsSync(file)) {
    throw new Error(`${file} is missing: run \`npm run build\` before \`npm run bench\``)
  }
  return import(pathToFileURL(file).href)
}

export const quick = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1'

/**
 * Measures each task with tinybench, interleaving the tasks over several rounds so that a slow
 * moment of a shared machine hurts every task alike. `batch` = operations per task call; the
 * result is operations per second (median over rounds of each round's mean).
 */
export async function compare(tasks, { rounds = quick ? 3 : 7, time = quick ? 150 : 400, warmupTime = quick ? 50 : 150 } = {}) {
  const perTask = new Map(tasks.map((t) => [t.name, []]))
  for (let round = 0; round < rounds; round += 1) {
    const order = round % 2 === 0 ? tasks : [...tasks].reverse()
    for (const task of order) {
      const bench = new Bench({ time, warmupTime, throws: true })
      bench.add(task.name, task.fn, task.beforeEach === undefined ? {} : { beforeEach: task.beforeEach })
      await bench.run()
      const result = bench.tasks[0].result
      if (result.state !== 'completed') throw result.error ?? new Error(`${task.name}: ${result.state}`)
      perTask.get(task.name).push((task.batch ?? 1) * (1000 / result.latency.mean))
    }
  }
  return Object.fromEntries([...perTask].map(([name, values]) => [name, median(values)]))
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Forces a full collection (needs `node --expose-gc`) and returns the heap in use. */
export function settledHeap() {
  if (typeof globalThis.gc !== 'function') throw new Error('run node with --expose-gc')
  for (let i = 0; i < 4; i += 1) globalThis.gc()
  return process.memoryUsage().heapUsed
}

/**
 * One line of the results table.
 * @param {object} row
 * @param {string} row.name what was measured
 * @param {number} row.value the measurement
 * @param {'ops/s'|'calls/s'|'ms'|'bytes'|'count'|'µs'|'text'} row.unit
 * @param {string} [row.baseline] what it is compared with
 * @param {number} [row.baselineValue]
 * @param {number} [row.ratio] value / baselineValue (for ops/s: higher is better)
 * @param {string} [row.target]
 * @param {boolean|null} [row.met]
 * @param {string} [row.note]
 */
export function row(r) {
  return { baseline: '', baselineValue: null, ratio: null, target: '', met: null, note: '', ...r }
}

export function formatValue(value, unit) {
  if (value === null || value === undefined) return unit === 'text' ? 'skipped' : ''
  switch (unit) {
    case 'ops/s':
    case 'calls/s':
      return `${Math.round(value).toLocaleString('en-US')} ${unit}`
    case 'ms':
      return `${value < 10 ? value.toFixed(2) : Math.round(value).toLocaleString('en-US')} ms`
    case 'µs':
      return `${value.toFixed(2)} µs`
    case 'bytes':
      return `${Math.round(value).toLocaleString('en-US')} B`
    case 'count':
      return Number.isInteger(value) ? String(value) : value.toFixed(2)
    default:
      return `${value} ${unit}`
  }
}

function cells(r) {
  return [
    r.name,
    formatValue(r.value, r.unit),
    r.baseline === '' ? '' : `${r.baseline}: ${formatValue(r.baselineValue, r.baselineUnit ?? r.unit)}`,
    r.ratio === null ? '' : `${r.ratio.toFixed(2)}×`,
    r.target,
    r.met === null ? '' : r.met ? 'yes' : 'MISSED',
  ]
}

const HEAD = ['benchmark', 'result', 'baseline (same run)', 'ratio', 'target', 'met']

export function textTable(rows) {
  const lines = [HEAD, ...rows.map(cells)]
  const widths = HEAD.map((_, i) => Math.max(...lines.map((l) => [...l[i]].length)))
  const fmt = (l) => l.map((c, i) => c + ' '.repeat(widths[i] - [...c].length)).join(' │ ')
  const notes = rows.filter((r) => r.note !== '').map((r) => `  - ${r.name}: ${r.note}`)
  return [
    fmt(lines[0]),
    widths.map((w) => '─'.repeat(w)).join('─┼─'),
    ...lines.slice(1).map(fmt),
    ...(notes.length > 0 ? ['', 'notes:', ...notes] : []),
  ].join('\n')
}

export function markdownTable(rows) {
  const esc = (c) => c.replaceAll('|', '\\|')
  return [
    `| ${HEAD.join(' | ')} |`,
    `|${HEAD.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${cells(r).map(esc).join(' | ')} |`),
  ].join('\n')
}

export function machine() {
  const cpus = os.cpus()
  return {
    cpu: `${cpus[0]?.model?.trim() ?? 'unknown CPU'} × ${cpus.length}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  }
}

/**
 * Runs a suite's `run()` and prints its rows: as JSON (one line) with `--json`, which is how
 * bench/run.mjs collects them from a child process, otherwise as a table.
 */
export async function main(importMetaUrl, run) {
  if (process.argv[1] !== fileURLToPath(importMetaUrl)) return
  try {
    const rows = await run()
    if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(rows)}\n`)
    else console.log(textTable(rows))
  } catch (error) {
    console.error(error)
    process.exitCode = 1
  }
}

/**
 * Runs `callers` loops for `seconds`, each calling `call(i)` back to back (it resolves to how many
 * calls it made); returns calls per second.
 */
export async function concurrentRate(callers, call, seconds) {
  let calls = 0
  const until = performance.now() + seconds * 1000
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: callers }, async (_, i) => {
      while (performance.now() < until) {
        const done = await call(i) // not `calls += await …`: that reads `calls` before the await and loses updates
        calls += done
      }
    }),
  )
  return calls / ((performance.now() - t0) / 1000)
}

/** Deletes every key under `prefix` (SCAN, then DEL in pages), as a benchmark's clean-up. */
export async function deleteRedisPrefix(client, prefix) {
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    if (keys.length > 0) await client.del(...keys)
    cursor = next
  } while (cursor !== '0')
}
