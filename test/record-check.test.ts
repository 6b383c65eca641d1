import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checkRecordForPut, checkRecordForPutOver } from '../src/store/record'
import { sampleRecord } from '../src/testing/store-contract'
import type { ConversationRecord, HistoryEntry } from '../src/types'
import { replayParameters } from './support/fc-replay'

/** What a check says of a write: nothing, or the message it refuses it with. */
function verdict(check: () => void): string | undefined {
  try {
    check()
    return undefined
  } catch (error) {
    return (error as Error).message
  }
}

const T0 = 1_700_000_000_000
const goodEntry = fc.record({
  at: fc.integer({ min: T0, max: T0 + 1_000_000 }),
  event: fc.constantFrom('customer.disconnected', 'window.elapsed'),
  from: fc.constantFrom('active', 'reconnectable'),
  to: fc.constantFrom('reconnectable', 'wrap-up'),
})
// Anything a history slot may hold, most of it refused.
const anyEntry: fc.Arbitrary<unknown> = fc.oneof(
  goodEntry,
  fc.constantFrom(undefined, null, 0, 'entry'),
  goodEntry.map((entry) => ({ ...entry, at: Number.NaN })),
  goodEntry.map((entry) => ({ ...entry, to: 'gone' })),
)
const key = fc.oneof(fc.constant('same'), fc.constant('fresh'), fc.constant('nul\u0000'), fc.constant('lone\ud800'))

describe('checkRecordForPutOver', () => {
  it('refuses exactly the records checkRecordForPut refuses, with the same message, whatever it shares with the stored record (generated)', () => {
    fc.assert(
      fc.property(
        fc.array(goodEntry, { maxLength: 32 }),
        // How the new history is made: from the stored entries (all, or all but the oldest), or not.
        fc.constantFrom('append', 'shift', 'mixed', 'none'),
        fc.array(anyEntry, { maxLength: 3 }),
        fc.array(fc.nat({ max: 40 })),
        fc.record({ id: key, widgetId: key, reconnectId: key, customerId: key, agentId: key, previousAgentId: key }),
        (storedHistory, how, added, picks, keys) => {
          const stored = sampleRecord({ history: storedHistory, customerId: 'customer-1', agentId: 'agent-1', previousAgentId: 'agent-0' })
          let kept: unknown[]
          if (how === 'append') kept = [...storedHistory]
          else if (how === 'shift') kept = storedHistory.slice(1)
          else if (how === 'mixed') kept = picks.map((k) => storedHistory[k % Math.max(1, storedHistory.length)])
          else kept = storedHistory.map((entry) => ({ ...entry }))
          const history = [...kept, ...added] as HistoryEntry[]
          const pickKey = (which: string, own: string) => (which === 'same' ? own : which === 'fresh' ? `${own}-2` : which)
          const record: ConversationRecord = {
            ...stored,
            version: stored.version + 1,
            id: pickKey(keys.id, stored.id),
            widgetId: pickKey(keys.widgetId, stored.widgetId),
            reconnectId: pickKey(keys.reconnectId, stored.reconnectId),
            customerId: pickKey(keys.customerId, 'customer-1'),
            agentId: pickKey(keys.agentId, 'agent-1'),
            previousAgentId: pickKey(keys.previousAgentId, 'agent-0'),
            history,
          }
          const plain = verdict(() => checkRecordForPut(record, stored.version, 'memory store: put()'))
          const over = verdict(() => checkRecordForPutOver(record, stored.version, 'memory store: put()', stored))
          expect(over).toBe(plain)
        },
      ),
      replayParameters(300),
    )
  })

  it('still reads a history entry that is not the stored one at its place, and a sparse slot', () => {
    const entry: HistoryEntry = { at: T0, event: 'customer.disconnected', from: 'active', to: 'reconnectable' }
    const stored = sampleRecord({ history: [entry] })
    // The stored entry, then a hole where a stored record has nothing: the hole is refused.
    const sparse = [entry] as HistoryEntry[]
    sparse.length = 2
    expect(() => checkRecordForPutOver({ ...stored, version: 2, history: sparse }, 1, 'put', stored)).toThrow(/history\[1\]/)
    // The stored entry one place later than it was: read again (and fine).
    expect(() => checkRecordForPutOver({ ...stored, version: 2, history: [entry, entry] }, 1, 'put', stored)).not.toThrow()
  })
})
