import { describeValue, formatMs, isPlainObject, parseDuration } from './duration'
import { SettingsError } from './errors'
import type { SettingsIssue } from './errors'
import type { ReconnectSettings, ReconnectSettingsInput } from './types'

const SECOND = 1000
const MINUTE = 60 * SECOND
const DAY = 24 * 60 * MINUTE

const MAX_TIME_LIMIT = 7 * DAY
const MIN_WRAP_UP_CAPACITY = 30 * SECOND
const MAX_WRAP_UP_CAPACITY = 60 * MINUTE
const MAX_URL_LENGTH = 2048
const LINK_PARAM = /^[A-Za-z0-9._~-]{1,64}$/
const DEFAULT_LINK_PARAM = 'oc.reconnectid'

const FIELDS = [
  'enabled',
  'timeLimit',
  'portalUrl',
  'redirectUrl',
  'redirectAllowlist',
  'authenticated',
  'prompt',
  'disconnectGrace',
  'wrapUpAutoClose',
  'wrapUpCapacity',
  'queueAutoClose',
  'warnBefore',
  'linkParam',
  'keepClosedFor',
] as const satisfies ReadonlyArray<keyof ReconnectSettingsInput>

type Field = (typeof FIELDS)[number]

// These fields are `null` in the output when unset, so a `null` input means "unset" too; that lets
// already-defined settings go through defineSettings again unchanged.
const NULLABLE: ReadonlySet<Field> = new Set<Field>(['timeLimit', 'portalUrl', 'redirectUrl', 'redirectAllowlist', 'warnBefore'])
// `keepClosedFor: null` is not "unset" (that is the 7-day default) but "keep until erased".
const KEEP_CLOSED_FOR_DEFAULT = 7 * DAY

/**
 * Validates a widget's settings and returns them frozen, with defaults applied and every duration in ms.
 *
 * Throws a {@link SettingsError} whose `issues` list every problem found, not just the first.
 *
 * @example
 * const settings = defineSettings({ enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://example.com/chat' })
 * settings.timeLimit // 1800000
 */
export function defineSettings(input: ReconnectSettingsInput): ReconnectSettings {
  const issues: SettingsIssue[] = []
  const values = readInput(input as unknown)
  const report = (path: string, message: string): undefined => {
    issues.push({ path, message })
    return undefined
  }
  const given = (field: Field): boolean => {
    const value = values.get(field)
    return value !== undefined && !(value === null && NULLABLE.has(field))
  }

  for (const key of values.keys()) {
    if (!(FIELDS as readonly string[]).includes(key)) report(key, 'is not a known setting')
  }

  const bool = (field: Field, fallback: boolean): boolean | undefined => {
    if (!given(field)) return fallback
    const value = values.get(field)
    return typeof value === 'boolean' ? value : report(field, `must be true or false, got ${describeValue(value)}`)
  }

  const duration = (field: Field, rule: { min?: number; max?: number }): number | undefined => {
    const parsed = parseDuration(values.get(field))
    if (!parsed.ok) return report(field, parsed.message)
    if (rule.min !== undefined && parsed.ms < rule.min) {
      return report(field, rule.min === 1 ? 'must be greater than 0' : `must be at least ${formatMs(rule.min)}, got ${formatMs(parsed.ms)}`)
    }
    if (rule.max !== undefined && parsed.ms > rule.max) {
      return report(field, `must be at most ${formatMs(rule.max)}, got ${formatMs(parsed.ms)}`)
    }
    return parsed.ms
  }

  const url = (field: Field): string | undefined => {
    const problem = checkUrl(values.get(field))
    return problem === undefined ? (values.get(field) as string) : report(field, problem)
  }

  const enabled = bool('enabled', false)
  const authenticated = bool('authenticated', false)
  const prompt = bool('prompt', true)

  let timeLimit: number | null | undefined = null
  if (given('timeLimit')) timeLimit = duration('timeLimit', { min: 1, max: MAX_TIME_LIMIT })
  else if (enabled === true) report('timeLimit', 'is required when reconnect is enabled')

  let portalUrl: string | null | undefined = null
  if (given('portalUrl')) portalUrl = url('portalUrl')
  else if (enabled === true) report('portalUrl', 'is required when reconnect is enabled')

  const redirectAllowlist = given('redirectAllowlist') ? allowlist(values.get('redirectAllowlist'), report) : null

  let redirectUrl: string | null | undefined = null
  if (given('redirectUrl')) {
    redirectUrl = url('redirectUrl')
    if (redirectUrl !== undefined && Array.isArray(redirectAllowlist)) {
      const origin = new URL(redirectUrl).origin
      if (!redirectAllowlist.includes(origin)) report('redirectUrl', `origin ${origin} is not in redirectAllowlist`)
    }
  }

  const disconnectGrace = given('disconnectGrace') ? duration('disconnectGrace', { min: 1 }) : 3 * MINUTE
  const wrapUpAutoClose = given('wrapUpAutoClose') ? duration('wrapUpAutoClose', { min: 1 }) : 15 * MINUTE
  const queueAutoClose = given('queueAutoClose') ? duration('queueAutoClose', { min: 1 }) : 20 * MINUTE

  let wrapUpCapacity: ReconnectSettings['wrapUpCapacity'] | undefined = 'always'
  if (given('wrapUpCapacity')) {
    const value = values.get('wrapUpCapacity')
    wrapUpCapacity =
      value === 'always' || value === 'never'
        ? value
        : duration('wrapUpCapacity', { min: MIN_WRAP_UP_CAPACITY, max: MAX_WRAP_UP_CAPACITY })
  }

  let warnBefore: number | null | undefined = null
  if (given('warnBefore')) {
    warnBefore = duration('warnBefore', { min: 1 })
    // Checked whenever both are known, so switching `enabled` on later cannot surface a new problem.
    if (warnBefore !== undefined && typeof timeLimit === 'number' && warnBefore >= timeLimit) {
      report('warnBefore', `must be shorter than timeLimit (${formatMs(timeLimit)}), got ${formatMs(warnBefore)}`)
    }
  }

  let linkParam: string | undefined = DEFAULT_LINK_PARAM
  if (given('linkParam')) {
    const value = values.get('linkParam')
    linkParam =
      typeof value === 'string' && LINK_PARAM.test(value)
        ? value
        : report('linkParam', `must be 1 to 64 characters from A-Z a-z 0-9 . _ ~ -, got ${describeValue(value)}`)
  }

  let keepClosedFor: number | null | undefined = KEEP_CLOSED_FOR_DEFAULT
  if (values.get('keepClosedFor') === null) keepClosedFor = null
  else if (given('keepClosedFor')) keepClosedFor = duration('keepClosedFor', {})

  if (issues.length > 0) throw new SettingsError(issues)

  // Every undefined above was reported as an issue, so past the throw each value is defined.
  return Object.freeze({
    enabled: enabled!,
    timeLimit: timeLimit!,
    portalUrl: portalUrl!,
    redirectUrl: redirectUrl!,
    redirectAllowlist: redirectAllowlist === null ? null : Object.freeze([...redirectAllowlist!]),
    authenticated: authenticated!,
    prompt: prompt!,
    disconnectGrace: disconnectGrace!,
    wrapUpAutoClose: wrapUpAutoClose!,
    wrapUpCapacity: wrapUpCapacity!,
    queueAutoClose: queueAutoClose!,
    warnBefore: warnBefore!,
    linkParam: linkParam!,
    keepClosedFor: keepClosedFor!,
  })
}

/**
 * How long after entering wrap-up a conversation closes: the later of `wrapUpAutoClose` and a
 * `wrapUpCapacity` duration (SPEC §2).
 *
 * @example
 * wrapUpCloseAfter(defineSettings({ wrapUpAutoClose: 'PT15M', wrapUpCapacity: 'PT20M' })) // 1200000
 */
export function wrapUpCloseAfter(settings: ReconnectSettings): number {
  const capacity = typeof settings.wrapUpCapacity === 'number' ? settings.wrapUpCapacity : 0
  return Math.max(settings.wrapUpAutoClose, capacity)
}

/** Copies the own keys of the input once, so getters run once and the input is never touched again. */
function readInput(input: unknown): Map<string, unknown> {
  let problem = `must be a plain object of settings, got ${describeValue(input)}`
  try {
    if (isPlainObject(input)) {
      const values = new Map<string, unknown>()
      for (const key of Object.keys(input)) values.set(key, input[key])
      return values
    }
  } catch (cause) {
    problem = `could not be read (${cause instanceof Error ? cause.message : 'unknown failure'})`
  }
  throw new SettingsError([{ path: '', message: problem }])
}

function checkUrl(value: unknown): string | undefined {
  if (typeof value !== 'string') return `must be a URL string, got ${describeValue(value)}`
  if (value.length > MAX_URL_LENGTH) return `must be at most ${MAX_URL_LENGTH} characters, got ${value.length}`
  // The URL parser silently drops tabs, newlines and edge spaces; a string that needs that is not what it looks like.
  if (/[\s\u0000-\u001f\u007f]/.test(value)) return 'must not contain whitespace or control characters'
  // Without '//' a browser resolves 'https:example.com' against the current page, so require the full form.
  if (!/^https?:\/\//i.test(value)) {
    return `must be an absolute http:// or https:// URL, got ${describeValue(value)}`
  }
  let parsed: URL
  try {
    parsed = new URL(value)
  } catch {
    return `is not a valid URL, got ${describeValue(value)}`
  }
  if (parsed.username !== '' || parsed.password !== '') return 'must not contain a user name or password'
  return undefined
}

function allowlist(value: unknown, report: (path: string, message: string) => undefined): string[] | undefined {
  if (!Array.isArray(value)) return report('redirectAllowlist', `must be an array of origins, got ${describeValue(value)}`)
  const origins: string[] = []
  let valid = true
  // An index loop, not forEach, so a hole in a sparse array is reported instead of skipped.
  for (let index = 0; index < value.length; index += 1) {
    const entry: unknown = value[index]
    const path = `redirectAllowlist[${index}]`
    const problem = checkUrl(entry)
    if (problem !== undefined) {
      valid = false
      report(path, problem)
      continue
    }
    const text = entry as string
    const parsed = new URL(text)
    if (parsed.pathname !== '/' || text.includes('?') || text.includes('#')) {
      valid = false
      report(path, `must be an origin such as 'https://example.com' (no path, query or fragment), got ${describeValue(entry)}`)
    } else if (parsed.hostname.includes('*')) {
      valid = false
      report(path, 'must not contain wildcards; list each origin')
    } else if (!origins.includes(parsed.origin)) {
      origins.push(parsed.origin)
    }
  }
  return valid ? origins : undefined
}
