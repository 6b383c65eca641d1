/** Options of {@link formatRemainingTime}. */
export interface FormatRemainingTimeOptions {
  /**
   * The customer's locale(s), as `Intl` takes them (`'de'`, `navigator.languages`).
   * @default the browser's locale
   */
  locale?: string | readonly string[]
  /**
   * The current time, epoch ms.
   * @default Date.now()
   */
  now?: number
  /**
   * `'long'` ("in 5 minutes"), `'short'` ("in 5 min.") or `'narrow'`.
   * @default 'long'
   */
  style?: 'long' | 'short' | 'narrow'
}

const MINUTE = 60_000
const HOUR = 60 * MINUTE

/**
 * The time left until `windowEndsAt` in the customer's language ("in 4 minutes", "dans 4 minutes"),
 * rounded up so it never promises less than is left; `null` when there is no window. Built on
 * `Intl.RelativeTimeFormat`, so it adds no locale data to the page.
 *
 * @example
 * formatRemainingTime(view.windowEndsAt, { locale: navigator.languages }) // 'in 12 minutes'
 */
export function formatRemainingTime(windowEndsAt: number | null | undefined, options: FormatRemainingTimeOptions = {}): string | null {
  if (typeof windowEndsAt !== 'number' || !Number.isFinite(windowEndsAt)) return null
  const left = Math.max(0, windowEndsAt - (options.now ?? Date.now()))
  const format = new Intl.RelativeTimeFormat(options.locale as string | string[] | undefined, {
    numeric: 'auto',
    style: options.style ?? 'long',
  })
  if (left >= 2 * HOUR) return format.format(Math.ceil(left / HOUR), 'hour')
  if (left >= MINUTE) return format.format(Math.ceil(left / MINUTE), 'minute')
  return format.format(Math.ceil(left / 1000), 'second')
}
