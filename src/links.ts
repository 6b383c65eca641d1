import { ReconnectError } from './errors'
import { looksLikeReconnectId } from './ids'

/** Query parameter that carries the reconnect id, as in the reference product. */
export const DEFAULT_LINK_PARAM = 'oc.reconnectid'

/** Inputs longer than this are refused unread: no real link is this long, and parsing costs. */
export const MAX_LINK_INPUT_LENGTH = 8192

// Only used to resolve relative links ('/chat?…', '?a=b'); never part of a result.
const PLACEHOLDER_BASE = 'http://reconnect.invalid/'

/** Options of {@link buildReconnectUrl}. */
export interface BuildReconnectUrlOptions {
  /** Query parameter name; defaults to `'oc.reconnectid'`. */
  param?: string
}

/** Options of {@link readReconnectId}. */
export interface ReadReconnectIdOptions {
  /** Query parameter name; defaults to `'oc.reconnectid'`. */
  param?: string
  /** Format check for the id; defaults to {@link looksLikeReconnectId} (plain and signed ids). */
  isValid?: (id: string) => boolean
}

/** The part of `window.history` that {@link consumeReconnectId} uses. */
export interface ReconnectHistoryLike {
  /** The current history entry's state, kept as it is when the address is rewritten. */
  readonly state?: unknown
  /** Replaces the current address without adding a history entry (`history.replaceState`). */
  replaceState(data: unknown, unused: string, url?: string): void
}

/** Options of {@link consumeReconnectId}. */
export interface ConsumeReconnectIdOptions extends ReadReconnectIdOptions {
  /** Where to read from; defaults to `globalThis.location`. */
  location?: { readonly href: string }
  /**
   * Where to rewrite the address; defaults to `globalThis.history`, but only when `location`
   * is not given either (a custom location never rewrites the real address bar).
   */
  history?: ReconnectHistoryLike
}

/**
 * The portal URL with the reconnect id added as a query parameter.
 *
 * Other query parameters are kept exactly as written, the fragment stays last, and any
 * existing occurrence of the parameter is replaced.
 *
 * @example
 * buildReconnectUrl('https://portal.example/help?lang=de#chat', 'V1StGXR8_Z5jdHi6B-myT')
 * // 'https://portal.example/help?lang=de&oc.reconnectid=V1StGXR8_Z5jdHi6B-myT#chat'
 */
export function buildReconnectUrl(portalUrl: string | URL, reconnectId: string, options?: BuildReconnectUrlOptions): string {
  const url = parsePortalUrl(portalUrl)
  if (typeof reconnectId !== 'string' || reconnectId === '') {
    throw invalid(`reconnectId must be a non-empty string (got ${describe(reconnectId)})`)
  }
  const param = paramOrThrow(options)
  const kept = queryPiecesWithout(url.search, param)
  kept.push(new URLSearchParams([[param, reconnectId]]).toString())
  // The setter drops exactly one leading '?', so add ours: a query like '??a' must survive.
  url.search = `?${kept.join('&')}`
  return url.href
}

/**
 * The reconnect id carried by a link, or `null` when it is missing, empty, malformed or the
 * input is oversized or not a link at all. Never throws.
 *
 * Accepts a full URL, a relative one (`/chat?oc.reconnectid=…`), a bare query string
 * (`?a=b&oc.reconnectid=…` or `a=b&oc.reconnectid=…`), a `URL`, a `URLSearchParams` or
 * anything with a string `href` (such as `window.location`). A parameter given twice with
 * different values is ambiguous and reads as `null`.
 *
 * @example
 * readReconnectId(window.location) // 'V1StGXR8_Z5jdHi6B-myT' or null
 */
export function readReconnectId(input: string | URL | URLSearchParams | null | undefined, options?: ReadReconnectIdOptions): string | null {
  try {
    const param = options?.param === undefined ? DEFAULT_LINK_PARAM : options.param
    const isValid = options?.isValid === undefined ? looksLikeReconnectId : options.isValid
    // A broken option fails closed rather than falling back to something the caller did not ask for.
    if (typeof param !== 'string' || param === '' || typeof isValid !== 'function') return null
    const params = toSearchParams(input)
    if (params === null) return null
    const link = classifyLink(params.getAll(param), isValid)
    return link.type === 'valid' ? link.reconnectId : null
  } catch {
    return null
  }
}

/**
 * Browser helper: reads the reconnect id from the page address and removes the parameter from
 * the address bar (`history.replaceState`), keeping every other parameter and the fragment, so
 * the link is not bookmarked, shared or replayed on refresh. The parameter is removed whenever
 * it is present, also when its value is malformed. Returns `null` and does nothing where there
 * is no `location` (Node, workers without one). `null` means "no usable id": to tell a missing
 * link from a malformed one, use {@link consumeReconnectLink}.
 *
 * @example
 * const reconnectId = consumeReconnectId()
 * if (reconnectId) await fetch('/chat/return', { method: 'POST', body: JSON.stringify({ reconnectId }) })
 */
export function consumeReconnectId(options?: ConsumeReconnectIdOptions): string | null {
  const link = consumeReconnectLink(options)
  return link.type === 'valid' ? link.reconnectId : null
}

/** Why a reconnect link's parameter is unusable. */
export type MalformedReconnectLinkReason =
  /** The parameter is there with no value (`?oc.reconnectid=`). */
  | 'empty'
  /** The value is not shaped like a reconnect id (the `isValid` check said no). */
  | 'invalid'
  /** The parameter is given twice with different values. */
  | 'ambiguous'
  /** The address is longer than any real link, so it is not read; it names the parameter. */
  | 'too-long'

/** What the page address says about a reconnect link: none, a usable id, or a malformed one. */
export type ReconnectLink =
  | { type: 'none' }
  | { type: 'valid'; reconnectId: string }
  | {
      type: 'malformed'
      reason: MalformedReconnectLinkReason
      /** The parameter's first value as written (`''` when empty or too long to read). */
      value: string
    }

const NO_LINK: ReconnectLink = Object.freeze({ type: 'none' })

/**
 * {@link consumeReconnectId} with the difference between "no link" and "a malformed link" kept:
 * reads the page address, removes the parameter from the address bar whenever it is present, and
 * answers `{ type: 'none' }`, `{ type: 'valid', reconnectId }` or
 * `{ type: 'malformed', reason, value }`. A widget sends a malformed link to its server all the
 * same, so that the server's answer for it (a redirect, or a new chat with reason `malformed`)
 * applies instead of a silent "no link". Never throws.
 *
 * @example
 * const link = consumeReconnectLink()
 * if (link.type === 'valid') resume(link.reconnectId)
 * else if (link.type === 'malformed') showLinkProblem(link.reason)
 */
export function consumeReconnectLink(options?: ConsumeReconnectIdOptions): ReconnectLink {
  let href: unknown
  let history: ReconnectHistoryLike | undefined
  try {
    const scope = globalThis as { location?: { href?: unknown }; history?: ReconnectHistoryLike }
    const location = options?.location ?? scope.location
    history = options?.location === undefined ? (options?.history ?? scope.history) : options.history
    href = location?.href
  } catch {
    return NO_LINK
  }
  const param = options?.param === undefined ? DEFAULT_LINK_PARAM : options.param
  if (typeof href !== 'string' || typeof param !== 'string' || param === '') return NO_LINK
  // Refused unread, as readReconnectId refuses it; only a cheap look for the parameter's name.
  if (href.length > MAX_LINK_INPUT_LENGTH) return href.includes(`${param}=`) ? malformedLink('too-long', '') : NO_LINK

  let values: string[]
  try {
    values = searchParamsOfString(href)?.getAll(param) ?? []
  } catch {
    return NO_LINK
  }
  const link = classifyLink(values, options?.isValid ?? looksLikeReconnectId)
  if (link.type === 'none') return link
  try {
    const url = new URL(href)
    const kept = queryPiecesWithout(url.search, param)
    if (kept.length === countQueryPieces(url.search)) return link
    url.search = kept.length === 0 ? '' : `?${kept.join('&')}`
    if (history !== undefined && typeof history.replaceState === 'function') {
      history.replaceState(history.state, '', url.href)
    }
  } catch {
    // Sandboxed frames and file: pages may refuse replaceState; the answer stands.
  }
  return link
}

/** What the values of the link parameter amount to (`isValid` may throw: it then fails closed). */
function classifyLink(values: string[], isValid: (id: string) => boolean): ReconnectLink {
  const first = values[0]
  if (first === undefined) return NO_LINK
  if (values.some((v) => v !== first)) return malformedLink('ambiguous', first)
  if (first === '') return malformedLink('empty', '')
  let valid = false
  try {
    valid = isValid(first) === true
  } catch {
    // A throwing check fails closed.
  }
  return valid ? { type: 'valid', reconnectId: first } : malformedLink('invalid', first)
}

function malformedLink(reason: MalformedReconnectLinkReason, value: string): ReconnectLink {
  return { type: 'malformed', reason, value }
}

const QUICK_REPLY_SLUG = /\$?\{ReconnectUrl\{ReconnectID\}\}/g

/**
 * An agent's quick-reply text with every `{ReconnectUrl{ReconnectID}}` (and the legacy
 * `${ReconnectUrl{ReconnectID}}`) replaced by the reconnect link. Other `{X{Y}}` slugs are left
 * for the host's own resolvers. The link is inserted literally (`$&` in it means nothing special).
 *
 * @example
 * expandQuickReply('Lost connection? Use {ReconnectUrl{ReconnectID}}', url)
 */
export function expandQuickReply(text: string, reconnectUrl: string): string {
  if (typeof text !== 'string') {
    throw invalid(`text must be a string (got ${describe(text)})`)
  }
  if (typeof reconnectUrl !== 'string' || reconnectUrl === '') {
    throw invalid(`reconnectUrl must be a non-empty string (got ${describe(reconnectUrl)})`)
  }
  return text.replace(QUICK_REPLY_SLUG, () => reconnectUrl)
}

function paramOrThrow(options: BuildReconnectUrlOptions | undefined): string {
  const param = options?.param
  if (param === undefined) return DEFAULT_LINK_PARAM
  if (typeof param !== 'string' || param === '') {
    throw invalid(`options.param must be a non-empty string (got ${describe(param)})`)
  }
  return param
}

function parsePortalUrl(portalUrl: unknown): URL {
  // A URL from another realm (iframe, vm) fails instanceof but still carries a string href.
  const text = typeof portalUrl === 'object' && portalUrl !== null ? (portalUrl as { href?: unknown }).href : portalUrl
  if (typeof text !== 'string') {
    throw invalid(`portalUrl must be an absolute http(s) URL string or URL (got ${describe(portalUrl)})`)
  }
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw invalid(`portalUrl must be an absolute http(s) URL (got "${clip(text)}")`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalid(`portalUrl must use http: or https: (got "${url.protocol}")`)
  }
  return url
}

function toSearchParams(input: unknown): URLSearchParams | null {
  if (typeof input === 'string') return searchParamsOfString(input)
  if (typeof input !== 'object' || input === null) return null
  if (input instanceof URLSearchParams) {
    return input.toString().length > MAX_LINK_INPUT_LENGTH ? null : input
  }
  // URL, window.location and URLs from another realm all carry a string href.
  const href = (input as { href?: unknown }).href
  return typeof href === 'string' ? searchParamsOfString(href) : null
}

function searchParamsOfString(text: string): URLSearchParams | null {
  if (text.length > MAX_LINK_INPUT_LENGTH) return null
  const hash = text.indexOf('#')
  const beforeHash = hash === -1 ? text : text.slice(0, hash)
  if (!beforeHash.includes('?')) return new URLSearchParams(beforeHash)
  try {
    return new URL(text, PLACEHOLDER_BASE).searchParams
  } catch {
    // Not a parseable URL (bad host, say): the query is still everything after the first '?'.
    return new URLSearchParams(beforeHash.slice(beforeHash.indexOf('?') + 1))
  }
}

/** The raw `&`-separated pieces of a query, minus empty ones and those naming `param`, untouched. */
function queryPiecesWithout(search: string, param: string): string[] {
  const query = search.startsWith('?') ? search.slice(1) : search
  return query.split('&').filter((piece) => piece !== '' && pieceName(piece) !== param)
}

function countQueryPieces(search: string): number {
  const query = search.startsWith('?') ? search.slice(1) : search
  return query.split('&').filter((piece) => piece !== '').length
}

function pieceName(piece: string): string | undefined {
  // The leading '&' stops URLSearchParams from eating a '?' that belongs to the name.
  for (const [name] of new URLSearchParams(`&${piece}`)) return name
  return undefined
}

function invalid(message: string): ReconnectError {
  return new ReconnectError('invalid-argument', message)
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return value === '' ? 'an empty string' : `"${clip(value)}"`
  return typeof value
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}
