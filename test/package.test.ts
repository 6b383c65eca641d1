import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Packs the package the way `npm publish` would, installs the tarball into a throw-away project
// outside this repository and loads every entry from there, through import and through require.

const root = fileURLToPath(new URL('..', import.meta.url))
const TIMEOUT = 120_000

const ENTRIES = [
  { specifier: 'chat-reconnect', dist: 'index', names: ['decideReturn', 'createReconnectService', 'createMemoryStore', 'defineSettings'] },
  { specifier: 'chat-reconnect/testing', dist: 'testing/index', names: ['createManualClock', 'storeContract', 'settingsInputArbitrary', 'lifecycleCommandsArbitrary'] },
  { specifier: 'chat-reconnect/redis', dist: 'redis/index', names: ['createRedisStore'] },
  { specifier: 'chat-reconnect/postgres', dist: 'postgres/index', names: ['createPostgresStore'] },
  { specifier: 'chat-reconnect/http', dist: 'http/index', names: ['createReconnectHandler', 'toCustomerView'] },
] as const

/** A link to a conversation nobody stored: every build must answer it the same way. */
const DECIDE = `
const settings = lib.defineSettings({ enabled: true, timeLimit: 'PT30M', portalUrl: 'https://portal.example.com/' })
const decision = lib.decideReturn({ request: { reconnectId: 'V1StGXR8_Z5jdHi6B-myT' }, settings, now: 0, linked: null })
let adapterError = null
try {
  entry.createRedisStore?.({ client: {} })
  entry.createPostgresStore?.({ pool: {} })
} catch (error) {
  adapterError = {
    isReconnectError: lib.isReconnectError(error),
    isSettingsError: error instanceof lib.SettingsError,
    name: error.name,
  }
}
// The HTTP entry answers through the main entry's service: a new chat, and an unknown one (its
// NotFoundError is recognised across the two entries, so it is a 404, not a 500).
const http = entry.createReconnectHandler === undefined
  ? Promise.resolve(null)
  : (async () => {
      const handler = entry.createReconnectHandler(lib.createReconnectService({ settings }))
      const post = (path, body) => handler(new Request('http://127.0.0.1' + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }))
      const started = await post('/start', {})
      const unknown = await post('/status', { conversationId: 'nobody', reconnectId: 'V1StGXR8_Z5jdHi6B-myT' })
      return { started: started.status, state: (await started.json()).conversation.state, unknown: unknown.status }
    })()
http.then((http) => console.log(JSON.stringify({ exports: Object.keys(entry).sort(), decision, adapterError, http })))
`

interface LoadResult {
  exports: string[]
  decision: unknown
  adapterError: { isReconnectError: boolean; isSettingsError: boolean; name: string } | null
  http: { started: number; state: string; unknown: number } | null
}

let work = ''
let app = ''
let packed: { filename: string; files: { path: string }[] }

function run(command: string, args: string[], cwd: string): string {
  try {
    return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: TIMEOUT })
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string }
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${stdout ?? ''}\n${stderr ?? ''}`, { cause: error })
  }
}

function load(mode: 'import' | 'require', specifier: string): LoadResult {
  const script =
    mode === 'import'
      ? `import * as lib from 'chat-reconnect'\nimport * as entry from '${specifier}'\n${DECIDE}`
      : `const lib = require('chat-reconnect')\nconst entry = require('${specifier}')\n${DECIDE}`
  const args = mode === 'import' ? ['--input-type=module', '-e', script] : ['-e', script]
  const out = run(process.execPath, args, app).trim().split('\n').at(-1) ?? ''
  return JSON.parse(out) as LoadResult
}

beforeAll(() => {
  if (!ENTRIES.every((e) => existsSync(join(root, 'dist', `${e.dist}.js`)) && existsSync(join(root, 'dist', `${e.dist}.cjs`)))) {
    run('npx', ['tsup'], root)
  }
  work = mkdtempSync(join(tmpdir(), 'chat-reconnect-package-'))
  const [info] = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], root)) as (typeof packed)[]
  packed = info!
  app = join(work, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'package-check', private: true, version: '0.0.0' }))
  // The testing entry's arbitraries need fast-check, which a project that property-tests has anyway.
  const fastCheck = JSON.parse(readFileSync(join(root, 'node_modules', 'fast-check', 'package.json'), 'utf8')) as { version: string }
  run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--ignore-scripts',
      '--no-package-lock',
      join(work, packed.filename),
      `fast-check@${fastCheck.version}`,
    ],
    app,
  )
}, TIMEOUT)

afterAll(() => {
  if (work !== '') rmSync(work, { recursive: true, force: true })
})

describe('the packed tarball', () => {
  it('ships the build and the package metadata, nothing from src/ or test/', () => {
    const paths = packed.files.map((f) => f.path)
    const stray = paths.filter((p) => !/^(dist\/|package\.json$|README\.md$|CHANGELOG\.md$|LICENSE)/.test(p))
    expect(stray).toEqual([])
    for (const entry of ENTRIES) {
      for (const ext of ['js', 'cjs', 'd.ts', 'd.cts']) expect(paths).toContain(`dist/${entry.dist}.${ext}`)
    }
  })

  it('installs without the optional drivers', () => {
    expect(existsSync(join(app, 'node_modules', 'chat-reconnect', 'package.json'))).toBe(true)
    expect(existsSync(join(app, 'node_modules', 'xstate'))).toBe(true)
    expect(existsSync(join(app, 'node_modules', 'ioredis'))).toBe(false)
    expect(existsSync(join(app, 'node_modules', 'pg'))).toBe(false)
  })

  it('exposes its own package.json', () => {
    const out = run(process.execPath, ['-e', "console.log(require('chat-reconnect/package.json').name)"], app)
    expect(out.trim()).toBe('chat-reconnect')
  })
})

describe.each(ENTRIES)('$specifier from the installed tarball', ({ specifier, names }) => {
  it('loads through import and through require, with the same exports, and decides', () => {
    const esm = load('import', specifier)
    const cjs = load('require', specifier)
    for (const name of names) expect(esm.exports).toContain(name)
    expect(cjs.exports).toEqual(esm.exports)
    expect(esm.decision).toEqual({ type: 'new-chat', reason: 'not-found' })
    expect(cjs.decision).toEqual(esm.decision)
  })

  if (specifier.endsWith('/http')) {
    it('answers a request through the main entry\'s service, with its errors recognised', () => {
      for (const mode of ['import', 'require'] as const) {
        expect(load(mode, specifier).http).toEqual({ started: 201, state: 'queued', unknown: 404 })
      }
    })
  }

  if (specifier.endsWith('/redis') || specifier.endsWith('/postgres')) {
    it('rejects a client it cannot use with an error the main entry recognises, without the driver installed', () => {
      for (const mode of ['import', 'require'] as const) {
        const { adapterError } = load(mode, specifier)
        expect(adapterError).not.toBeNull()
        expect(adapterError!.isReconnectError).toBe(true)
        // One class across entries: the adapters share the main entry's error classes, not copies.
        expect(adapterError!.isSettingsError).toBe(true)
      }
    })
  }
})
