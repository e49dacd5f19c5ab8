import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { SimulatedQuoteProvider } from '../../src/attestation/quote-provider.js'
import { cardEvidenceReportData, measurementManifestDigest } from '../../src/attestation/card-evidence.js'
import { parseTdxQuote } from '../../src/attestation/quote.js'
import { identityFromSeed } from '../../src/market/identity.js'
import type { SignedProviderCard } from '../../src/market/provider-card.js'
import { rawCidForBytes } from '../../src/market/cbor.js'
import { protocolId } from '../../src/protocols/names.js'
import { makeCard, testIdentity } from '../helpers/cards.js'
import { TestMesh, waitFor } from '../helpers/mesh.js'

describe('verified levels: a bounded queue', () => {
  const mesh = new TestMesh()
  let stall: Libp2p | undefined
  const held: Stream[] = []
  after(async () => {
    for (const s of held) s.abort(new Error('test over'))
    await stall?.stop()
    await mesh.cleanup()
  })

  it('a provider whose evidence never arrives does not hold up 50 honest cards queued behind it', async (t) => {
    const auditor = await mesh.node()
    const nowSecs = Math.floor(Date.now() / 1000)

    // The unreachable provider: a real libp2p peer that takes the evidence request and never answers.
    const stallKey = await generateKeyPair('Ed25519')
    stall = await createLibp2p({ privateKey: stallKey, addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    let requests = 0
    await stall.handle(protocolId(mesh.network, 'evidence'), (stream) => { requests++; held.push(stream) })
    const staller = identityFromSeed(stallKey.raw.subarray(0, 32))
    await auditor.libp2p.peerStore.merge(stall.peerId, { multiaddrs: stall.getMultiaddrs() })

    const sim = await SimulatedQuoteProvider.create()
    const digest = measurementManifestDigest(parseTdxQuote(await sim.quote(new Uint8Array(64))).body)
    const collateral = new TextEncoder().encode(JSON.stringify(await sim.collateral()))
    const times = { committedAtUnixSecs: nowSecs, expiresAtUnixSecs: nowSecs + 3600 }
    const bad = makeCard(staller, {
      ...times,
      attestationLevel: 'TdxRemote',
      attestationDigest: digest,
      listenAddrs: stall.getMultiaddrs().map(String),
      evidence: { quote: rawCidForBytes(new TextEncoder().encode('held by nobody: quote')), collateral: rawCidForBytes(new TextEncoder().encode('held by nobody: collateral')) }
    })
    // Honest cards whose evidence the auditor can get at once (it holds the blobs, as after an earlier check).
    const evidence = auditor.services.attestation.evidence
    const honest: SignedProviderCard[] = []
    for (let i = 0; i < 50; i++) {
      const id = testIdentity(1000 + i)
      const quote = evidence.put(await sim.quote(cardEvidenceReportData(id.did, digest)))
      honest.push(makeCard(id, { ...times, attestationLevel: 'TdxRemote', attestationDigest: digest, evidence: { quote, collateral: evidence.put(collateral) } }))
    }

    const levels = auditor.services.verifiedLevels.levels
    assert.equal(auditor.collection.apply(bad, nowSecs), 'added')
    await waitFor('the unreachable provider was asked for its evidence', () => requests > 0)
    const queuedAt = performance.now()
    for (const card of honest) auditor.collection.apply(card, nowSecs)
    await waitFor('all 50 honest cards verified', () => honest.every((c) => levels.get(c.value.providerId)?.level === 'TdxRemote'), 60_000)
    t.diagnostic(`50 honest cards verified ${(performance.now() - queuedAt).toFixed(0)} ms after they were queued`)
    assert.equal(levels.get(staller.did), undefined, 'the stalled check is still waiting for its evidence')

    // Its own deadline ends it: evidence unavailable proves Software, and the claim stays visible.
    await waitFor('the stalled check ended', () => levels.get(staller.did) !== undefined, 60_000).catch(async (err) => {
      // What the queue was doing, for the report: still running (stuck) or done without a verdict.
      t.diagnostic(`queue ${JSON.stringify(auditor.services.verifiedLevels.queued)}; evidence fetches ${JSON.stringify((await auditor.metrics.evidenceFetches.get()).values)}; requests to the staller ${requests}; shown ${auditor.collection.get(staller.did, Math.floor(Date.now() / 1000))?.cid.toString() ?? 'none'} vs ${bad.cid.toString()}`)
      throw err
    })
    t.diagnostic(`the stalled check ended ${(performance.now() - queuedAt).toFixed(0)} ms after the honest cards were queued`)
    assert.equal(levels.get(staller.did)?.level, 'Software')
    assert.equal(levels.get(staller.did)?.claimed, 'TdxRemote')
  })
})
