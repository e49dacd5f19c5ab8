/**
 * Attestation benchmark: TDX quote verifications per second (the real Intel v4 fixture and a
 * simulated quote, full path: chains, CRLs, dcap-qvl, our checks), and attest handshake latency
 * between two nodes on loopback (simulated quotes; Software↔Software and bidirectional TDX).
 *
 *   node --import tsx scripts/bench/attest.ts [--verifications 200] [--handshakes 100]
 */
import '../../src/node/polyfills.js'
import { readFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { verifyTdxQuote } from '../../src/attestation/tdx-verifier.js'
import { parseCollateral } from '../../src/attestation/collateral.js'
import { intelTrustAnchor } from '../../src/attestation/trust-anchor.js'
import { SimulatedQuoteProvider } from '../../src/attestation/quote-provider.js'
import { createMeshLibp2p } from '../../src/node/libp2p.js'
import { AttestProtocol } from '../../src/protocols/attest.js'
import { measurementManifestDigest } from '../../src/attestation/card-evidence.js'
import { parseTdxQuote } from '../../src/attestation/quote.js'
import { identityFromSeed, type AttestationLevel } from '../../src/market/index.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '')
const verifications = Number(args.get('verifications') ?? 200)
const handshakes = Number(args.get('handshakes') ?? 100)
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)] ?? NaN

console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`)
console.log(`command: node --import tsx scripts/bench/attest.ts ${process.argv.slice(2).join(' ')}`.trim())
console.log('')
console.log('| quote | verifications | per second | mean (ms) |')
console.log('|---|---|---|---|')

const fixtures = new URL('../../../shared/fixtures/tdx/v4-uptodate/', import.meta.url)
const realQuote = readFileSync(new URL('quote.bin', fixtures))
const realCollateral = parseCollateral(readFileSync(new URL('collateral.json', fixtures), 'utf8'))
const sim = await SimulatedQuoteProvider.create()
const simQuote = await sim.quote(new Uint8Array(64))
const simCollateral = await sim.collateral()
for (const [label, quote, collateral, anchor, at] of [
  ['real Intel v4 (fixture)', realQuote, realCollateral, intelTrustAnchor(), 1751624655],
  ['simulated v4 (test root)', simQuote, simCollateral, sim.trustAnchor, Math.floor(Date.now() / 1000)]
] as const) {
  await verifyTdxQuote(quote, collateral, { anchor, atUnixSecs: at }) // warm-up
  const t = performance.now()
  for (let i = 0; i < verifications; i++) {
    const r = await verifyTdxQuote(quote, collateral, { anchor, atUnixSecs: at })
    if (!r.accepted) throw new Error(`${label} refused: ${r.reason}`)
  }
  const ms = performance.now() - t
  console.log(`| ${label} | ${verifications} | ${(verifications / (ms / 1000)).toFixed(1)} | ${(ms / verifications).toFixed(2)} |`)
}

console.log('')
console.log('| handshake | count | p50 (ms) | p99 (ms) | max (ms) |')
console.log('|---|---|---|---|---|')
const unlimited = { ratePerSec: 1e6, burst: 1e6, rejectAfter: 1e6 }
const manifest = measurementManifestDigest(parseTdxQuote(simQuote).body)
for (const [label, require, tdx] of [['Software ↔ Software', 'Software', false], ['TDX ↔ TDX, bidirectional (simulated quotes)', 'TdxRemote', true]] as const) {
  const peers = await Promise.all([0, 1].map(async () => {
    const key = await generateKeyPair('Ed25519')
    const node = await createMeshLibp2p({ privateKey: key, network: 'benchattest', listen: ['/ip4/127.0.0.1/tcp/0'], dht: false })
    const attest = new AttestProtocol(node, {
      network: 'benchattest',
      identity: identityFromSeed(key.raw.subarray(0, 32)),
      anchor: sim.trustAnchor,
      require: require as AttestationLevel,
      manifest,
      rate: unlimited,
      ...(tdx ? { quoteProvider: sim } : {})
    })
    await attest.start()
    return { node, attest }
  }))
  const [a, b] = peers as [typeof peers[0], typeof peers[0]]
  const conn = await a.node.dial(b.node.getMultiaddrs())
  await a.attest.attest(conn) // warm-up
  const times: number[] = []
  for (let i = 0; i < handshakes; i++) {
    const t = performance.now()
    await a.attest.attest(conn)
    times.push(performance.now() - t)
  }
  console.log(`| ${label} | ${handshakes} | ${pct(times, 50).toFixed(1)} | ${pct(times, 99).toFixed(1)} | ${Math.max(...times).toFixed(1)} |`)
  await Promise.all(peers.map(async (p) => { await p.attest.stop(); await p.node.stop() }))
}
