import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { STATES, TIMER_NAMES } from '../src/machine/lifecycle'
import { decodeHistory, encodeHistory, readStoredRecord, storedRecordJson } from '../src/store/history-codec'
import { isConversationRecord } from '../src/store/record'
import { sampleRecord } from '../src/testing/store-contract'
import type { HistoryEntry } from '../src/types'
import { replayParameters } from './support/fc-replay'

const T0 = 1_700_000_000_000

/** Every event name the lifecycle records in `history` (src/machine/step.ts `eventName`). */
const RECORDED_EVENTS = [
  'agent.assigned',
  'agent.closed',
  'agent.ended',
  'customer.disconnected',
  'customer.ended',
  'customer.returned',
  'connection.attached',
  'connection.detached',
  ...TIMER_NAMES.map((timer) => `${timer}.elapsed`),
]

const state = fc.constantFrom(...STATES)
const usualEntry = fc.record({
  at: fc.integer({ min: T0, max: T0 + 86_400_000 }),
  event: fc.constantFrom(...RECORDED_EVENTS),
  from: state,
  to: state,
})
/** Anything `isConversationRecord` accepts in an entry: -0, NUL and lone surrogates included. */
const anyEntry = fc.record({
  at: fc.oneof(
    fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(-0, 2 ** 53, -(2 ** 53), Number.MAX_VALUE, 0.5, -1),
  ),
  event: fc.oneof(fc.constantFrom(...RECORDED_EVENTS, 'Customer.returned', 'constructor', '__proto__', ''), fc.string({ maxLength: 12 })),
  from: state,
  to: state,
})
const historyArbitrary: fc.Arbitrary<HistoryEntry[]> = fc.oneof(
  fc.array(usualEntry, { maxLength: 32 }),
  fc.array(fc.oneof({ arbitrary: usualEntry, weight: 3 }, { arbitrary: anyEntry, weight: 1 }), { maxLength: 32 }),
)

/** Whether the compact form can hold `history` exactly (the rule of src/store/history-codec.ts). */
function encodable(history: readonly HistoryEntry[]): boolean {
  let previous = 0
  for (const entry of history) {
    if (!Number.isSafeInteger(entry.at) || Object.is(entry.at, -0) || !Number.isSafeInteger(entry.at - previous)) return false
    if (!RECORDED_EVENTS.includes(entry.event)) return false
    previous = entry.at
  }
  return true
}

describe('history codec', () => {
  it('decodes what it encodes to the same entries; encodes every history of whole-ms times and recorded events', () => {
    fc.assert(
      fc.property(historyArbitrary, (history) => {
        const encoded = encodeHistory(history)
        expect(encoded !== undefined).toBe(encodable(history))
        if (encoded === undefined) return
        expect(encoded).toMatch(/^h1:[-0-9a-zA-Z]*$/)
        expect(decodeHistory(encoded)).toEqual(history)
      }),
      replayParameters(500),
    )
  })

  it('stores a record so that reading it gives what JSON would (either form of history)', () => {
    fc.assert(
      fc.property(historyArbitrary, fc.boolean(), (history, extra) => {
        const record = sampleRecord({ history, version: 7 })
        if (extra) Object.assign(record, { note: { kept: [1, 'two'] } })
        const json = storedRecordJson(record)
        const stored = JSON.parse(json) as { history: unknown }
        expect(typeof stored.history === 'string').toBe(encodable(history))
        expect(readStoredRecord(stored)).toEqual(JSON.parse(JSON.stringify(record)))
      }),
      replayParameters(300),
    )
  })

  it('holds a full history of a long-lived conversation in a small part of its JSON', () => {
    const history: HistoryEntry[] = []
    let at = T0
    for (let i = 0; i < 16; i += 1) {
      history.push({ at: (at += 61_000), event: 'customer.disconnected', from: 'active', to: 'reconnectable' })
      history.push({ at: (at += 1_000), event: 'customer.returned', from: 'reconnectable', to: 'active' })
    }
    const encoded = encodeHistory(history)!
    expect(decodeHistory(encoded)).toEqual(history)
    expect(encoded.length).toBeLessThan(JSON.stringify(history).length / 8)
  })

  it('refuses a damaged encoding', () => {
    const good = encodeHistory([
      { at: T0, event: 'customer.disconnected', from: 'active', to: 'reconnectable' },
      { at: T0 - 5, event: 'customer.returned', from: 'reconnectable', to: 'active' },
    ])!
    expect(decodeHistory(good)).toHaveLength(2)
    const damaged = [
      '',
      'h1',
      'h2:0AAA',
      `x${good}`,
      good.slice(0, -1), // a code short
      good.slice(0, -3), // the last entry's codes gone
      `${good}7`, // a delta without codes
      'h1:AAA', // no delta
      'h1:-AAA',
      'h1:--1AAA',
      'h1:1ZAA', // no event Z
      'h1:1AGA', // no state G
      'h1:1AA{',
      'h1:1AAAA', // a code too many
      'h1:1 AAA',
      'h1:2gosa7pa2gwAAA', // 2^53: not a safe integer
      'h1:000000000001AAA', // more digits than any safe integer needs
      'h1:2gosa7pa2gvAAA2gosa7pa2gvAAA', // the sum is past the safe integers
      'h1:1AAA\u00001AAA',
    ]
    for (const text of damaged) expect(decodeHistory(text), JSON.stringify(text)).toBeUndefined()
  })

  it('never throws on any text, and what it accepts is a valid history that encodes back to itself', () => {
    const text = fc.string({ unit: fc.constantFrom(...'0129az-AFGQZ:h'.split('')), maxLength: 40 })
    fc.assert(
      fc.property(
        fc.oneof(
          text,
          text.map((t) => `h1:${t}`),
        ),
        (candidate) => {
          const history = decodeHistory(candidate)
          if (history === undefined) return
          expect(isConversationRecord(sampleRecord({ history }))).toBe(true)
          expect(decodeHistory(encodeHistory(history)!)).toEqual(history)
        },
      ),
      replayParameters(2_000),
    )
  })

  it('reads a stored value as a record only when all of it is valid, in either form of history', () => {
    const history: HistoryEntry[] = [{ at: T0, event: 'agent.ended', from: 'active', to: 'wrap-up' }]
    const record = sampleRecord({ state: 'wrap-up', history })
    const compact = JSON.parse(storedRecordJson(record)) as Record<string, unknown>
    expect(typeof compact.history).toBe('string')
    expect(readStoredRecord(structuredClone(compact))).toEqual(record)
    expect(readStoredRecord(JSON.parse(JSON.stringify(record)))).toEqual(record)
    for (const bad of [
      { ...compact, history: 'h1:1' },
      { ...compact, history: 'not a history' },
      { ...compact, state: 'lost' },
      { ...compact, version: 'one' },
      { ...record, history: [{ ...history[0], to: 'gone' }] },
      null,
      'h1:',
      [compact],
    ]) {
      expect(readStoredRecord(bad), JSON.stringify(bad)).toBeUndefined()
    }
  })
})
