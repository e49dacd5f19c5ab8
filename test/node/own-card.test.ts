import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CmeshNode } from '../../src/node/node.js'
import { resolveConfig } from '../../src/node/config.js'
import { SimulatedQuoteProvider } from '../../src/attestation/quote-provider.js'
import { quietLog, testNetwork } from '../helpers/mesh.js'

const DAY_MS = 86_400_000

describe('own card evidence and the simulator clock', () => {
  const dirs: string[] = []
  const nodes: CmeshNode[] = []
  after(async () => {
    await Promise.allSettled(nodes.map(async (n) => { await n.stop() }))
    await Promise.all(dirs.map(async (d) => { await rm(d, { recursive: true, force: true }) }))
  })

  it('two publishes at once after a day renew the card evidence once', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'cmesh-own-card-'))
    dirs.push(dataDir)
    let now = Date.now()
    const node = new CmeshNode({ config: resolveConfig({ network: testNetwork(), dataDir, dht: false }), log: quietLog, api: false, now: () => now })
    await node.start()
    nodes.push(node)
    const provider = node.services.attestation.setup.quoteProvider as SimulatedQuoteProvider
    let quotes = 0
    const quote = provider.quote.bind(provider)
    provider.quote = async (reportData) => { quotes++; return await quote(reportData) }

    now += DAY_MS + 1000
    const [a, b] = await Promise.all([node.services.ownCard.publish(), node.services.ownCard.publish()])
    assert.equal(quotes, 1, 'one renewal for both publishes')
    assert.ok(a.value.evidence?.quote.equals(b.value.evidence?.quote as never))
  })

  it('the simulator dates its collateral by the clock it is given, and renews it a day later', async () => {
    let now = Date.UTC(2030, 5, 1)
    const sim = await SimulatedQuoteProvider.create({ now: () => now })
    const issued = (c: Awaited<ReturnType<typeof sim.collateral>>): number => Date.parse(JSON.parse(c.tcb_info).issueDate)
    assert.equal(new Date(issued(await sim.collateral())).getUTCFullYear(), 2030)
    now += 2 * DAY_MS
    assert.ok(issued(await sim.collateral()) >= now - 2 * 3_600_000, 'renewed at the moved clock')
  })
})
