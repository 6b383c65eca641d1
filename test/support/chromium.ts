import { existsSync } from 'node:fs'
import type { Browser } from 'playwright-core'

/** Debian's Chromium; the project never downloads a browser of its own. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
]

/**
 * Why browser tests cannot run here, or `undefined` when they can. Under `CI=true` a missing browser
 * is a failure, not a skip, so the caller turns the reason into an error there.
 */
export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined
  const reason = `Chromium not found at ${CHROMIUM_PATH}: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH`
  if (process.env.CI === 'true') throw new Error(`${reason} — under CI=true browser tests must run`)
  return reason
}

/** Starts headless Chromium with the flags this machine needs (closed network, root). */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core')
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: FLAGS })
}
