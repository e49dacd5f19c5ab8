import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { SimulatedQuoteProvider } from '../../src/attestation/quote-provider.js'
import { verifyCardEvidence, cardEvidenceReportData, measurementManifestDigest, type CardEvidence } from '../../src/attestation/card-evidence.js'
import { parseTdxQuote } from '../../src/attestation/quote.js'
import { intelTrustAnchor } from '../../src/attestation/trust-anchor.js'
import { cardFields, testIdentity } from '../helpers/cards.js'
import type { AttestationLevel, ProviderCard } from '../../src/market/index.js'

describe('verified level of a card from its evidence', () => {
  let sim: SimulatedQuoteProvider
  let digest: Uint8Array
  const alice = testIdentity(1)
  const now = () => Math.floor(Date.now() / 1000)
  before(async () => {
    sim = await SimulatedQuoteProvider.create({ seed: 'card evidence test TEST-ONLY', td: { mrTd: new Uint8Array(48).fill(3) } })
    digest = measurementManifestDigest(parseTdxQuote(await sim.quote(new Uint8Array(64))).body)
  })
  const card = (level: AttestationLevel, overrides: Partial<ProviderCard> = {}): ProviderCard => cardFields(alice, { attestationLevel: level, attestationDigest: digest, ...overrides })
  const evidenceFor = async (did: string, d: Uint8Array): Promise<CardEvidence> => ({
    quote: await sim.quote(cardEvidenceReportData(did, d)),
    collateral: new TextEncoder().encode(JSON.stringify(await sim.collateral()))
  })
  const check = async (c: ProviderCard, e: CardEvidence | undefined, extras = {}) => await verifyCardEvidence(c, e, { anchor: sim.trustAnchor, atUnixSecs: now(), extras })

  it('no evidence proves Software, whatever the claim', async () => {
    const r = await check(card('TdxRemote'), undefined)
    assert.equal(r.level, 'Software')
    assert.equal(r.claimed, 'TdxRemote')
  })

  it('a bound quote whose measurements hash to the digest, fully verified, proves TdxRemote (simulated)', async () => {
    const r = await check(card('TdxRemote'), await evidenceFor(alice.did, digest))
    assert.equal(r.level, 'TdxRemote', r.reason)
    assert.equal(r.simulated, true)
  })

  it('climbs to TdxRaTlsBidirectional with a bond and TdxPlusReproducibleBuild with a matching rebuild, never above the claim', async () => {
    const e = await evidenceFor(alice.did, digest)
    assert.equal((await check(card('TdxPlusReproducibleBuild'), e)).level, 'TdxRemote', 'an over-claim without bond or build')
    assert.equal((await check(card('TdxPlusReproducibleBuild'), e, { bidirectionalBond: true })).level, 'TdxRaTlsBidirectional')
    assert.equal((await check(card('TdxPlusReproducibleBuild'), e, { bidirectionalBond: true, reproducibleBuild: true })).level, 'TdxPlusReproducibleBuild')
    assert.equal((await check(card('TdxLocal'), e, { bidirectionalBond: true })).level, 'TdxLocal', 'capped at the claim')
  })

  it('a quote bound to another provider, or to other measurements, proves nothing', async () => {
    const other = await check(card('TdxRemote'), await evidenceFor(testIdentity(2).did, digest))
    assert.equal(other.level, 'Software')
    assert.equal(other.code, 'REPORT_DATA_MISMATCH')
    const wrongDigest = new Uint8Array(32).fill(1)
    const mismatch = await check(card('TdxRemote', { attestationDigest: wrongDigest }), await evidenceFor(alice.did, wrongDigest))
    assert.equal(mismatch.level, 'Software')
    assert.equal(mismatch.code, 'MEASUREMENT_MISMATCH')
  })

  it('measurements that match but a chain that does not verify prove TdxLocal only', async () => {
    const r = await verifyCardEvidence(card('TdxRemote'), await evidenceFor(alice.did, digest), { anchor: intelTrustAnchor(), atUnixSecs: now() })
    assert.equal(r.level, 'TdxLocal')
    assert.equal(r.code, 'ROOT_MISMATCH')
  })
})
