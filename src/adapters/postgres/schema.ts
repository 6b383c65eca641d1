import { SettingsError } from '../../errors'

/** The table `createPostgresStore` uses when no `table` is given. */
export const POSTGRES_DEFAULT_TABLE = 'chat_reconnect_conversations'

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/
/** PostgreSQL silently truncates longer identifiers, which could make two index names collide. */
const MAX_IDENTIFIER = 63

/** A validated table name with everything the SQL needs, quoted once. */
export interface TableNames {
  /** The name as the caller wrote it. */
  readonly name: string
  /** `"table"` or `"schema"."table"`: safe to splice into SQL. */
  readonly table: string
  readonly reconnectIndex: string
  readonly resumableIndex: string
  readonly dueIndex: string
  readonly heldIndex: string
  readonly claimedIndex: string
  /** Retention: every conversation of one customer (byCustomer, eraseCustomer). */
  readonly customerIndex: string
  /** The outbox table (`<table>_outbox`, in the same schema): events stored with their write. */
  readonly outboxTable: string
  /** Pending outbox entries by visibility time (the claim's order). */
  readonly outboxIndex: string
}

function quote(identifier: string): string {
  // IDENTIFIER admits no double quote, so wrapping is all the escaping needed.
  return `"${identifier}"`
}

/**
 * 32-bit FNV-1a as 8 hex digits: keeps shortened index names of different tables apart, and names
 * a table's wake-up channel and prepared statements. `basis` starts another hash of the same text.
 */
export function shortHash(text: string, basis = 0x811c9dc5): string {
  let hash = basis
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash.toString(16).padStart(8, '0')
}

function indexName(table: string, suffix: string): string {
  const plain = `${table}_${suffix}`
  if (plain.length <= MAX_IDENTIFIER) return quote(plain)
  const keep = MAX_IDENTIFIER - suffix.length - 10
  return quote(`${table.slice(0, keep)}_${shortHash(table)}_${suffix}`)
}

/**
 * Checks a table name (`name` or `schema.name`, each part a plain SQL identifier of at most 63
 * characters) and derives the quoted names the store uses; throws `SettingsError` otherwise.
 */
export function tableNames(input: unknown): TableNames {
  const name = input === undefined ? POSTGRES_DEFAULT_TABLE : input
  const parts = typeof name === 'string' ? name.split('.') : []
  if (typeof name !== 'string' || parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    const shown = typeof name === 'string' ? JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name) : typeof name
    throw new SettingsError([
      {
        path: 'table',
        message: `must be a table name or schema.table, each part a letter or underscore followed by up to 62 letters, digits or underscores; got ${shown}`,
      },
    ])
  }
  const tablePart = parts[parts.length - 1]!
  return {
    name,
    table: parts.map(quote).join('.'),
    reconnectIndex: indexName(tablePart, 'reconnect_id_key'),
    resumableIndex: indexName(tablePart, 'resumable_idx'),
    dueIndex: indexName(tablePart, 'due_idx'),
    heldIndex: indexName(tablePart, 'held_idx'),
    claimedIndex: indexName(tablePart, 'claimed_idx'),
    customerIndex: indexName(tablePart, 'customer_idx'),
    outboxTable: [...parts.slice(0, -1).map(quote), indexName(tablePart, 'outbox')].join('.'),
    outboxIndex: indexName(tablePart, 'outbox_visible_idx'),
  }
}

/**
 * The migration SQL for validated names (statements separated by `;`, safe to run again). Only
 * `IF NOT EXISTS` creations: running it on every start-up takes no lock that blocks readers.
 */
export function schemaSql(names: TableNames): string {
  const t = names.table
  return `${[
    `CREATE TABLE IF NOT EXISTS ${t} (
  id text PRIMARY KEY,
  widget_id text NOT NULL,
  reconnect_id text NOT NULL,
  customer_id text,
  agent_id text,
  state text NOT NULL,
  next_due_at bigint,
  capacity_held boolean NOT NULL,
  window_ends_at bigint,
  updated_at bigint NOT NULL,
  version integer NOT NULL,
  record jsonb NOT NULL,
  claimed_until bigint,
  claimed_by text
)`,
    `CREATE UNIQUE INDEX IF NOT EXISTS ${names.reconnectIndex} ON ${t} (reconnect_id)`,
    `CREATE INDEX IF NOT EXISTS ${names.resumableIndex} ON ${t} (widget_id, customer_id, updated_at DESC) WHERE state = 'reconnectable'`,
    `CREATE INDEX IF NOT EXISTS ${names.dueIndex} ON ${t} (next_due_at, id) WHERE next_due_at IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS ${names.heldIndex} ON ${t} (agent_id) WHERE capacity_held`,
    `CREATE INDEX IF NOT EXISTS ${names.claimedIndex} ON ${t} (claimed_until) WHERE claimed_until IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS ${names.customerIndex} ON ${t} (customer_id) WHERE customer_id IS NOT NULL`,
    `CREATE TABLE IF NOT EXISTS ${names.outboxTable} (
  id text PRIMARY KEY,
  visible_at bigint NOT NULL,
  event text NOT NULL
)`,
    `CREATE INDEX IF NOT EXISTS ${names.outboxIndex} ON ${names.outboxTable} (visible_at, id)`,
  ].join(';\n')};\n`
}

/**
 * The SQL that creates the conversations table, its outbox table (`<table>_outbox`) and their indexes — what `store.migrate()` runs — for
 * hosts that apply migrations with their own tool. Every statement uses `IF NOT EXISTS`.
 *
 * @example
 * fs.writeFileSync('migrations/001_chat_reconnect.sql', postgresSchema())
 */
export function postgresSchema(table?: string): string {
  return schemaSql(tableNames(table))
}
