import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))
const esm = `${root}dist/index.js`
const cjs = `${root}dist/index.cjs`

const request = { reconnectId: 'V1StGXR8_Z5jdHi6B-myT' }
const settingsInput = { enabled: true, timeLimit: 'PT30M', portalUrl: 'https://portal.example.com/' }

describe('the built package', () => {
  it('exists (npm test builds it first)', () => {
    expect(existsSync(esm), 'dist/index.js is missing: run `npm run build`').toBe(true)
    expect(existsSync(cjs), 'dist/index.cjs is missing: run `npm run build`').toBe(true)
  })

  it('loads through import and decides', async () => {
    const lib = (await import(pathToFileURL(esm).href)) as typeof import('../src/index')
    const settings = lib.defineSettings(settingsInput)
    expect(lib.decideReturn({ request, settings, now: 0, linked: null })).toEqual({ type: 'new-chat', reason: 'not-found' })
  })

  it('loads through require and decides', () => {
    const lib = createRequire(import.meta.url)(cjs) as typeof import('../src/index')
    const settings = lib.defineSettings(settingsInput)
    expect(lib.decideReturn({ request, settings, now: 0, linked: null })).toEqual({ type: 'new-chat', reason: 'not-found' })
    expect(new lib.SettingsError([{ path: 'x', message: 'y' }])).toBeInstanceOf(lib.ReconnectError)
  })

  it('gives V8 fast-mode objects for the memory store and the service', () => {
    // A getter written into the memory store's object literal made every store a dictionary-mode
    // object. V8 then kept what the store's methods hold, all its records included, alive across
    // young-generation collections until the next full one: a third of the lifecycle benchmark's
    // time went to that. `%HasFastProperties` needs --allow-natives-syntax, so a child process asks.
    const script = [
      `const lib = await import(${JSON.stringify(pathToFileURL(esm).href)})`,
      `const settings = ${JSON.stringify(settingsInput)}`,
      'const store = lib.createMemoryStore()',
      'const service = lib.createReconnectService({ settings, store })',
      'process.stdout.write(JSON.stringify({ store: %HasFastProperties(store), service: %HasFastProperties(service), size: store.size }))',
    ].join('\n')
    const child = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' })
    expect(child.stderr).toBe('')
    expect(JSON.parse(child.stdout)).toEqual({ store: true, service: true, size: 0 })
  })
})
