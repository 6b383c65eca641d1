import { ConflictError, isConflictError, isInvalidTransitionError, isNotFoundError } from '../errors'
import type { ConversationEvent } from '../machine/conversation-machine'
import type { ConversationRecord, ReconnectSettings, State } from '../types'
import { checkId } from './check-id'
import type { SettingsLookup } from './settings-lookup'
import { notSupported, type StoreGateway } from './store-gateway'
import { StaleDecision, type WritePath } from './write-path'

/** What the erase room needs from the service. */
export interface EraseDeps {
  gateway: StoreGateway
  mutate: WritePath['mutate']
}

/** Rounds of "list the customer's conversations, erase each" before giving up on a writer that keeps starting new ones. */
const ROUNDS = 8
/** Steps per conversation (expire, end, close, delete, each retried on a conflict) before giving up on it. */
const STEPS = 16

/** The event that takes a live conversation one step towards `closed`, the way a host would end it. */
function endingEvent(state: Exclude<State, 'closed'>, at: number): ConversationEvent {
  switch (state) {
    case 'queued':
    case 'active':
      return { type: 'customer.ended', at }
    case 'reconnectable':
      // The customer is not coming back: the agent's capacity goes now, not after wrap-up.
      return { type: 'customer.ended', at, releaseCapacity: true }
    case 'disconnected':
      return { type: 'agent.ended', at }
    case 'wrap-up':
      return { type: 'agent.closed', at }
  }
}

/**
 * Creates `eraseCustomer`: ends each of the customer's live conversations through the ordinary
 * write path (so capacity is released and events are emitted), then deletes every one of them by
 * compare-and-set; resolves to how many this call deleted.
 */
export function createErase(deps: EraseDeps): (customerId: string) => Promise<number> {
  const { gateway, mutate } = deps

  /** Takes one conversation to `closed` and deletes it; `false` when someone else deleted it first. */
  async function eraseOne(seen: ConversationRecord, customerId: string): Promise<boolean> {
    let current = seen
    for (let step = 0; step < STEPS; step += 1) {
      if (current.customerId !== customerId) return false
      try {
        // Passed deadlines first: the event that ends it depends on the state they lead to.
        current = await mutate(current.id, null, { loaded: current })
        if (current.state === 'closed') {
          if (await gateway.delete(current.id, current.version)) return true
          return false
        }
        const state = current.state
        current = await mutate(current.id, (at) => endingEvent(state, at), {
          loaded: current,
          accept: (record) => record.state === state && record.customerId === customerId,
        })
        continue
      } catch (error) {
        if (isNotFoundError(error)) return false
        // Another writer changed it between our read and our write: read it again and go on.
        if (!(error instanceof StaleDecision) && !isConflictError(error) && !isInvalidTransitionError(error)) throw error
      }
      const fresh = await gateway.get(current.id)
      if (fresh === undefined) return false
      current = fresh
    }
    throw new ConflictError(seen.id, null)
  }

  return async function eraseCustomer(customerId: string): Promise<number> {
    checkId(customerId, 'eraseCustomer: customerId')
    if (!gateway.retention) throw notSupported('eraseCustomer')
    let deleted = 0
    for (let round = 0; round < ROUNDS; round += 1) {
      const records = (await gateway.byCustomer(customerId)).filter((record) => record.customerId === customerId)
      if (records.length === 0) return deleted
      for (const record of records) if (await eraseOne(record, customerId)) deleted += 1
    }
    const left = await gateway.byCustomer(customerId)
    if (left.length === 0) return deleted
    // Someone keeps starting conversations for this customer: say so; calling again is safe.
    throw new ConflictError(left[0]!.id, null)
  }
}

/**
 * The settings as a store without `delete` can honour them: `keepClosedFor` off, so that no closed
 * conversation carries a deadline nobody could apply.
 */
export function withoutRetention(lookup: SettingsLookup): SettingsLookup {
  const adjusted = new WeakMap<ReconnectSettings, ReconnectSettings>()
  const adjust = (settings: ReconnectSettings): ReconnectSettings => {
    if (settings.keepClosedFor === null) return settings
    let kept = adjusted.get(settings)
    if (kept === undefined) {
      kept = Object.freeze({ ...settings, keepClosedFor: null })
      adjusted.set(settings, kept)
    }
    return kept
  }
  return {
    fixed: lookup.fixed === undefined ? undefined : adjust(lookup.fixed),
    settingsFor: async (widgetId) => adjust(await lookup.settingsFor(widgetId)),
  }
}
