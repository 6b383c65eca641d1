import { wrapUpCloseAfter } from '../settings'
import type { EndedBy, ReconnectSettings, TimerName } from '../types'

// What the lifecycle table (./lifecycle.ts) refers to by name: the context it works on, the events
// it takes, and the guards and updates. Nothing here knows about XState.

/** What the conversation machine keeps: the record's lifecycle fields plus the widget's settings. */
export interface ConversationContext {
  id: string
  widgetId: string
  reconnectId: string
  customerId: string | null
  agentId: string | null
  previousAgentId: string | null
  timers: Partial<Record<TimerName, number>>
  capacityHeld: boolean
  capacitySince: number | null
  endedBy: EndedBy | null
  createdAt: number
  updatedAt: number
  settings: ReconnectSettings
}

/** Input of {@link conversationMachine}: who the conversation is for and when it starts. */
export interface ConversationInput {
  id: string
  widgetId: string
  reconnectId: string
  customerId?: string | null
  agentId?: string | null
  /** Epoch ms at which the conversation starts. */
  now: number
  settings: ReconnectSettings
}

/**
 * Events the conversation machine accepts. Each carries `at`, the epoch ms at which it happened,
 * because the machine itself never reads a clock.
 */
export type ConversationEvent =
  | { type: 'agent.assigned'; agentId: string; at: number }
  | { type: 'customer.disconnected'; at: number }
  | { type: 'customer.returned'; via: 'link' | 'prompt' | 'session'; at: number }
  | {
      type: 'customer.ended'
      at: number /** Release the agent's capacity now, whatever `wrapUpCapacity` says. */
      releaseCapacity?: boolean
    }
  | { type: 'agent.ended'; at: number }
  | { type: 'agent.closed'; at: number }
  | { type: 'timer.elapsed'; timer: TimerName; at: number }

/** The type names of {@link ConversationEvent}. */
export type ConversationEventType = ConversationEvent['type']

/** The params of a guard or update that concerns one timer. */
export type TimerParams = { timer: TimerName }

// Clamped to `updatedAt` so that an event stamped by a node whose clock lags behind never moves a
// record's time (or the deadlines computed from it) backwards.
function eventTime(context: ConversationContext, event: { type: string; at?: unknown }): number {
  return typeof event.at === 'number' ? Math.max(context.updatedAt, event.at) : context.updatedAt
}

const released = { capacityHeld: false, capacitySince: null } as const

/** What a guard or a context update of the machine is given: the context and the event taken. */
export interface MachineArgs {
  context: ConversationContext
  event: ConversationEvent
}

/** The context a conversation starts with. */
export function initialContext(input: ConversationInput): ConversationContext {
  return {
    id: input.id,
    widgetId: input.widgetId,
    reconnectId: input.reconnectId,
    customerId: input.customerId ?? null,
    agentId: input.agentId ?? null,
    previousAgentId: null,
    timers: {},
    capacityHeld: false,
    capacitySince: null,
    endedBy: null,
    createdAt: input.now,
    updatedAt: input.now,
    settings: input.settings,
  }
}

/**
 * The lifecycle's guards, by name. Plain functions, so that our interpreter (`./interpreter.ts`) and
 * the XState machine (`./conversation-machine.ts`) run the very same code.
 */
export const guards = {
  startsAssigned: ({ context }) => context.agentId !== null,
  reconnectEnabled: ({ context }) => context.settings.enabled && context.settings.timeLimit !== null,
  timerDue: ({ context, event }, params: TimerParams) => {
    if (event.type !== 'timer.elapsed' || event.timer !== params.timer) return false
    const deadline = context.timers[params.timer]
    return deadline !== undefined && event.at >= deadline
  },
  hasTimer: ({ context }, params: TimerParams) => context.timers[params.timer] !== undefined,
  sameAgent: ({ context, event }) => event.type === 'agent.assigned' && event.agentId === context.agentId,
  agentGone: ({ context }) => context.agentId === null,
  releasesCapacity: ({ event }) => event.type === 'customer.ended' && event.releaseCapacity === true,
  agentWasClosed: ({ context }) => context.agentId === null && context.previousAgentId !== null,
  withinWindow: ({ context, event }) => {
    const deadline = context.timers.window
    return deadline !== undefined && eventTime(context, event) < deadline
  },
  withinWindowUnassigned: ({ context, event }) => {
    const deadline = context.timers.window
    return deadline !== undefined && eventTime(context, event) < deadline && context.agentId === null
  },
  sessionWithinGrace: ({ context, event }, params: { unassigned: boolean }) => {
    const deadline = context.timers.grace
    return (
      event.type === 'customer.returned' &&
      (context.agentId === null) === params.unassigned &&
      event.via === 'session' &&
      deadline !== undefined &&
      event.at < deadline
    )
  },
} satisfies Record<string, (args: MachineArgs, params: never) => boolean>

/**
 * The lifecycle's context updates, by name: each returns the context fields it changes. The
 * interpreter assigns them; the XState machine wraps each in `assign`.
 */
export const updates = {
  stamp: ({ context, event }, params: Partial<TimerParams> | undefined) => {
    const timer = params?.timer
    const fromTimer = timer === undefined ? undefined : context.timers[timer]
    return { updatedAt: fromTimer === undefined ? eventTime(context, event) : Math.max(context.updatedAt, fromTimer) }
  },
  enterQueue: ({ context }) => ({
    timers: { queue: context.updatedAt + context.settings.queueAutoClose },
    agentId: null,
    ...released,
  }),
  assignAgent: ({ context, event }) => {
    const agentId = event.type === 'agent.assigned' ? event.agentId : context.agentId
    return { agentId, capacityHeld: true, capacitySince: context.updatedAt }
  },
  enterActive: ({ context }) => ({
    timers: {},
    capacityHeld: context.agentId !== null,
    capacitySince: context.agentId !== null ? (context.capacitySince ?? context.updatedAt) : null,
  }),
  enterDisconnected: ({ context }) => ({
    timers: { grace: context.updatedAt + context.settings.disconnectGrace },
  }),
  enterReconnectable: ({ context }) => {
    const window = context.updatedAt + (context.settings.timeLimit ?? 0)
    const timers: Partial<Record<TimerName, number>> = { window }
    const warnBefore = context.settings.warnBefore
    if (warnBefore !== null && window - warnBefore > context.updatedAt) timers.warn = window - warnBefore
    return { timers }
  },
  enterWrapUp: ({ context }) => {
    const timers: Partial<Record<TimerName, number>> = {
      wrapUp: context.updatedAt + wrapUpCloseAfter(context.settings),
    }
    const capacity = context.settings.wrapUpCapacity
    if (!context.capacityHeld || capacity === 'never') return { timers, ...released }
    if (typeof capacity === 'number') timers.capacity = context.updatedAt + capacity
    return { timers }
  },
  // The one deadline of the final state: the sweep deletes the record then (no transition).
  enterClosed: ({ context }) => {
    const keep = context.settings.keepClosedFor
    return { timers: typeof keep === 'number' ? { retention: context.updatedAt + keep } : {}, ...released }
  },
  releaseAgent: ({ context }) => ({
    previousAgentId: context.agentId ?? context.previousAgentId,
    agentId: null,
    ...released,
  }),
  releaseCapacity: ({ context }) => {
    const { capacity: _done, ...timers } = context.timers
    return { timers, ...released }
  },
  clearWarning: ({ context }) => {
    const { warn: _done, ...timers } = context.timers
    return { timers }
  },
  endBy: (_, params: { by: EndedBy | null }) => ({ endedBy: params.by }),
} satisfies Record<string, (args: MachineArgs, params: never) => Partial<ConversationContext>>
