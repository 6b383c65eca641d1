import { assign, setup } from 'xstate'
import { wrapUpCloseAfter } from '../settings'
import type { EndedBy, ReconnectSettings, State, TimerName } from '../types'

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
  | { type: 'customer.ended'; at: number; /** Release the agent's capacity now, whatever `wrapUpCapacity` says. */ releaseCapacity?: boolean }
  | { type: 'agent.ended'; at: number }
  | { type: 'agent.closed'; at: number }
  | { type: 'timer.elapsed'; timer: TimerName; at: number }

/** The type names of {@link ConversationEvent}. */
export type ConversationEventType = ConversationEvent['type']

type TimerParams = { timer: TimerName }

// Clamped to `updatedAt` so that an event stamped by a node whose clock lags behind never moves a
// record's time (or the deadlines computed from it) backwards.
function eventTime(context: ConversationContext, event: { type: string; at?: unknown }): number {
  return typeof event.at === 'number' ? Math.max(context.updatedAt, event.at) : context.updatedAt
}

function remaining(context: ConversationContext, timer: TimerName): number {
  const deadline = context.timers[timer]
  return deadline === undefined ? 0 : Math.max(0, deadline - context.updatedAt)
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
 * The machine's guards, by name. Plain functions, so that the machine and the service's compiled
 * form of it (`./compiled.ts`) run the very same code.
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
 * The machine's actions, by name: each returns the context fields it changes, and the machine wraps
 * it in XState's `assign`.
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
  enterClosed: () => ({ timers: {}, ...released }),
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

// Built by a function, and called once below under `@__PURE__`: a bare module-scope
// `setup(…).createMachine(…)` is a call bundlers cannot prove side-effect free, so it would pull
// XState into every bundle that imports anything from the main entry (a browser's decideReturn).
function createConversationMachine() {
  return setup({
    types: {
      context: {} as ConversationContext,
      events: {} as ConversationEvent,
      input: {} as ConversationInput,
    },
    guards,
    delays: {
      queueDelay: ({ context }) => remaining(context, 'queue'),
      graceDelay: ({ context }) => remaining(context, 'grace'),
      windowDelay: ({ context }) => remaining(context, 'window'),
      warnDelay: ({ context }) => remaining(context, 'warn'),
      wrapUpDelay: ({ context }) => remaining(context, 'wrapUp'),
      capacityDelay: ({ context }) => remaining(context, 'capacity'),
    },
    actions: {
      stamp: assign(updates.stamp),
      enterQueue: assign(updates.enterQueue),
      assignAgent: assign(updates.assignAgent),
      enterActive: assign(updates.enterActive),
      enterDisconnected: assign(updates.enterDisconnected),
      enterReconnectable: assign(updates.enterReconnectable),
      enterWrapUp: assign(updates.enterWrapUp),
      enterClosed: assign(updates.enterClosed),
      releaseAgent: assign(updates.releaseAgent),
      releaseCapacity: assign(updates.releaseCapacity),
      clearWarning: assign(updates.clearWarning),
      endBy: assign(updates.endBy),
    },
  }).createMachine({
    id: 'conversation',
    context: ({ input }) => initialContext(input),
    initial: 'starting',
    states: {
      starting: {
        always: [
          { guard: 'startsAssigned', target: 'active', actions: 'assignAgent' },
          { target: 'queued' },
        ],
      },
      queued: {
        entry: 'enterQueue',
        on: {
          'agent.assigned': { target: 'active', actions: ['stamp', 'assignAgent'] },
          'customer.disconnected': { target: 'closed', actions: ['stamp', { type: 'endBy', params: { by: null } }] },
          'customer.ended': { target: 'closed', actions: ['stamp', { type: 'endBy', params: { by: 'customer' } }] },
          'customer.returned': {},
          'agent.closed': { guard: 'agentWasClosed' },
          'timer.elapsed': {
            guard: { type: 'timerDue', params: { timer: 'queue' } },
            target: 'closed',
            actions: ['stamp', { type: 'endBy', params: { by: null } }],
          },
        },
        after: {
          queueDelay: {
            target: 'closed',
            actions: [{ type: 'stamp', params: { timer: 'queue' } }, { type: 'endBy', params: { by: null } }],
          },
        },
      },
      active: {
        entry: 'enterActive',
        on: {
          'agent.assigned': { guard: 'sameAgent' },
          'customer.disconnected': [
            { guard: 'reconnectEnabled', target: 'reconnectable', actions: 'stamp' },
            { target: 'disconnected', actions: 'stamp' },
          ],
          'customer.returned': {},
          'customer.ended': { target: 'wrap-up', actions: ['stamp', { type: 'endBy', params: { by: 'customer' } }] },
          'agent.ended': { target: 'wrap-up', actions: ['stamp', { type: 'endBy', params: { by: 'agent' } }] },
          'agent.closed': { target: 'queued', actions: ['stamp', 'releaseAgent'] },
        },
      },
      disconnected: {
        entry: 'enterDisconnected',
        on: {
          'customer.disconnected': {},
          'customer.returned': [
            { guard: { type: 'sessionWithinGrace', params: { unassigned: true } }, target: 'queued', actions: 'stamp' },
            { guard: { type: 'sessionWithinGrace', params: { unassigned: false } }, target: 'active', actions: 'stamp' },
          ],
          'agent.ended': { target: 'wrap-up', actions: ['stamp', { type: 'endBy', params: { by: 'agent' } }] },
          'agent.closed': [{ guard: 'agentGone' }, { actions: ['stamp', 'releaseAgent'] }],
          'timer.elapsed': {
            guard: { type: 'timerDue', params: { timer: 'grace' } },
            target: 'wrap-up',
            actions: ['stamp', { type: 'endBy', params: { by: 'timeout' } }],
          },
        },
        after: {
          graceDelay: {
            target: 'wrap-up',
            actions: [{ type: 'stamp', params: { timer: 'grace' } }, { type: 'endBy', params: { by: 'timeout' } }],
          },
        },
      },
      reconnectable: {
        entry: 'enterReconnectable',
        on: {
          'customer.disconnected': {},
          'customer.returned': [
            { guard: 'withinWindowUnassigned', target: 'queued', actions: 'stamp' },
            { guard: 'withinWindow', target: 'active', actions: 'stamp' },
          ],
          'customer.ended': [
            {
              guard: 'releasesCapacity',
              target: 'wrap-up',
              actions: ['stamp', { type: 'endBy', params: { by: 'customer' } }, 'releaseCapacity'],
            },
            { target: 'wrap-up', actions: ['stamp', { type: 'endBy', params: { by: 'customer' } }] },
          ],
          'agent.ended': { target: 'wrap-up', actions: ['stamp', { type: 'endBy', params: { by: 'agent' } }] },
          'agent.closed': [{ guard: 'agentGone' }, { actions: ['stamp', 'releaseAgent'] }],
          'timer.elapsed': [
            {
              guard: { type: 'timerDue', params: { timer: 'window' } },
              target: 'wrap-up',
              actions: ['stamp', { type: 'endBy', params: { by: 'timeout' } }],
            },
            { guard: { type: 'timerDue', params: { timer: 'warn' } }, actions: ['stamp', 'clearWarning'] },
          ],
        },
        after: {
          windowDelay: {
            target: 'wrap-up',
            actions: [{ type: 'stamp', params: { timer: 'window' } }, { type: 'endBy', params: { by: 'timeout' } }],
          },
          warnDelay: {
            guard: { type: 'hasTimer', params: { timer: 'warn' } },
            actions: [{ type: 'stamp', params: { timer: 'warn' } }, 'clearWarning'],
          },
        },
      },
      'wrap-up': {
        entry: 'enterWrapUp',
        on: {
          'customer.disconnected': {},
          'customer.ended': {},
          'agent.ended': {},
          'agent.closed': { target: 'closed', actions: 'stamp' },
          'timer.elapsed': [
            {
              guard: { type: 'timerDue', params: { timer: 'wrapUp' } },
              target: 'closed',
              actions: 'stamp',
            },
            { guard: { type: 'timerDue', params: { timer: 'capacity' } }, actions: ['stamp', 'releaseCapacity'] },
          ],
        },
        after: {
          wrapUpDelay: { target: 'closed', actions: { type: 'stamp', params: { timer: 'wrapUp' } } },
          capacityDelay: {
            guard: { type: 'hasTimer', params: { timer: 'capacity' } },
            actions: [{ type: 'stamp', params: { timer: 'capacity' } }, 'releaseCapacity'],
          },
        },
      },
      closed: {
        type: 'final',
        entry: 'enterClosed',
      },
    },
  })
}

/**
 * The lifecycle of one conversation (SPEC §3–§4) as an XState v5 machine.
 *
 * Deadlines are absolute epoch ms in `context.timers`, computed from each event's `at`. In a running
 * actor the `after` transitions fire them on the actor's clock; with the pure `transition` function
 * the caller sends `timer.elapsed` once a deadline has passed.
 *
 * @example
 * const [snapshot] = initialTransition(conversationMachine, { id: 'c1', widgetId: 'default',
 *   reconnectId: createReconnectId(), agentId: 'agent-7', now: Date.now(), settings })
 */
export const conversationMachine: ConversationMachine = /* @__PURE__ */ createConversationMachine()

/** The machine's type, for hosts that provide their own implementations with `machine.provide`. */
export type ConversationMachine = ReturnType<typeof createConversationMachine>

/** The states a conversation can rest in (the machine's transient `starting` state excluded). */
export const STATES: readonly State[] = Object.freeze([
  'queued',
  'active',
  'disconnected',
  'reconnectable',
  'wrap-up',
  'closed',
])
