import type { AnyStateMachine } from 'xstate'
import type { State } from '../types'
import {
  conversationMachine,
  guards,
  initialContext,
  updates,
  type ConversationContext,
  type ConversationEvent,
  type ConversationInput,
  type MachineArgs,
} from './conversation-machine'

// The service runs one transition per call, and XState's general interpreter (snapshots cloned per
// `assign`, state values recomputed, actor scopes) costs several times the rest of the call. The
// conversation machine is flat: atomic states, no history, no parallel regions, no invoked or
// spawned actors, and only `assign` actions besides the delayed events of `after`. For such a
// machine a transition is: pick the first enabled transition of the state for the event, run its
// actions, then (when it has a target) the target's entry actions, then any eventless transition.
//
// This module reads those transitions from the machine XState parsed (`conversationMachine.states`)
// and runs them with the same guard and update functions XState is given, so there is one
// definition of the lifecycle. It refuses, at first use, any machine feature it does not know how to
// run, and the test suites check it against XState's own `transition` (test/machine-compiled.test.ts).

type Guard = (args: MachineArgs, params: unknown) => boolean
type Update = (args: MachineArgs, params: unknown) => Partial<ConversationContext>

interface CompiledAction {
  update: Update
  params: unknown
}

interface CompiledTransition {
  guard: Guard | undefined
  guardParams: unknown
  actions: CompiledAction[]
  target: State | undefined
}

interface CompiledState {
  final: boolean
  entry: CompiledAction[]
  on: Map<string, CompiledTransition[]>
  always: CompiledTransition[]
}

/** The outcome of {@link runTransition}: nothing took the event, a transition that changes nothing took it, or the next state and context. */
export type TransitionOutcome =
  | { kind: 'rejected' }
  | { kind: 'noop' }
  | { kind: 'changed'; state: State; context: ConversationContext }

/** The name and params of an action or guard reference as XState keeps it in a parsed state node. */
function reference(ref: unknown, what: string, where: string): { name: string; params: unknown } {
  if (typeof ref === 'string') return { name: ref, params: undefined }
  if (typeof ref === 'object' && ref !== null && typeof (ref as { type?: unknown }).type === 'string') {
    const { type, params } = ref as { type: string; params?: unknown }
    if (typeof params === 'function') throw new Error(`${where}: dynamic params of ${what} '${type}' are not supported`)
    return { name: type, params }
  }
  throw new Error(`${where}: inline ${what}s are not supported`)
}

function compileActions(machine: AnyStateMachine, refs: readonly unknown[], where: string): CompiledAction[] {
  const compiled: CompiledAction[] = []
  for (const ref of refs) {
    if (typeof ref === 'function') {
      // XState's built-in actions. The delayed events of `after` only exist in a running actor; in a
      // pure transition they are returned to the caller and never change the snapshot.
      const builtIn = ref as { type?: unknown; delay?: unknown }
      if (builtIn.type === 'xstate.cancel' || (builtIn.type === 'xstate.raise' && builtIn.delay !== undefined)) continue
      if (builtIn.type === undefined) throw new Error(`${where}: inline actions are not supported`)
      throw new Error(`${where}: action '${String(builtIn.type)}' is not supported`)
    }
    const { name, params } = reference(ref, 'action', where)
    // By name, as XState resolves it: one of our updates, which the machine runs as an `assign` of
    // that very function (not one swapped in with `provide`).
    const implementation = (machine.implementations.actions as Record<string, { type?: unknown; assignment?: unknown } | undefined>)[name]
    const update = Object.hasOwn(updates, name) ? (updates as Record<string, Update>)[name] : undefined
    if (update === undefined || implementation?.type !== 'xstate.assign' || implementation.assignment !== update) {
      throw new Error(`${where}: action '${name}' is not one of the machine's updates`)
    }
    compiled.push({ update, params })
  }
  return compiled
}

function compileTransitions(
  machine: AnyStateMachine,
  source: string,
  definitions: readonly {
    guard?: unknown
    actions: readonly unknown[]
    target?: readonly { key: string; parent?: unknown }[] | undefined
    reenter?: boolean
  }[],
  where: string,
): CompiledTransition[] {
  return definitions.map((definition) => {
    let guard: Guard | undefined
    let guardParams: unknown
    if (definition.guard !== undefined) {
      const { name, params } = reference(definition.guard, 'guard', where)
      // The very function the machine was given, not one swapped in with `provide`.
      guard = Object.hasOwn(guards, name) ? (guards as Record<string, Guard>)[name] : undefined
      if (guard === undefined || machine.implementations.guards[name] !== guard) {
        throw new Error(`${where}: guard '${name}' is not one of the machine's guards`)
      }
      guardParams = params
    }
    const targets = definition.target ?? []
    if (targets.length > 1) throw new Error(`${where}: transitions to several states are not supported`)
    if (definition.reenter === true) throw new Error(`${where}: re-entering transitions are not supported`)
    const target = targets[0]
    if (target !== undefined && target.parent !== machine.root) {
      throw new Error(`${where}: targets below the top level are not supported`)
    }
    if (target?.key === source) throw new Error(`${where}: transitions back into the same state are not supported`)
    return { guard, guardParams, actions: compileActions(machine, definition.actions, where), target: target?.key as State | undefined }
  })
}

/** A machine's states as {@link runTransition} runs them, and its initial state. */
export interface CompiledMachine {
  states: Map<string, CompiledState>
  initial: string
}

/**
 * Reads a machine's states and transitions into the form this module runs, refusing (with an
 * Error that names the state) anything it could not run exactly as XState does. Exported for the
 * tests; the service only ever compiles `conversationMachine`.
 */
export function compileMachine(machine: AnyStateMachine): CompiledMachine {
  const root = machine.root
  if (root.type !== 'compound') throw new Error(`machine '${machine.id}': ${root.type} machines are not supported`)
  if (root.entry.length > 0 || root.exit.length > 0 || root.transitions.size > 0 || root.always !== undefined) {
    throw new Error(`machine '${machine.id}': root-level actions or transitions are not supported`)
  }
  const initial = root.initial?.target[0]?.key
  if (initial === undefined) throw new Error(`machine '${machine.id}' has no initial state`)
  const states = new Map<string, CompiledState>()
  for (const [key, node] of Object.entries(root.states)) {
    const where = `machine '${machine.id}', state '${key}'`
    if (node.type !== 'atomic' && node.type !== 'final') throw new Error(`${where}: ${node.type} states are not supported`)
    if (node.invoke.length > 0) throw new Error(`${where}: invoked actors are not supported`)
    // Exit actions are never run here: the only ones allowed are the cancels XState adds for `after`.
    if (compileActions(machine, node.exit, `${where}, exit`).length > 0) {
      throw new Error(`${where}: exit actions are not supported`)
    }
    // XState stops at a final state; eventless transitions out of one would never be taken.
    if (node.type === 'final' && (node.always?.length ?? 0) > 0) {
      throw new Error(`${where}: eventless transitions out of a final state are not supported`)
    }
    // Eventless transitions are run only on the way out of the initial state. Elsewhere XState also
    // checks them after an event that changed nothing, and one without a target ends its loop where
    // this one would go round again.
    const always = node.always ?? []
    if (always.length > 0 && key !== initial) {
      throw new Error(`${where}: eventless transitions are supported only in the initial state`)
    }
    if (always.some((definition) => (definition.target ?? []).length === 0)) {
      throw new Error(`${where}: eventless transitions without a target are not supported`)
    }
    const on = new Map<string, CompiledTransition[]>()
    for (const [eventType, definitions] of node.transitions) {
      if (eventType.includes('*')) throw new Error(`${where}: wildcard events are not supported`)
      on.set(eventType, compileTransitions(machine, key, definitions, `${where}, on '${eventType}'`))
    }
    states.set(key, {
      final: node.type === 'final',
      entry: compileActions(machine, node.entry, `${where}, entry`),
      on,
      always: compileTransitions(machine, key, always, `${where}, always`),
    })
  }
  return { states, initial }
}

let compiled: CompiledMachine | undefined

/** `conversationMachine`, compiled on first use. */
function conversation(): CompiledMachine {
  compiled ??= compileMachine(conversationMachine)
  return compiled
}

function stateNamed(key: string): CompiledState {
  const state = conversation().states.get(key)
  if (state === undefined) throw new Error(`conversation machine has no state '${key}'`)
  return state
}

function select(transitions: readonly CompiledTransition[] | undefined, args: MachineArgs): CompiledTransition | undefined {
  if (transitions === undefined) return undefined
  for (const transition of transitions) {
    if (transition.guard === undefined || transition.guard(args, transition.guardParams)) return transition
  }
  return undefined
}

// Each action sees the context as the previous one left it, as with XState's `assign`. `args.context`
// is always the transition's own copy (see `take`), so the updates are assigned onto it in place:
// one copy per transition instead of one per action.
function run(actions: readonly CompiledAction[], args: MachineArgs): void {
  for (const action of actions) Object.assign(args.context, action.update(args, action.params))
}

type Changed = Extract<TransitionOutcome, { kind: 'changed' }>

// Takes `transition`, then the target's entry actions and any eventless transitions from there, on
// a copy of `context` (one shape, fast) unless the caller hands it over (`owned`).
function take(
  transition: CompiledTransition,
  state: State,
  context: ConversationContext,
  event: ConversationEvent,
  owned: boolean,
): Changed {
  let current = state
  const args: MachineArgs = { context: owned ? context : { ...context }, event }
  let taken: CompiledTransition | undefined = transition
  for (let steps = 0; taken !== undefined; steps += 1) {
    if (steps > 100) throw new Error(`conversation machine: eventless transitions loop from '${state}'`)
    run(taken.actions, args)
    if (taken.target !== undefined) {
      current = taken.target
      run(stateNamed(current).entry, args)
    }
    taken = select(stateNamed(current).always, args)
  }
  return { kind: 'changed', state: current, context: args.context }
}

/**
 * The machine's initial state and context for `input`, as `conversationMachine.getInitialSnapshot`
 * gives them.
 */
export function runInitial(input: ConversationInput): { state: State; context: ConversationContext } {
  const initial = conversation().initial
  const event = { type: 'xstate.init', input } as unknown as ConversationEvent
  const start = stateNamed(initial)
  const entered: CompiledTransition = { guard: undefined, guardParams: undefined, actions: start.entry, target: undefined }
  const { state, context } = take(entered, initial as State, initialContext(input), event, true)
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
  const node = stateNamed(state)
  if (node.final) return { kind: 'rejected' }
  const transition = select(node.on.get(event.type), { context, event })
  if (transition === undefined) return { kind: 'rejected' }
  if (transition.target === undefined && transition.actions.length === 0) return { kind: 'noop' }
  return take(transition, state, context, event, owned)
}
