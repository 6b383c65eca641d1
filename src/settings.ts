import { DAY, MINUTE, SECOND, describeCause, describeValue, formatMs, isPlainObject, parseDuration } from './duration'
import { SettingsError, isSettingsError } from './errors'
import type { SettingsIssue, SettingsIssueInput } from './errors'
import { DEFAULT_LINK_PARAM } from './links'
import type { ReconnectSettings, ReconnectSettingsInput } from './types'

const MAX_TIME_LIMIT = 7 * DAY
// At least a second: a bare number below 1000 in these four is almost always minutes or seconds meant as ms.
const MIN_TIMER = SECOND
const MIN_WRAP_UP_CAPACITY = 30 * SECOND
const MAX_WRAP_UP_CAPACITY = 60 * MINUTE
const MAX_URL_LENGTH = 2048
const MAX_LINK_PARAM_LENGTH = 64
// RFC 3986 unreserved characters, the same alphabet as reconnect ids: safe in a query unescaped.
const LINK_PARAM = /^[A-Za-z0-9._~-]+$/
const DEFAULT_DETACH_GRACE = 10_000
const MAX_DETACH_GRACE = 60 * 60_000

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
  'detachGrace',
  'warnBefore',
  'linkParam',
  'keepClosedFor',
] as const satisfies ReadonlyArray<keyof ReconnectSettingsInput>

type Field = (typeof FIELDS)[number]
type Report = (issue: SettingsIssueInput & Pick<SettingsIssue, 'code'>) => undefined

// These fields are `null` in the output when unset, so a `null` input means "unset" too; that lets
// already-defined settings go through defineSettings again unchanged.
const NULLABLE: ReadonlySet<Field> = /* @__PURE__ */ new Set<Field>([
  'timeLimit',
  'portalUrl',
  'redirectUrl',
  'redirectAllowlist',
  'warnBefore',
])
// `keepClosedFor: null` is not "unset" (that is the 7-day default) but "keep until erased".
const KEEP_CLOSED_FOR_DEFAULT = 7 * DAY

/**
 * Validates a widget's settings and returns them frozen, with defaults applied and every duration in ms.
 *
 * Throws a {@link SettingsError} whose `issues` list every problem found, not just the first; each
 * issue has a stable `code` and, for a limit, `minimum` / `maximum`. Nothing else is ever thrown,
 * also not for a Proxy or getter that throws.
 *
 * `timeLimit`, `disconnectGrace`, `wrapUpAutoClose` and `queueAutoClose` are at least 1 second.
 * URL settings are kept as written, so they must read the same in every URL parser: printable
 * ASCII only (no backslash, whitespace or control characters; an internationalised host in its
 * `xn--` form), and the host written as the WHATWG URL parser reads it.
 *
 * @example
 * const settings = defineSettings({ enabled: true, timeLimit: { minutes: 30 }, portalUrl: 'https://example.com/chat' })
 * settings.timeLimit // 1800000
 */
export function defineSettings(input: ReconnectSettingsInput): ReconnectSettings {
  try {
    return define(input as unknown)
  } catch (cause) {
    if (isSettingsError(cause)) throw cause
    // Every read of the input is guarded where it happens; this is the backstop that keeps the promise
    // "SettingsError or settings" for whatever exotic object gets past them.
    throw new SettingsError([{ path: '', code: 'unreadable', message: `could not be read (${describeCause(cause)})` }], { cause })
  }
}

function define(input: unknown): ReconnectSettings {
  const issues: SettingsIssueInput[] = []
  const values = readInput(input)
  const report: Report = (issue) => {
    issues.push(issue)
    return undefined
  }
  const given = (field: Field): boolean => {
    const value = values.get(field)
    return value !== undefined && !(value === null && NULLABLE.has(field))
  }

  const known: ReadonlySet<string> = new Set(FIELDS)
  for (const key of values.keys()) {
    if (!known.has(key)) report({ path: key, code: 'unknown-key', message: 'is not a known setting' })
  }

  const bool = (field: Field, fallback: boolean): boolean | undefined => {
    if (!given(field)) return fallback
    const value = values.get(field)
    return typeof value === 'boolean'
      ? value
      : report({ path: field, code: 'invalid-type', message: `must be true or false, got ${describeValue(value)}` })
  }

  const duration = (field: Field, rule: { min: number; max?: number }): number | undefined => {
    const value = values.get(field)
    const parsed = parseDuration(value)
    if (!parsed.ok) {
      if (parsed.code === 'too-small')
        return report({ path: field, code: 'too-small', message: parsed.message, minimum: rule.min, unit: 'ms' })
      if (parsed.code === 'too-big') {
        return report({ path: field, code: 'too-big', message: parsed.message, maximum: rule.max ?? Number.MAX_SAFE_INTEGER, unit: 'ms' })
      }
      return report({ path: field, code: parsed.code, message: parsed.message })
    }
    if (parsed.ms < rule.min) {
      return report({ path: field, code: 'too-small', message: tooSmall(rule, parsed.ms, value), minimum: rule.min, unit: 'ms' })
    }
    if (rule.max !== undefined && parsed.ms > rule.max) {
      return report({
        path: field,
        code: 'too-big',
        message: `must be at most ${formatMs(rule.max)}, got ${formatMs(parsed.ms)}`,
        maximum: rule.max,
        unit: 'ms',
      })
    }
    return parsed.ms
  }

  const url = (field: Field): string | undefined => {
    const checked = checkUrl(values.get(field))
    return typeof checked === 'string' ? checked : report({ path: field, ...checked.problem })
  }

  const enabled = bool('enabled', false)
  const authenticated = bool('authenticated', false)
  const prompt = bool('prompt', true)

  let timeLimit: number | null | undefined = null
  if (given('timeLimit')) timeLimit = duration('timeLimit', { min: MIN_TIMER, max: MAX_TIME_LIMIT })
  else if (enabled === true) report({ path: 'timeLimit', code: 'required', message: 'is required when reconnect is enabled' })

  let portalUrl: string | null | undefined = null
  if (given('portalUrl')) portalUrl = url('portalUrl')
  else if (enabled === true) report({ path: 'portalUrl', code: 'required', message: 'is required when reconnect is enabled' })

  const allowed = given('redirectAllowlist') ? allowlist(values.get('redirectAllowlist'), report) : null

  let redirectUrl: string | null | undefined = null
  if (given('redirectUrl')) {
    redirectUrl = url('redirectUrl')
    if (redirectUrl !== undefined && allowed instanceof Set) {
      const origin = new URL(redirectUrl).origin
      if (!allowed.has(origin)) {
        report({ path: 'redirectUrl', code: 'not-allowed', message: `origin ${origin} is not in redirectAllowlist` })
      }
    }
  }

  const disconnectGrace = given('disconnectGrace') ? duration('disconnectGrace', { min: MIN_TIMER }) : 3 * MINUTE
  const wrapUpAutoClose = given('wrapUpAutoClose') ? duration('wrapUpAutoClose', { min: MIN_TIMER }) : 15 * MINUTE
  const queueAutoClose = given('queueAutoClose') ? duration('queueAutoClose', { min: MIN_TIMER }) : 20 * MINUTE
  // 0 is allowed: the last connection's detach then disconnects at once.
  const detachGrace = given('detachGrace') ? duration('detachGrace', { min: 0, max: MAX_DETACH_GRACE }) : DEFAULT_DETACH_GRACE

  let wrapUpCapacity: ReconnectSettings['wrapUpCapacity'] | undefined = 'always'
  if (given('wrapUpCapacity')) {
    const value = values.get('wrapUpCapacity')
    wrapUpCapacity =
      value === 'always' || value === 'never' ? value : duration('wrapUpCapacity', { min: MIN_WRAP_UP_CAPACITY, max: MAX_WRAP_UP_CAPACITY })
  }

  let warnBefore: number | null | undefined = null
  if (given('warnBefore')) {
    warnBefore = duration('warnBefore', { min: 1 })
    // Checked whenever both are known, so switching `enabled` on later cannot surface a new problem.
    if (warnBefore !== undefined && typeof timeLimit === 'number' && warnBefore >= timeLimit) {
      report({
        path: 'warnBefore',
        code: 'too-big',
        message: `must be shorter than timeLimit (${formatMs(timeLimit)}), got ${formatMs(warnBefore)}`,
        maximum: timeLimit - 1,
        unit: 'ms',
      })
    }
  }

  let linkParam: string | undefined = DEFAULT_LINK_PARAM
  if (given('linkParam')) linkParam = checkLinkParam(values.get('linkParam'), report)

  let keepClosedFor: number | null | undefined = KEEP_CLOSED_FOR_DEFAULT
  if (values.get('keepClosedFor') === null) keepClosedFor = null
  else if (given('keepClosedFor')) keepClosedFor = duration('keepClosedFor', { min: 0 })

  if (issues.length > 0) throw new SettingsError(issues)

  // Every undefined above was reported as an issue, so past the throw each value is defined.
  return Object.freeze({
    enabled: enabled!,
    timeLimit: timeLimit!,
    portalUrl: portalUrl!,
    redirectUrl: redirectUrl!,
    redirectAllowlist: allowed === null ? null : Object.freeze([...allowed!]),
    authenticated: authenticated!,
    prompt: prompt!,
    disconnectGrace: disconnectGrace!,
    wrapUpAutoClose: wrapUpAutoClose!,
    wrapUpCapacity: wrapUpCapacity!,
    queueAutoClose: queueAutoClose!,
    detachGrace: detachGrace!,
    warnBefore: warnBefore!,
    linkParam: linkParam!,
    keepClosedFor: keepClosedFor!,
  })
}

/** The message for a duration under its minimum; a bare number under a second is most likely minutes meant as ms. */
function tooSmall(rule: { min: number; max?: number }, ms: number, written: unknown): string {
  if (rule.min === 1) return 'must be greater than 0'
  const base = `must be at least ${formatMs(rule.min)}, got ${formatMs(ms)}`
  const asMinutes = typeof written === 'number' && written > 0 && written < SECOND ? written * MINUTE : undefined
  if (asMinutes !== undefined && asMinutes >= rule.min && (rule.max === undefined || asMinutes <= rule.max)) {
    return `${base}; did you mean { minutes: ${written} }?`
  }
  return base
}

/**
 * How long after entering wrap-up a conversation closes: the later of `wrapUpAutoClose` and a
 * `wrapUpCapacity` duration.
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
  let issue: SettingsIssueInput = {
    path: '',
    code: 'invalid-type',
    message: `must be a plain object of settings, got ${describeValue(input)}`,
  }
  try {
    if (isPlainObject(input)) {
      const values = new Map<string, unknown>()
      for (const key of Object.keys(input)) values.set(key, input[key])
      return values
    }
  } catch (cause) {
    issue = { path: '', code: 'unreadable', message: `could not be read (${describeCause(cause)})` }
  }
  throw new SettingsError([issue])
}

type UrlProblem = Omit<SettingsIssue, 'path'>

// Printable ASCII except the backslash: what every URL parser and Node's writeHead read alike.
const UNSAFE_URL_CHAR = /[^\x21-\x5b\x5d-\x7e]/
const HTTP_PREFIX = /^https?:\/\//i
// The authority as written: a DNS-style or IPv4 host or a bracketed IPv6 address, then an optional port.
const AUTHORITY = /^(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/
const MAX_HOST_LENGTH = 253
const MAX_LABEL_LENGTH = 63
const DEFAULT_PORTS: Readonly<Record<string, string>> = { 'http:': '80', 'https:': '443' }

/**
 * The URL as written when it is an absolute http(s) URL that every parser reads alike, else why not.
 *
 * We keep the string as written rather than hand out the WHATWG parser's normalised `href`, and
 * refuse anything another parser could read differently: backslashes (WHATWG reads `\` as `/`, so
 * `http://shop.example\@evil.com/` goes to shop.example in a browser but to evil.com in curl or
 * Python), whitespace and control characters (WHATWG drops some silently), non-ASCII (WHATWG maps
 * `shop。example` to `shop.example`, and Node's `writeHead` throws on it), and a host that the
 * WHATWG parser rewrites (`0x7f.1`, percent-escapes, extra slashes before the host).
 */
function checkUrl(value: unknown): string | { problem: UrlProblem } {
  const refuse = (message: string): { problem: UrlProblem } => ({ problem: { code: 'invalid-url', message } })
  if (typeof value !== 'string') {
    return { problem: { code: 'invalid-type', message: `must be a URL string, got ${describeValue(value)}` } }
  }
  if (value.length > MAX_URL_LENGTH) {
    return {
      problem: {
        code: 'too-big',
        message: `must be at most ${MAX_URL_LENGTH} characters, got ${value.length}`,
        maximum: MAX_URL_LENGTH,
        unit: 'characters',
      },
    }
  }
  // The URL parser silently drops tabs, newlines and edge spaces; a string that needs that is not what it looks like.
  if (/[\s\u0000-\u001f\u007f]/.test(value)) return refuse('must not contain whitespace or control characters')
  if (value.includes('\\')) {
    return refuse('must not contain a backslash: browsers read it as "/", other URL parsers do not; write "/" or "%5C"')
  }
  if (UNSAFE_URL_CHAR.test(value)) {
    return refuse('must be printable ASCII: write an internationalised host in its xn-- form and percent-encode other characters')
  }
  // Without '//' a browser resolves 'https:example.com' against the current page, so require the full form.
  if (!HTTP_PREFIX.test(value)) return refuse(`must be an absolute http:// or https:// URL, got ${describeValue(value)}`)
  let parsed: URL
  try {
    parsed = new URL(value)
  } catch {
    return refuse(`is not a valid URL, got ${describeValue(value)}`)
  }
  if (parsed.username !== '' || parsed.password !== '') return refuse('must not contain a user name or password')
  const authority = value.slice(value.indexOf('//') + 2).split(/[/?#]/, 1)[0] ?? ''
  if (!isCanonicalAuthority(authority, parsed)) {
    return refuse(`must write its host as URL parsers read it (${describeValue(authority)} reads as '${parsed.host}')`)
  }
  return value
}

/** True when the host and port as written are exactly what the WHATWG parser read (up to case and a default port). */
function isCanonicalAuthority(authority: string, parsed: URL): boolean {
  if (!AUTHORITY.test(authority)) return false
  const portAt = authority.startsWith('[') ? authority.indexOf(':', authority.indexOf(']')) : authority.indexOf(':')
  const host = (portAt === -1 ? authority : authority.slice(0, portAt)).toLowerCase()
  const port = portAt === -1 ? '' : authority.slice(portAt + 1)
  if (host !== parsed.hostname) return false
  // DNS limits; some parsers (Node's legacy url.parse) drop a longer host entirely.
  if (host.length > MAX_HOST_LENGTH || host.split('.').some((label) => label.length > MAX_LABEL_LENGTH)) return false
  // Digits as the parser writes them: '0080' is 80 to one parser and the string '0080' to another.
  return port === '' || (String(Number(port)) === port && port === (parsed.port || DEFAULT_PORTS[parsed.protocol]))
}

/** The list's origins in order, without duplicates; a Set so that checking one origin is one look-up. */
function allowlist(value: unknown, report: Report): Set<string> | undefined {
  const path = 'redirectAllowlist'
  let entries: unknown[]
  try {
    if (!Array.isArray(value)) {
      return report({ path, code: 'invalid-type', message: `must be an array of origins, got ${describeValue(value)}` })
    }
    // An index loop, not a spread or forEach, so a hole in a sparse array is read as undefined and reported.
    entries = new Array<unknown>(value.length)
    for (let index = 0; index < value.length; index += 1) entries[index] = value[index]
  } catch (cause) {
    return report({ path, code: 'unreadable', message: `could not be read (${describeCause(cause)})` })
  }
  const origins = new Set<string>()
  let valid = true
  entries.forEach((entry, index) => {
    const at = `${path}[${index}]`
    const problem = originProblem(entry)
    if (problem === undefined) {
      origins.add(new URL(entry as string).origin)
    } else {
      valid = false
      report({ path: at, ...problem })
    }
  })
  return valid ? origins : undefined
}

function originProblem(entry: unknown): UrlProblem | undefined {
  if (typeof entry === 'string' && /^https?:\/\/[^/?#]*\*/i.test(entry)) {
    return { code: 'invalid-origin', message: 'must not contain wildcards; list each origin' }
  }
  const checked = checkUrl(entry)
  if (typeof checked !== 'string') return checked.problem
  if (new URL(checked).pathname !== '/' || checked.includes('?') || checked.includes('#')) {
    return {
      code: 'invalid-origin',
      message: `must be an origin such as 'https://example.com' (no path, query or fragment), got ${describeValue(entry)}`,
    }
  }
  return undefined
}

function checkLinkParam(value: unknown, report: Report): string | undefined {
  const path = 'linkParam'
  if (typeof value !== 'string') {
    return report({ path, code: 'invalid-type', message: `must be a string, got ${describeValue(value)}` })
  }
  if (value.length > MAX_LINK_PARAM_LENGTH) {
    return report({
      path,
      code: 'too-big',
      message: `must be at most ${MAX_LINK_PARAM_LENGTH} characters, got ${value.length}`,
      maximum: MAX_LINK_PARAM_LENGTH,
      unit: 'characters',
    })
  }
  if (!LINK_PARAM.test(value)) {
    return report({
      path,
      code: 'invalid-format',
      message: `must be 1 to ${MAX_LINK_PARAM_LENGTH} characters from A-Z a-z 0-9 . _ ~ -, got ${describeValue(value)}`,
    })
  }
  return value
}
