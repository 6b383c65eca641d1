import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isReconnectError } from '../src/errors'
import { couldOfferResumable, decidePromptAnswer, decideReturn, isResumable, lostReason } from '../src/policy'
import { isWellFormedReconnectId } from '../src/policy/decide-return'
import type { DecideReturnInput } from '../src/policy'
import type { ConversationRecord, EndedBy, ReconnectSettings, ReturnDecision, ReturnRequest, State } from '../src/types'
import { deepFreeze } from './support/freeze'

const NOW = 1_700_000_000_000
const ID = 'V1StGXR8_Z5jdHi6B-myT'
const OTHER_ID = 'Uakgb_J5m9g-0JDMbcJqL'
const REDIRECT = 'https://help.example.com/chat-ended'

function settings(overrides: Partial<ReconnectSettings> = {}): ReconnectSettings {
  return {
    enabled: true,
    timeLimit: 30 * 60_000,
    portalUrl: 'https://portal.example.com/chat',
    redirectUrl: null,
    redirectAllowlist: null,
    authenticated: false,
    prompt: true,
    disconnectGrace: 3 * 60_000,
    wrapUpAutoClose: 15 * 60_000,
    wrapUpCapacity: 'always',
    queueAutoClose: 20 * 60_000,
    detachGrace: 10_000,
    warnBefore: null,
    keepClosedFor: null,
    linkParam: 'oc.reconnectid',
    ...overrides,
  }
}

const OFF = settings({ enabled: false, timeLimit: null, portalUrl: null })
const SIGNED_IN = settings({ authenticated: true })

function record(overrides: Partial<ConversationRecord> = {}): ConversationRecord {
  return {
    id: 'conv-1',
    widgetId: 'default',
    reconnectId: ID,
    customerId: null,
    agentId: 'agent-1',
    previousAgentId: null,
    state: 'reconnectable',
    timers: { window: NOW + 60_000 },
    nextDueAt: NOW + 60_000,
    capacityHeld: true,
    capacitySince: NOW - 5_000,
    endedBy: null,
    createdAt: NOW - 60_000,
    updatedAt: NOW - 5_000,
    version: 3,
    history: [],
    ...overrides,
  }
}

/** The signed-in customer's own reconnectable chat, as the caller's `findResumable` would load it. */
function ownChat(overrides: Partial<ConversationRecord> = {}): ConversationRecord {
  return record({ id: 'conv-own', reconnectId: OTHER_ID, customerId: 'cust-1', ...overrides })
}

function decide(partial: Partial<DecideReturnInput> & { request: ReturnRequest }): ReturnDecision {
  return decideReturn({ settings: settings(), now: NOW, ...partial })
}

function expectInvalidArgument(run: () => unknown, field: string): void {
  try {
    run()
  } catch (error) {
    expect(isReconnectError(error)).toBe(true)
    expect((error as { code: string }).code).toBe('invalid-argument')
    expect((error as Error).message).toContain(field)
    return
  }
  throw new Error('expected a ReconnectError with code invalid-argument')
}

describe('isWellFormedReconnectId', () => {
  it('accepts 21–64 URL-safe characters', () => {
    expect(isWellFormedReconnectId(ID)).toBe(true)
    expect(isWellFormedReconnectId('a'.repeat(64))).toBe(true)
    expect(isWellFormedReconnectId('k1.abc~def-ghi_jkl-mno')).toBe(true)
  })

  it('rejects wrong length, wrong alphabet and non-strings', () => {
    expect(isWellFormedReconnectId('a'.repeat(20))).toBe(false)
    expect(isWellFormedReconnectId('a'.repeat(65))).toBe(false)
    expect(isWellFormedReconnectId(`${ID.slice(1)} `)).toBe(false)
    expect(isWellFormedReconnectId(`${ID.slice(1)}/`)).toBe(false)
    expect(isWellFormedReconnectId(`${ID}\n`)).toBe(false)
    expect(isWellFormedReconnectId(42 as unknown as string)).toBe(false)
  })
})

describe('decideReturn — rule 1: a reconnect id is present', () => {
  describe('malformed', () => {
    it.each([
      ['too short', 'abc'],
      ['too long', 'a'.repeat(65)],
      ['oversized', 'a'.repeat(100_000)],
      ['bad characters', `${ID.slice(2)}/?`],
      ['whitespace only', '   '],
      ['padded with whitespace', ` ${ID} `],
    ])('%s → new-chat malformed, without reading the linked record', (_label, reconnectId) => {
      // Even a record that would resume must not be used when the id itself is malformed.
      const linked = record({ reconnectId })
      expect(decide({ request: { reconnectId }, linked })).toEqual({ type: 'new-chat', reason: 'malformed' })
    })

    it('a non-string id is malformed, not a crash', () => {
      const request = { reconnectId: 12345 } as unknown as ReturnRequest
      expect(decide({ request })).toEqual({ type: 'new-chat', reason: 'malformed' })
    })

    it('redirects when a redirect URL is set', () => {
      const decision = decide({ request: { reconnectId: 'nope' }, settings: settings({ redirectUrl: REDIRECT }) })
      expect(decision).toEqual({ type: 'redirect', url: REDIRECT, reason: 'malformed' })
    })

    it('uses a custom isValidId instead of the built-in format', () => {
      const linked = record({ reconnectId: 'short-but-signed' })
      const request = { reconnectId: 'short-but-signed' }
      expect(decide({ request, linked }).type).toBe('new-chat')
      expect(decide({ request, linked, isValidId: (id) => id.endsWith('-signed') })).toEqual({
        type: 'resume',
        conversationId: 'conv-1',
        agentId: 'agent-1',
        via: 'link',
      })
      expect(decide({ request: { reconnectId: ID }, linked: record(), isValidId: () => false })).toEqual({
        type: 'new-chat',
        reason: 'malformed',
      })
    })
  })

  describe('absent ids', () => {
    it.each([[''], [null], [undefined]])('%j counts as no reconnect id (rule 3)', (reconnectId) => {
      expect(decide({ request: { reconnectId }, linked: record() })).toEqual({ type: 'new-chat', reason: 'none' })
    })
  })

  describe('not found', () => {
    it.each([[undefined], [null]])('linked %j → new-chat not-found', (linked) => {
      expect(decide({ request: { reconnectId: ID }, linked })).toEqual({ type: 'new-chat', reason: 'not-found' })
    })

    it('redirects when a redirect URL is set', () => {
      const decision = decide({ request: { reconnectId: ID }, settings: settings({ redirectUrl: REDIRECT }) })
      expect(decision).toEqual({ type: 'redirect', url: REDIRECT, reason: 'not-found' })
    })

    it('a link is scoped to its widget: a record on another widget is not found', () => {
      const linked = record({ widgetId: 'support' })
      expect(decide({ request: { reconnectId: ID }, linked })).toEqual({ type: 'new-chat', reason: 'not-found' })
      expect(decide({ request: { reconnectId: ID, widgetId: 'sales' }, linked })).toEqual({
        type: 'new-chat',
        reason: 'not-found',
      })
      expect(decide({ request: { reconnectId: ID, widgetId: 'support' }, linked }).type).toBe('resume')
    })

    it('a record under a different reconnect id is not trusted', () => {
      const linked = record({ reconnectId: OTHER_ID })
      expect(decide({ request: { reconnectId: ID }, linked })).toEqual({ type: 'new-chat', reason: 'not-found' })
    })
  })

  describe('identity', () => {
    const owned = record({ customerId: 'cust-1' })

    it('an anonymous return to a signed-in customer’s conversation → identity-mismatch', () => {
      expect(decide({ request: { reconnectId: ID }, linked: owned })).toEqual({
        type: 'new-chat',
        reason: 'identity-mismatch',
      })
    })

    it('another signed-in customer → identity-mismatch', () => {
      const decision = decide({ request: { reconnectId: ID, customerId: 'cust-2' }, linked: owned })
      expect(decision).toEqual({ type: 'new-chat', reason: 'identity-mismatch' })
    })

    it('is checked before the state, so an ended conversation reveals nothing (no redirect, no reason)', () => {
      const closed = record({ customerId: 'cust-1', state: 'closed', endedBy: 'agent', timers: {} })
      const decision = decide({
        request: { reconnectId: ID, customerId: 'cust-2' },
        linked: closed,
        settings: settings({ redirectUrl: REDIRECT }),
      })
      expect(decision).toEqual({ type: 'new-chat', reason: 'identity-mismatch' })
    })

    it('the owner resumes', () => {
      expect(decide({ request: { reconnectId: ID, customerId: 'cust-1' }, linked: owned })).toMatchObject({
        type: 'resume',
        conversationId: 'conv-1',
      })
    })

    it('an anonymous conversation resumes for whoever holds the link, signed in or not', () => {
      expect(decide({ request: { reconnectId: ID, customerId: 'cust-9' }, linked: record() }).type).toBe('resume')
    })
  })

  describe('can no longer resume', () => {
    it.each<[State, EndedBy | null, string]>([
      ['closed', 'timeout', 'expired'],
      ['closed', 'agent', 'ended-by-agent'],
      ['closed', 'customer', 'ended-by-customer'],
      ['closed', null, 'closed'],
      ['wrap-up', 'timeout', 'expired'],
      ['wrap-up', 'agent', 'ended-by-agent'],
      ['wrap-up', 'customer', 'ended-by-customer'],
      ['wrap-up', null, 'closed'],
    ])('%s ended by %s → reason %s', (state, endedBy, reason) => {
      const linked = record({ state, endedBy, timers: state === 'wrap-up' ? { wrapUp: NOW + 1_000 } : {} })
      expect(decide({ request: { reconnectId: ID }, linked })).toEqual({ type: 'new-chat', reason })
      expect(decide({ request: { reconnectId: ID }, linked, settings: settings({ redirectUrl: REDIRECT }) })).toEqual({
        type: 'redirect',
        url: REDIRECT,
        reason,
      })
    })

    it('reconnectable: deadline - 1 resumes, deadline is expired (not yet swept)', () => {
      const linked = record({ timers: { window: NOW + 10 } })
      const at = (now: number) => decide({ request: { reconnectId: ID }, linked, now })
      expect(at(NOW + 9)).toEqual({ type: 'resume', conversationId: 'conv-1', agentId: 'agent-1', via: 'link' })
      expect(at(NOW + 10)).toEqual({ type: 'new-chat', reason: 'expired' })
      expect(at(NOW + 11)).toEqual({ type: 'new-chat', reason: 'expired' })
    })

    it('an expired window redirects when a redirect URL is set', () => {
      const linked = record({ timers: { window: NOW } })
      const decision = decide({ request: { reconnectId: ID }, linked, settings: settings({ redirectUrl: REDIRECT }) })
      expect(decision).toEqual({ type: 'redirect', url: REDIRECT, reason: 'expired' })
    })

    it('a reconnectable record without a window deadline fails closed', () => {
      const linked = record({ timers: {} })
      expect(decide({ request: { reconnectId: ID }, linked })).toEqual({ type: 'new-chat', reason: 'expired' })
    })

    it('a queued conversation past its queue deadline is closed, as the sweep will record it', () => {
      const linked = record({ state: 'queued', agentId: null, timers: { queue: NOW + 5 } })
      expect(decide({ request: { reconnectId: ID }, linked, now: NOW + 4 }).type).toBe('resume')
      expect(decide({ request: { reconnectId: ID }, linked, now: NOW + 5 })).toEqual({
        type: 'new-chat',
        reason: 'closed',
      })
    })

    describe('signed-in customer without a redirect URL falls through to rule 2', () => {
      const lost = record({ customerId: 'cust-1', state: 'closed', endedBy: 'agent', timers: {} })
      const request = { reconnectId: ID, customerId: 'cust-1' }

      it('offers their own resumable chat in a prompt', () => {
        const decision = decide({ request, linked: lost, resumable: ownChat(), settings: SIGNED_IN })
        expect(decision).toEqual({ type: 'prompt', conversationId: 'conv-own', expiresAt: NOW + 60_000 })
      })

      it('resumes it at once when the prompt is hidden', () => {
        const decision = decide({
          request,
          linked: lost,
          resumable: ownChat({ agentId: null }),
          settings: settings({ authenticated: true, prompt: false }),
        })
        expect(decision).toEqual({ type: 'resume', conversationId: 'conv-own', agentId: null, via: 'prompt' })
      })

      it('keeps the lost reason when there is nothing to offer', () => {
        expect(decide({ request, linked: lost, settings: SIGNED_IN })).toEqual({
          type: 'new-chat',
          reason: 'ended-by-agent',
        })
        const stale = ownChat({ timers: { window: NOW } })
        expect(decide({ request, linked: lost, resumable: stale, settings: SIGNED_IN })).toEqual({
          type: 'new-chat',
          reason: 'ended-by-agent',
        })
      })

      it('also for not-found and malformed ids', () => {
        const resumable = ownChat()
        const notFound = decide({ request, resumable, settings: SIGNED_IN })
        const malformed = decide({ request: { ...request, reconnectId: 'x' }, resumable, settings: SIGNED_IN })
        expect(notFound).toEqual({ type: 'prompt', conversationId: 'conv-own', expiresAt: NOW + 60_000 })
        expect(malformed).toEqual(notFound)
        expect(decide({ request: { ...request, reconnectId: 'x' }, settings: SIGNED_IN })).toEqual({
          type: 'new-chat',
          reason: 'malformed',
        })
      })

      it('a redirect URL wins over the fall-through', () => {
        const decision = decide({
          request,
          linked: lost,
          resumable: ownChat(),
          settings: settings({ authenticated: true, redirectUrl: REDIRECT }),
        })
        expect(decision).toEqual({ type: 'redirect', url: REDIRECT, reason: 'ended-by-agent' })
      })

      it('does not happen when the widget has no sign-in', () => {
        const decision = decide({ request, linked: lost, resumable: ownChat() })
        expect(decision).toEqual({ type: 'new-chat', reason: 'ended-by-agent' })
      })
    })

    it('with reconnect off there is never a redirect, only the reason', () => {
      const off = settings({ enabled: false, redirectUrl: REDIRECT })
      const closed = record({ state: 'closed', endedBy: 'customer', timers: {} })
      expect(decide({ request: { reconnectId: ID }, linked: closed, settings: off })).toEqual({
        type: 'new-chat',
        reason: 'ended-by-customer',
      })
      expect(decide({ request: { reconnectId: ID }, settings: off })).toEqual({ type: 'new-chat', reason: 'not-found' })
      expect(decide({ request: { reconnectId: 'bad' }, settings: off })).toEqual({
        type: 'new-chat',
        reason: 'malformed',
      })
    })
  })

  describe('reconnectable within the window', () => {
    it('resumes via link with the assigned agent', () => {
      expect(decide({ request: { reconnectId: ID }, linked: record() })).toEqual({
        type: 'resume',
        conversationId: 'conv-1',
        agentId: 'agent-1',
        via: 'link',
      })
    })

    it('passes agentId null through (the agent closed the session; the host re-queues with affinity)', () => {
      const linked = record({ agentId: null, previousAgentId: 'agent-1' })
      expect(decide({ request: { reconnectId: ID }, linked })).toEqual({
        type: 'resume',
        conversationId: 'conv-1',
        agentId: null,
        via: 'link',
      })
    })

    it('resumes via session when the widget’s own session returns', () => {
      const decision = decide({ request: { reconnectId: ID, via: 'session' }, linked: record() })
      expect(decision).toEqual({ type: 'resume', conversationId: 'conv-1', agentId: 'agent-1', via: 'session' })
    })

    it('a link does not resume once the widget has reconnect off; its own session still does', () => {
      expect(decide({ request: { reconnectId: ID }, linked: record(), settings: OFF })).toEqual({
        type: 'new-chat',
        reason: 'disabled',
      })
      expect(decide({ request: { reconnectId: ID, via: 'session' }, linked: record(), settings: OFF }).type).toBe('resume')
    })
  })

  describe('disconnected (reconnect off)', () => {
    const linked = record({ state: 'disconnected', timers: { grace: NOW + 10 } })

    it('a session return within the grace resumes; deadline - 1 resumes, deadline is expired', () => {
      const at = (now: number) => decide({ request: { reconnectId: ID, via: 'session' }, linked, now, settings: OFF })
      expect(at(NOW + 9)).toEqual({ type: 'resume', conversationId: 'conv-1', agentId: 'agent-1', via: 'session' })
      expect(at(NOW + 10)).toEqual({ type: 'new-chat', reason: 'expired' })
    })

    it('a link gives new-chat disabled', () => {
      expect(decide({ request: { reconnectId: ID }, linked, settings: OFF })).toEqual({
        type: 'new-chat',
        reason: 'disabled',
      })
      expect(decide({ request: { reconnectId: ID, via: 'link' }, linked })).toEqual({
        type: 'new-chat',
        reason: 'disabled',
      })
    })

    it('past the grace never redirects with reconnect off', () => {
      const off = settings({ enabled: false, redirectUrl: REDIRECT })
      for (const via of ['link', 'session'] as const) {
        expect(decide({ request: { reconnectId: ID, via }, linked, now: NOW + 10, settings: off })).toEqual({
          type: 'new-chat',
          reason: 'expired',
        })
      }
    })
  })

  describe('active or queued (another tab or device)', () => {
    it('active resumes with the record’s agent', () => {
      const linked = record({ state: 'active', timers: {} })
      expect(decide({ request: { reconnectId: ID }, linked })).toEqual({
        type: 'resume',
        conversationId: 'conv-1',
        agentId: 'agent-1',
        via: 'link',
      })
      expect(decide({ request: { reconnectId: ID, via: 'session' }, linked })).toMatchObject({ via: 'session' })
    })

    it('queued resumes with no agent', () => {
      const linked = record({ state: 'queued', agentId: null, previousAgentId: 'agent-1', timers: {} })
      expect(decide({ request: { reconnectId: ID, via: 'session' }, linked })).toEqual({
        type: 'resume',
        conversationId: 'conv-1',
        agentId: null,
        via: 'session',
      })
    })

    it('with reconnect off only the session resumes', () => {
      const linked = record({ state: 'active', timers: {} })
      expect(decide({ request: { reconnectId: ID }, linked, settings: OFF })).toEqual({
        type: 'new-chat',
        reason: 'disabled',
      })
      expect(decide({ request: { reconnectId: ID, via: 'session' }, linked, settings: OFF }).type).toBe('resume')
    })
  })
})

describe('decideReturn — rule 2: signed-in customer, no reconnect id', () => {
  const request = { customerId: 'cust-1' }

  it('prompts with the window end as expiresAt', () => {
    expect(decide({ request, resumable: ownChat(), settings: SIGNED_IN })).toEqual({
      type: 'prompt',
      conversationId: 'conv-own',
      expiresAt: NOW + 60_000,
    })
  })

  it('prompt: false resumes via prompt at once', () => {
    const decision = decide({ request, resumable: ownChat(), settings: settings({ authenticated: true, prompt: false }) })
    expect(decision).toEqual({ type: 'resume', conversationId: 'conv-own', agentId: 'agent-1', via: 'prompt' })
  })

  it('window boundary: deadline - 1 prompts, deadline offers nothing', () => {
    const resumable = ownChat({ timers: { window: NOW + 10 } })
    expect(decide({ request, resumable, settings: SIGNED_IN, now: NOW + 9 })).toMatchObject({ type: 'prompt' })
    expect(decide({ request, resumable, settings: SIGNED_IN, now: NOW + 10 })).toEqual({
      type: 'new-chat',
      reason: 'none',
    })
  })

  it('no resumable conversation → new-chat none', () => {
    expect(decide({ request, settings: SIGNED_IN })).toEqual({ type: 'new-chat', reason: 'none' })
    expect(decide({ request, resumable: null, settings: SIGNED_IN })).toEqual({ type: 'new-chat', reason: 'none' })
  })

  it.each<[string, Partial<ConversationRecord>]>([
    ['not reconnectable (active)', { state: 'active', timers: {} }],
    ['not reconnectable (disconnected)', { state: 'disconnected', timers: { grace: NOW + 60_000 } }],
    ['ended', { state: 'wrap-up', endedBy: 'agent', timers: {} }],
    ['another customer’s', { customerId: 'cust-2' }],
    ['anonymous', { customerId: null }],
    ['on another widget', { widgetId: 'support' }],
  ])('a conversation that is %s is never offered', (_label, overrides) => {
    const resumable = ownChat(overrides)
    expect(decide({ request, resumable, settings: SIGNED_IN })).toEqual({ type: 'new-chat', reason: 'none' })
  })

  it('matches the request’s widget', () => {
    const resumable = ownChat({ widgetId: 'support' })
    const decision = decide({ request: { ...request, widgetId: 'support' }, resumable, settings: SIGNED_IN })
    expect(decision).toMatchObject({ type: 'prompt', conversationId: 'conv-own' })
  })

  it('needs a widget with sign-in (authenticated), else rule 3', () => {
    expect(decide({ request, resumable: ownChat() })).toEqual({ type: 'new-chat', reason: 'none' })
  })

  it('needs reconnect on, else rule 3 (disabled)', () => {
    const decision = decide({ request, resumable: ownChat(), settings: settings({ enabled: false, authenticated: true }) })
    expect(decision).toEqual({ type: 'new-chat', reason: 'disabled' })
  })

  it('an empty customer id is not signed in', () => {
    expect(decide({ request: { customerId: '' }, resumable: ownChat({ customerId: '' }), settings: SIGNED_IN })).toEqual({
      type: 'new-chat',
      reason: 'none',
    })
  })
})

describe('decideReturn — rule 3: otherwise', () => {
  it('new-chat none when reconnect is on', () => {
    expect(decide({ request: {} })).toEqual({ type: 'new-chat', reason: 'none' })
    expect(decide({ request: { via: 'session' }, resumable: ownChat() })).toEqual({ type: 'new-chat', reason: 'none' })
  })

  it('new-chat disabled when reconnect is off', () => {
    expect(decide({ request: {}, settings: OFF })).toEqual({ type: 'new-chat', reason: 'disabled' })
    expect(decide({ request: { customerId: 'cust-1' }, settings: OFF })).toEqual({
      type: 'new-chat',
      reason: 'disabled',
    })
  })
})

describe('decideReturn — bad arguments give typed errors', () => {
  it('rejects an unknown via', () => {
    expectInvalidArgument(() => decide({ request: { via: 'email' as 'link' } }), 'request.via')
  })

  it('rejects a non-finite now', () => {
    expectInvalidArgument(() => decide({ request: {}, now: Number.NaN }), 'now')
    expectInvalidArgument(() => decide({ request: {}, now: '1' as unknown as number }), 'now')
  })

  it('rejects a missing request or settings', () => {
    expectInvalidArgument(() => decideReturn({ settings: settings(), now: NOW } as DecideReturnInput), 'request')
    expectInvalidArgument(() => decideReturn({ request: {}, now: NOW } as DecideReturnInput), 'settings')
    expectInvalidArgument(() => decideReturn(null as unknown as DecideReturnInput), 'decideReturn')
  })

  it('rejects a non-string customer id or widget id', () => {
    expectInvalidArgument(() => decide({ request: { customerId: 7 as unknown as string } }), 'request.customerId')
    expectInvalidArgument(() => decide({ request: { widgetId: 7 as unknown as string } }), 'request.widgetId')
  })

  it('rejects a linked record that is not an object', () => {
    expectInvalidArgument(() => decide({ request: { reconnectId: ID }, linked: 'conv-1' as unknown as ConversationRecord }), 'linked')
  })
})

describe('lostReason and isResumable', () => {
  it('a live conversation has no lost reason', () => {
    expect(lostReason(record(), NOW)).toBeNull()
    expect(lostReason(record({ state: 'active', timers: {} }), NOW)).toBeNull()
    expect(lostReason(record({ state: 'queued', timers: {} }), NOW)).toBeNull()
    expect(lostReason(record({ state: 'disconnected', timers: { grace: NOW + 1 } }), NOW)).toBeNull()
  })

  it('deadlines count at now >= deadline', () => {
    expect(lostReason(record({ timers: { window: NOW } }), NOW)).toBe('expired')
    expect(lostReason(record({ state: 'disconnected', timers: { grace: NOW } }), NOW)).toBe('expired')
  })

  it('follows endedBy for ended conversations', () => {
    expect(lostReason(record({ state: 'closed', endedBy: 'agent' }), NOW)).toBe('ended-by-agent')
    expect(lostReason(record({ state: 'wrap-up', endedBy: 'timeout' }), NOW)).toBe('expired')
    expect(lostReason(record({ state: 'closed', endedBy: null }), NOW)).toBe('closed')
  })

  it('isResumable is reconnectable within the window only', () => {
    expect(isResumable(record({ timers: { window: NOW + 1 } }), NOW)).toBe(true)
    expect(isResumable(record({ timers: { window: NOW } }), NOW)).toBe(false)
    expect(isResumable(record({ state: 'active', timers: {} }), NOW)).toBe(false)
    expect(isResumable(record({ state: 'disconnected', timers: { grace: NOW + 1 } }), NOW)).toBe(false)
  })
})

describe('decidePromptAnswer', () => {
  const base = { customerId: 'cust-1', settings: SIGNED_IN, now: NOW }

  it('continue within the window resumes via prompt; deadline - 1 resumes, deadline falls back', () => {
    const own = ownChat({ timers: { window: NOW + 10 } })
    expect(decidePromptAnswer({ ...base, answer: 'continue', record: own, now: NOW + 9 })).toEqual({
      type: 'resume',
      conversationId: 'conv-own',
      agentId: 'agent-1',
      via: 'prompt',
    })
    expect(decidePromptAnswer({ ...base, answer: 'continue', record: own, now: NOW + 10 })).toEqual({
      type: 'new-chat',
      reason: 'expired',
    })
  })

  it("continue on a lost conversation offers the customer's other open chat when given, never anyone else's", () => {
    const ended = ownChat({ state: 'wrap-up', endedBy: 'timeout', timers: {} })
    const other = ownChat({ id: 'conv-other', reconnectId: ID, timers: { window: NOW + 60_000 } })
    expect(decidePromptAnswer({ ...base, answer: 'continue', record: ended, resumable: other })).toEqual({
      type: 'prompt',
      conversationId: 'conv-other',
      expiresAt: NOW + 60_000,
    })
    const stranger = { ...other, customerId: 'cust-2' }
    expect(decidePromptAnswer({ ...base, answer: 'continue', record: ended, resumable: stranger })).toEqual({
      type: 'new-chat',
      reason: 'expired',
    })
    expect(decidePromptAnswer({ ...base, answer: 'new', record: ended, resumable: other })).toEqual({ type: 'new-chat', reason: 'none' })
    expect(() => decidePromptAnswer({ ...base, answer: 'continue', record: ended, resumable: 'x' as never })).toThrow(/resumable/)
  })

  it('continue on a lost conversation falls back as in rule 1 (redirect when set)', () => {
    const ended = ownChat({ state: 'wrap-up', endedBy: 'agent', timers: {} })
    const withRedirect = settings({ authenticated: true, redirectUrl: REDIRECT })
    expect(decidePromptAnswer({ ...base, answer: 'continue', record: ended })).toEqual({
      type: 'new-chat',
      reason: 'ended-by-agent',
    })
    expect(decidePromptAnswer({ ...base, answer: 'continue', record: ended, settings: withRedirect })).toEqual({
      type: 'redirect',
      url: REDIRECT,
      reason: 'ended-by-agent',
    })
    expect(decidePromptAnswer({ ...base, answer: 'continue', record: undefined })).toEqual({
      type: 'new-chat',
      reason: 'not-found',
    })
  })

  it('continue on a conversation already resumed elsewhere resumes it', () => {
    const active = ownChat({ state: 'active', timers: {} })
    expect(decidePromptAnswer({ ...base, answer: 'continue', record: active })).toMatchObject({
      type: 'resume',
      via: 'prompt',
    })
  })

  it('start new → new-chat none', () => {
    expect(decidePromptAnswer({ ...base, answer: 'new', record: ownChat() })).toEqual({
      type: 'new-chat',
      reason: 'none',
    })
    expect(decidePromptAnswer({ ...base, answer: 'new', record: null })).toEqual({ type: 'new-chat', reason: 'none' })
  })

  it('someone else answering gets identity-mismatch for either answer (so nothing is ended or resumed)', () => {
    for (const answer of ['continue', 'new'] as const) {
      for (const customerId of ['cust-2', null, undefined]) {
        expect(decidePromptAnswer({ ...base, answer, customerId, record: ownChat() })).toEqual({
          type: 'new-chat',
          reason: 'identity-mismatch',
        })
      }
      expect(decidePromptAnswer({ ...base, answer, record: record() })).toEqual({
        type: 'new-chat',
        reason: 'identity-mismatch',
      })
    }
  })

  it('rejects an unknown answer with a typed error', () => {
    expectInvalidArgument(() => decidePromptAnswer({ ...base, answer: 'maybe' as 'new', record: ownChat() }), 'answer')
    expectInvalidArgument(() => decidePromptAnswer({ ...base, answer: 'new', record: ownChat(), now: Infinity }), 'now')
  })
})

// ---------------------------------------------------------------------------------------------
// Properties. Values come from small pools so that ids, customers, widgets and deadlines collide
// often enough to reach every branch.

const T0 = NOW
const VALID_IDS = [ID, `k1.${'Z'.repeat(40)}`] as const
const STATES: readonly State[] = ['queued', 'active', 'disconnected', 'reconnectable', 'wrap-up', 'closed']

const reconnectIdArb: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.constantFrom(...VALID_IDS), weight: 6 },
  { arbitrary: fc.constantFrom(undefined, null, '', ' ', 'short', `${ID} `), weight: 3 },
  { arbitrary: fc.string({ maxLength: 70 }), weight: 1 },
)
const customerArb = fc.constantFrom<string | null | undefined>('cust-a', 'cust-b', null, undefined)
const widgetArb = fc.constantFrom('default', 'support')
const deadlineArb = fc.option(fc.integer({ min: T0 - 3, max: T0 + 3 }), { nil: undefined })

function recordArb(id: string): fc.Arbitrary<ConversationRecord> {
  return fc
    .record({
      widgetId: widgetArb,
      reconnectId: fc.constantFrom(...VALID_IDS),
      customerId: fc.constantFrom<string | null>('cust-a', 'cust-b', null),
      agentId: fc.constantFrom<string | null>('agent-1', null),
      state: fc.constantFrom(...STATES),
      endedBy: fc.constantFrom<EndedBy | null>(null, 'agent', 'customer', 'timeout'),
      window: deadlineArb,
      grace: deadlineArb,
      queue: deadlineArb,
    })
    .map(({ window, grace, queue, ...rest }) => {
      const timers: ConversationRecord['timers'] = {}
      if (window !== undefined) timers.window = window
      if (grace !== undefined) timers.grace = grace
      if (queue !== undefined) timers.queue = queue
      return record({ id, ...rest, timers, nextDueAt: null })
    })
}

const settingsArb: fc.Arbitrary<ReconnectSettings> = fc
  .record({
    enabled: fc.boolean(),
    authenticated: fc.boolean(),
    prompt: fc.boolean(),
    redirectUrl: fc.option(fc.constant(REDIRECT), { nil: null }),
  })
  .map((o) => settings(o.enabled ? o : { ...o, timeLimit: null, portalUrl: null }))

const requestArb: fc.Arbitrary<ReturnRequest> = fc.record(
  {
    reconnectId: reconnectIdArb as fc.Arbitrary<string | null | undefined>,
    customerId: customerArb,
    widgetId: widgetArb,
    via: fc.constantFrom<'link' | 'session'>('link', 'session'),
  },
  { requiredKeys: [] },
)

const inputArb: fc.Arbitrary<DecideReturnInput> = fc.record({
  request: requestArb,
  settings: settingsArb,
  now: fc.integer({ min: T0 - 4, max: T0 + 4 }),
  linked: fc.option(recordArb('conv-linked'), { nil: undefined }),
  resumable: fc.option(recordArb('conv-resumable'), { nil: undefined }),
})

const NEW_CHAT_REASONS = [
  'expired',
  'ended-by-agent',
  'ended-by-customer',
  'closed',
  'not-found',
  'malformed',
  'none',
  'disabled',
  'identity-mismatch',
]
const LOST_REASONS = NEW_CHAT_REASONS.slice(0, 6)

function assertShape(decision: ReturnDecision): void {
  const keys = Object.keys(decision).sort()
  switch (decision.type) {
    case 'resume':
      expect(keys).toEqual(['agentId', 'conversationId', 'type', 'via'])
      expect(typeof decision.conversationId).toBe('string')
      expect(decision.agentId === null || typeof decision.agentId === 'string').toBe(true)
      expect(['link', 'prompt', 'session']).toContain(decision.via)
      return
    case 'prompt':
      expect(keys).toEqual(['conversationId', 'expiresAt', 'type'])
      expect(Number.isFinite(decision.expiresAt)).toBe(true)
      return
    case 'redirect':
      expect(keys).toEqual(['reason', 'type', 'url'])
      expect(LOST_REASONS).toContain(decision.reason)
      return
    case 'new-chat':
      expect(keys).toEqual(['reason', 'type'])
      expect(NEW_CHAT_REASONS).toContain(decision.reason)
      return
    default:
      throw new Error(`unexpected decision ${JSON.stringify(decision)}`)
  }
}

/** The record a resume or prompt points at; it must be one of the two the caller passed. */
function targetOf(input: DecideReturnInput, decision: ReturnDecision): ConversationRecord {
  if (decision.type !== 'resume' && decision.type !== 'prompt') throw new Error('no target')
  const target = [input.linked, input.resumable].find((r) => r?.id === decision.conversationId)
  if (!target) throw new Error(`decision points at an unknown conversation ${decision.conversationId}`)
  return target
}

function signedIn(request: ReturnRequest): string | null {
  return request.customerId ? request.customerId : null
}

describe('decideReturn — properties', () => {
  // The service decides once without the resumable record and looks it up only when this says it matters.
  it('couldOfferResumable is false only when the resumable record cannot change the decision', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const without = decideReturn({ ...input, resumable: null })
        if (!couldOfferResumable(without)) expect(decideReturn(input)).toEqual(without)
      }),
      { numRuns: 2000 },
    )
  })

  it('always returns one of the four types with a valid shape', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        assertShape(decideReturn(input))
      }),
      { numRuns: 500 },
    )
  })

  it('never resumes or prompts past a deadline', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const decision = decideReturn(input)
        if (decision.type !== 'resume' && decision.type !== 'prompt') return
        const target = targetOf(input, decision)
        expect(lostReason(target, input.now)).toBeNull()
        if (target.state === 'reconnectable') expect(input.now).toBeLessThan(target.timers.window ?? -Infinity)
        if (target.state === 'disconnected') {
          expect(input.now).toBeLessThan(target.timers.grace ?? -Infinity)
          expect(decision).toMatchObject({ type: 'resume', via: 'session' })
        }
        if (target.state === 'queued' && target.timers.queue !== undefined) {
          expect(input.now).toBeLessThan(target.timers.queue)
        }
        if (decision.type === 'prompt') {
          expect(decision.expiresAt).toBe(target.timers.window)
          expect(decision.expiresAt).toBeGreaterThan(input.now)
        }
      }),
      { numRuns: 1000 },
    )
  })

  it('never resumes or prompts across an identity or widget mismatch', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const decision = decideReturn(input)
        if (decision.type !== 'resume' && decision.type !== 'prompt') return
        const target = targetOf(input, decision)
        const customerId = signedIn(input.request)
        expect(target.widgetId).toBe(input.request.widgetId ?? 'default')
        if (target.customerId !== null) expect(target.customerId).toBe(customerId)
        if (target === input.linked) {
          expect(target.reconnectId).toBe(input.request.reconnectId)
        } else {
          // Offered without a link: only the signed-in customer's own reconnectable chat.
          expect(customerId).not.toBeNull()
          expect(target.customerId).toBe(customerId)
          expect(isResumable(target, input.now)).toBe(true)
          expect(input.settings.enabled && input.settings.authenticated).toBe(true)
        }
      }),
      { numRuns: 1000 },
    )
  })

  it('a matching link to a stranger’s conversation is always identity-mismatch', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const { linked, request } = input
        const matches =
          linked !== undefined &&
          linked !== null &&
          typeof request.reconnectId === 'string' &&
          isWellFormedReconnectId(request.reconnectId) &&
          linked.reconnectId === request.reconnectId &&
          linked.widgetId === (request.widgetId ?? 'default')
        fc.pre(matches && linked.customerId !== null && linked.customerId !== signedIn(request))
        expect(decideReturn(input)).toEqual({ type: 'new-chat', reason: 'identity-mismatch' })
      }),
      { numRuns: 300 },
    )
  })

  it('redirects only when reconnect is on and a redirect URL is set, and only to that URL', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const decision = decideReturn(input)
        if (decision.type !== 'redirect') return
        expect(input.settings.enabled).toBe(true)
        expect(input.settings.redirectUrl).not.toBeNull()
        expect(decision.url).toBe(input.settings.redirectUrl)
      }),
      { numRuns: 500 },
    )
  })

  it('with reconnect off: never a redirect or prompt, and only a session resumes', () => {
    const offInput = inputArb.map((input) => ({
      ...input,
      settings: settings({ ...input.settings, enabled: false, redirectUrl: REDIRECT }),
    }))
    fc.assert(
      fc.property(offInput, (input) => {
        const decision = decideReturn(input)
        expect(['resume', 'new-chat']).toContain(decision.type)
        if (decision.type === 'resume') expect(decision.via).toBe('session')
      }),
      { numRuns: 500 },
    )
  })

  it('without an id or a signed-in customer the answer is new-chat none/disabled', () => {
    const anonymous = inputArb.map((input) => ({
      ...input,
      request: { ...input.request, reconnectId: undefined, customerId: undefined },
    }))
    fc.assert(
      fc.property(anonymous, (input) => {
        expect(decideReturn(input)).toEqual({
          type: 'new-chat',
          reason: input.settings.enabled ? 'none' : 'disabled',
        })
      }),
      { numRuns: 200 },
    )
  })

  it('is pure: same input → deep-equal output, frozen inputs are not mutated', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const before = structuredClone(input)
        deepFreeze(input)
        const first = decideReturn(input)
        const second = decideReturn(input)
        expect(second).toEqual(first)
        expect(decideReturn(structuredClone(before))).toEqual(first)
        expect(input).toEqual(before)
      }),
      { numRuns: 300 },
    )
  })
})

describe('decidePromptAnswer — properties', () => {
  const answerArb = fc.record({
    answer: fc.constantFrom<'continue' | 'new'>('continue', 'new'),
    record: fc.option(recordArb('conv-prompted'), { nil: null }),
    customerId: customerArb,
    settings: settingsArb,
    now: fc.integer({ min: T0 - 4, max: T0 + 4 }),
  })

  it('resumes only the answering customer’s own live conversation, and never on "new"', () => {
    fc.assert(
      fc.property(answerArb, (input) => {
        const before = structuredClone(input)
        const decision = decidePromptAnswer(deepFreeze(input))
        assertShape(decision)
        expect(input).toEqual(before)
        expect(decision.type).not.toBe('prompt')
        if (decision.type !== 'resume') return
        expect(input.answer).toBe('continue')
        expect(decision.via).toBe('prompt')
        expect(input.record).not.toBeNull()
        const record = input.record as ConversationRecord
        expect(record.customerId).not.toBeNull()
        expect(record.customerId).toBe(input.customerId)
        expect(lostReason(record, input.now)).toBeNull()
        expect(record.state).not.toBe('disconnected')
      }),
      { numRuns: 500 },
    )
  })
})
