import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis, type RedisOptions } from 'ioredis'
import { describe, it } from 'vitest'
import { describeWithServer } from './servers'

const HOW_TO = 'set REDIS_URL (e.g. `export REDIS_URL=$(.ci/start-redis /tmp/r)`) to run the Redis tests'

/** The test server's URL, or `undefined` when REDIS_URL is not set. */
export function redisUrl(): string | undefined {
  const url = process.env.REDIS_URL
  return url === undefined || url === '' ? undefined : url
}

/** The redis-server binary the fault tests start on their own. */
export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server'

/** `describe` for suites that need the server at REDIS_URL; see {@link describeWithServer}. */
export function describeWithRedis(name: string, body: (url: string) => void): void {
  describeWithServer('Redis', 'REDIS_URL', HOW_TO, name, body)
}

/** Why the redis-server binary cannot be started here, or `undefined` when it can. Throws under CI. */
export function redisServerMissing(): string | undefined {
  const probe = spawnSync(REDIS_SERVER, ['--version'], { encoding: 'utf8' })
  if (probe.status === 0) return undefined
  const reason = `${REDIS_SERVER} not found: install Debian's redis-server or set REDIS_SERVER`
  if (process.env.CI === 'true') throw new Error(`${reason} — under CI=true the Redis fault tests must run`)
  return reason
}

/** `describe` for suites that start their own redis-server: skipped locally without it, failing under CI. */
export function describeWithRedisServer(name: string, body: () => void): void {
  let missing: string | undefined
  try {
    missing = redisServerMissing()
  } catch (error) {
    describe(name, () => {
      it('has redis-server', () => {
        throw error
      })
    })
    return
  }
  if (missing === undefined) describe(name, body)
  else describe.skip(`${name} (skipped: ${missing})`, body)
}

/**
 * The client options the README recommends: fail fast instead of queueing while the server is
 * away, and never wait forever on a reply. The tests add a short reconnect delay.
 */
export const FAIL_FAST: RedisOptions = {
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  commandTimeout: 5_000,
}

/** A connected client for `url`; connection errors are collected instead of logged. */
export async function connect(url: string, options: RedisOptions = {}): Promise<Redis & { errors: unknown[] }> {
  const client = new Redis(url, { ...FAIL_FAST, connectTimeout: 2_000, retryStrategy: () => 50, lazyConnect: true, ...options })
  const errors: unknown[] = []
  client.on('error', (error: unknown) => errors.push(error))
  await client.connect()
  return Object.assign(client, { errors })
}

/** A prefix no other test uses, so tests sharing one server never see each other's keys. */
export function randomPrefix(label = 'test'): string {
  return `cr-${label}:${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}:`
}

/** Every key under `prefix` (test code only: the store itself never scans). */
export async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000)
    found.push(...batch)
    cursor = next
  } while (cursor !== '0')
  return found.sort()
}

/** Deletes every key under each prefix. */
export async function dropPrefixes(client: Redis, prefixes: Iterable<string>): Promise<void> {
  for (const prefix of prefixes) {
    const keys = await keysUnder(client, prefix)
    for (let i = 0; i < keys.length; i += 500) await client.del(...keys.slice(i, i + 500))
  }
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/** A redis-server child process that the test owns: durable (AOF, fsync always), killable, restartable. */
export interface OwnedRedis {
  readonly url: string
  readonly port: number
  readonly dir: string
  /** SIGKILL: no shutdown, no final fsync. */
  kill(): Promise<void>
  /** Starts the server again on the same port and directory. */
  restart(): Promise<void>
  /** Stops the server and removes its directory. */
  dispose(): Promise<void>
  /** Sends `signal` to the running server (SIGSTOP pauses it, SIGCONT resumes it). */
  signal(signal: NodeJS.Signals): void
}

/** Starts a private redis-server on a free port with append-only persistence. */
export async function startOwnedRedis(extraArgs: string[] = []): Promise<OwnedRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'chat-reconnect-redis-'))
  const port = await freePort()
  let child: ChildProcess | undefined

  async function start(): Promise<void> {
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--logfile',
      join(dir, 'redis.log'),
      ...extraArgs,
    ]
    const proc = spawn(REDIS_SERVER, args, { stdio: 'ignore' })
    child = proc
    const exited = new Promise<never>((_, reject) =>
      proc.once('exit', (code) => reject(new Error(`${REDIS_SERVER} exited with ${String(code)}; see ${dir}/redis.log`))),
    )
    exited.catch(() => undefined)
    await Promise.race([waitForPing(port), exited])
  }

  async function kill(): Promise<void> {
    const proc = child
    child = undefined
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const gone = new Promise((resolve) => proc.once('exit', resolve))
    proc.kill('SIGKILL')
    await gone
  }

  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    kill,
    restart: start,
    signal(signal) {
      child?.kill(signal)
    },
    async dispose() {
      child?.kill('SIGCONT')
      await kill()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

async function waitForPing(port: number): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const probe = new Redis(port, '127.0.0.1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableOfflineQueue: false,
    })
    probe.on('error', () => undefined)
    try {
      await probe.connect()
      // Replies LOADING while it replays the append-only file.
      if ((await probe.ping()) === 'PONG') return
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within 10 s`)
    } finally {
      probe.disconnect()
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
