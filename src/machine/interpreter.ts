import type { State, TimerName } from '../types'
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

/** The outcome of {@link runTransition}: nothing took the event, a transition that changes nothing took it, or the next state and context. */
export type TransitionOutcome = { kind: 'rejected' } | { kind: 'noop' } | { kind: 'changed'; state: State; context: ConversationContext }

// The table with its names resolved to the functions they stand for, made on first use: a
// transition then costs a Map lookup and plain calls, not string lookups and shape checks.
interface Action {
  update: Update
  params: unknown
}

interface Transition {
  guard: Guard | undefined
  guardParams: unknown
  actions: Action[]
  target: State | undefined
  /** The target's entry updates (filled in once every state is resolved). */
  enter: Action[]
}

interface Resolved {
  final: boolean
  entry: Action[]
  on: Map<string, Transition[]>
  /** By timer name: the one `timer.elapsed` transition of each deadline. */
  deadlines: Map<string, Transition[]>
}

function resolveActions(references: readonly UpdateReference[] | undefined): Action[] {
  return (references ?? []).map((reference) =>
    typeof reference === 'string'
      ? { update: updates[reference] as Update, params: undefined }
      : { update: updates[reference.type] as Update, params: reference.params },
  )
}

function resolveTransition(transition: TransitionEntry): Transition {
  const guard = transition.guard
  return {
    guard: guard === undefined ? undefined : ((typeof guard === 'string' ? guards[guard] : guards[guard.type]) as Guard),
    guardParams: typeof guard === 'object' ? guard.params : undefined,
    actions: resolveActions(transition.actions),
    target: transition.target,
    enter: [],
  }
}

// A deadline is the `timer.elapsed` transition for its timer: due, stamped with the event's time.
function resolveDeadline(timer: TimerName, deadline: DeadlineEntry): Transition {
  return {
    guard: guards.timerDue as Guard,
    guardParams: { timer },
    actions: [{ update: updates.stamp as Update, params: undefined }, ...resolveActions(deadline.actions)],
    target: deadline.target,
    enter: [],
  }
}

function resolveState(entry: RestingStateEntry | FinalStateEntry): Resolved {
  const on = new Map<string, Transition[]>()
  for (const [type, transitions] of Object.entries(entry.on ?? {})) on.set(type, (transitions ?? []).map(resolveTransition))
  const deadlines = new Map<string, Transition[]>()
  for (const [timer, deadline] of Object.entries(entry.deadlines ?? {})) {
    if (deadline !== undefined) deadlines.set(timer, [resolveDeadline(timer as TimerName, deadline)])
  }
  return { final: entry.final === true, entry: resolveActions(entry.entry), on, deadlines }
}

let resolved: { states: Map<string, Resolved>; always: Transition[] } | undefined

function table() {
  if (resolved !== undefined) return resolved
  const states = new Map<string, Resolved>()
  for (const [name, entry] of Object.entries(lifecycle.states as LifecycleTable['states'])) states.set(name, resolveState(entry))
  const always = lifecycle.initial.always.map((transition: TransitionEntry) => resolveTransition(transition))
  const transitions = [...always]
  for (const state of states.values()) for (const list of [...state.on.values(), ...state.deadlines.values()]) transitions.push(...list)
  for (const transition of transitions) {
    if (transition.target !== undefined) transition.enter = states.get(transition.target)?.entry ?? []
  }
  resolved = { states, always }
  return resolved
}

function stateNamed(state: string): Resolved {
  const entry = table().states.get(state)
  if (entry === undefined) throw new Error(`conversation lifecycle has no state '${state}'`)
  return entry
}

function select(transitions: readonly Transition[] | undefined, args: MachineArgs): Transition | undefined {
  if (transitions === undefined) return undefined
  for (const transition of transitions) {
    if (transition.guard === undefined || transition.guard(args, transition.guardParams)) return transition
  }
  return undefined
}

// Each update sees the context as the previous one left it, as with XState's `assign`. `args.context`
// is always the transition's own copy (see `take`), so the updates are assigned onto it in place:
// one copy per transition instead of one per update.
function run(actions: readonly Action[], args: MachineArgs): void {
  for (const action of actions) Object.assign(args.context, action.update(args, action.params))
}

type Changed = Extract<TransitionOutcome, { kind: 'changed' }>

// Takes `transition`, then the target's entry updates, on a copy of `context` (one shape, fast)
// unless the caller hands it over (`owned`).
function take(transition: Transition, state: State, context: ConversationContext, event: ConversationEvent, owned: boolean): Changed {
  const args: MachineArgs = { context: owned ? context : { ...context }, event }
  run(transition.actions, args)
  const target = transition.target
  if (target === undefined) return { kind: 'changed', state, context: args.context }
  run(transition.enter, args)
  return { kind: 'changed', state: target, context: args.context }
}

/**
 * The initial state and context for `input`, as `conversationMachine.getInitialSnapshot` gives them.
 */
export function runInitial(input: ConversationInput): { state: State; context: ConversationContext } {
  const event = { type: 'xstate.init', input } as unknown as ConversationEvent
  const args: MachineArgs = { context: initialContext(input), event }
  const transition = select(table().always, args)
  // The table's type makes the last eventless transition unguarded, with a target.
  if (transition?.target === undefined) throw new Error('conversation lifecycle: no eventless transition out of the initial state')
  const { state, context } = take(transition, transition.target, args.context, event, true)
  return { state, context }
}

/**
 * Offers `event` to a conversation in `state` with `context`, as `conversationMachine.transition`
 * would: rejected when no transition takes it, a no-op when the one that does has neither actions
 * nor a target, otherwise the next state and context. `context` is left as it is, unless the caller
 * hands it over with `owned` (a context it has just built for this call): then it becomes the next one.
 */
export function runTransition(state: State, context: ConversationContext, event: ConversationEvent, owned = false): TransitionOutcome {
  const entry = stateNamed(state)
  if (entry.final) return { kind: 'rejected' }
  const args: MachineArgs = { context, event }
  const transition =
    event.type === 'timer.elapsed' ? select(entry.deadlines.get(event.timer), args) : select(entry.on.get(event.type), args)
  if (transition === undefined) return { kind: 'rejected' }
  if (transition.target === undefined && transition.actions.length === 0) return { kind: 'noop' }
  return take(transition, state, context, event, owned)
}
