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
  held(agentId: string): string
  /** The set of every conversation id of one customer (retention and erase). */
  customer(customerId: string): string
  /** The outbox: event id → event JSON. */
  readonly outboxEvents: string
  /** The outbox: event id → when a claim may take it. */
  readonly outboxPending: string
}

/** Builds {@link RedisKeys} for `prefix`. */
export function redisKeys(prefix: string): RedisKeys {
  const encoder = new TextEncoder()
  return {
    record: (id) => `${prefix}conv:${id}`,
    reconnectId: (reconnectId) => `${prefix}rid:${reconnectId}`,
    due: `${prefix}due`,
    resumable: (widgetId, customerId) => `${prefix}resumable:${encoder.encode(widgetId).length}:${widgetId}:${customerId}`,
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
