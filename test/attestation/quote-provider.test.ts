import '../../src/node/polyfills.js'
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigfsTsmQuoteProvider, SimulatedQuoteProvider } from '../../src/attestation/quote-provider.js'
import { AttestationError } from '../../src/attestation/errors.js'
import { parseTdxQuote } from '../../src/attestation/quote.js'
import { CmeshNode } from '../../src/node/node.js'
import { resolveConfig } from '../../src/node/config.js'
import { NodeError } from '../../src/node/errors.js'
import { quietLog, testNetwork } from '../helpers/mesh.js'

describe('quote providers', () => {
  it('configfs-tsm says plainly when this is not a TDX guest', async () => {
    const collateral = await (await SimulatedQuoteProvider.create()).collateral()
    const p = new ConfigfsTsmQuoteProvider({ collateral, reportDir: '/nonexistent/tsm/report' })
    await assert.rejects(p.quote(new Uint8Array(64)), (e: unknown) => e instanceof AttestationError && e.code === 'QUOTE_PROVIDER' && /not available/.test(e.message))
    await assert.rejects(p.quote(new Uint8Array(10)), (e: unknown) => e instanceof AttestationError && e.code === 'QUOTE_PROVIDER')
  })

  it('the simulator puts the REPORTDATA asked for into a v4 quote, and devnet nodes share one test root key', async () => {
    const [a, b] = [await SimulatedQuoteProvider.create(), await SimulatedQuoteProvider.create()]
    const q = parseTdxQuote(await a.quote(new Uint8Array(64).fill(5)))
    assert.equal(q.version, 4)
    assert.deepEqual(Uint8Array.from(q.body.reportData), new Uint8Array(64).fill(5))
    assert.equal(a.trustAnchor.simulated, true)
    assert.equal(a.trustAnchor.subject, b.trustAnchor.subject)
  })

  it('a node in production mode refuses to start with the simulator or a non-Intel root', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cmesh-prod-'))
    try {
      const node = new CmeshNode({ config: resolveConfig({ network: testNetwork(), dataDir: dir, dht: false, attest: { provider: 'simulated', production: true } }), log: quietLog, api: false })
      await assert.rejects(node.start(), (e: unknown) => e instanceof NodeError && e.code === 'CONFIG_INVALID' && /simulated/.test(e.message))
      await node.stop()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
