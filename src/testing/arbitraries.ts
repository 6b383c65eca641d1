import fc from 'fast-check'
import { ReconnectError } from '../errors'
import type { ReconnectService } from '../service/reconnect-service'
import type { DurationInput, ReconnectSettingsInput, ReturnRequest } from '../types'

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const MAX_TIME_LIMIT = 7 * DAY

const PORTAL_URLS = ['https://portal.example.com/chat', 'https://shop.example/help?lang=en#chat', 'http://localhost:3000/support'] as const
const REDIRECT_URLS = ['https://portal.example.com/expired', 'https://shop.example/contact'] as const
const LINK_PARAMS = ['oc.reconnectid', 'rid', 'reconnect_id', 'r~1'] as const
const MALFORMED_IDS = ['', 'short', '../../etc/passwd', 'has spaces in it, and 21+', 'ÿ'.repeat(21), 'x'.repeat(300)] as const

/** Options of {@link durationInputArbitrary}: inclusive bounds in milliseconds. */
export interface DurationInputArbitraryOptions {
  /**
   * Shortest duration generated, in ms.
   * @default 0
   */
  minMs?: number
  /**
   * Longest duration generated, in ms (one day).
   * @default 86400000
   */
  maxMs?: number
}

/**
 * Durations between `minMs` and `maxMs` written as milliseconds, a date-fns `Duration` or an ISO-8601 string.
 *
 * @example
 * fc.assert(fc.property(durationInputArbitrary({ minMs: 1, maxMs: 60_000 }), (d) => toMilliseconds(d) <= 60_000))
 */
export function durationInputArbitrary(options: DurationInputArbitraryOptions = {}): fc.Arbitrary<DurationInput> {
  const minMs = Math.max(0, Math.ceil(options.minMs ?? 0))
  const maxMs = Math.floor(options.maxMs ?? DAY)
  if (!(maxMs >= minMs)) {
    throw new ReconnectError('invalid-argument', `durationInputArbitrary: maxMs (${maxMs}) must not be below minMs (${minMs})`)
  }
  return fc.integer({ min: minMs, max: maxMs }).chain((ms) => fc.constantFrom(...durationForms(ms)))
}

/** Every way this library accepts of writing exactly `ms` (fractions only where they are exact enough to round back). */
function durationForms(ms: number): DurationInput[] {
  const forms: DurationInput[] = [ms]
  if (ms % SECOND !== 0) {
    forms.push({ seconds: ms / SECOND }, `PT${(ms / SECOND).toFixed(3)}S`)
    return forms
  }
  let rest = ms / SECOND
  const days = Math.floor(rest / 86_400)
  rest -= days * 86_400
  const hours = Math.floor(rest / 3_600)
  rest -= hours * 3_600
  const minutes = Math.floor(rest / 60)
  const seconds = rest - minutes * 60
  const parts: Record<string, number> = {}
  if (days > 0) parts.days = days
  if (hours > 0) parts.hours = hours
  if (minutes > 0) parts.minutes = minutes
  if (seconds > 0 || Object.keys(parts).length === 0) parts.seconds = seconds
  forms.push(parts, { seconds: ms / SECOND })
  const time = `${hours > 0 ? `${hours}H` : ''}${minutes > 0 ? `${minutes}M` : ''}${seconds > 0 ? `${seconds}S` : ''}`
  forms.push(`P${days > 0 ? `${days}D` : ''}${time === '' ? (days > 0 ? '' : 'T0S') : `T${time}`}`)
  if (ms % (7 * DAY) === 0 && ms > 0) forms.push(`P${ms / (7 * DAY)}W`, { weeks: ms / (7 * DAY) })
  return forms
}

/** Options of {@link settingsInputArbitrary}; unset fields vary freely. */
export interface SettingsInputArbitraryOptions {
  /**
   * Force reconnect on or off; unset, either.
   * @default undefined
   */
  enabled?: boolean
  /**
   * Force whether the widget has sign-in configured; unset, either.
   * @default undefined
   */
  authenticated?: boolean
  /**
   * Force whether signed-in customers see the "continue or start new?" prompt; unset, either.
   * @default undefined
   */
  prompt?: boolean
  /**
   * Lower bound of `timeLimit` and of the auto-close and grace durations, in ms; never below 1 second,
   * the settings' own minimum for them.
   * @default 1000
   */
  minDurationMs?: number
  /**
   * Upper bound of `timeLimit` and of the auto-close and grace durations, in ms (one day;
   * `timeLimit` never exceeds 7 days).
   * @default 86400000
   */
  maxDurationMs?: number
  /**
   * Include `redirectUrl` (true), leave it out (false), or either (unset).
   * @default undefined
   */
  redirect?: boolean
}

/**
 * Valid widget settings inputs, mixing the three duration forms, with reconnect on or off,
 * an optional redirect (and allowlist), sign-in, prompt, `warnBefore < timeLimit` and every `wrapUpCapacity` form.
 *
 * @example
 * fc.assert(fc.property(settingsInputArbitrary({ enabled: true }), (input) => defineSettings(input).enabled))
 */
export function settingsInputArbitrary(options: SettingsInputArbitraryOptions = {}): fc.Arbitrary<ReconnectSettingsInput> {
  const minDuration = Math.max(SECOND, Math.ceil(options.minDurationMs ?? SECOND))
  const maxDuration = Math.max(minDuration, Math.floor(options.maxDurationMs ?? DAY))
  if (minDuration > MAX_TIME_LIMIT) {
    throw new ReconnectError('invalid-argument', `settingsInputArbitrary: minDurationMs must be at most 7 days, got ${minDuration}`)
  }
  const flag = (forced: boolean | undefined): fc.Arbitrary<boolean> => (forced === undefined ? fc.boolean() : fc.constant(forced))
  const duration = (): fc.Arbitrary<DurationInput> => durationInputArbitrary({ minMs: minDuration, maxMs: maxDuration })

  const limitAndWarning = fc.integer({ min: minDuration, max: Math.min(MAX_TIME_LIMIT, maxDuration) }).chain((limitMs) =>
    fc.record(
      {
        timeLimit: fc.constantFrom(...durationForms(limitMs)),
        warnBefore: limitMs >= 2 ? durationInputArbitrary({ minMs: 1, maxMs: limitMs - 1 }) : fc.constant(null),
      },
      { requiredKeys: ['timeLimit'] },
    ),
  )

  const redirect = fc.constantFrom(...REDIRECT_URLS).chain((redirectUrl) =>
    fc.record(
      {
        redirectUrl: fc.constant(redirectUrl),
        redirectAllowlist: fc.constant([new URL(redirectUrl).origin, 'https://other.example']),
      },
      { requiredKeys: ['redirectUrl'] },
    ),
  )
  const noRedirect = fc.constant({})
  const redirectPart = options.redirect === true ? redirect : options.redirect === false ? noRedirect : fc.oneof(noRedirect, redirect)

  const wrapUpCapacity = fc.oneof(
    fc.constantFrom<'always' | 'never'>('always', 'never'),
    durationInputArbitrary({ minMs: 30 * SECOND, maxMs: 60 * MINUTE }),
  )

  const rest = fc.record(
    {
      authenticated: flag(options.authenticated),
      prompt: flag(options.prompt),
      disconnectGrace: duration(),
      wrapUpAutoClose: duration(),
      wrapUpCapacity,
      queueAutoClose: duration(),
      linkParam: fc.constantFrom(...LINK_PARAMS),
    },
    {
      requiredKeys: [
        ...(options.authenticated === undefined ? [] : (['authenticated'] as const)),
        ...(options.prompt === undefined ? [] : (['prompt'] as const)),
      ],
    },
  )

  return flag(options.enabled).chain((enabled) =>
    fc
      .tuple(
        enabled ? limitAndWarning : fc.option(limitAndWarning, { nil: undefined }),
        enabled ? fc.constantFrom(...PORTAL_URLS) : fc.option(fc.constantFrom(...PORTAL_URLS), { nil: undefined }),
        redirectPart,
        rest,
      )
      .map(
        ([limit, portalUrl, redirectFields, others]): ReconnectSettingsInput => ({
          enabled,
          ...(limit ?? {}),
          ...(portalUrl === undefined ? {} : { portalUrl }),
          ...redirectFields,
          ...others,
        }),
      ),
  )
}

/** Ids {@link returnRequestArbitrary} draws from; reconnect ids and customers the test knows about. */
export interface ReturnRequestArbitraryOptions {
  /**
   * Reconnect ids of conversations the test stored; presented most often, besides unknown, malformed and missing ids.
   * @default []
   */
  reconnectIds?: readonly string[]
  /**
   * Signed-in customers the test knows; presented besides strangers and guests.
   * @default []
   */
  customerIds?: readonly string[]
  /**
   * Widgets the requests come from.
   * @default ['default']
   */
  widgetIds?: readonly string[]
}

/**
 * Requests of returning customers: known, unknown, malformed and missing reconnect ids, signed in or not,
 * through a link or the widget's session, on known widgets.
 *
 * @example
 * const requests = returnRequestArbitrary({ reconnectIds: [chat.reconnectId], customerIds: ['cust-1'] })
 * await fc.assert(fc.asyncProperty(requests, async (r) => void (await service.returnCustomer(r))))
 */
export function returnRequestArbitrary(options: ReturnRequestArbitraryOptions = {}): fc.Arbitrary<ReturnRequest> {
  const known = options.reconnectIds ?? []
  const customers = options.customerIds ?? []
  const widgets = options.widgetIds ?? ['default']
  const unknownId = fc.stringMatching(/^[A-Za-z0-9_-]{21}$/)
  const malformedId = fc.oneof(fc.constantFrom(...MALFORMED_IDS), fc.string({ maxLength: 30 }))
  const reconnectId = fc.oneof(
    ...(known.length > 0 ? [{ arbitrary: fc.constantFrom(...known), weight: 4 }] : []),
    { arbitrary: unknownId, weight: 1 },
    { arbitrary: malformedId, weight: 1 },
    { arbitrary: fc.constantFrom(undefined, null), weight: 1 },
  )
  const stranger = fc.integer({ min: 1, max: 3 }).map((n) => `stranger-${n}`)
  const customerId = fc.oneof(
    ...(customers.length > 0 ? [{ arbitrary: fc.constantFrom(...customers), weight: 3 }] : []),
    { arbitrary: stranger, weight: 1 },
    { arbitrary: fc.constantFrom(undefined, null), weight: 2 },
  )
  return fc.record(
    {
      reconnectId,
      customerId,
      widgetId: fc.constantFrom(...widgets),
      via: fc.constantFrom<'link' | 'session'>('link', 'session'),
    },
    { requiredKeys: [] },
  )
}

/**
 * One step a host can replay against a service. `target` picks a conversation started earlier in the same
 * list: the index of that `start`, taken modulo the number of conversations started so far.
 */
export type LifecycleCommand =
  | { kind: 'start'; conversationId?: string; widgetId?: string; customerId?: string; agentId?: string }
  | { kind: 'assign'; target: number; agentId: string }
  | { kind: 'disconnect'; target: number }
  | { kind: 'return'; target: number; via: 'link' | 'session'; signedIn: boolean }
  | { kind: 'prompt-continue'; target: number }
  | { kind: 'prompt-new'; target: number }
  | { kind: 'end-agent'; target: number }
  | { kind: 'end-customer'; target: number }
  | { kind: 'close'; target: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'sweep' }

/** Options of {@link lifecycleCommandsArbitrary}. */
export interface LifecycleCommandsArbitraryOptions {
  /**
   * Longest list generated.
   * @default 30
   */
  maxCommands?: number
  /**
   * Agents that `start` and `assign` commands name.
   * @default ['agent-1', 'agent-2']
   */
  agentIds?: readonly string[]
  /**
   * Customers that `start` commands sign in.
   * @default ['customer-1', 'customer-2']
   */
  customerIds?: readonly string[]
  /**
   * Widgets that `start` commands open conversations on.
   * @default ['default']
   */
  widgetIds?: readonly string[]
  /**
   * Longest single `advance`, in ms (two hours).
   * @default 7200000
   */
  maxAdvanceMs?: number
}

/**
 * Lists of plain lifecycle commands (start, assign, disconnect, return, prompt answers, End, Close,
 * clock advances and sweeps); replay them with {@link replayLifecycleCommands} or your own loop.
 *
 * @example
 * fc.assert(fc.asyncProperty(lifecycleCommandsArbitrary(), async (commands) => {
 *   await replayLifecycleCommands(createReconnectService({ settings, clock }), commands, { clock })
 * }))
 */
export function lifecycleCommandsArbitrary(options: LifecycleCommandsArbitraryOptions = {}): fc.Arbitrary<LifecycleCommand[]> {
  const maxCommands = Math.max(0, Math.floor(options.maxCommands ?? 30))
  const agents = options.agentIds ?? ['agent-1', 'agent-2']
  const customers = options.customerIds ?? ['customer-1', 'customer-2']
  const widgets = options.widgetIds ?? ['default']
  const maxAdvance = Math.max(0, Math.floor(options.maxAdvanceMs ?? 2 * HOUR))
  const target = fc.nat({ max: Math.max(0, maxCommands) })
  const on = <K extends LifecycleCommand['kind']>(kind: K) =>
    fc.record({ kind: fc.constant(kind), target }) as fc.Arbitrary<Extract<LifecycleCommand, { kind: K; target: number }>>

  const start = fc.record(
    {
      kind: fc.constant('start' as const),
      conversationId: fc.constantFrom('conversation-1', 'conversation-2'),
      widgetId: fc.constantFrom(...widgets),
      customerId: fc.constantFrom(...customers),
      agentId: fc.constantFrom(...agents),
    },
    { requiredKeys: ['kind'] },
  )
  const command: fc.Arbitrary<LifecycleCommand> = fc.oneof(
    { arbitrary: start, weight: 4 },
    { arbitrary: fc.record({ kind: fc.constant('assign' as const), target, agentId: fc.constantFrom(...agents) }), weight: 2 },
    { arbitrary: on('disconnect'), weight: 3 },
    {
      arbitrary: fc.record({
        kind: fc.constant('return' as const),
        target,
        via: fc.constantFrom<'link' | 'session'>('link', 'session'),
        signedIn: fc.boolean(),
      }),
      weight: 3,
    },
    { arbitrary: on('prompt-continue'), weight: 1 },
    { arbitrary: on('prompt-new'), weight: 1 },
    { arbitrary: on('end-agent'), weight: 1 },
    { arbitrary: on('end-customer'), weight: 1 },
    { arbitrary: on('close'), weight: 1 },
    {
      arbitrary: fc.record({
        kind: fc.constant('advance' as const),
        ms: fc.oneof(
          fc.integer({ min: 0, max: maxAdvance }),
          fc.constantFrom(...[0, 1, MINUTE, 30 * MINUTE].filter((ms) => ms <= maxAdvance)),
        ),
      }),
      weight: 3,
    },
    { arbitrary: fc.constant({ kind: 'sweep' as const }), weight: 1 },
  )
  if (maxCommands === 0) return fc.constant([])
  // Lead with a start so the targeted commands that follow have a conversation to act on.
  return fc.tuple(start, fc.array(command, { maxLength: maxCommands - 1, size: '+1' })).map(([first, rest]) => [first, ...rest])
}

/** What replaying one {@link LifecycleCommand} gave: its result, its error, or `skipped` when it could not apply. */
export type LifecycleOutcome =
  | { command: LifecycleCommand; status: 'ok'; result: unknown }
  | { command: LifecycleCommand; status: 'error'; error: unknown }
  | { command: LifecycleCommand; status: 'skipped' }

/** The result of {@link replayLifecycleCommands}. */
export interface LifecycleReplay {
  /** Ids of the conversations the `start` commands created, in order (a repeated `conversationId` appears again). */
  conversationIds: string[]
  outcomes: LifecycleOutcome[]
}

/** Options of {@link replayLifecycleCommands}. */
export interface ReplayLifecycleOptions {
  /**
   * Moves time for `advance` commands, e.g. a `createManualClock()`; without one they are skipped.
   * @default undefined
   */
  clock?: {
    /** Moves time forward by `ms` milliseconds, as `ManualClock.advance` does. */
    advance(ms: number): void
  }
  /**
   * Called after each command with its outcome, before the next one starts: a place to check invariants.
   * @default undefined
   */
  onStep?: (outcome: LifecycleOutcome, conversationIds: readonly string[]) => void | Promise<void>
}

/**
 * Replays commands one after another against a service; a call that throws is recorded, not rethrown.
 * `advance` needs a clock that can move (such as `createManualClock()`) and is skipped without one.
 *
 * @example
 * const { outcomes } = await replayLifecycleCommands(service, commands, { clock })
 * expect(outcomes.filter((o) => o.status === 'error' && !isReconnectError(o.error))).toEqual([])
 */
export async function replayLifecycleCommands(
  service: ReconnectService,
  commands: readonly LifecycleCommand[],
  options: ReplayLifecycleOptions = {},
): Promise<LifecycleReplay> {
  const conversationIds: string[] = []
  const outcomes: LifecycleOutcome[] = []
  for (const command of commands) {
    let outcome: LifecycleOutcome
    if ((command.kind === 'advance' && options.clock === undefined) || ('target' in command && conversationIds.length === 0)) {
      outcome = { command, status: 'skipped' }
    } else {
      try {
        outcome = { command, status: 'ok', result: await replayOne(service, command, conversationIds, options.clock) }
      } catch (error) {
        outcome = { command, status: 'error', error }
      }
    }
    outcomes.push(outcome)
    await options.onStep?.(outcome, conversationIds)
  }
  return { conversationIds, outcomes }
}

async function replayOne(
  service: ReconnectService,
  command: LifecycleCommand,
  conversationIds: string[],
  clock: { advance(ms: number): void } | undefined,
): Promise<unknown> {
  if (command.kind === 'start') {
    const { kind: _kind, ...input } = command
    const record = await service.start(input)
    conversationIds.push(record.id)
    return record
  }
  if (command.kind === 'advance') {
    clock?.advance(command.ms)
    await service.idle()
    return undefined
  }
  if (command.kind === 'sweep') return service.runDueTimers()
  const id = conversationIds[command.target % conversationIds.length]!
  switch (command.kind) {
    case 'assign':
      return service.assign(id, command.agentId)
    case 'disconnect':
      return service.disconnect(id)
    case 'end-agent':
      return service.endByAgent(id)
    case 'end-customer':
      return service.endByCustomer(id)
    case 'close':
      return service.closeByAgent(id)
    case 'return': {
      const record = await service.get(id)
      const customerId = command.signedIn ? (record.customerId ?? undefined) : undefined
      return service.returnCustomer({ reconnectId: record.reconnectId, widgetId: record.widgetId, via: command.via, customerId })
    }
    case 'prompt-continue':
    case 'prompt-new': {
      const record = await service.get(id)
      const answer = command.kind === 'prompt-continue' ? 'continue' : 'new'
      return service.answerPrompt(id, answer, record.customerId ?? 'anonymous')
    }
  }
}
