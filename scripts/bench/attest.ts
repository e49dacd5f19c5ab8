/**
 * Attestation benchmark: TDX quote verifications per second for the real Intel v4 fixture and a
 * simulated quote, side by side: @phala/dcap-qvl alone; the project's full path without a cache
 * (as before issue 12); the project cold (a cleared cache each time: full path plus remembering);
 * the project warm (collateral and PCK chain already verified: the fast path), on the same quote
 * and on distinct quotes (each with its own attestation key, as a stream of handshakes brings).
 * Then attest handshake latency between two nodes on loopback (simulated quotes; Software↔Software
 * and bidirectional TDX; nodes verify through the shared default cache).
 *
 *   node --import tsx scripts/bench/attest.ts [--verifications 200] [--warm 5000] [--handshakes 100] [--json <file>]
 *
 * `--json` writes every row as an array of objects for an aggregator.
 */
import '../../src/node/polyfills.js'
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import dcap from '@phala/dcap-qvl'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { verifyTdxQuote } from '../../src/attestation/tdx-verifier.js'
import { VerificationCache } from '../../src/attestation/verification-cache.js'
import { parseCollateral, type Collateral } from '../../src/attestation/collateral.js'
import { intelTrustAnchor, type TrustAnchor } from '../../src/attestation/trust-anchor.js'
import { SimulatedQuoteProvider } from '../../src/attestation/quote-provider.js'
import { createMeshLibp2p } from '../../src/node/libp2p.js'
import { AttestProtocol } from '../../src/protocols/attest.js'
import { measurementManifestDigest } from '../../src/attestation/card-evidence.js'
import { parseTdxQuote } from '../../src/attestation/quote.js'
import { identityFromSeed, type AttestationLevel } from '../../src/market/index.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '')
const verifications = Number(args.get('verifications') ?? 200)
const warmVerifications = Number(args.get('warm') ?? 5000)
const handshakes = Number(args.get('handshakes') ?? 100)
const jsonFile = args.get('json')
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)] ?? NaN
const rows: Array<Record<string, string | number>> = []

console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`)
console.log(`command: node --import tsx scripts/bench/attest.ts ${process.argv.slice(2).join(' ')}`.trim())
console.log('')
console.log('| quote | path | verifications | per second | mean (ms) |')
console.log('|---|---|---|---|---|')

const fixtures = new URL('../../../shared/fixtures/tdx/v4-uptodate/', import.meta.url)
const realQuote = readFileSync(new URL('quote.bin', fixtures))
const realCollateral = parseCollateral(readFileSync(new URL('collateral.json', fixtures), 'utf8'))
const sim = await SimulatedQuoteProvider.create()
const simQuote = await sim.quote(new Uint8Array(64))
const simCollateral = await sim.collateral()
// Distinct simulated quotes (fresh attestation key each), made before any timing.
const simDistinct = await Promise.all(Array.from({ length: Math.min(verifications, 200) }, async (_, i) => await sim.quote(new Uint8Array(64).fill(i & 0xff))))

async function measure (label: string, path: string, n: number, once: (i: number) => Promise<void> | void): Promise<void> {
  await once(0) // warm-up (JIT, first imports)
  const t = performance.now()
  for (let i = 0; i < n; i++) await once(i)
  const ms = performance.now() - t
  const perSecond = n / (ms / 1000)
  console.log(`| ${label} | ${path} | ${n} | ${perSecond.toFixed(1)} | ${(ms / n).toFixed(3)} |`)
  rows.push({ bench: 'attest', kind: 'verification', quote: label, path, verifications: n, perSecond: Number(perSecond.toFixed(1)), meanMs: Number((ms / n).toFixed(3)) })
}

const quotes: Array<[string, Uint8Array, Collateral, TrustAnchor, number, Uint8Array[]]> = [
  ['real Intel v4 (fixture)', realQuote, realCollateral, intelTrustAnchor(), 1751624655, []],
  ['simulated v4 (test root)', simQuote, simCollateral, sim.trustAnchor, Math.floor(Date.now() / 1000), simDistinct]
]
for (const [label, quote, collateral, anchor, at, distinct] of quotes) {
  const accepted = async (q: Uint8Array, cache: VerificationCache | false) => {
    const r = await verifyTdxQuote(q, collateral, { anchor, atUnixSecs: at, cache })
    if (!r.accepted) throw new Error(`${label} refused: ${r.reason}`)
  }
  const qvl = dcap.QuoteVerifier.newWithRootCa(Buffer.from(anchor.der))
  await measure(label, 'dcap-qvl alone', verifications, () => { qvl.verify(Buffer.from(quote), collateral as any, at) })
  await measure(label, 'project, no cache', verifications, async () => { await accepted(quote, false) })
  const cold = new VerificationCache()
  await measure(label, 'project cold (cache cleared each time)', verifications, async () => { cold.clear(); await accepted(quote, cold) })
  const warm = new VerificationCache()
  await measure(label, 'project warm (same quote)', warmVerifications, async () => { await accepted(quote, warm) })
  if (distinct.length > 0) {
    await measure(label, `project warm (${distinct.length} distinct quotes)`, warmVerifications, async (i) => { await accepted(distinct[i % distinct.length] as Uint8Array, warm) })
  }
  if (warm.stats.cold !== 1) throw new Error(`${label}: the warm runs should verify the collateral once, got ${warm.stats.cold}`)
}

// --handshakes 0 measures verifications only.
if (handshakes > 0) {
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
        globalRate: unlimited,
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
    rows.push({ bench: 'attest', kind: 'handshake', handshake: label, count: handshakes, p50Ms: Number(pct(times, 50).toFixed(1)), p99Ms: Number(pct(times, 99).toFixed(1)), maxMs: Number(Math.max(...times).toFixed(1)) })
    await Promise.all(peers.map(async (p) => { await p.attest.stop(); await p.node.stop() }))
  }
}

if (jsonFile !== undefined) writeFileSync(jsonFile, JSON.stringify(rows, null, 2))
