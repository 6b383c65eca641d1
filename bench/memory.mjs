// Heap per stored idle conversation in the memory store (run with node --expose-gc).
import { importDist, main, quick, row, settledHeap } from './lib.mjs'

const lib = await importDist()
const { createManualClock } = await importDist('testing')

const COUNT = quick ? 20_000 : 100_000
const LIMIT_BYTES = 2048
/** A stored conversation that is not waiting for anything: its record, two ids and its indexes. */
const IDLE_LIMIT_BYTES = 800
const settingsInput = { enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://shop.example/help' }

/**
 * Fills a fresh memory store with `COUNT` conversations through the service and returns the heap
 * they hold. Ids are the ones a host would really have: nanoid conversation and reconnect ids,
 * a signed-in customer each, 500 agents.
 */
async function heapPerConversation(then) {
  const clock = createManualClock()
  const before = settledHeap()
  const store = lib.createMemoryStore()
  const service = lib.createReconnectService({ settings: settingsInput, store, clock })
  for (let i = 0; i < COUNT; i += 1) {
    const chat = await service.start({ agentId: `agent-${i % 500}`, customerId: `customer-${i}` })
    if (then !== undefined) await then(service, chat)
    if (i % 1000 === 999) clock.advance(1_000)
  }
  const after = settledHeap()
  if (store.size !== COUNT) throw new Error(`the store holds ${store.size} conversations, expected ${COUNT}`)
  const sample = await store.get((await store.heldBy('agent-0'))[0].id)
  return { perConversation: (after - before) / COUNT, sample, keepAlive: store }
}

export async function run() {
  const active = await heapPerConversation()
  const activeBytes = active.perConversation
  active.keepAlive = null
  const waiting = await heapPerConversation((service, chat) => service.disconnect(chat.id))
  const waitingBytes = waiting.perConversation
  return [
    row({
      name: `memory per idle conversation (${active.sample.state}, ${COUNT.toLocaleString('en-US')} stored)`,
      value: activeBytes,
      unit: 'bytes',
      target: '≤ 800 B',
      met: activeBytes <= IDLE_LIMIT_BYTES,
      note: `heapUsed after gc(), divided by the count; record of ${JSON.stringify(active.sample).length} bytes as JSON, with its indexes`,
    }),
    row({
      name: `memory per waiting conversation (${waiting.sample.state})`,
      value: waitingBytes,
      unit: 'bytes',
      target: '< 2 KB',
      met: waitingBytes < LIMIT_BYTES,
      note: 'disconnected with reconnect on: one history entry, a window deadline in the heap, indexed as resumable',
    }),
  ]
}

await main(import.meta.url, run)
