/** The default namespace of every key the Redis store writes. */
export const DEFAULT_REDIS_PREFIX = 'chat-reconnect:'

/**
 * Key names under one prefix. The Lua scripts derive the same names from stored records, so the
 * two must agree byte for byte: the resumable key carries the widget id's UTF-8 length (what Lua's
 * `#` counts) to keep `widget:customer` pairs unambiguous whatever characters they contain.
 */
export interface RedisKeys {
  record(id: string): string
  reconnectId(reconnectId: string): string
  readonly due: string
  resumable(widgetId: string, customerId: string): string
  /** The part of the resumable key after `<prefix>resumable:`, as the stored index line keeps it. */
  resumableTail(widgetId: string, customerId: string): string
  held(agentId: string): string
  /** The set of every conversation id of one customer (retention and erase). */
  customer(customerId: string): string
  /** The outbox: event id → event JSON. */
  readonly outboxEvents: string
  /** The outbox: event id → when a claim may take it. */
  readonly outboxPending: string
}

const ASCII = /^[\x00-\x7f]*$/

/** Builds {@link RedisKeys} for `prefix`. */
export function redisKeys(prefix: string): RedisKeys {
  const encoder = new TextEncoder()
  // Lua's `#` counts UTF-8 bytes; for ASCII (nearly every id) that is the length.
  const tail = (widgetId: string, customerId: string) =>
    `${ASCII.test(widgetId) ? widgetId.length : encoder.encode(widgetId).length}:${widgetId}:${customerId}`
  return {
    record: (id) => `${prefix}conv:${id}`,
    reconnectId: (reconnectId) => `${prefix}rid:${reconnectId}`,
    due: `${prefix}due`,
    resumable: (widgetId, customerId) => `${prefix}resumable:${tail(widgetId, customerId)}`,
    resumableTail: tail,
    held: (agentId) => `${prefix}held:${agentId}`,
    customer: (customerId) => `${prefix}customer:${customerId}`,
    outboxEvents: `${prefix}outbox:events`,
    outboxPending: `${prefix}outbox:pending`,
  }
}

/**
 * The hash tag Redis Cluster would hash every key under `prefix` by, or `undefined` when keys
 * under it could land in different slots (Redis takes the first `{`, then the first `}` after it).
 */
export function hashTagOf(prefix: string): string | undefined {
  const open = prefix.indexOf('{')
  if (open < 0) return undefined
  const close = prefix.indexOf('}', open + 1)
  if (close <= open + 1) return undefined
  return prefix.slice(open + 1, close)
}
