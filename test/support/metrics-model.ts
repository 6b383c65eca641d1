import fc from 'fast-check'
import type { ServiceEvent, State } from '../../src/types'

// Realistic service event sequences for the metrics tests, from a small conversation model:
// several conversation slots, each started, assigned, dropped, resumed, expired or ended, in any
// interleaving, with the events the service emits for each step (transitions, capacity, notices,
// returns, the return before or after its transition), at-least-once duplicates, and a few events
// from strangers (null-id returns, unknown reasons, event types a newer service may add).

/** One step of the generated run. */
export interface MetricsStep {
  slot: number
  pick: number
  dt: number
  returnFirst: boolean
  /** The resume's return event is missing (a service older than or a lost event). */
  noReturn: boolean
  duplicate: boolean
  stray: number
}

const SLOTS = 5

export const metricsStepArbitrary: fc.Arbitrary<MetricsStep> = fc.record({
  slot: fc.nat(SLOTS - 1),
  pick: fc.nat(99),
  dt: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2_000 }), fc.integer({ min: 2_000, max: 2 * 3_600_000 })),
  returnFirst: fc.boolean(),
  noReturn: fc.nat(9).map((n) => n === 0),
  duplicate: fc.nat(24).map((n) => n === 0),
  stray: fc.nat(14),
})

export const metricsRunArbitrary: fc.Arbitrary<MetricsStep[]> = fc.array(metricsStepArbitrary, { maxLength: 240, size: 'large' })

type Via = 'link' | 'prompt' | 'session'

interface Slot {
  generation: number
  id: string
  state: State | 'none'
  held: boolean
  reconnectOn: boolean
}

const LOST = ['expired', 'ended-by-agent', 'ended-by-customer', 'closed', 'not-found', 'malformed'] as const
const NEW_CHAT = [...LOST, 'none', 'disabled', 'identity-mismatch'] as const
const VIAS: readonly Via[] = ['link', 'prompt', 'session']

/** Turns generated steps into the event list a service would have emitted. */
export function eventsOf(steps: readonly MetricsStep[], start = 1_700_000_000_000): ServiceEvent[] {
  const slots: Slot[] = Array.from({ length: SLOTS }, (_, i) => ({
    generation: 0,
    id: `c${i}`,
    state: 'none',
    held: false,
    reconnectOn: true,
  }))
  const out: ServiceEvent[] = []
  let t = start

  for (const step of steps) {
    t += step.dt
    const s = slots[step.slot]!
    const before = out.length
    const emit = (event: ServiceEvent) => out.push(event)
    const transition = (to: State, event: string) => {
      emit({ id: 'e', type: 'transition', conversationId: s.id, at: t, emittedAt: t, from: s.state as State, to, event })
      s.state = to
    }
    const hold = () => {
      s.held = true
      emit({ id: 'e', type: 'capacity.held', conversationId: s.id, at: t, emittedAt: t, agentId: 'agent-1' })
    }
    const release = (reason: string) => {
      if (!s.held) return
      s.held = false
      emit({ id: 'e', type: 'capacity.released', conversationId: s.id, at: t, emittedAt: t, agentId: 'agent-1', heldMs: 0, reason })
    }
    const returned = (outcome: 'resume' | 'prompt' | 'redirect' | 'new-chat', via: Via, reason?: string, id: string | null = s.id) =>
      emit({ id: 'e', type: 'return', conversationId: id, at: t, emittedAt: t, via, outcome, ...(reason === undefined ? {} : { reason }) })
    const pick = <T>(options: readonly T[]): T => options[step.pick % options.length]!

    const actions: (() => void)[] = []
    switch (s.state) {
      case 'none':
      case 'closed':
        actions.push(() => {
          s.generation += 1
          s.id = `c${step.slot}-${s.generation}`
          s.reconnectOn = step.pick % 4 !== 0
          s.held = false
          s.state = step.pick % 2 === 0 ? 'active' : 'queued'
          if (s.state === 'active') hold()
        })
        if (s.state === 'closed') {
          actions.push(() => returned(step.returnFirst ? 'redirect' : 'new-chat', pick(['link', 'session'] as const), pick(LOST)))
        }
        break
      case 'queued':
        actions.push(() => {
          transition('active', 'agent.assigned')
          hold()
        })
        actions.push(() => transition('closed', 'customer.disconnected'))
        actions.push(() => transition('closed', 'queue.elapsed'))
        break
      case 'active':
        actions.push(() => transition(s.reconnectOn ? 'reconnectable' : 'disconnected', 'customer.disconnected'))
        actions.push(() => transition(s.reconnectOn ? 'reconnectable' : 'disconnected', 'customer.disconnected'))
        actions.push(() => {
          transition('wrap-up', 'agent.ended')
          if (step.returnFirst) release('agent.ended')
          emit({ id: 'e', type: 'notice', conversationId: s.id, at: t, emittedAt: t, audience: 'customer', message: 'agent-ended' })
        })
        actions.push(() => {
          transition('queued', 'agent.closed')
          release('agent.closed')
        })
        actions.push(() => returned('resume', pick(['link', 'session'] as const))) // another tab
        break
      case 'reconnectable':
      case 'disconnected': {
        const resume = (via: Via) => {
          const apply = () => {
            const wasHeld = s.held
            transition(wasHeld ? 'active' : 'queued', 'customer.returned')
          }
          if (step.noReturn) {
            apply()
          } else if (step.returnFirst) {
            returned('resume', via)
            apply()
          } else {
            apply()
            returned('resume', via)
          }
        }
        if (s.state === 'reconnectable') {
          actions.push(() => resume(pick(VIAS)))
          actions.push(() => resume(pick(VIAS)))
          actions.push(() => {
            transition('wrap-up', 'window.elapsed')
            if (step.returnFirst) release('window.elapsed')
            emit({
              id: 'e',
              type: 'notice',
              conversationId: s.id,
              at: t,
              emittedAt: t,
              audience: 'agent',
              message: 'customer-disconnected',
            })
          })
          actions.push(() => {
            returned('new-chat', 'prompt', 'none')
            transition('wrap-up', 'customer.ended')
            release('customer.ended')
          })
          actions.push(() => returned('prompt', pick(['link', 'session'] as const)))
          actions.push(() => {
            transition('reconnectable', 'warn.elapsed')
            emit({ id: 'e', type: 'notice', conversationId: s.id, at: t, emittedAt: t, audience: 'agent', message: 'window-closing' })
          })
        } else {
          actions.push(() => resume('session'))
          actions.push(() => {
            transition('wrap-up', 'grace.elapsed')
            emit({
              id: 'e',
              type: 'notice',
              conversationId: s.id,
              at: t,
              emittedAt: t,
              audience: 'agent',
              message: 'customer-disconnected',
            })
          })
          actions.push(() => returned('new-chat', 'link', 'disabled'))
        }
        actions.push(() => {
          transition('wrap-up', 'agent.ended')
          if (step.returnFirst) release('agent.ended')
        })
        if (s.held) {
          actions.push(() => {
            transition(s.state as State, 'agent.closed')
            release('agent.closed')
          })
        }
        break
      }
      case 'wrap-up':
        actions.push(() => {
          transition('closed', 'agent.closed')
          release('agent.closed')
        })
        actions.push(() => {
          transition('closed', 'wrapUp.elapsed')
          release('wrapUp.elapsed')
        })
        if (s.held) {
          actions.push(() => {
            transition('wrap-up', 'capacity.elapsed')
            release('capacity.elapsed')
          })
        }
        break
    }
    pick(actions)()

    // At-least-once delivery: the step's first event arrives twice.
    if (step.duplicate && out.length > before) out.push({ ...out[before]! })
    if (step.stray === 0)
      returned(
        step.returnFirst ? 'redirect' : 'new-chat',
        pick(['link', 'session'] as const),
        pick([...NEW_CHAT, 'a-reason-from-the-future']),
        null,
      )
    if (step.stray === 1) out.push({ type: 'connection.attached', conversationId: s.id, at: t } as unknown as ServiceEvent)
  }
  return out
}
