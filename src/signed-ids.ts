import { describeCause } from './duration'
import { SettingsError, isSettingsError } from './errors'
import type { SettingsIssue } from './errors'
import { flatString, type ReconnectIdIssuer } from './ids'
import { equalInConstantTime } from './constant-time'

/** A signing secret: a string (measured in UTF-8 bytes) or raw bytes; at least 32 bytes. */
export type ReconnectIdSecret = string | Uint8Array | ArrayBuffer

/** Options of {@link createSignedReconnectIds}. */
export interface SignedReconnectIdsOptions {
  /** Key id (1–8 characters of `A–Z a–z 0–9`) → secret. Keep retired keys here while their ids may still come back. */
  keys: Readonly<Record<string, ReconnectIdSecret>>
  /** The key that signs new ids; must be one of `keys`. */
  currentKeyId: string
}

/** Reconnect ids that prove their own origin: issued with an HMAC tag, verified without a store lookup. */
export interface SignedReconnectIds extends ReconnectIdIssuer {
  /** A new id `<keyId>.<nonce>.<tag>` signed with the current key. */
  issue(): Promise<string>
  /** True only for an untampered id signed by one of the configured keys; never throws or rejects. */
  verify(id: string): Promise<boolean>
}

const MIN_SECRET_BYTES = 32
const NONCE_BYTES = 16
// 128 bits of tag keep the whole id under 64 characters; a full SHA-256 tag would not fit.
const TAG_BYTES = 16
const KEY_ID = /^[A-Za-z0-9]{1,8}$/
const SIGNED_ID = /^([A-Za-z0-9]{1,8})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})$/
// Binds tags to this purpose and format version, so a secret shared with other uses cannot mint ids.
const TAG_CONTEXT = 'chat-reconnect/reconnect-id/v1:'

interface KeyEntry {
  readonly secret: Uint8Array<ArrayBuffer>
  key: Promise<CryptoKey> | undefined
}

/**
 * Reconnect ids signed with HMAC-SHA-256 (Web Crypto: Node 20+ and browsers), so a forged or
 * altered id is refused before any storage read. Keys rotate: ids from every key in `keys`
 * still verify, new ids use `currentKeyId`, and removing a key invalidates its ids.
 * Throws `SettingsError` listing every problem with the options.
 *
 * @example
 * const reconnectIds = createSignedReconnectIds({
 *   keys: { k2: process.env.RECONNECT_KEY_2!, k1: process.env.RECONNECT_KEY_1! },
 *   currentKeyId: 'k2',
 * })
 * const service = createReconnectService({ settings, reconnectIds })
 */
export function createSignedReconnectIds(options: SignedReconnectIdsOptions): SignedReconnectIds {
  try {
    return create(options)
  } catch (cause) {
    if (isSettingsError(cause)) throw cause
    // A getter or Proxy trap in the options threw: still a typed error, with the original as its cause.
    throw new SettingsError([{ path: '', code: 'unreadable', message: `options could not be read (${describeCause(cause)})` }], {
      cause,
    })
  }
}

function create(options: SignedReconnectIdsOptions): SignedReconnectIds {
  if (typeof options !== 'object' || options === null) {
    throw new SettingsError([{ path: '', code: 'invalid-type', message: 'options must be an object with keys and currentKeyId' }])
  }
  const issues: SettingsIssue[] = []
  const entries = new Map<string, KeyEntry>()

  const keys: unknown = options.keys
  const keysIsRecord = typeof keys === 'object' && keys !== null && !Array.isArray(keys) && !(keys instanceof Map)
  if (!keysIsRecord) {
    issues.push({ path: 'keys', code: 'invalid-type', message: 'keys must be an object mapping key ids to secrets' })
  } else {
    const list = Object.entries(keys)
    if (list.length === 0) {
      issues.push({ path: 'keys', code: 'too-small', message: 'keys must contain at least one key', minimum: 1, unit: 'items' })
    }
    for (const [keyId, value] of list) {
      const path = `keys.${keyId}`
      if (!KEY_ID.test(keyId)) {
        issues.push({ path, code: 'invalid-format', message: 'key id must be 1–8 characters of A–Z, a–z, 0–9' })
        continue
      }
      const secret = secretBytes(value)
      if (secret === undefined) {
        issues.push({ path, code: 'invalid-type', message: 'secret must be a string, Uint8Array or ArrayBuffer' })
      } else if (secret.byteLength < MIN_SECRET_BYTES) {
        issues.push({
          path,
          code: 'too-small',
          message: `secret must be at least ${MIN_SECRET_BYTES} bytes (got ${secret.byteLength}; strings count UTF-8 bytes)`,
          minimum: MIN_SECRET_BYTES,
          unit: 'bytes',
        })
      } else {
        entries.set(keyId, { secret, key: undefined })
      }
    }
  }

  const currentKeyId: unknown = options.currentKeyId
  if (typeof currentKeyId !== 'string') {
    issues.push({ path: 'currentKeyId', code: 'invalid-type', message: 'currentKeyId must be a string naming one of the keys' })
  } else if (keysIsRecord && !Object.prototype.propertyIsEnumerable.call(keys, currentKeyId)) {
    issues.push({ path: 'currentKeyId', code: 'not-allowed', message: `currentKeyId "${currentKeyId}" is not one of the keys` })
  }

  const webCrypto = (globalThis as { crypto?: Crypto }).crypto
  if (typeof webCrypto?.subtle?.sign !== 'function' || typeof webCrypto.getRandomValues !== 'function') {
    issues.push({
      path: 'crypto',
      code: 'unsupported',
      message: 'Web Crypto (globalThis.crypto.subtle) is unavailable: signed ids need Node 20+ or a secure (https) browser context',
    })
  }

  // The key entry is missing exactly when an issue above already says why.
  const current = typeof currentKeyId === 'string' ? entries.get(currentKeyId) : undefined
  if (issues.length > 0 || webCrypto === undefined || current === undefined || typeof currentKeyId !== 'string') {
    throw new SettingsError(issues)
  }
  const subtle = webCrypto.subtle

  function cryptoKey(entry: KeyEntry): Promise<CryptoKey> {
    if (entry.key === undefined) {
      const pending = subtle.importKey('raw', entry.secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
      entry.key = pending
      // A failed import must not poison every later call.
      pending.catch(() => {
        if (entry.key === pending) entry.key = undefined
      })
    }
    return entry.key
  }

  async function tagFor(entry: KeyEntry, keyId: string, nonce: string): Promise<string> {
    const message = new TextEncoder().encode(`${TAG_CONTEXT}${keyId}.${nonce}`)
    const mac = await subtle.sign('HMAC', await cryptoKey(entry), message)
    return base64url(new Uint8Array(mac, 0, TAG_BYTES))
  }

  return {
    async issue() {
      const nonce = base64url(webCrypto.getRandomValues(new Uint8Array(NONCE_BYTES)))
      return flatString(`${currentKeyId}.${nonce}.${await tagFor(current, currentKeyId, nonce)}`)
    },
    async verify(id) {
      try {
        const match = typeof id === 'string' ? SIGNED_ID.exec(id) : null
        if (match === null) return false
        const [, keyId = '', nonce = '', tag = ''] = match
        const entry = entries.get(keyId)
        if (entry === undefined) return false
        return equalInConstantTime(await tagFor(entry, keyId, nonce), tag)
      } catch {
        return false
      }
    },
  }
}

function secretBytes(value: unknown): Uint8Array<ArrayBuffer> | undefined {
  // Copies, so a caller reusing its buffer cannot change a key after validation.
  if (typeof value === 'string') return new TextEncoder().encode(value)
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice()
  // toString check rather than instanceof: an ArrayBuffer from another realm is still one.
  if (Object.prototype.toString.call(value) === '[object ArrayBuffer]') {
    return new Uint8Array(value as ArrayBuffer).slice()
  }
  return undefined
}

function base64url(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}
