import type { Duration } from 'date-fns'
import type { STATES, TIMER_NAMES } from './machine/lifecycle'

/** A length of time: milliseconds, a date-fns `Duration` object, or an ISO-8601 duration string. */
export type DurationInput = number | Duration | string

/** Settings of one widget as a host writes them; {@link defineSettings} validates them. */
export interface ReconnectSettingsInput {
  /**
   * The "Reconnect to previous chat" switch.
   * @default false
   */
  enabled?: boolean
  /**
   * How long a dropped conversation waits for its customer; required when `enabled`, > 0 and ≤ 7 days.
   * @default null
   */
  timeLimit?: DurationInput | null
  /**
   * Page the reconnect link points at; required when `enabled`; an absolute `http:`/`https:` URL.
   * @default null
   */
  portalUrl?: string | null
  /**
   * Where a link that can no longer resume leads; without it such a link gets a new chat.
   * @default null
   */
  redirectUrl?: string | null
  /**
   * Origins `redirectUrl` may be on; without it any `http:`/`https:` origin is allowed.
   * @default null
   */
  redirectAllowlist?: readonly string[] | null
  /**
   * Signed-in widget: a returning customer without a link gets the "continue or start new?" prompt.
   * @default false
   */
  authenticated?: boolean
  /**
   * `false` resumes a signed-in customer's conversation at once instead of asking.
   * @default true
   */
  prompt?: boolean
  /**
   * With reconnect off, how long a return from the same widget session still continues the chat.
   * @default 180000
   */
  disconnectGrace?: DurationInput
  /**
   * How long after wrap-up starts the conversation closes.
   * @default 900000
   */
  wrapUpAutoClose?: DurationInput
  /**
   * How long the agent's capacity stays held in wrap-up: `'always'`, `'never'`, or 30 s to 60 min.
   * @default 'always'
   */
  wrapUpCapacity?: 'always' | 'never' | DurationInput
  /**
   * How long an unassigned conversation waits in the queue before it closes.
   * @default 1200000
   */
  queueAutoClose?: DurationInput
  /**
   * **(ours)** How long a conversation waits, after its last connection detached or lapsed, before it
   * takes `customer.disconnected`; `0` disconnects at once. At most 1 hour.
   * @default 10000
   */
  detachGrace?: DurationInput
  /**
   * Send the agent a `window-closing` notice this long before the window ends; shorter than `timeLimit`.
   * @default null
   */
  warnBefore?: DurationInput | null
  /**
   * Query parameter of the reconnect link: 1–64 of `A–Z a–z 0–9 . _ ~ -`.
   * @default 'oc.reconnectid'
   */
  linkParam?: string
  /**
   * **(ours)** How long a `closed` conversation is kept before the sweeper deletes it (its link then
   * reads `not-found`); `0` deletes it at the next sweep, `null` keeps it until erased.
   * @default 604800000
   */
  keepClosedFor?: DurationInput | null
}

/** Validated, frozen settings of one widget; every duration is in milliseconds. */
export interface ReconnectSettings {
  readonly enabled: boolean
  /** Reconnect window in ms; `null` only when `enabled` is false and no limit was given. */
  readonly timeLimit: number | null
  /** Portal the reconnect link points at; `null` only when `enabled` is false and none was given. */
  readonly portalUrl: string | null
  readonly redirectUrl: string | null
  readonly redirectAllowlist: readonly string[] | null
  readonly authenticated: boolean
  readonly prompt: boolean
  readonly disconnectGrace: number
  readonly wrapUpAutoClose: number
  readonly wrapUpCapacity: 'always' | 'never' | number
  readonly queueAutoClose: number
  readonly detachGrace: number
  readonly warnBefore: number | null
  readonly linkParam: string
  /** How long a closed conversation is kept, in ms; `null` = until erased. */
  readonly keepClosedFor: number | null
}

/** The lifecycle states of a conversation: one of {@link STATES}. */
export type State = (typeof STATES)[number]

/** Names of the deadlines a conversation can carry in `timers`: `'queue' | 'grace' | 'window' | 'warn' | 'wrapUp' | 'capacity' | 'lease' | 'detach' | 'retention'`. */
export type TimerName = (typeof TIMER_NAMES)[number]

/** Who or what ended a conversation. */
export type EndedBy = 'agent' | 'customer' | 'timeout'

/** One applied transition, kept in a record's bounded `history`. */
export interface HistoryEntry {
  at: number
  event: string
  from: State
  to: State
}

/** A stored conversation: plain JSON, safe to serialise. */
export interface ConversationRecord {
  id: string
  widgetId: string
  reconnectId: string
  customerId: string | null
  agentId: string | null
  previousAgentId: string | null
  state: State
  /** Deadlines, name → absolute epoch ms. */
  timers: Partial<Record<TimerName, number>>
  /** The earliest deadline in `timers`, or `null` when none is pending. */
  nextDueAt: number | null
  capacityHeld: boolean
  /** When the agent's capacity was taken for the current hold (epoch ms), or `null`. */
  capacitySince: number | null
  endedBy: EndedBy | null
  createdAt: number
  updatedAt: number
  version: number
  history: HistoryEntry[]
  /**
   * The customer's live connections: connection id → epoch ms at which its lease lapses,
   * or `null` for one that lives until it detaches. Absent when none is attached (and on records
   * written before connections existed).
   */
  connections?: Record<string, number | null>
  /**
   * **(ours)** An id unique to the write that stored this version, set by the service. When a store
   * fails without saying whether a write landed, the service reads the record back and knows it is
   * its own write only when this matches (another node may have stored an identical change).
   */
  writeId?: string
}

/** What a returning customer presents. */
export interface ReturnRequest {
  reconnectId?: string | null
  customerId?: string | null
  widgetId?: string
  via?: 'link' | 'session'
  /**
   * The connection (tab) the customer returns on; a resume attaches it in the same write.
   * @default undefined — no connection
   */
  connectionId?: string
}

/** Why a reconnect id can no longer resume its conversation. */
export type LostReason = 'expired' | 'ended-by-agent' | 'ended-by-customer' | 'closed' | 'not-found' | 'malformed'

/** The outcome for a returning customer. */
export type ReturnDecision =
  | { type: 'resume'; conversationId: string; agentId: string | null; via: 'link' | 'prompt' | 'session' }
  | { type: 'prompt'; conversationId: string; expiresAt: number }
  | { type: 'redirect'; url: string; reason: LostReason }
  | { type: 'new-chat'; reason: LostReason | 'none' | 'disabled' | 'identity-mismatch' }

/** Automated messages a host shows to the agent or the customer. */
export type NoticeMessage = 'customer-disconnected' | 'agent-ended' | 'session-ended' | 'window-closing'

/**
 * Events the service reports through `onEvent`. Every event carries `id`, stable across
 * re-deliveries (de-duplicate by it: delivery is at least once), `at`, when it took effect (for a
 * deadline, the deadline itself), and `emittedAt`, the service's clock when it emitted it.
 */
export type ServiceEvent =
  | { type: 'transition'; id: string; conversationId: string; at: number; emittedAt: number; from: State; to: State; event: string }
  | { type: 'capacity.held'; id: string; conversationId: string; at: number; emittedAt: number; agentId: string }
  | {
      type: 'capacity.released'
      id: string
      conversationId: string
      at: number
      emittedAt: number
      agentId: string
      heldMs: number
      reason: string
    }
  | {
      type: 'notice'
      id: string
      conversationId: string
      at: number
      emittedAt: number
      audience: 'agent' | 'customer'
      message: NoticeMessage
    }
  | {
      /** One `returnCustomer` or `answerPrompt` call, whatever its outcome. */
      type: 'return'
      /** A random id: a return is delivered in-process only, once (it is not stored with a write). */
      id: string
      /** `null` when the link matched no conversation, and always on an identity mismatch. */
      conversationId: string | null
      at: number
      emittedAt: number
      via: 'link' | 'prompt' | 'session'
      outcome: ReturnDecision['type']
      /** The decision's reason (redirect and new-chat). */
      reason?: string
      /** How long after the disconnect the customer came back, when the conversation was away. */
      sinceDisconnectMs?: number
    }
