// runDueTimers expiring 100 000 due conversations on the memory store.
import { importDist, main, quick, row } from './lib.mjs'

const lib = await importDist()
const { createManualClock } = await importDist('testing')

const COUNT = quick ? 20_000 : 100_000
const settingsInput = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://shop.example/help' }

export async function run() {
  const clock = createManualClock()
  const store = lib.createMemoryStore()
  const service = lib.createReconnectService({ settings: settingsInput, store, clock })
  // Disconnected over ten minutes, so the deadlines are spread out like real ones.
  for (let i = 0; i < COUNT; i += 1) {
    const chat = await service.start({ agentId: `agent-${i % 500}`, customerId: `customer-${i}` })
    await service.disconnect(chat.id)
    if (i % 100 === 99) clock.advance(600)
  }
  clock.advance(31 * 60_000) // every window has passed; no wrap-up deadline has
  globalThis.gc?.()

  const t0 = performance.now()
  const applied = await service.runDueTimers()
  const total = performance.now() - t0
  if (applied !== COUNT) throw new Error(`runDueTimers applied ${applied} deadlines, expected ${COUNT}`)
  const sample = await store.get((await store.due(Number.POSITIVE_INFINITY, 1))[0].id)
  if (sample.state !== 'wrap-up') throw new Error(`expected wrap-up after the sweep, got ${sample.state}`)
  if ((await service.runDueTimers()) !== 0) throw new Error('a second sweep found work left over')

  const targetMs = 2000 * (COUNT / 100_000)
  return [
    row({
      name: `runDueTimers, ${COUNT.toLocaleString('en-US')} due (total)`,
      value: total,
      unit: 'ms',
      target: `< ${targetMs.toLocaleString('en-US')} ms`,
      met: total < targetMs,
      note: 'reconnectable → wrap-up (window elapsed) for every conversation, one sweep, memory store',
    }),
    row({ name: 'runDueTimers, per conversation', value: (total * 1000) / COUNT, unit: 'µs' }),
  ]
}

await main(import.meta.url, run)
