import ts from 'typescript'
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { lifecycle, STATES, TIMER_NAMES, type LifecycleTable } from '../src/machine/lifecycle'

// The table's type admits only what our interpreter runs exactly as XState does. Each refusal below
// is a type error that `@ts-expect-error` expects: `tsc --noEmit -p .` (CI's typecheck) fails the
// day the type lets one through. The runtime checks are on the table itself and on the import graph.

type Resting = LifecycleTable['states']['queued']
type Initial = LifecycleTable['initial']

const refused: Record<string, unknown> = {
  // @ts-expect-error nested states
  'nested states': { initial: 'a', states: { a: {} } } satisfies Resting,
  // @ts-expect-error parallel states
  'parallel states': { type: 'parallel' } satisfies Resting,
  // @ts-expect-error eventless transitions out of a resting state
  'eventless transitions outside the initial state': { always: [{ target: 'active' }] } satisfies Resting,
  // @ts-expect-error exit actions
  'exit actions': { exit: ['stamp'] } satisfies Resting,
  // @ts-expect-error an unknown guard
  'a guard that is not one of ours': { on: { 'agent.closed': [{ guard: 'toString' }] } } satisfies Resting,
  // @ts-expect-error a guard without the params it needs
  'a guard without its params': { on: { 'agent.closed': [{ guard: 'hasTimer' }] } } satisfies Resting,
  'a guard with the wrong params': {
    // @ts-expect-error wrong params
    on: { 'agent.closed': [{ guard: { type: 'hasTimer', params: { timer: 'lunch' } } }] },
  } satisfies Resting,
  // @ts-expect-error an inline guard
  'an inline guard': { on: { 'agent.closed': [{ guard: () => true }] } } satisfies Resting,
  // @ts-expect-error an unknown update
  'an update that is not one of ours': { entry: ['touch'] } satisfies Resting,
  // @ts-expect-error an inline action
  'an inline action': { entry: [() => ({})] } satisfies Resting,
  // @ts-expect-error a wildcard event
  'a wildcard event': { on: { '*': [{}] } } satisfies Resting,
  // @ts-expect-error timer.elapsed comes from deadlines only
  'timer.elapsed written by hand': { on: { 'timer.elapsed': [{ target: 'closed' }] } } satisfies Resting,
  // @ts-expect-error several targets
  'several targets': { on: { 'agent.ended': [{ target: ['active', 'closed'] }] } } satisfies Resting,
  // @ts-expect-error a target below the top level
  'a nested target': { on: { 'agent.ended': [{ target: 'active.talking' }] } } satisfies Resting,
  // @ts-expect-error back into its own state
  'a transition back into its own state': { on: { 'agent.ended': [{ target: 'queued' }] } } satisfies Resting,
  // @ts-expect-error into the transient initial state
  'a transition into the initial state': { on: { 'agent.ended': [{ target: 'starting' }] } } satisfies Resting,
  // @ts-expect-error an unknown timer
  'a deadline of an unknown timer': { deadlines: { lunch: { target: 'closed' } } } satisfies Resting,
  // @ts-expect-error a final state takes no event
  'events in a final state': { final: true, on: { 'agent.ended': [{}] } } satisfies Resting,
  // @ts-expect-error the last eventless transition is guarded
  'an initial state that may not come to rest': { name: 's', always: [{ guard: 'startsAssigned', target: 'active' }] } satisfies Initial,
  // @ts-expect-error an eventless transition without a target
  'an eventless transition without a target': { name: 's', always: [{ actions: ['stamp'] }, { target: 'queued' }] } satisfies Initial,
}

describe('the lifecycle table', () => {
  it('has an entry for every state and a deadline entry only for timers the state sets', () => {
    const table: LifecycleTable = lifecycle
    expect(Object.keys(table.states).sort()).toEqual([...STATES].sort())
    for (const state of STATES) {
      for (const timer of Object.keys(table.states[state].deadlines ?? {})) expect(TIMER_NAMES).toContain(timer)
    }
    expect(Object.keys(refused)).toHaveLength(20)
  })
})

// The service's path (step.ts → interpreter.ts → the table) must not load XState, type imports
// included: walk the source import graph from each.
const machineDir = resolve(dirname(fileURLToPath(import.meta.url)), '../src/machine')

function importGraph(entry: string): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  const pending = [entry]
  while (pending.length > 0) {
    const file = pending.pop()!
    if (graph.has(file)) continue
    const specifiers = ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.map((f) => f.fileName)
    graph.set(file, specifiers)
    for (const specifier of specifiers) {
      if (specifier.startsWith('.')) pending.push(`${resolve(dirname(file), specifier)}.ts`)
    }
  }
  return graph
}

describe('the interpreter imports nothing from xstate', () => {
  it.each(['interpreter.ts', 'step.ts'])('%s and everything it imports', (name) => {
    const graph = importGraph(resolve(machineDir, name))
    expect([...graph.keys()].map((file) => file.slice(machineDir.length + 1))).toContain('lifecycle.ts')
    const external = [...graph.values()].flat().filter((specifier) => !specifier.startsWith('.'))
    expect(external.filter((specifier) => specifier === 'xstate' || specifier.startsWith('xstate/'))).toEqual([])
  })

  it('while the XState machine, built from the same table, does import it', () => {
    const specifiers = [...importGraph(resolve(machineDir, 'conversation-machine.ts')).values()].flat()
    expect(specifiers).toContain('xstate')
  })
})
