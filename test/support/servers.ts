import { describe, it } from 'vitest'

const warned = new Set<string>()

/**
 * `describe` for suites that need a server at the URL in `variable`. Without it the suite is skipped
 * with `howTo` on a developer's machine, and fails with the same hint under `CI=true`, where nothing
 * may skip.
 */
export function describeWithServer(server: string, variable: string, howTo: string, name: string, body: (url: string) => void): void {
  const url = process.env[variable]
  if (url !== undefined && url !== '') {
    describe(name, () => body(url))
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it(`needs a ${server} server`, () => {
        throw new Error(`${variable} is not set — under CI=true the ${server} tests must run: ${howTo}`)
      })
    })
  } else {
    if (!warned.has(server)) console.warn(`${server} tests skipped: ${howTo}`)
    warned.add(server)
    describe.skip(`${name} (skipped: ${howTo})`, () => body(''))
  }
}
