import type { Duration } from 'date-fns'
// Subpath imports: one small module each, for bundlers and for import maps in unbundled pages alike.
import { milliseconds } from 'date-fns/milliseconds'
import { SettingsError } from './errors'
import type { SettingsIssueCode } from './errors'
import type { DurationInput } from './types'

/** Why {@link parseDuration} refused an input: the {@link SettingsIssueCode}s a duration can have. */
export type DurationIssueCode = Extract<
  SettingsIssueCode,
  'unreadable' | 'invalid-type' | 'invalid-duration' | 'calendar-unit' | 'too-small' | 'too-big'
>

/** The outcome of {@link parseDuration}: milliseconds, or why the input is not a duration. */
export type DurationResult = { ok: true; ms: number } | { ok: false; code: DurationIssueCode; message: string }

// One home for the lengths of units. (date-fns/constants has the same numbers, but importing that
// module brings its module-scope arithmetic into every bundle that touches durations.)
/** @internal */
export const SECOND = 1000
/** @internal */
export const MINUTE = 60 * SECOND
/** @internal */
export const HOUR = 60 * MINUTE
/** @internal */
export const DAY = 24 * HOUR
/** @internal */
export const WEEK = 7 * DAY

// Years and months have no fixed length, and a time limit that shifts with the calendar is not a limit.
// (date-fns' `milliseconds` would count a year as 365.2425 days and a month as a twelfth of that.)
const TIME_UNITS = ['weeks', 'days', 'hours', 'minutes', 'seconds'] as const
const CALENDAR_UNITS = ['years', 'months'] as const
type TimeUnit = (typeof TIME_UNITS)[number]

const MAX_ISO_LENGTH = 64
// Each number is closed by a distinct designator letter that `\d` cannot match, so the match is linear.
// Written out as a literal: a module-scope `new RegExp` survives tree-shaking in every bundle of this chunk.
const ISO_DURATION =
  /^P(?:(\d+(?:[.,]\d+)?)Y)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)W)?(?:(\d+(?:[.,]\d+)?)D)?(?:(T)(?:(\d+(?:[.,]\d+)?)H)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)S)?)?$/

const EXPECTED = "a duration: milliseconds (e.g. 1800000), a date-fns Duration (e.g. { minutes: 30 }) or an ISO-8601 string (e.g. 'PT30M')"

/**
 * Converts a duration to whole milliseconds without throwing.
 *
 * Accepts a whole number of milliseconds (>= 0), a date-fns `Duration` with `weeks`, `days`, `hours`,
 * `minutes` and `seconds`, or an ISO-8601 duration string (`'PT30M'`, `'P1DT12H'`, `'PT0.5S'`, `'P1W'`).
 * Years and months are refused because their length depends on the calendar. Fractions of a unit are
 * allowed in the object and string forms and the total is rounded to the nearest millisecond.
 * A refusal carries a stable `code` besides its `message`.
 *
 * @example
 * parseDuration('PT1H30M') // { ok: true, ms: 5400000 }
 * parseDuration({ months: 1 }) // { ok: false, code: 'calendar-unit', message: '...calendar...' }
 */
export function parseDuration(input: unknown): DurationResult {
  try {
    if (typeof input === 'number') return fromNumber(input)
    if (typeof input === 'string') return fromIso(input)
    if (isPlainObject(input)) return fromObject(input)
    return fail('invalid-type', `must be ${EXPECTED}, got ${describeValue(input)}`)
  } catch (cause) {
    // Only exotic inputs (a Proxy or a throwing getter) get here; the contract is to never throw.
    return fail('unreadable', `could not be read as a duration (${describeCause(cause)})`)
  }
}

/**
 * Converts a duration to whole milliseconds, or throws a {@link SettingsError} with one issue.
 *
 * @example
 * toMilliseconds({ minutes: 30 }) // 1800000
 */
export function toMilliseconds(input: DurationInput): number {
  const result = parseDuration(input)
  if (!result.ok) throw new SettingsError([{ path: '', code: result.code, message: result.message }])
  return result.ms
}

function fromNumber(value: number): DurationResult {
  if (Number.isNaN(value)) return fail('invalid-duration', 'must be a number of milliseconds, got NaN')
  if (!Number.isFinite(value)) return fail('invalid-duration', `must be a finite number of milliseconds, got ${String(value)}`)
  if (value < 0) return fail('too-small', `must not be negative, got ${String(value)}`)
  // Deadlines are stored as integer epoch ms (bigint columns, Redis scores); a sub-ms part cannot be honoured.
  if (!Number.isInteger(value)) return fail('invalid-duration', `must be a whole number of milliseconds, got ${String(value)}`)
  if (!Number.isSafeInteger(value)) return fail('too-big', `is too large (more than ${Number.MAX_SAFE_INTEGER} ms)`)
  return { ok: true, ms: value + 0 } // + 0 turns -0 into 0
}

function fromObject(value: Record<string, unknown>): DurationResult {
  const problems: string[] = []
  let code: DurationIssueCode = 'invalid-duration'
  const duration: Duration = {}
  for (const key of Object.keys(value)) {
    const amount = value[key]
    if ((CALENDAR_UNITS as readonly string[]).includes(key)) {
      // A zero is exact, and some tools fill every unit in; only a real amount is ambiguous.
      if (amount !== undefined && amount !== 0) {
        if (problems.length === 0) code = 'calendar-unit'
        problems.push(`'${key}' is not allowed because its length depends on the calendar; use weeks or days`)
      }
      continue
    }
    if (!(TIME_UNITS as readonly string[]).includes(key)) {
      code = 'invalid-duration'
      problems.push(`unknown key '${key}' (allowed: ${TIME_UNITS.join(', ')})`)
      continue
    }
    if (amount === undefined) continue
    if (typeof amount !== 'number' || !Number.isFinite(amount) || amount < 0) {
      code = 'invalid-duration'
      problems.push(`'${key}' must be a finite number >= 0, got ${describeValue(amount)}`)
      continue
    }
    duration[key as TimeUnit] = amount
  }
  if (problems.length > 0) return fail(code, `is not a valid Duration: ${problems.join('; ')}`)
  if (Object.keys(duration).length === 0) {
    return fail('invalid-duration', 'is an empty Duration; set at least one of weeks, days, hours, minutes or seconds')
  }
  return finish(duration)
}

function fromIso(text: string): DurationResult {
  if (text.length > MAX_ISO_LENGTH) return fail('invalid-duration', `is longer than ${MAX_ISO_LENGTH} characters`)
  if (text.startsWith('-')) return fail('too-small', `must not be negative, got ${quote(text)}`)
  const match = ISO_DURATION.exec(text)
  if (match === null) {
    return fail('invalid-duration', `must be an ISO-8601 duration such as 'PT30M', 'P1D' or 'PT1H30M', got ${quote(text)}`)
  }
  const [, years, months, weeks, days, timeMark, hours, minutes, seconds] = match
  if (!isZero(years) || !isZero(months)) {
    return fail(
      'calendar-unit',
      `must not use years (Y) or months (M before T) because their length depends on the calendar, got ${quote(text)}`,
    )
  }
  const parts: Array<[TimeUnit, string | undefined]> = [
    ['weeks', weeks],
    ['days', days],
    ['hours', hours],
    ['minutes', minutes],
    ['seconds', seconds],
  ]
  const present = parts.filter((part): part is [TimeUnit, string] => part[1] !== undefined)
  if (present.length === 0 && years === undefined && months === undefined) {
    return fail('invalid-duration', `has no components, got ${quote(text)}`)
  }
  if (timeMark !== undefined && hours === undefined && minutes === undefined && seconds === undefined) {
    return fail('invalid-duration', `has a 'T' with no hours, minutes or seconds after it, got ${quote(text)}`)
  }
  // ISO 8601 allows a decimal fraction only on the smallest unit written.
  if (present.slice(0, -1).some(([, digits]) => /[.,]/.test(digits))) {
    return fail('invalid-duration', `may have a fraction only on its last component, got ${quote(text)}`)
  }
  const duration: Duration = {}
  for (const [unit, digits] of present) duration[unit] = Number(digits.replace(',', '.'))
  return finish(duration)
}

function isZero(digits: string | undefined): boolean {
  return digits === undefined || Number(digits.replace(',', '.')) === 0
}

/** Milliseconds of a Duration of time units only (calendar units were refused before), rounded to whole ms. */
function finish(duration: Duration): DurationResult {
  // date-fns truncates its result to whole ms, but fractional units go through float arithmetic
  // (1.005 s is 1004.9999999999999 ms), so ask it for microseconds and round those to the nearest ms.
  const micro: Duration = {}
  for (const unit of TIME_UNITS) {
    const amount = duration[unit]
    if (amount !== undefined) micro[unit] = amount * 1000
  }
  const ms = Math.round(milliseconds(micro) / 1000) + 0
  if (!Number.isSafeInteger(ms)) return fail('too-big', `is too large (more than ${Number.MAX_SAFE_INTEGER} ms)`)
  return { ok: true, ms }
}

function fail(code: DurationIssueCode, message: string): DurationResult {
  return { ok: false, code, message }
}

function quote(text: string): string {
  return `'${text.length > 40 ? `${text.slice(0, 40)}…` : text}'`
}

/** @internal True for `{}`-style objects (any realm) and null-prototype objects; false for arrays, dates, class instances. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === null || Object.getPrototypeOf(proto) === null
}

/** @internal The message of whatever a throwing getter or Proxy trap threw, without reading anything that could throw again. */
export function describeCause(cause: unknown): string {
  try {
    if (cause instanceof Error && typeof cause.message === 'string') return cause.message
  } catch {
    // A Proxy posing as an Error can throw from its traps too.
  }
  return 'unknown failure'
}

/** @internal A short, safe description of any value for an error message (never throws). */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return quote(value)
    case 'number':
    case 'boolean':
      return String(value)
    case 'bigint':
      return `${String(value)}n (a bigint)`
    case 'undefined':
      return 'undefined'
    case 'symbol':
      return 'a symbol'
    case 'function':
      return 'a function'
    default:
      if (value === null) return 'null'
      try {
        if (Array.isArray(value)) return 'an array'
        return isPlainObject(value) ? 'an object' : 'a non-plain object'
      } catch {
        // A revoked Proxy throws from Array.isArray, and any Proxy can throw from getPrototypeOf.
        return 'an unreadable object'
      }
  }
}

/** @internal Milliseconds in the largest whole unit, for messages: 604800000 → '7 days'. */
export function formatMs(ms: number): string {
  const units: Array<[number, string]> = [
    [DAY, 'day'],
    [HOUR, 'hour'],
    [MINUTE, 'minute'],
    [SECOND, 'second'],
  ]
  for (const [size, name] of units) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${name}${ms === size ? '' : 's'}`
  }
  return `${ms} ms`
}
