import type { State, TimerName } from '../types'
import type { ConversationEventType, guards, MachineArgs, updates } from './context'

// The lifecycle of one conversation as data of our own: the one definition that our
// interpreter (./interpreter.ts) runs and the XState machine (./conversation-machine.ts) is built
// from. Its type admits only what the interpreter runs exactly as XState would: flat states, guards
// and updates by the name of one in ./context.ts (with the params that one takes), one target that
// is another resting state, and eventless transitions only out of the initial state.

/** The states a conversation can rest in (the machine's transient `starting` state excluded). */
export const STATES = Object.freeze(['queued', 'active', 'disconnected', 'reconnectable', 'wrap-up', 'closed'] as const)

/**
 * The names of the deadlines a conversation can carry, in the order deadlines due at the same instant
 * are applied. `lease` (the earliest lease of a connection lapses) and `detach` (the detach grace
 * ends) belong to the customer's connections: src/machine/connections.ts applies them, not this
 * table, so no state lists them and the XState machine leaves them alone. `retention` is no
 * transition either: `closed` is final, and the sweep applies it by deleting the record
 * (src/service/sweep.ts).
 */
export const TIMER_NAMES = Object.freeze([
  'warn',
  'capacity',
  'queue',
  'grace',
  'window',
  'wrapUp',
  'lease',
  'detach',
  'retention',
] as const)

type ParamsOf<F> = F extends (args: MachineArgs, params: infer P) => unknown ? P : never

// A function that takes no params is named by a string; one that needs them by `{ type, params }`.
type ReferenceTo<Name extends string, Params> = unknown extends Params
  ? Name
  : undefined extends Params
    ? Name | { readonly type: Name; readonly params: Exclude<Params, undefined> }
    : { readonly type: Name; readonly params: Params }

type ReferenceOf<Implementations> = {
  [Name in keyof Implementations & string]: ReferenceTo<Name, ParamsOf<Implementations[Name]>>
}[keyof Implementations & string]

/** A guard of ./context.ts by name, with the params it takes. */
export type GuardReference = ReferenceOf<typeof guards>

/** A context update of ./context.ts by name, with the params it takes. */
export type UpdateReference = ReferenceOf<typeof updates>

/** One transition: taken when its guard passes (or it has none); runs its updates, then enters its target. */
export interface TransitionEntry<Target extends State = State> {
  readonly guard?: GuardReference
  readonly actions?: readonly UpdateReference[]
  readonly target?: Target
}

/**
 * What happens when a deadline of `timers` passes: the context is stamped with the deadline's
 * time, then `actions` run and `target` is entered. It stands for two transitions: `timer.elapsed`
 * for that timer once it is due (what the service sends), and the delayed `after` transition that a
 * running XState actor fires by itself.
 */
export interface DeadlineEntry<Target extends State = State> {
  readonly actions?: readonly UpdateReference[]
  readonly target?: Target
  /** The state does not always set this timer: the delayed transition checks that it is set. */
  readonly optional?: true
}

/** The events a state lists in `on`; `timer.elapsed` comes from its `deadlines`. */
export type OnEventType = Exclude<ConversationEventType, 'timer.elapsed'>

/** A state a conversation can rest in; `Target` is every other state (no transition leads back into its own). */
export interface RestingStateEntry<Target extends State = State> {
  /** Updates run on entering the state. */
  readonly entry?: readonly UpdateReference[]
  /** For each event, the transitions in the order they are tried. */
  readonly on?: { readonly [Type in OnEventType]?: readonly TransitionEntry<Target>[] }
  /** The deadlines the state keeps, by timer name. */
  readonly deadlines?: { readonly [Timer in TimerName]?: DeadlineEntry<Target> }
  readonly final?: false
}

/** A final state: entered once, then no event applies. */
export interface FinalStateEntry {
  readonly final: true
  readonly entry?: readonly UpdateReference[]
  readonly on?: never
  readonly deadlines?: never
}

/**
 * The transient state a conversation starts in. Its eventless transitions are tried in order, and
 * the last one has no guard, so every conversation comes to rest in one of {@link STATES}.
 */
export interface InitialStateEntry {
  readonly name: string
  readonly always: readonly [
    ...(TransitionEntry & { readonly target: State })[],
    { readonly target: State; readonly actions?: readonly UpdateReference[]; readonly guard?: never },
  ]
}

/** The shape of the lifecycle table. */
export interface LifecycleTable {
  readonly id: string
  readonly initial: InitialStateEntry
  readonly states: { readonly [S in State]: RestingStateEntry<Exclude<State, S>> | FinalStateEntry }
}

/** The conversation lifecycle. */
export const lifecycle = {
  id: 'conversation',
  initial: {
    name: 'starting',
    always: [{ guard: 'startsAssigned', target: 'active', actions: ['assignAgent'] }, { target: 'queued' }],
  },
  states: {
    queued: {
      entry: ['enterQueue'],
      on: {
        'agent.assigned': [{ target: 'active', actions: ['stamp', 'assignAgent'] }],
        'customer.disconnected': [{ target: 'closed', actions: ['stamp', { type: 'endBy', params: { by: null } }] }],
        'customer.ended': [{ target: 'closed', actions: ['stamp', { type: 'endBy', params: { by: 'customer' } }] }],
        'customer.returned': [{}],
        'agent.closed': [{ guard: 'agentWasClosed' }],
      },
      deadlines: {
        queue: { target: 'closed', actions: [{ type: 'endBy', params: { by: null } }] },
      },
    },
    active: {
      entry: ['enterActive'],
      on: {
        'agent.assigned': [{ guard: 'sameAgent' }],
        'customer.disconnected': [
          { guard: 'reconnectEnabled', target: 'reconnectable', actions: ['stamp'] },
          { target: 'disconnected', actions: ['stamp'] },
        ],
        'customer.returned': [{}],
        'customer.ended': [{ target: 'wrap-up', actions: ['stamp', { type: 'endBy', params: { by: 'customer' } }] }],
        'agent.ended': [{ target: 'wrap-up', actions: ['stamp', { type: 'endBy', params: { by: 'agent' } }] }],
        'agent.closed': [{ target: 'queued', actions: ['stamp', 'releaseAgent'] }],
      },
    },
    disconnected: {
      entry: ['enterDisconnected'],
      on: {
        'customer.disconnected': [{}],
        'customer.returned': [
          { guard: { type: 'sessionWithinGrace', params: { unassigned: true } }, target: 'queued', actions: ['stamp'] },
          { guard: { type: 'sessionWithinGrace', params: { unassigned: false } }, target: 'active', actions: ['stamp'] },
        ],
        'agent.ended': [{ target: 'wrap-up', actions: ['stamp', { type: 'endBy', params: { by: 'agent' } }] }],
        'agent.closed': [{ guard: 'agentGone' }, { actions: ['stamp', 'releaseAgent'] }],
      },
      deadlines: {
        grace: { target: 'wrap-up', actions: [{ type: 'endBy', params: { by: 'timeout' } }] },
      },
    },
    reconnectable: {
      entry: ['enterReconnectable'],
      on: {
        'customer.disconnected': [{}],
        'customer.returned': [
          { guard: 'withinWindowUnassigned', target: 'queued', actions: ['stamp'] },
          { guard: 'withinWindow', target: 'active', actions: ['stamp'] },
        ],
        'customer.ended': [
          {
            guard: 'releasesCapacity',
            target: 'wrap-up',
            actions: ['stamp', { type: 'endBy', params: { by: 'customer' } }, 'releaseCapacity'],
          },
          { target: 'wrap-up', actions: ['stamp', { type: 'endBy', params: { by: 'customer' } }] },
        ],
        'agent.ended': [{ target: 'wrap-up', actions: ['stamp', { type: 'endBy', params: { by: 'agent' } }] }],
        'agent.closed': [{ guard: 'agentGone' }, { actions: ['stamp', 'releaseAgent'] }],
      },
      deadlines: {
        window: { target: 'wrap-up', actions: [{ type: 'endBy', params: { by: 'timeout' } }] },
        warn: { actions: ['clearWarning'], optional: true },
      },
    },
    'wrap-up': {
      entry: ['enterWrapUp'],
      on: {
        'customer.disconnected': [{}],
        'customer.ended': [{}],
        'agent.ended': [{}],
        'agent.closed': [{ target: 'closed', actions: ['stamp'] }],
      },
      deadlines: {
        wrapUp: { target: 'closed' },
        capacity: { actions: ['releaseCapacity'], optional: true },
      },
    },
    closed: {
      final: true,
      entry: ['enterClosed'],
    },
  },
} as const satisfies LifecycleTable
