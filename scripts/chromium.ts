/**
 * Headless Debian Chromium through playwright-core, for the dashboard's tests and screenshots.
 * Playwright's own browser download does not work here (and is not wanted on CI): Debian's package
 * `chromium` is installed by `.ci/run` and driven at /usr/bin/chromium. The flags keep Chromium off
 * the network (no component updates, sync or background fetches on a machine with a closed network)
 * and allow running as root, as CI does. Playwright gives each launch a fresh profile directory.
 */
import { existsSync } from 'node:fs'
import type { Browser } from 'playwright-core'

export const CHROMIUM_PATH = process.env.CMESH_CHROMIUM ?? '/usr/bin/chromium'

export function chromiumAvailable (): boolean {
  return existsSync(CHROMIUM_PATH)
}

export async function launchChromium (): Promise<Browser> {
  const { chromium } = await import('playwright-core')
  return await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'
    ]
  })
}
