// npm run bench: every benchmark, each in its own Node process (so one's garbage and JIT state
// cannot colour the next), then one table.
//
//   node --expose-gc bench/run.mjs [--quick] [--markdown] [--json] [--only=lifecycle,memory]
//
// REDIS_URL / DATABASE_URL enable the store rows; BENCH_DIST benchmarks another build than dist/.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { distDir, machine, markdownTable, quick, textTable } from './lib.mjs'

const SUITES = ['decide-return', 'settings', 'lifecycle', 'due-timers', 'sweep', 'memory', 'stores', 'wake', 'metrics', 'http']

const only = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',')
const unknown = (only ?? []).filter((name) => !SUITES.includes(name))
if (unknown.length > 0) {
  console.error(`unknown suite(s): ${unknown.join(', ')}; known: ${SUITES.join(', ')}`)
  process.exit(2)
}

const rows = []
let failed = false
for (const suite of only ?? SUITES) {
  const file = fileURLToPath(new URL(`./${suite}.mjs`, import.meta.url))
  process.stderr.write(`· ${suite}…\n`)
  const started = performance.now()
  const child = spawnSync(process.execPath, ['--expose-gc', file, '--json', ...(quick ? ['--quick'] : [])], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 * 1024 * 1024,
  })
  const line = child.stdout.trim().split('\n').at(-1) ?? ''
  if (child.status !== 0 || !line.startsWith('[')) {
    failed = true
    console.error(`  ${suite} failed (exit ${child.status ?? child.signal})`)
    continue
  }
  rows.push(...JSON.parse(line))
  process.stderr.write(`  done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
}

const m = machine()
if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ machine: m, quick, dist: distDir, rows }, null, 2))
} else if (process.argv.includes('--markdown')) {
  console.log(`Machine: ${m.cpu}, ${m.memory} RAM, ${m.os}, Node ${m.node}${quick ? ' (--quick)' : ''}\n`)
  console.log(markdownTable(rows))
  const notes = rows.filter((r) => r.note !== '')
  if (notes.length > 0) console.log(`\n${notes.map((r) => `- **${r.name}**: ${r.note}`).join('\n')}`)
} else {
  console.log(`\n${m.cpu} · ${m.memory} · ${m.os} · Node ${m.node}${quick ? ' · --quick' : ''}\n`)
  console.log(textTable(rows))
}

const missed = rows.filter((r) => r.met === false).map((r) => r.name)
if (missed.length > 0) process.stderr.write(`\ntargets missed: ${missed.join('; ')}\n`)
// Missed targets are reported, not fatal: timings depend on the machine. A crashed suite is fatal.
if (failed) process.exitCode = 1
