import { expect } from 'vitest'
import type { ConversationStore } from '../../src/store/conversation-store'
import { sampleRecord } from '../../src/testing/store-contract'
import type { ConversationRecord } from '../../src/types'

/** Two nodes on one store (each with its own connection) and the records due on it. */
export type TwoNodes = (count: number) => Promise<{ a: ConversationStore; b: ConversationStore; records: ConversationRecord[] }>

const T0 = 1_700_000_000_000
const ids = (rows: ConversationRecord[]) => rows.map((r) => r.id)

/**
 * The claim rules every store whose `due` claims what it returns (for `claimMs`) follows; a case
 * each, to run with `it(c.name, c.run)`. `twoNodes(count)` stores `count` records due at T0 + 0, 1, 2….
 */
export function dueClaimCases(twoNodes: TwoNodes, claimMs: number): Array<{ name: string; run: () => Promise<void> }> {
  return [
    {
      name: 'two nodes sweeping at the same moment load disjoint records, each earliest first',
      run: async () => {
        for (let round = 0; round < 5; round += 1) {
          const { a, b, records } = await twoNodes(60)
          const [first, second] = await Promise.all([a.due(T0 + 100, 40), b.due(T0 + 100, 40)])
          for (const rows of [first, second]) {
            const at = rows.map((r) => r.nextDueAt!)
            expect(at).toEqual([...at].sort((x, y) => x - y))
          }
          const seen = [...ids(first), ...ids(second)]
          expect(new Set(seen).size).toBe(seen.length)
          expect(seen.sort()).toEqual(ids(records).sort())
        }
      },
    },
    {
      name: 'a node sweeping right after another loads only what that one left, until its claim ends',
      run: async () => {
        const { a, b, records } = await twoNodes(6)
        const now = T0 + 10
        expect(ids(await a.due(now, 4))).toEqual(ids(records.slice(0, 4)))
        expect(ids(await b.due(now, 10))).toEqual(ids(records.slice(4)))
        expect(await b.due(now + 1, 10)).toEqual(records.slice(4)) // b's own claims never hide records from b
        expect(ids(await b.due(now + claimMs - 1, 10))).toEqual(ids(records.slice(4)))
        // a's claim ends claimMs after the `now` a swept at, on the service's clock: a node that died
        // holding it delays its records by that much, no more.
        expect(ids(await b.due(now + claimMs, 10))).toEqual(ids(records))
        expect(await a.due(now + claimMs, 10)).toEqual([])
        // a's own view never changed: due() on one store reads like the memory store's.
        expect(ids(await a.due(now + 2 * claimMs + 1, 10))).toEqual(ids(records))
      },
    },
    {
      name: 'a put that moves the deadline ends the claim; one that keeps it does not',
      run: async () => {
        const { a, b, records } = await twoNodes(3)
        const [r0, r1] = records as [ConversationRecord, ConversationRecord]
        expect(ids(await a.due(T0 + 10, 10))).toEqual(ids(records))
        await a.put({ ...r0, version: 2, timers: { window: T0 + 5 }, nextDueAt: T0 + 5 }, 1)
        await a.put({ ...r1, version: 2, agentId: 'agent-2' }, 1)
        expect((await b.due(T0 + 10, 10)).map((r) => [r.id, r.version])).toEqual([[r0.id, 2]])
        // The moved record is b's now; the kept one is still a's.
        expect(ids(await a.due(T0 + 11, 10))).toEqual([r1.id, records[2]!.id])
      },
    },
  ]
}

/** `count` records due at T0 + 0, 1, 2…, in that order. */
export function dueRecords(count: number): ConversationRecord[] {
  return Array.from({ length: count }, (_, i) => sampleRecord({ state: 'reconnectable', timers: { window: T0 + i }, nextDueAt: T0 + i }))
}
