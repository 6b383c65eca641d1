import { describe, expect, it } from 'vitest'
import { createTestModel, getAdjacencyMap, getShortestPaths, getSimplePaths } from 'xstate/graph'
import { conversationMachine, STATES, type ConversationEvent, type ConversationInput } from '../src/machine/conversation-machine'
import { createConversationRecord, stepConversation } from '../src/machine/step'
import type { ConversationRecord, ReconnectSettings, State, TimerName } from '../src/types'
import { MINUTE, T0 } from './support/conversation'
import { makeSettings } from './support/settings'

// The machine's own graph, walked with xstate/graph. Events carry `at`, so the alphabet is derived
// from each snapshot: user events at the snapshot's `updatedAt` (inside every window), one late
// return at each pending deadline, and `timer.elapsed` for each pending timer at its deadline.
// Snapshots are told apart by their shape (state, agent, capacity, ender, pending timer names), not
// by times, which keeps the graph finite.

type Snapshot = ReturnType<typeof conversationMachine.resolveState>

const SETTINGS: Record<string, ReconnectSettings> = {
  'reconnect on, warning, short wrap-up capacity': makeSettings({ warnBefore: 5 * MINUTE, wrapUpCapacity: 5 * MINUTE }),
  'reconnect on, wrap-up capacity longer than auto-close': makeSettings({ wrapUpCapacity: 30 * MINUTE }),
  "reconnect on, wrap-up capacity 'never'": makeSettings({ wrapUpCapacity: 'never' }),
  'reconnect off': makeSettings({ enabled: false, timeLimit: null, portalUrl: null }),
}

function inputFor(settings: ReconnectSettings, agentId: string | null = null): ConversationInput {
  return { id: 'conv-1', widgetId: 'default', reconnectId: 'V1StGXR8_Z5jdHi6B-myT', agentId, now: T0, settings }
}

function eventsFor(snapshot: Snapshot): ConversationEvent[] {
  const now = snapshot.context.updatedAt
  const events: ConversationEvent[] = [
    { type: 'agent.assigned', agentId: 'agent-1', at: now },
    { type: 'agent.assigned', agentId: 'agent-2', at: now },
    { type: 'customer.disconnected', at: now },
    { type: 'customer.returned', via: 'link', at: now },
    { type: 'customer.returned', via: 'prompt', at: now },
    { type: 'customer.returned', via: 'session', at: now },
    { type: 'customer.ended', at: now },
    { type: 'customer.ended', releaseCapacity: true, at: now },
    { type: 'agent.ended', at: now },
    { type: 'agent.closed', at: now },
  ]
  for (const [timer, deadline] of Object.entries(snapshot.context.timers) as [TimerName, number][]) {
    events.push({ type: 'timer.elapsed', timer, at: deadline })
    events.push({ type: 'customer.returned', via: 'link', at: deadline })
    events.push({ type: 'customer.returned', via: 'session', at: deadline })
  }
  return events
}

function shape(snapshot: Snapshot): string {
  const c = snapshot.context
  return JSON.stringify([snapshot.value, c.agentId, c.previousAgentId, c.capacityHeld, c.endedBy, Object.keys(c.timers).sort()])
}

function traversal(settings: ReconnectSettings, agentId: string | null = null) {
  return { input: inputFor(settings, agentId), events: eventsFor, serializeState: shape, limit: 5_000 }
}

const stateOf = (snapshot: Snapshot): State => snapshot.value as State

/** The outgoing edges of one adjacency entry (its keys are branded strings, which hides the value type). */
function edges(transitions: object): { event: ConversationEvent; state: Snapshot }[] {
  return Object.values(transitions) as { event: ConversationEvent; state: Snapshot }[]
}

/**
 * Replays a graph path through the service's pure API, checking each step lands where the graph says.
 * Graph paths open with a synthetic `xstate.init` step; every later step pairs an event with the
 * snapshot it led to.
 */
function replay(settings: ReconnectSettings, steps: { event: { type: string }; state: Snapshot }[], agentId: string | null) {
  let record: ConversationRecord = createConversationRecord(inputFor(settings, agentId))
  for (const step of steps) {
    if (step.event.type === 'xstate.init') {
      expect(record.state).toBe(stateOf(step.state))
      continue
    }
    const event = step.event as ConversationEvent
    const result = stepConversation(record, settings, event)
    if (result.kind !== 'changed') throw new Error(`${event.type} was ${result.kind} in ${record.state}`)
    record = result.record
    expect(record.state).toBe(stateOf(step.state))
    // Snapshots are merged by shape, so the graph's copy may carry other times: compare timer names.
    expect(Object.keys(record.timers).sort()).toEqual(Object.keys(step.state.context.timers).sort())
  }
  return record
}

describe.each(Object.entries(SETTINGS))('conversation machine graph (%s)', (_name, settings) => {
  const enabled = settings.enabled

  it('reaches every state of SPEC §3 from the initial state (and replays each path through stepConversation)', () => {
    const paths = getShortestPaths(conversationMachine, traversal(settings))
    const reached = new Set(paths.map((p) => stateOf(p.state)))
    const expected = STATES.filter((s) => (enabled ? s !== 'disconnected' : s !== 'reconnectable'))
    expect([...reached].sort()).toEqual([...expected].sort())

    for (const state of expected) {
      const path = paths.find((p) => stateOf(p.state) === state)!
      const record = replay(settings, path.steps, null)
      expect(record.state).toBe(state)
      expect(record.capacityHeld).toBe(path.state.context.capacityHeld)
      expect(record.agentId).toBe(path.state.context.agentId)
    }
  })

  it('is a closed system: no snapshot ever leaves the six states', () => {
    const adjacency = getAdjacencyMap(conversationMachine, traversal(settings, 'agent-1'))
    for (const { state } of Object.values(adjacency)) expect(STATES).toContain(stateOf(state))
  })

  it("treats 'closed' as final: status done and every event leaves the snapshot as it is", () => {
    const adjacency = getAdjacencyMap(conversationMachine, traversal(settings, 'agent-1'))
    const closed = Object.values(adjacency).filter((v) => stateOf(v.state) === 'closed')
    expect(closed.length).toBeGreaterThan(0)
    for (const { state, transitions } of closed) {
      expect(state.status).toBe('done')
      expect(state.context.capacityHeld).toBe(false)
      // The one deadline of the final state is no transition: the sweep deletes the record then.
      expect(Object.keys(state.context.timers)).toEqual(['retention'])
      for (const { event, state: next } of edges(transitions)) {
        expect(next, event.type).toBe(state)
        expect(conversationMachine.getTransitionData(state, event)).toEqual([])
      }
    }
    const node = conversationMachine.states.closed!
    expect(node.type).toBe('final')
    expect(node.transitions.size).toBe(0)
    expect(node.after).toEqual([])
  })

  it('never resumes after wrap-up: from any wrap-up snapshot no path reaches active, queued or a disconnected state', () => {
    const adjacency = getAdjacencyMap(conversationMachine, traversal(settings, 'agent-1'))
    const wrapUps = Object.values(adjacency).filter((v) => stateOf(v.state) === 'wrap-up')
    expect(wrapUps.length).toBeGreaterThan(0)
    for (const { state } of wrapUps) {
      const onward = getShortestPaths(conversationMachine, { ...traversal(settings), fromState: state })
      expect(new Set(onward.map((p) => stateOf(p.state)))).toEqual(new Set(['wrap-up', 'closed']))
    }
  })

  it('no simple path from the start visits active after wrap-up', () => {
    const paths = getSimplePaths(conversationMachine, {
      ...traversal(settings, 'agent-1'),
      toState: (s) => stateOf(s) === 'active' || stateOf(s) === 'queued',
    })
    expect(paths.length).toBeGreaterThan(0)
    for (const path of paths) {
      const visited = path.steps.map((s) => stateOf(s.state))
      expect(visited).not.toContain('wrap-up')
      expect(visited).not.toContain('closed')
    }
  })
})

describe('graph facts that do not depend on settings', () => {
  it('between reconnect on and off, every state of SPEC §3 is reachable from a fresh conversation', () => {
    const reached = new Set<State>()
    for (const settings of Object.values(SETTINGS)) {
      for (const path of getShortestPaths(conversationMachine, traversal(settings))) reached.add(stateOf(path.state))
    }
    expect([...reached].sort()).toEqual([...STATES].sort())
  })

  it('a resume (→ active) only ever comes from queued, disconnected or reconnectable', () => {
    const sources = new Set<State>()
    for (const settings of Object.values(SETTINGS)) {
      const adjacency = getAdjacencyMap(conversationMachine, traversal(settings, 'agent-1'))
      for (const { state, transitions } of Object.values(adjacency)) {
        for (const { state: next } of edges(transitions)) {
          if (stateOf(next) === 'active' && stateOf(state) !== 'active') sources.add(stateOf(state))
        }
      }
    }
    expect([...sources].sort()).toEqual(['disconnected', 'queued', 'reconnectable'])
  })

  it('createTestModel refuses the machine because it uses `after` (why this file walks the graph itself)', () => {
    expect(() => createTestModel(conversationMachine)).toThrow(/After events/)
  })
})
