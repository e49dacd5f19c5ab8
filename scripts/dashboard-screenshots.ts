/**
 * Screenshots of every dashboard page at 1280×800, from a demo mesh started here, so the pictures
 * in docs/ stay those of the current code: Bob and Carol (providers, simulated TDX), Eve (a cheap
 * provider with no quote provider: Software), and Alice (requester, API and dashboard on). Alice
 * vouches for Bob, denounces Eve and buys a machine; then each page is opened in headless Debian
 * Chromium and saved to docs/dashboard/<page>.png.
 *
 *   node --import tsx scripts/dashboard-screenshots.ts [--out docs/dashboard] [--chart-secs 30]
 */
import '../src/node/polyfills.js'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { CmeshNode } from '../src/node/node.js'
import { resolveConfig, type NodeConfigInput } from '../src/node/config.js'
import { createLogger } from '../src/node/logger.js'
import { launchChromium } from './chromium.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '')
const outDir = args.get('out') ?? fileURLToPath(new URL('../docs/dashboard/', import.meta.url))
const chartSecs = Number(args.get('chart-secs') ?? 30)
const network = `shots${randomBytes(3).toString('hex')}`
const log = createLogger('shots', 'silent')
const nodes: CmeshNode[] = []
const dirs: string[] = []

async function node (config: NodeConfigInput, api = false): Promise<CmeshNode> {
  const dataDir = await mkdtemp(join(tmpdir(), 'cmesh-shots-'))
  dirs.push(dataDir)
  const n = new CmeshNode({ config: resolveConfig({ network, dataDir, dht: false, gossipHeartbeatMs: 200, syncIntervalSecs: 2, ...config }), log, api })
  await n.start()
  nodes.push(n)
  return n
}

async function until (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

const localCard = (fee: string) => ({
  schemesSupported: ['vm.ssh'],
  capacityPerSecond: 2,
  feePerPartialWei: fee,
  backends: [{ name: 'local', kind: 'local' as const, regions: ['local'], maxCpu: 4, maxMemoryMiB: 4096, maxDiskGiB: 20 }],
  rates: [{ backend: 'local', cpuHourWei: fee, memoryGiBHourWei: '100', diskGiBHourWei: '10' }]
})

try {
  const bob = await node({ roles: ['provider'] })
  const carol = await node({ roles: ['provider'], card: localCard('3000000') })
  const eve = await node({ roles: ['provider'], attest: { provider: 'none' }, card: localCard('1') })
  const alice = await node({ roles: ['requester'] }, true)
  for (const other of [bob, carol, eve]) await other.libp2p.dial(alice.libp2p.getMultiaddrs())
  await until('Alice sees and has checked the three cards', () =>
    alice.collection.cards(Math.floor(Date.now() / 1000)).length === 3 && alice.services.verifiedLevels.levels.size === 3)
  await alice.services.trust.sign('vouch', bob.identity.did, 'ran our CI for a month')
  await alice.services.trust.sign('denounce', eve.identity.did, 'claims it never delivered')

  const { url, token } = JSON.parse(await readFile(join(alice.config.dataDir, 'api.json'), 'utf8')) as { url: string, token: string }
  const created = await fetch(`${url}/v1/rfps`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ cpus: 1, mem: '512M', disk: '1G', maxPriceWei: '1000000000000000000000', windowSecs: 3, durationSecs: 3600 })
  })
  const { id } = await created.json() as { id: string }
  await until('the RFP becomes a ready contract', async () => {
    const status = await (await fetch(`${url}/v1/rfps/${id}`, { headers: { authorization: `Bearer ${token}` } })).json() as { state: string }
    return status.state === 'ready'
  }, 120_000)

  const browser = await launchChromium()
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage()
    await page.goto(alice.services.dashboard.loginUrl() ?? '')
    await mkdir(outDir, { recursive: true })
    // The node page's charts plot the metrics events as they come (one every 5 s): let a few arrive.
    await page.click('a[href="#/node"]')
    await page.waitForTimeout(chartSecs * 1000)
    const shots: Array<[string, () => Promise<void>]> = [
      ['market', async () => { await page.waitForSelector('#market-table tr[data-provider]') }],
      ['requests', async () => {
        await page.click(`[data-rfp="${id}"]`)
        await page.waitForSelector('#rfp-detail[data-state="ready"]')
        // The form fills the first screen; the picture is of the request and what became of it.
        await page.locator('#rfp-detail').evaluate((el: any) => el.scrollIntoView({ block: 'start' }))
      }],
      ['contracts', async () => {
        await page.click(`#contracts-table tr[data-contract="${id}"] a`)
        await page.waitForSelector('#contract-detail[data-state="ready"]')
      }],
      ['trust', async () => { await page.waitForSelector('main[data-page="trust"] svg') }],
      ['node', async () => { await page.waitForSelector('main[data-page="node"]') }]
    ]
    for (const [name, ready] of shots) {
      await page.click(`a[href="#/${name}"]`)
      await page.waitForSelector(`main[data-page="${name}"]`)
      await ready()
      await page.waitForTimeout(500)
      await page.screenshot({ path: join(outDir, `${name}.png`) })
      console.log(`wrote ${join(outDir, `${name}.png`)}`)
    }
  } finally {
    await browser.close()
  }
} finally {
  for (const n of nodes.reverse()) await n.stop().catch(() => {})
  for (const d of dirs) await rm(d, { recursive: true, force: true })
}
