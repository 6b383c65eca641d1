import type { State } from '../types'
import {
  guards,
  initialContext,
  updates,
  type ConversationContext,
  type ConversationEvent,
  type ConversationInput,
  type MachineArgs,
} from './context'
import {
  lifecycle,
  type DeadlineEntry,
  type GuardReference,
  type LifecycleTable,
  type RestingStateEntry,
  type FinalStateEntry,
  type TransitionEntry,
  type UpdateReference,
} from './lifecycle'

// Runs the lifecycle table one transition at a time, as XState's pure `transition` runs the machine
// built from the same table (test/machine-interpreter.test.ts holds the two to each other). The
// table's type admits only flat states, transitions to another resting state and eventless
// transitions out of the initial state, so a transition is: the first enabled transition of the
// state for the event, its updates, then the target's entry updates. The delayed `after`
// transitions exist only in a running actor; here a deadline is the `timer.elapsed` event the
// service sends once it is due. No XState here: the service's path does not load it.

type Guard = (args: MachineArgs, params: unknown) => boolean
type Update = (args: MachineArgs, params: unknown) => Partial<ConversationContext>

const table: LifecycleTable = lifecycle

/** The outcome of {@link runTransition}: nothing took the event, a transition that changes nothing took it, or the next state and context. */
export type TransitionOutcome =
  | { kind: 'rejected' }
  | { kind: 'noop' }
  | { kind: 'changed'; state: State; context: ConversationContext }

// Own properties only: event types and timer names come from callers, and `constructor` is not one.
function own<T>(entries: { readonly [key: string]: T } | undefined, key: string): T | undefined {
  return entries !== undefined && Object.hasOwn(entries, key) ? entries[key] : undefined
}

function stateEntry(state: string): RestingStateEntry | FinalStateEntry {
  const entry = own<RestingStateEntry | FinalStateEntry>(table.states, state)
  if (entry === undefined) throw new Error(`conversation lifecycle has no state '${state}'`)
  return entry
}

function passes(guard: GuardReference | undefined, args: MachineArgs): boolean {
  if (guard === undefined) return true
  if (typeof guard === 'string') return (guards[guard] as Guard)(args, undefined)
  return (guards[guard.type] as Guard)(args, guard.params)
}

// Each update sees the context as the previous one left it, as with XState's `assign`. `args.context`
// is always the transition's own copy (see `take`), so the updates are assigned onto it in place.
function run(actions: readonly UpdateReference[] | undefined, args: MachineArgs): void {
  if (actions === undefined) return
  for (const action of actions) {
    const changes =
      typeof action === 'string'
        ? (updates[action] as Update)(args, undefined)
        : (updates[action.type] as Update)(args, action.params)
    Object.assign(args.context, changes)
  }
}

function select(transitions: readonly TransitionEntry[] | undefined, args: MachineArgs): TransitionEntry | undefined {
  if (transitions === undefined) return undefined
  for (const transition of transitions) if (passes(transition.guard, args)) return transition
  return undefined
}

type Changed = Extract<TransitionOutcome, { kind: 'changed' }>

// Runs `transition` on a copy of `context` (one shape, fast) unless the caller hands it over
// (`owned`); a deadline's transition is stamped with the deadline's time first.
function take(
  transition: TransitionEntry | DeadlineEntry,
  stamped: boolean,
  state: State,
  context: ConversationContext,
  event: ConversationEvent,
  owned: boolean,
): Changed {
  const args: MachineArgs = { context: owned ? context : { ...context }, event }
  if (stamped) Object.assign(args.context, updates.stamp(args, undefined))
  run(transition.actions, args)
  const target = transition.target
  if (target === undefined) return { kind: 'changed', state, context: args.context }
  run(stateEntry(target).entry, args)
  return { kind: 'changed', state: target, context: args.context }
}

/**
 * The initial state and context for `input`, as `conversationMachine.getInitialSnapshot` gives them.
 */
export function runInitial(input: ConversationInput): { state: State; context: ConversationContext } {
  const event = { type: 'xstate.init', input } as unknown as ConversationEvent
  const args: MachineArgs = { context: initialContext(input), event }
  const transition = select(table.initial.always, args)
  // The table's type makes the last eventless transition unguarded.
  if (transition?.target === undefined) throw new Error('conversation lifecycle: no eventless transition out of the initial state')
  const { state, context } = take(transition, false, transition.target, args.context, event, true)
  return { state, context }
}

/**
 * Offers `event` to a conversation in `state` with `context`, as `conversationMachine.transition`
 * would: rejected when no transition takes it, a no-op when the one that does has neither actions
 * nor a target, otherwise the next state and context. `context` is left as it is, unless the caller
 * hands it over with `owned` (a context it has just built for this call): then it becomes the next one.
 */
export function runTransition(
  state: State,
  context: ConversationContext,
  event: ConversationEvent,
  owned = false,
): TransitionOutcome {
  const entry = stateEntry(state)
  if (entry.final === true) return { kind: 'rejected' }
  if (event.type === 'timer.elapsed') {
    const deadline = own(entry.deadlines, event.timer)
    if (deadline === undefined || !guards.timerDue({ context, event }, { timer: event.timer })) return { kind: 'rejected' }
    return take(deadline, true, state, context, event, owned)
  }
  const transition = select(own(entry.on, event.type), { context, event })
  if (transition === undefined) return { kind: 'rejected' }
  if (transition.target === undefined && (transition.actions === undefined || transition.actions.length === 0)) return { kind: 'noop' }
  return take(transition, false, state, context, event, owned)
}
