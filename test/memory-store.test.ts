import { describe, expect, it } from 'vitest'
import { createMemoryStore } from '../src/store/memory-store'
import { sampleRecord, storeContract } from '../src/testing/store-contract'

describe('memory store: storeContract', () => {
  for (const c of storeContract(() => createMemoryStore())) it(c.name, c.run)
})

describe('memory store: indexes', () => {
  it('due reads only what it returns from a large store', async () => {
    const store = createMemoryStore()
    const n = 20_000
    for (let i = 0; i < n; i += 1) {
      const at = 1_000_000 + i
      await store.put(sampleRecord({ state: 'reconnectable', timers: { window: at }, nextDueAt: at }), null)
    }
    const due = await store.due(1_000_004, 100)
    expect(due.map((r) => r.nextDueAt)).toEqual([1_000_000, 1_000_001, 1_000_002, 1_000_003, 1_000_004])
    expect(await store.nextDueAt()).toBe(1_000_000)
  })

  it('keeps the deadline heap bounded under repeated updates of one record', async () => {
    const store = createMemoryStore()
    let record = sampleRecord({ state: 'reconnectable', timers: { window: 10 }, nextDueAt: 10 })
    await store.put(record, null)
    for (let i = 0; i < 1_000; i += 1) {
      const next = { ...record, version: record.version + 1, timers: { window: 10 + (i % 3) }, nextDueAt: 10 + (i % 3) }
      await store.put(next, record.version)
      record = next
    }
    const due = await store.due(100, 10)
    expect(due).toHaveLength(1)
    expect(due[0]?.nextDueAt).toBe(record.nextDueAt)
  })
})
