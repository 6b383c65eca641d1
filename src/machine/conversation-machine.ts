import { assign, setup } from 'xstate'
import type { State, TimerName } from '../types'
import { guards, initialContext, updates, type ConversationContext, type ConversationEvent, type ConversationInput } from './context'
import {
  lifecycle,
  TIMER_NAMES,
  type DeadlineEntry,
  type FinalStateEntry,
  type RestingStateEntry,
  type TransitionEntry,
  type UpdateReference,
} from './lifecycle'

export type { ConversationContext, ConversationEvent, ConversationEventType, ConversationInput } from './context'
export { STATES, TIMER_NAMES } from './lifecycle'

// The XState machine of the lifecycle table (./lifecycle.ts), for actors, inspection and
// xstate/graph. Each deadline of the table becomes two transitions here: `timer.elapsed` for that
// timer once it is due, and the delayed `after` transition a running actor fires by itself.

type Delay = `${TimerName}Delay`

function remaining(context: ConversationContext, timer: TimerName): number {
  const deadline = context.timers[timer]
  return deadline === undefined ? 0 : Math.max(0, deadline - context.updatedAt)
}

function delays(): Record<Delay, (args: { context: ConversationContext }) => number> {
  const all = {} as Record<Delay, (args: { context: ConversationContext }) => number>
  for (const timer of TIMER_NAMES) all[`${timer}Delay`] = ({ context }) => remaining(context, timer)
  return all
}

function actions() {
  const all = {} as {
    [Name in keyof typeof updates]: ReturnType<typeof assign<ConversationContext, ConversationEvent, undefined, ConversationEvent, never>>
  }
  for (const name of Object.keys(updates) as (keyof typeof updates)[]) {
    all[name] = assign(updates[name] as never) as never
  }
  return all
}

// XState's config for one transition: the same fields, without the ones the table leaves out.
function transitionConfig(transition: TransitionEntry, extra: readonly UpdateReference[] = []) {
  return {
    ...(transition.guard === undefined ? {} : { guard: transition.guard }),
    ...(transition.target === undefined ? {} : { target: transition.target }),
    ...(extra.length === 0 && transition.actions === undefined ? {} : { actions: [...extra, ...(transition.actions ?? [])] }),
  }
}

function stateConfig(entry: RestingStateEntry | FinalStateEntry) {
  if (entry.final === true) return { type: 'final' as const, ...(entry.entry === undefined ? {} : { entry: [...entry.entry] }) }
  const on: Record<string, unknown[]> = {}
  for (const [type, transitions] of Object.entries(entry.on ?? {})) {
    on[type] = (transitions ?? []).map((transition) => transitionConfig(transition))
  }
  const after: Record<string, unknown> = {}
  const elapsed: unknown[] = []
  for (const [timer, deadline] of Object.entries(entry.deadlines ?? {}) as [TimerName, DeadlineEntry][]) {
    const params = { timer }
    elapsed.push(transitionConfig({ ...deadline, guard: { type: 'timerDue', params } }, ['stamp']))
    after[`${timer}Delay`] = transitionConfig(
      { ...deadline, ...(deadline.optional === true ? { guard: { type: 'hasTimer', params } } : {}) },
      [{ type: 'stamp', params }],
    )
  }
  if (elapsed.length > 0) on['timer.elapsed'] = elapsed
  return {
    ...(entry.entry === undefined ? {} : { entry: [...entry.entry] }),
    on,
    ...(elapsed.length > 0 ? { after } : {}),
  }
}

function statesConfig() {
  const initial = lifecycle.initial
  const states: Record<string, unknown> = {
    [initial.name]: { always: initial.always.map((transition) => transitionConfig(transition)) },
  }
  for (const [name, entry] of Object.entries(lifecycle.states)) states[name] = stateConfig(entry)
  return states as { [Name in State | typeof initial.name]: object }
}

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
    delays: delays(),
    actions: actions(),
  }).createMachine({
    id: lifecycle.id,
    context: ({ input }) => initialContext(input),
    initial: lifecycle.initial.name,
    states: statesConfig(),
  })
}

/**
 * The lifecycle of one conversation as an XState v5 machine.
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
