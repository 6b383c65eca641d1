import { expect } from 'vitest'
import type { ConversationEvent } from '../../src/machine/conversation-machine'
import { createConversationRecord, stepConversation, type StepResult } from '../../src/machine/step'
import type { ConversationRecord, ReconnectSettings } from '../../src/types'

/** Epoch ms every hand-written machine scenario starts at. */
export const T0 = 1_735_689_600_000

export const SECOND = 1000
export const MINUTE = 60 * SECOND

/** A fresh conversation record at `now` (queued, or active when `agentId` is given). */
export function newConversation(
  settings: ReconnectSettings,
  options: { agentId?: string | null; customerId?: string | null; now?: number } = {},
): ConversationRecord {
  return createConversationRecord({
    id: 'conv-1',
    widgetId: 'default',
    reconnectId: 'V1StGXR8_Z5jdHi6B-myT',
    customerId: options.customerId ?? null,
    agentId: options.agentId ?? null,
    now: options.now ?? T0,
    settings,
  })
}

type Changed = Extract<StepResult, { kind: 'changed' }>

/** Offers `event` and fails the test unless it changed the record; returns the step. */
export function applyOk(record: ConversationRecord, settings: ReconnectSettings, event: ConversationEvent): Changed {
  const step = stepConversation(record, settings, event)
  if (step.kind !== 'changed') {
    expect.fail(`${event.type} at ${event.at} in '${record.state}' was ${step.kind}, expected a change`)
  }
  return step
}

/** Applies every event in turn, each of which must change the record; returns the last record. */
export function applyAll(
  record: ConversationRecord,
  settings: ReconnectSettings,
  events: readonly ConversationEvent[],
): ConversationRecord {
  return events.reduce((current, event) => applyOk(current, settings, event).record, record)
}

/** The fields a running actor's context and a stored record share, for comparing the two. */
export function lifecycleFields(value: {
  agentId: string | null
  previousAgentId: string | null
  timers: Partial<Record<string, number>>
  capacityHeld: boolean
  capacitySince: number | null
  endedBy: string | null
  createdAt: number
  updatedAt: number
}): Record<string, unknown> {
  return {
    agentId: value.agentId,
    previousAgentId: value.previousAgentId,
    timers: { ...value.timers },
    capacityHeld: value.capacityHeld,
    capacitySince: value.capacitySince,
    endedBy: value.endedBy,
    createdAt: value.createdAt,
    updatedAt: value.updatedAt,
  }
}
