import { de } from 'date-fns/locale'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ReconnectError } from '../src/errors'
import { formatRemaining } from '../src/format-remaining'

const NOW = 1_735_689_600_000
const SECOND = 1000
const MINUTE = 60 * SECOND

describe('formatRemaining', () => {
  it('says how long is left in words', () => {
    expect(formatRemaining(NOW + 30 * MINUTE, NOW)).toBe('30 minutes')
    expect(formatRemaining(NOW + 45 * SECOND, NOW)).toBe('45 seconds')
    expect(formatRemaining(NOW + 2 * 60 * MINUTE, NOW)).toBe('2 hours')
    expect(formatRemaining(NOW + MINUTE, NOW)).toBe('1 minute')
  })

  it('never promises more time than is left, unless asked to round otherwise', () => {
    expect(formatRemaining(NOW + 4 * MINUTE + 59 * SECOND, NOW)).toBe('4 minutes')
    expect(formatRemaining(NOW + 4 * MINUTE + 59 * SECOND, NOW, { roundingMethod: 'round' })).toBe('5 minutes')
    expect(formatRemaining(NOW + 4 * MINUTE + SECOND, NOW, { roundingMethod: 'ceil' })).toBe('5 minutes')
  })

  it('reads an ended window as no time left', () => {
    expect(formatRemaining(NOW - MINUTE, NOW)).toBe('0 seconds')
    expect(formatRemaining(NOW, NOW)).toBe('0 seconds')
  })

  it('speaks the given date-fns locale', () => {
    expect(formatRemaining(NOW + 30 * MINUTE, NOW, { locale: de })).toBe('30 Minuten')
  })

  it('whole minutes under an hour read as that many minutes (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 59 }), fc.integer({ min: 0, max: 59_999 }), (minutes, extraMs) => {
        expect(formatRemaining(NOW + minutes * MINUTE + extraMs, NOW)).toBe(`${minutes} minutes`)
      }),
    )
  })

  it('refuses times that are not finite epoch ms with a typed error', () => {
    for (const [endsAt, now] of [
      [Number.NaN, NOW],
      [NOW, Number.POSITIVE_INFINITY],
      ['soon', NOW],
      [NOW, undefined],
      [1e20, NOW],
    ] as const) {
      expect(() => formatRemaining(endsAt as number, now as number)).toThrow(ReconnectError)
    }
    expect(() => formatRemaining(NOW + MINUTE, NOW, { locale: {} as never })).toThrow(expect.objectContaining({ code: 'invalid-argument' }))
  })
})
