import type { Locale } from 'date-fns'
import { formatDistanceStrict } from 'date-fns/formatDistanceStrict'
import { describeValue } from './duration'
import { ReconnectError } from './errors'

/** Options of {@link formatRemaining}. */
export interface FormatRemainingOptions {
  /**
   * A date-fns locale (`import { de } from 'date-fns/locale'`) for the words.
   * @default enUS (date-fns' default locale)
   */
  locale?: Locale
  /**
   * How a part of the unit is counted: `'floor'` never promises more time than is left.
   * @default 'floor'
   */
  roundingMethod?: 'floor' | 'ceil' | 'round' | 'trunc'
}

/**
 * The time left until `windowEndsAt`, in words ("4 minutes", "30 seconds"), for a widget that shows
 * how long a dropped chat can still be resumed. Pure: `now` is passed in. A window that has ended
 * reads as "0 seconds". Throws `ReconnectError('invalid-argument')` for a time that is not a finite number.
 *
 * @example
 * formatRemaining(record.timers.window!, Date.now()) // '29 minutes'
 * formatRemaining(endsAt, now, { locale: de }) // '29 Minuten'
 */
export function formatRemaining(windowEndsAt: number, now: number, options?: FormatRemainingOptions): string {
  if (typeof windowEndsAt !== 'number' || !Number.isFinite(windowEndsAt)) {
    throw new ReconnectError(
      'invalid-argument',
      `formatRemaining: windowEndsAt must be epoch milliseconds, got ${describeValue(windowEndsAt)}`,
    )
  }
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw new ReconnectError('invalid-argument', `formatRemaining: now must be epoch milliseconds, got ${describeValue(now)}`)
  }
  const locale = options?.locale
  const roundingMethod = options?.roundingMethod ?? 'floor'
  try {
    return formatDistanceStrict(Math.max(windowEndsAt, now), now, locale === undefined ? { roundingMethod } : { locale, roundingMethod })
  } catch (cause) {
    // date-fns throws a RangeError for a time outside the Date range and for a locale without formatDistance.
    throw new ReconnectError('invalid-argument', `formatRemaining: ${cause instanceof Error ? cause.message : 'could not format'}`, {
      cause,
    })
  }
}
