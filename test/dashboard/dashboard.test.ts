/**
 * The dashboard in a real browser (Debian's Chromium, headless, through playwright-core): Alice is
 * a `cmesh start` process, and the test logs in through the link her banner prints. Her market
 * shows Bob (a provider process, simulated TDX: TdxRemote) and Eve (a provider in this process
 * without a quote provider: Software) at the levels her node verified; she denounces Eve, creates
 * an RFP in the page's form and watches it become a ready contract, with Eve's bid refused for the
 * reason the policy gives. Without the session cookie or the token nothing is served; every control
 * has a name and is reached with Tab; a refused RFP, an ended session and a stopped node each show
 * their own message.
 */
import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import type { Browser, Page } from 'playwright-core'
import { startBobAndAlice, apiStatus, stopNodeProcess, type NodeProcess } from '../helpers/processes.js'
import { TestMesh, waitFor, testNetwork } from '../helpers/mesh.js'
import { runCli } from '../helpers/cli.js'
import { chromiumAvailable, launchChromium, CHROMIUM_PATH } from '../../scripts/chromium.js'

// The page.evaluate callbacks run in the browser; the project compiles without the DOM library.
declare const document: any
declare const window: any
type HTMLElement = any
type HTMLInputElement = any

const SKIP_NO_CHROMIUM = `skipped: install chromium (Debian package \`chromium\`, expected at ${CHROMIUM_PATH})`
const PAGES = ['market', 'requests', 'contracts', 'trust', 'node'] as const

/** Every enabled, visible control without an accessible name (label, aria-label(ledby), or a button's text). */
async function unlabelled (page: Page): Promise<string[]> {
  return await page.evaluate(() => {
    const out: string[] = []
    for (const el of Array.from(document.querySelectorAll('input, select, textarea, button, a[href]')) as any[]) {
      const h = el as HTMLElement
      if (h.offsetParent === null || (el as HTMLInputElement).type === 'hidden') continue
      const labels = (el as HTMLInputElement).labels
      const named = (labels !== null && labels !== undefined && Array.from(labels as any[]).some((l: any) => (l.textContent ?? '').trim() !== '')) ||
        (el.getAttribute('aria-label') ?? '').trim() !== '' ||
        (el.getAttribute('aria-labelledby') ?? '').split(/\s+/).some((id: string) => (document.getElementById(id)?.textContent ?? '').trim() !== '') ||
        ((el.tagName === 'BUTTON' || el.tagName === 'A') && (h.textContent ?? '').trim() !== '') ||
        (el.getAttribute('title') ?? '').trim() !== ''
      if (!named) out.push(h.outerHTML.slice(0, 120))
    }
    return out
  })
}

/** Tabs through the page from the top; the controls reached, and the visible ones never reached. */
async function tabOrder (page: Page): Promise<{ reached: number, missed: string[] }> {
  await page.evaluate(() => { (document.activeElement as HTMLElement | null)?.blur(); window.scrollTo(0, 0) })
  const controls = await page.evaluate(() => {
    let n = 0
    for (const el of Array.from(document.querySelectorAll('input, select, textarea, button, a[href]')) as any[]) {
      const h = el as HTMLElement
      if (h.offsetParent === null || (el as HTMLInputElement).disabled || (el as HTMLInputElement).type === 'hidden') continue
      h.dataset.tabProbe = String(n++)
    }
    return n
  })
  const seen = new Set<string>()
  for (let i = 0; i < controls * 2 + 5; i++) {
    await page.keyboard.press('Tab')
    const probe = await page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.tabProbe)
    if (probe !== undefined) seen.add(probe)
    if (seen.size === controls) break
  }
  const missed = await page.evaluate((seenList) => (Array.from(document.querySelectorAll('[data-tab-probe]')) as any[])
    .filter((el) => !seenList.includes((el as HTMLElement).dataset.tabProbe ?? '')).map((el) => (el as HTMLElement).outerHTML.slice(0, 120) as string), [...seen])
  return { reached: seen.size, missed }
}

describe('dashboard in headless Chromium', () => {
  const procs: NodeProcess[] = []
  const mesh = new TestMesh()
  let browser: Browser | undefined
  after(async () => {
    await browser?.close()
    await Promise.all(procs.map(async (p) => await stopNodeProcess(p)))
    await mesh.cleanup()
  })

  it('logs in through the printed link, shows the verified market, buys a machine through the form, and serves nothing without a credential', async (t) => {
    if (!chromiumAvailable()) {
      if (process.env.CI === 'true') throw new Error(`chromium missing on CI at ${CHROMIUM_PATH}`)
      t.skip(SKIP_NO_CHROMIUM)
      return
    }
    const network = testNetwork()
    const { bob, bobAddr, alice, aliceAddr } = await startBobAndAlice(procs, network)
    // Eve: a cheaper provider with no quote provider, so her card proves Software only.
    const eve = await (Object.assign(mesh, { network }) as TestMesh).node({
      roles: ['provider'],
      gossipHeartbeatMs: 200,
      attest: { provider: 'none' },
      card: { schemesSupported: ['vm.ssh'], capacityPerSecond: 1, feePerPartialWei: '1', backends: [{ name: 'local', kind: 'local', regions: ['local'], maxCpu: 4, maxMemoryMiB: 4096, maxDiskGiB: 20 }], rates: [{ backend: 'local', cpuHourWei: '1', memoryGiBHourWei: '1', diskGiBHourWei: '1' }] }
    })
    const { multiaddr } = await import('@multiformats/multiaddr')
    await eve.libp2p.dial([multiaddr(bobAddr)])
    await eve.libp2p.dial([multiaddr(aliceAddr)])
    const bobDid = (await apiStatus(bob)).did as string
    await waitFor('Alice holds Bob\'s and Eve\'s cards', async () => (await apiStatus(alice))?.collection?.shown === 2, 60_000, 250)

    const link = /dashboard:\s+(http:\/\/\S+\/login\?token=\S+)/.exec(alice.stdout())?.[1]
    assert.ok(link !== undefined, `Alice's banner prints a login link:\n${alice.stdout()}`)
    const origin = new URL(link).origin

    browser = await launchChromium()
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    const page = await context.newPage()
    const problems: string[] = []
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(msg.text()) })
    page.on('pageerror', (err) => { problems.push(err.message) })

    // Logging in: the link sets the cookie and lands on the market.
    await page.goto(link)
    assert.equal(new URL(page.url()).pathname, '/')
    const cookies = await context.cookies()
    const session = cookies.find((c) => c.name === 'cmesh_session')
    assert.ok(session?.httpOnly === true && session.sameSite === 'Strict', JSON.stringify(cookies))
    await page.waitForSelector('main[data-page="market"]')
    const level = (did: string, which: 'verified' | 'claimed') => page.locator(`#market-table tr[data-provider="${did}"] .level-${which}`)
    await waitFor('Bob verified at TdxRemote, Eve at Software, on Alice\'s market page', async () =>
      (await level(bobDid, 'verified').textContent().catch(() => ''))?.includes('TdxRemote') === true &&
      (await level(eve.identity.did, 'verified').textContent().catch(() => ''))?.includes('Software') === true, 60_000, 250)
    assert.match(await page.locator(`#market-table tr[data-provider="${bobDid}"]`).textContent() ?? '', /simulated/i, 'a level resting on the TEST-ONLY root is marked simulated')

    // Alice denounces Eve; then the RFP form: a refused one first, then a good one that becomes a contract.
    assert.equal((await runCli(['trust', 'denounce', eve.identity.did, '--data', alice.dataDir], alice.dataDir)).code, 0)
    await page.click('a[href="#/requests"]')
    await page.waitForSelector('main[data-page="requests"] #rfp-form')
    await page.fill('#rfp-cpus', '1')
    await page.fill('#rfp-mem', 'lots')
    await page.fill('#rfp-disk', '1G')
    await page.fill('#rfp-max-price', '1000000000000000000000')
    await page.fill('#rfp-window', '4')
    await page.click('#rfp-submit')
    await page.waitForSelector('#rfp-error')
    const refusedText = await page.locator('#rfp-error').textContent() ?? ''
    assert.match(refusedText, /BODY_INVALID/, refusedText)
    assert.equal(await page.inputValue('#rfp-mem'), 'lots', 'the form keeps what was typed')
    await page.fill('#rfp-mem', '512M')
    await page.click('#rfp-submit')
    await page.waitForSelector('#rfp-detail[data-state]')
    await waitFor('the RFP reaches a ready contract, seen in the page', async () =>
      await page.locator('#rfp-detail').getAttribute('data-state') === 'ready', 120_000, 500)
    const declines = await page.locator('#rfp-detail .decline').allTextContents()
    assert.ok(declines.some((d) => d.includes('DENOUNCED')), `Eve's bid refused with its reason: ${JSON.stringify(declines)}`)
    assert.equal(await page.locator(`#rfp-detail tr[data-bid="${bobDid}"]`).textContent().then((t) => t?.includes('chosen')), true, 'Bob\'s bid was chosen')

    // The contract's page gives the ssh command and never the key.
    await page.click('a[href="#/contracts"]')
    await page.waitForSelector('main[data-page="contracts"]')
    const html = await page.content()
    assert.doesNotMatch(html, /PRIVATE KEY/)

    // Accessibility basics on every page: names, and Tab reaches every control.
    for (const name of PAGES) {
      await page.click(`a[href="#/${name}"]`)
      await page.waitForSelector(`main[data-page="${name}"]`)
      await page.waitForTimeout(300)
      assert.deepEqual(await unlabelled(page), [], `${name}: every control has an accessible name`)
      const { reached, missed } = await tabOrder(page)
      assert.deepEqual(missed, [], `${name}: every control is reachable with Tab (${reached} reached)`)
    }
    assert.deepEqual(problems.filter((p) => !/status of 40[014] /.test(p)), [], 'no script errors or CSP violations in the console (the refused RFP\'s 400 and the ended session\'s 401 are expected)')

    // Without the cookie or the token: nothing, not the page, its modules, nor the API.
    const anonymous = await browser.newContext()
    const bare = await anonymous.newPage()
    for (const path of ['/', '/ui/app.js', '/ui/vendor/htm-preact.mjs', '/v1/status', '/v1/market']) {
      const res = await bare.goto(origin + path)
      assert.equal(res?.status(), 401, path)
    }
    assert.equal(await bare.locator('main').count(), 0, 'no dashboard rendered')
    const reused = await bare.goto(link)
    assert.equal(reused?.status(), 401, 'the printed link worked once')
    // `cmesh dashboard` hands out another link, which opens the page in that browser too.
    const fresh = await runCli(['dashboard', '--json', '--data', alice.dataDir], alice.dataDir)
    assert.equal(fresh.code, 0, fresh.stderr)
    await bare.goto(JSON.parse(fresh.stdout).url)
    await bare.waitForSelector('main[data-page="market"]')
    await anonymous.close()

    // A session that ends while the page is open, then a node that stops: each says so.
    await context.clearCookies()
    await page.click('a[href="#/market"]')
    await page.waitForSelector('#session-banner', { timeout: 30_000 })
    assert.match(await page.locator('#session-banner').textContent() ?? '', /cmesh dashboard/)
    await stopNodeProcess(alice)
    await page.waitForSelector('#offline-banner', { timeout: 60_000 })
  })
})
