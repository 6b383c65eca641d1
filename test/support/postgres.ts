import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { describeWithServer } from './servers'

/** Debian's PostgreSQL 15 binaries; override with PG_BIN. */
export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin'

const HOW_TO = 'set DATABASE_URL (e.g. `export DATABASE_URL=$(.ci/start-postgres /tmp/pg)`) to run the PostgreSQL tests'

/** The server the PostgreSQL tests use, or `undefined` when none is configured. */
export function databaseUrl(): string | undefined {
  const url = process.env.DATABASE_URL
  return url === undefined || url === '' ? undefined : url
}

/** `describe` for suites that need the server at DATABASE_URL; see {@link describeWithServer}. */
export function describeWithPostgres(name: string, body: (url: string) => void): void {
  describeWithServer('PostgreSQL', 'DATABASE_URL', HOW_TO, name, body)
}

/** A pool that fails fast instead of hanging when the server is gone, and survives idle-connection errors. */
export function createTestPool(url: string, extra: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 8,
    connectionTimeoutMillis: 2_000,
    query_timeout: 5_000,
    ...extra,
  })
  // An idle client whose server died emits here; without a listener the process would crash.
  pool.on('error', () => {})
  return pool
}

/** A fresh, unquoted-safe table name, so parallel test files and cases never share a table. */
export function randomTableName(prefix = 'cr_test'): string {
  return `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 10)}`
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Owner {
  uid?: number
  gid?: number
}

/** initdb and postgres refuse root: as root, run them as the `postgres` system user. */
function serverOwner(): Owner {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {}
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
  return { uid, gid }
}

/** Whether the tests can start private PostgreSQL servers of their own (binaries installed). */
export function canStartServers(): boolean {
  return existsSync(join(PG_BIN, 'initdb')) && existsSync(join(PG_BIN, 'postgres'))
}

/** A PostgreSQL server this test process started and can kill and restart. */
export interface PrivateServer {
  readonly url: string
  readonly port: number
  readonly dir: string
  /** Kills the postmaster with `signal` (SIGKILL: no shutdown at all) and waits until it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Starts the server again on the same data directory and port; waits until it accepts connections. */
  restart(): Promise<void>
  /** Stops the server (if running) and deletes its directory. */
  destroy(): Promise<void>
  /** The server's log, for failure messages. */
  log(): string
}

/**
 * initdb's a throwaway cluster in a temporary directory and starts a postmaster on a free port, for
 * fault tests that must kill the server under the store's feet.
 */
export async function startPrivateServer(): Promise<PrivateServer> {
  const owner = serverOwner()
  const root = mkdtempSync(join(tmpdir(), 'chat-reconnect-pg-'))
  chmodSync(root, 0o755) // the postgres user must reach the data directory below
  const dir = join(root, 'data')
  mkdirSync(dir, { mode: 0o700 })
  if (owner.uid !== undefined && owner.gid !== undefined) chownSync(dir, owner.uid, owner.gid)
  const logFile = join(root, 'server.log')
  const initdb = spawnSync(join(PG_BIN, 'initdb'), ['-D', dir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-locale', '--no-sync'], {
    ...owner,
    encoding: 'utf8',
  })
  if (initdb.status !== 0) {
    rmSync(root, { recursive: true, force: true })
    throw new Error(`initdb failed: ${initdb.stderr || initdb.stdout}`)
  }
  const port = await freePort()
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  let child: ChildProcess | undefined

  async function waitForExit(process: ChildProcess): Promise<void> {
    if (process.exitCode !== null || process.signalCode !== null) return
    await new Promise((resolve) => process.once('exit', resolve))
  }

  async function accepting(): Promise<boolean> {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 500 })
    client.on('error', () => {})
    try {
      await client.connect()
      await client.query('SELECT 1')
      return true
    } catch {
      return false
    } finally {
      await client.end().catch(() => {})
    }
  }

  async function start(): Promise<void> {
    // After SIGKILL the old backends may still hold shared memory for a moment; postgres then
    // refuses to start, so try again until they are gone.
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline) {
      const fd = openSync(logFile, 'a')
      const started = spawn(join(PG_BIN, 'postgres'), ['-D', dir, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1'], {
        ...owner,
        stdio: ['ignore', fd, fd],
      })
      closeSync(fd)
      child = started
      while (Date.now() < deadline && started.exitCode === null && started.signalCode === null) {
        if (await accepting()) return
        await sleep(50)
      }
      await sleep(200)
    }
    throw new Error(`postgres did not start on port ${port}:\n${readLog()}`)
  }

  function readLog(): string {
    try {
      return readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n')
    } catch {
      return '(no log)'
    }
  }

  await start()

  return {
    url,
    port,
    dir,
    async kill(signal = 'SIGKILL') {
      const running = child
      if (running === undefined) return
      running.kill(signal)
      await waitForExit(running)
    },
    restart: start,
    async destroy() {
      const running = child
      if (running !== undefined && running.exitCode === null && running.signalCode === null) {
        running.kill('SIGQUIT') // immediate shutdown: nothing here is worth a checkpoint
        await waitForExit(running)
      }
      // Orphaned backends of a killed postmaster exit on their own; give them a moment before rm.
      await sleep(100)
      rmSync(root, { recursive: true, force: true })
    },
    log: readLog,
  }
}
