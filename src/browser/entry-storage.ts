/** The part of the Web Storage API the widget session uses (`localStorage` fits, and so does a host's own). */
export interface WidgetStorageLike {
  /** The stored text, or `null`. */
  getItem(key: string): string | null
  /** Stores `value`; may throw (quota, privacy mode). */
  setItem(key: string, value: string): void
  /** Removes the item. */
  removeItem(key: string): void
}

/** Which storage the session keeps its entry in; `'memory'` after a refusal as well. */
export type WidgetStorageKind = 'local' | 'session' | 'memory' | 'custom'

/** What the session remembers about the chat of one widget: enough to come back, nothing more. */
export interface WidgetStoredEntry {
  conversationId: string
  reconnectId: string
  /** The server's end of the reconnect window (`windowEndsAt`), epoch ms; `null` while connected. */
  expiresAt: number | null
}

/** The format version of a stored entry; an entry of another version counts as none. */
export const WIDGET_ENTRY_VERSION = 1

/** The storage key of a widget's entry. */
export function widgetEntryKey(widgetId: string): string {
  return `chat-reconnect:${widgetId}`
}

/** The storage to use, after checking that the browser lets this page write to it. */
export interface ResolvedStorage {
  storage: WidgetStorageLike
  kind: WidgetStorageKind
  /** Set when the requested storage was refused and memory is used instead. */
  refused?: { requested: Exclude<WidgetStorageKind, 'memory'>; error: unknown }
}

const PROBE_KEY = 'chat-reconnect:probe'

export function createMemoryStorage(): WidgetStorageLike {
  const items = new Map<string, string>()
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, String(value)),
    removeItem: (key) => void items.delete(key),
  }
}

/**
 * Resolves the `storage` option. Reading `localStorage` throws in a sandboxed frame without
 * `allow-same-origin`, and writing can throw in privacy modes: either way the session falls back
 * to memory and says so, instead of failing (or posting its state somewhere else).
 */
export function resolveStorage(option: unknown, scope: { localStorage?: unknown; sessionStorage?: unknown }): ResolvedStorage {
  if (option === 'memory') return { storage: createMemoryStorage(), kind: 'memory' }
  const kind: Exclude<WidgetStorageKind, 'memory'> =
    option === undefined || option === 'local' ? 'local' : option === 'session' ? 'session' : 'custom'
  try {
    const storage = (kind === 'local' ? scope.localStorage : kind === 'session' ? scope.sessionStorage : option) as
      | WidgetStorageLike
      | null
      | undefined
    if (storage === null || storage === undefined || typeof storage.getItem !== 'function') {
      throw new Error(`no ${kind} storage here`)
    }
    storage.setItem(PROBE_KEY, '1')
    storage.removeItem(PROBE_KEY)
    return { storage, kind }
  } catch (error) {
    return { storage: createMemoryStorage(), kind: 'memory', refused: { requested: kind, error } }
  }
}

/** The entry stored as `text`, or `null` when it is missing, unparseable or of another version. */
export function parseWidgetEntry(text: string | null): WidgetStoredEntry | null {
  if (text === null || text.length > 4096) return null
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    return null
  }
  if (typeof data !== 'object' || data === null) return null
  const { v, conversationId, reconnectId, expiresAt } = data as Record<string, unknown>
  if (v !== WIDGET_ENTRY_VERSION) return null
  if (typeof conversationId !== 'string' || conversationId === '' || typeof reconnectId !== 'string' || reconnectId === '') return null
  if (expiresAt !== null && (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt))) return null
  return { conversationId, reconnectId, expiresAt }
}

/** The stored form of an entry. */
export function serializeWidgetEntry(entry: WidgetStoredEntry): string {
  return JSON.stringify({
    v: WIDGET_ENTRY_VERSION,
    conversationId: entry.conversationId,
    reconnectId: entry.reconnectId,
    expiresAt: entry.expiresAt,
  })
}
