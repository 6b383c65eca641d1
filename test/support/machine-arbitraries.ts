import fc from 'fast-check'
import type { ConversationEvent } from '../../src/machine/conversation-machine'
import type { ConversationRecord, ReconnectSettings, TimerName } from '../../src/types'
import { MINUTE, SECOND } from './conversation'
import { makeSettings } from './settings'

const HOUR = 60 * MINUTE
const TIMERS: readonly TimerName[] = ['queue', 'grace', 'window', 'warn', 'wrapUp', 'capacity']

/** Durations that collide often (whole minutes) and sometimes land on odd milliseconds. */
function durationArbitrary(max: number): fc.Arbitrary<number> {
  return fc.oneof(
    fc.integer({ min: 1, max: Math.floor(max / MINUTE) }).map((m) => m * MINUTE),
    fc.integer({ min: 1, max }),
  )
}

/** Hand-built settings covering reconnect on/off, warnings and every `wrapUpCapacity` form. */
export const machineSettingsArbitrary: fc.Arbitrary<ReconnectSettings> = fc
  .record({
    enabled: fc.boolean(),
    timeLimit: durationArbitrary(2 * HOUR),
    warnBefore: fc.option(durationArbitrary(2 * HOUR), { nil: null }),
    disconnectGrace: durationArbitrary(HOUR),
    wrapUpAutoClose: durationArbitrary(HOUR),
    wrapUpCapacity: fc.oneof(fc.constant<'always'>('always'), fc.constant<'never'>('never'), fc.integer({ min: 30 * SECOND, max: HOUR })),
    queueAutoClose: durationArbitrary(HOUR),
  })
  .map(({ enabled, timeLimit, ...rest }) =>
    makeSettings({
      ...rest,
      enabled,
      // A widget with reconnect off may or may not carry a time limit; neither must matter.
      timeLimit: enabled || timeLimit % 2 === 0 ? timeLimit : null,
      portalUrl: enabled ? 'https://portal.example.com/chat' : null,
    }),
  )

/** When an event happens: some time after the previous one, or next to a pending deadline. */
export type TimePick = { after: number } | { deadline: number; offset: number }

/** An event before it is given a time; `pick` chooses an agent, a return route or a timer. */
export interface EventPlan {
  type: ConversationEvent['type']
  pick: number
  releaseCapacity: boolean
  time: TimePick
}

const timePickArbitrary: fc.Arbitrary<TimePick> = fc.oneof(
  fc.record({ after: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 * HOUR })) }),
  fc.record({ deadline: fc.nat(5), offset: fc.constantFrom(-1, 0, 0, 1, 5 * SECOND) }),
)

/** Plans of conversation events, biased towards timers so that conversations get somewhere. */
export const eventPlanArbitrary: fc.Arbitrary<EventPlan> = fc.record({
  type: fc.oneof(
    { weight: 4, arbitrary: fc.constant<'timer.elapsed'>('timer.elapsed') },
    {
      weight: 9,
      arbitrary: fc.constantFrom<ConversationEvent['type']>(
        'agent.assigned',
        'customer.disconnected',
        'customer.disconnected',
        'customer.returned',
        'customer.returned',
        'customer.ended',
        'agent.ended',
        'agent.closed',
        'agent.closed',
      ),
    },
  ),
  pick: fc.nat(11),
  releaseCapacity: fc.boolean(),
  time: timePickArbitrary,
})

/** Turns a plan into a concrete event for `record`, never earlier than `lastAt`. */
export function planEvent(plan: EventPlan, record: ConversationRecord, lastAt: number): ConversationEvent {
  const pending = (Object.entries(record.timers) as [TimerName, number][]).sort((a, b) => a[1] - b[1])
  let at: number
  if ('after' in plan.time) {
    at = lastAt + plan.time.after
  } else {
    const chosen = pending[plan.time.deadline % Math.max(1, pending.length)]
    at = chosen === undefined ? lastAt : chosen[1] + plan.time.offset
  }
  at = Math.max(lastAt, at)
  switch (plan.type) {
    case 'agent.assigned':
      return { type: 'agent.assigned', agentId: plan.pick % 3 === 0 ? 'agent-2' : 'agent-1', at }
    case 'customer.returned':
      return { type: 'customer.returned', via: (['link', 'prompt', 'session'] as const)[plan.pick % 3]!, at }
    case 'customer.ended':
      return plan.releaseCapacity ? { type: 'customer.ended', releaseCapacity: true, at } : { type: 'customer.ended', at }
    case 'timer.elapsed': {
      // Mostly a pending timer, at or after its deadline; sometimes one the record does not have.
      const own = pending[plan.pick % Math.max(1, pending.length)]
      if (own === undefined || plan.pick >= 10) return { type: 'timer.elapsed', timer: TIMERS[plan.pick % TIMERS.length]!, at }
      const offset = 'offset' in plan.time ? plan.time.offset : 0
      return { type: 'timer.elapsed', timer: own[0], at: Math.max(lastAt, own[1] + offset) }
    }
    default:
      return { type: plan.type, at }
  }
}

/** The record's earliest deadline recomputed from scratch. */
export function expectedNextDueAt(record: ConversationRecord): number | null {
  const values = Object.values(record.timers)
  return values.length === 0 ? null : Math.min(...values)
}
