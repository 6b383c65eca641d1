import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Packs the package the way `npm publish` would, installs the tarball into a throw-away project
// outside this repository and loads every entry from there, through import and through require.

const root = fileURLToPath(new URL('..', import.meta.url))
const TIMEOUT = 120_000

const ENTRIES = [
  { specifier: 'chat-reconnect', dist: 'index', names: ['decideReturn', 'createReconnectService', 'createMemoryStore', 'defineSettings'] },
  {
    specifier: 'chat-reconnect/testing',
    dist: 'testing/index',
    names: ['createManualClock', 'storeContract', 'settingsInputArbitrary', 'lifecycleCommandsArbitrary'],
  },
  { specifier: 'chat-reconnect/redis', dist: 'redis/index', names: ['createRedisStore'] },
  { specifier: 'chat-reconnect/postgres', dist: 'postgres/index', names: ['createPostgresStore'] },
  { specifier: 'chat-reconnect/metrics', dist: 'metrics/index', names: ['createReconnectMetrics', 'createOpenTelemetryRecorder'] },
  { specifier: 'chat-reconnect/http', dist: 'http/index', names: ['createReconnectHandler', 'toCustomerView'] },
  {
    specifier: 'chat-reconnect/browser',
    dist: 'browser/index',
    names: ['createWidgetSession', 'createHttpTransport', 'formatRemainingTime'],
  },
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

/** Where a Markdown page points: its relative links and images, outside code, and its heading anchors. */
interface PageLinks {
  links: { target: string; line: number }[]
  anchors: Set<string>
}

/** GitHub's heading anchor: lower case, punctuation dropped (but `-` and `_`), spaces as `-`. */
function slug(heading: string): string {
  return heading
    .replace(/`/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

function readPageLinks(markdown: string): PageLinks {
  const links: PageLinks['links'] = []
  const seen = new Map<string, number>()
  const anchors = new Set<string>()
  let fence: string | null = null
  markdown.split('\n').forEach((raw, index) => {
    const open = /^\s*(```+|~~~+)/.exec(raw)
    if (fence !== null) {
      if (open !== null && open[1]!.startsWith(fence)) fence = null
      return
    }
    if (open !== null) {
      fence = open[1]!
      return
    }
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(raw)
    if (heading !== null) {
      const base = slug(heading[1]!)
      const count = seen.get(base) ?? 0
      seen.set(base, count + 1)
      anchors.add(count === 0 ? base : `${base}-${count}`)
    }
    const text = raw.replace(/`+[^`]*`+/g, '')
    const targets = [
      ...[...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+["'(][^)]*)?\)/g)].map((m) => m[1]!),
      ...[...text.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/g)].map((m) => m[1]!),
      ...[...text.matchAll(/\b(?:href|src)\s*=\s*["']([^"']+)["']/g)].map((m) => m[1]!),
    ]
    for (const target of targets) {
      // Absolute URLs (https:, mailto:) and protocol-relative ones leave the package.
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue
      links.push({ target, line: index + 1 })
    }
  })
  return { links, anchors }
}

/**
 * Every relative link of the shipped Markdown pages that does not resolve inside the package: a file the
 * tarball lacks, or a `#fragment` no heading of the target page makes.
 */
function brokenLinks(files: readonly string[], read: (path: string) => string): string[] {
  const shipped = new Set(files)
  const pages = new Map<string, PageLinks>()
  const page = (path: string): PageLinks => {
    let links = pages.get(path)
    if (links === undefined) {
      links = readPageLinks(read(path))
      pages.set(path, links)
    }
    return links
  }
  const broken: string[] = []
  for (const from of files.filter((f) => f.endsWith('.md')).sort()) {
    for (const { target, line } of page(from).links) {
      const [pathPart, fragment] = target.split('#', 2) as [string, string | undefined]
      const path = decodeURI(pathPart.split('?')[0]!)
      const to = path === '' ? from : posix.normalize(posix.join(posix.dirname(from), path))
      if (!shipped.has(to)) {
        broken.push(`${from}:${line} → ${target} (not in the tarball)`)
      } else if (fragment !== undefined && fragment !== '' && to.endsWith('.md') && !page(to).anchors.has(fragment)) {
        broken.push(`${from}:${line} → ${target} (no such heading in ${to})`)
      }
    }
  }
  return broken
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
  it('ships the build, the docs and the package metadata, nothing from src/ or test/', () => {
    const paths = packed.files.map((f) => f.path)
    const stray = paths.filter(
      (p) => !/^(dist\/|docs\/[^/]+\.(md|png)$|package\.json$|README\.md$|CHANGELOG\.md$|BENCHMARKS\.md$|LICENSE$)/.test(p),
    )
    expect(stray).toEqual([])
    for (const file of ['LICENSE', 'README.md', 'CHANGELOG.md']) expect(paths).toContain(file)
    // The generated API reference (docs/api/) is built on demand, not shipped.
    expect(paths.filter((p) => p.startsWith('docs/api/'))).toEqual([])
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

  it('has no relative link in its README or docs pages that points outside what it ships', () => {
    const installed = join(app, 'node_modules', 'chat-reconnect')
    const paths = packed.files.map((f) => f.path)
    const readme = readPageLinks(readFileSync(join(installed, 'README.md'), 'utf8'))
    // The README does link into docs/; if the parser stopped seeing links, the next check would pass vacuously.
    expect(readme.links.map((l) => l.target)).toEqual(expect.arrayContaining(['docs/storage.md', 'LICENSE']))
    expect(brokenLinks(paths, (path) => readFileSync(join(installed, path), 'utf8'))).toEqual([])
  })

  it('license text is MIT, as package.json says', () => {
    const installed = join(app, 'node_modules', 'chat-reconnect')
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { license: string }
    expect(manifest.license).toBe('MIT')
    expect(readFileSync(join(installed, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} /)
  })

  it('exposes its own package.json', () => {
    const out = run(process.execPath, ['-e', "console.log(require('chat-reconnect/package.json').name)"], app)
    expect(out.trim()).toBe('chat-reconnect')
  })
})

describe('the link check of the shipped docs', () => {
  const pages: Record<string, string> = {
    'README.md': [
      '# Title',
      '## Which store',
      'See [storage](docs/storage.md#redis), [this](#which-store), [web](https://example.com/x.md) and `[code](demo/x.md)`.',
      '![shot](docs/demo.png)',
      '```md',
      '[inside a fence](bench/run.mjs)',
      '```',
      'The [demo](demo/README.md) and <img src="docs/missing.png">.',
      '[ref]: ./bench/README.md',
    ].join('\n'),
    'docs/storage.md': '# Storage\n## Redis\nBack to the [README](../README.md#title); [gone](#postgresql).',
    'docs/demo.png': '',
  }
  const broken = brokenLinks(Object.keys(pages), (path) => pages[path]!)

  it('reports a link to a file the tarball lacks, in text, images, HTML and reference definitions', () => {
    expect(broken).toEqual(
      expect.arrayContaining([
        'README.md:8 → demo/README.md (not in the tarball)',
        'README.md:8 → docs/missing.png (not in the tarball)',
        'README.md:9 → ./bench/README.md (not in the tarball)',
      ]),
    )
  })

  it('reports a fragment no heading makes, and passes links in code, absolute URLs and anchors that exist', () => {
    expect(broken).toContain('docs/storage.md:3 → #postgresql (no such heading in docs/storage.md)')
    expect(broken).toHaveLength(4)
  })

  it('derives anchors the way GitHub does', () => {
    expect(slug('Running `storeContract`')).toBe('running-storecontract')
    expect(slug('Widget half: chat-reconnect/http — in progress')).toBe('widget-half-chat-reconnecthttp--in-progress')
    expect(slug('Signed-in conversations need the same customer')).toBe('signed-in-conversations-need-the-same-customer')
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
    it("answers a request through the main entry's service, with its errors recognised", () => {
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
