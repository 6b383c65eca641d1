import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseDuration, toMilliseconds } from '../src/duration'
import { SettingsError } from '../src/errors'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

function ms(input: unknown): number {
  const result = parseDuration(input)
  if (!result.ok) throw new Error(`expected a duration, got message: ${result.message}`)
  return result.ms
}

function message(input: unknown): string {
  const result = parseDuration(input)
  if (result.ok) throw new Error(`expected a rejection, got ${result.ms} ms`)
  return result.message
}

describe('parseDuration: milliseconds', () => {
  it('accepts whole non-negative numbers as they are', () => {
    expect(ms(0)).toBe(0)
    expect(ms(1)).toBe(1)
    expect(ms(1_800_000)).toBe(1_800_000)
    expect(ms(Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER)
  })

  it('turns -0 into 0', () => {
    expect(Object.is(ms(-0), 0)).toBe(true)
  })

  it('rejects negative, NaN, infinite, fractional and unsafe numbers', () => {
    expect(message(-1)).toMatch(/negative/)
    expect(message(Number.NaN)).toMatch(/NaN/)
    expect(message(Number.POSITIVE_INFINITY)).toMatch(/finite/)
    expect(message(Number.NEGATIVE_INFINITY)).toMatch(/finite/)
    expect(message(1.5)).toMatch(/whole number of milliseconds/)
    expect(message(2 ** 60)).toMatch(/too large/)
  })
})

describe('parseDuration: date-fns Duration objects', () => {
  it('adds up weeks, days, hours, minutes and seconds', () => {
    expect(ms({ minutes: 30 })).toBe(30 * MINUTE)
    expect(ms({ weeks: 1, days: 1, hours: 1, minutes: 1, seconds: 1 })).toBe(8 * DAY + HOUR + MINUTE + 1000)
    expect(ms({ seconds: 0.5 })).toBe(500)
    expect(ms({ hours: 1.5 })).toBe(90 * MINUTE)
  })

  it('rounds float noise to whole milliseconds', () => {
    expect(ms({ seconds: 1.1 })).toBe(1100)
    expect(ms({ seconds: 0.0004 })).toBe(0)
  })

  it('ignores undefined units and allows zero years/months', () => {
    expect(ms({ minutes: 5, hours: undefined })).toBe(5 * MINUTE)
    expect(ms({ years: 0, months: 0, days: 2 })).toBe(2 * DAY)
  })

  it('accepts null-prototype objects', () => {
    const duration = Object.assign(Object.create(null) as object, { minutes: 2 })
    expect(ms(duration)).toBe(2 * MINUTE)
  })

  it('rejects calendar units with a clear reason', () => {
    expect(message({ months: 1 })).toMatch(/'months'.*calendar/)
    expect(message({ years: 1 })).toMatch(/'years'.*calendar/)
  })

  it('rejects unknown keys, bad amounts and empty objects, listing every problem', () => {
    expect(message({ minute: 30 })).toMatch(/unknown key 'minute'/)
    expect(message({ milliseconds: 5 })).toMatch(/unknown key 'milliseconds'/)
    expect(message({ minutes: -1 })).toMatch(/'minutes' must be a finite number >= 0/)
    expect(message({ minutes: '30' })).toMatch(/'minutes'/)
    expect(message({ minutes: Number.NaN })).toMatch(/'minutes'/)
    expect(message({})).toMatch(/empty/)
    expect(message({ hours: undefined })).toMatch(/empty/)
    const both = message({ months: 1, foo: 2 })
    expect(both).toMatch(/months/)
    expect(both).toMatch(/foo/)
  })

  it('rejects durations whose total is too large', () => {
    expect(message({ weeks: 1e300 })).toMatch(/too large/)
  })

  it('rejects arrays, dates, class instances and other non-plain values', () => {
    for (const value of [[], [1], new Date(0), new Map(), null, undefined, true, 10n, Symbol('x'), () => 1]) {
      expect(parseDuration(value).ok).toBe(false)
    }
  })
})

describe('parseDuration: ISO-8601 strings', () => {
  it.each([
    ['PT30M', 30 * MINUTE],
    ['P1D', DAY],
    ['PT1H30M', 90 * MINUTE],
    ['PT0.5S', 500],
    ['PT0,5S', 500],
    ['P1W', 7 * DAY],
    ['P1W2D', 9 * DAY],
    ['P1DT12H', 36 * HOUR],
    ['PT1.5H', 90 * MINUTE],
    ['PT36H', 36 * HOUR],
    ['PT0S', 0],
    ['P0Y0M1D', DAY],
    ['PT1.0004S', 1000],
  ])('%s is %d ms', (text, expected) => {
    expect(ms(text)).toBe(expected)
  })

  it.each([
    ['', /ISO-8601/],
    ['P', /no components/],
    ['PT', /no components/],
    ['P1DT', /'T' with no/],
    ['P1Y', /years/],
    ['P1M', /months/],
    ['P1Y2M', /calendar/],
    ['-PT30M', /negative/],
    ['30 minutes', /ISO-8601/],
    ['PT30m', /ISO-8601/],
    ['pt30m', /ISO-8601/],
    [' PT30M', /ISO-8601/],
    ['PT30M ', /ISO-8601/],
    ['PT.5S', /ISO-8601/],
    ['PT5.S', /ISO-8601/],
    ['PT1.5H30M', /fraction only on its last/],
    ['P1.5DT1H', /fraction only on its last/],
    ['PT30M1H', /ISO-8601/],
    ['T30M', /ISO-8601/],
    ['1800000', /ISO-8601/],
    [`PT${'1'.repeat(62)}S`, /longer than 64/],
    ['P99999999999999999999W', /too large/],
  ])('%j is rejected', (text, reason) => {
    expect(message(text)).toMatch(reason)
  })

  it('accepts strings of exactly 64 characters', () => {
    const text = `PT${'0'.repeat(61)}S`
    expect(text).toHaveLength(64)
    expect(ms(text)).toBe(0)
  })

  // A hang here would trip the test timeout; speed itself belongs in benchmarks, not in assertions.
  it('rejects long pathological strings', () => {
    for (let i = 0; i < 1000; i += 1) {
      expect(parseDuration(`P${'1'.repeat(63)}`).ok).toBe(false)
      expect(parseDuration(`PT${'1.1'.repeat(20)}`).ok).toBe(false)
      expect(parseDuration(`P${'1'.repeat(10_000)}`).ok).toBe(false)
    }
  })
})

describe('parseDuration: properties', () => {
  it('the three forms agree for whole seconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), (seconds) => {
        const n = seconds * 1000
        expect(ms(n)).toBe(n)
        expect(ms({ seconds })).toBe(n)
        expect(ms(`PT${seconds}S`)).toBe(n)
      }),
    )
  })

  it('the three forms agree for any whole number of milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e12 }), (n) => {
        expect(ms({ seconds: n / 1000 })).toBe(n)
        expect(ms(`PT${n / 1000}S`)).toBe(n)
      }),
    )
  })

  it('an ISO string and the Duration object with the same units agree', () => {
    const amount = fc.option(fc.integer({ min: 0, max: 1000 }), { nil: undefined })
    fc.assert(
      fc.property(amount, amount, amount, amount, amount, (weeks, days, hours, minutes, seconds) => {
        fc.pre([weeks, days, hours, minutes, seconds].some((v) => v !== undefined))
        const date = `${weeks === undefined ? '' : `${weeks}W`}${days === undefined ? '' : `${days}D`}`
        const time = `${hours === undefined ? '' : `${hours}H`}${minutes === undefined ? '' : `${minutes}M`}${seconds === undefined ? '' : `${seconds}S`}`
        const text = `P${date}${time === '' ? '' : `T${time}`}`
        const expected = (weeks ?? 0) * 7 * DAY + (days ?? 0) * DAY + (hours ?? 0) * HOUR + (minutes ?? 0) * MINUTE + (seconds ?? 0) * 1000
        expect(ms(text)).toBe(expected)
        expect(ms({ weeks, days, hours, minutes, seconds })).toBe(expected)
      }),
    )
  })

  it('never throws and always yields a safe integer >= 0 or a message', () => {
    const inputs = fc.oneof(
      fc.anything({ maxDepth: 2, maxKeys: 5 }),
      fc.double(),
      fc.string({ maxLength: 80 }),
      fc.stringMatching(/^-?P(\d{1,4}[YMWD])*(T(\d{1,4}([.,]\d{1,3})?[HMS])*)?$/),
      fc.dictionary(
        fc.constantFrom('years', 'months', 'weeks', 'days', 'hours', 'minutes', 'seconds', 'ms'),
        fc.oneof(fc.double(), fc.integer(), fc.constant(undefined), fc.string({ maxLength: 3 })),
        { maxKeys: 4 },
      ),
    )
    fc.assert(
      fc.property(inputs, (input) => {
        const result = parseDuration(input)
        if (result.ok) {
          expect(Number.isSafeInteger(result.ms)).toBe(true)
          expect(result.ms).toBeGreaterThanOrEqual(0)
        } else {
          expect(result.message.length).toBeGreaterThan(0)
        }
      }),
      { numRuns: 500 },
    )
  })

  it('does not mutate a Duration object', () => {
    const duration = Object.freeze({ hours: 1, minutes: 30 })
    expect(ms(duration)).toBe(90 * MINUTE)
    expect(duration).toEqual({ hours: 1, minutes: 30 })
  })

  it('never throws on a hostile object', () => {
    const hostile = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('boom')
        },
      },
    )
    const result = parseDuration(hostile)
    expect(result.ok).toBe(false)
  })
})

describe('toMilliseconds', () => {
  it('returns milliseconds for every accepted form', () => {
    expect(toMilliseconds(1500)).toBe(1500)
    expect(toMilliseconds({ minutes: 30 })).toBe(30 * MINUTE)
    expect(toMilliseconds('PT30M')).toBe(30 * MINUTE)
  })

  it('throws a SettingsError with one issue at the root', () => {
    for (const bad of [-1, '30 minutes', { months: 1 }, Number.NaN] as const) {
      let thrown: unknown
      try {
        toMilliseconds(bad)
      } catch (error) {
        thrown = error
      }
      expect(thrown).toBeInstanceOf(SettingsError)
      const error = thrown as SettingsError
      expect(error.code).toBe('invalid-settings')
      expect(error.issues).toHaveLength(1)
      expect(error.issues[0]?.path).toBe('')
      expect(error.issues[0]?.message).toBe((parseDuration(bad) as { message: string }).message)
    }
  })
})
