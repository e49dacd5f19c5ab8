import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server, type Socket } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { SimulatedQuoteProvider } from '../../src/attestation/quote-provider.js'
import { cardEvidenceReportData, measurementManifestDigest } from '../../src/attestation/card-evidence.js'
import { parseTdxQuote } from '../../src/attestation/quote.js'
import { identityFromSeed } from '../../src/market/identity.js'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/node/libp2p.js'
import { EvidenceProtocol, EvidenceError } from '../../src/protocols/evidence.js'
import { makeCard, testIdentity } from '../helpers/cards.js'
import { TestMesh, waitFor } from '../helpers/mesh.js'

describe('what an auditor dials and keeps', () => {
  const mesh = new TestMesh()
  let fake: MeshLibp2p | undefined
  let trap: Server | undefined
  const sockets: Socket[] = []
  after(async () => {
    for (const s of sockets) s.destroy()
    trap?.close()
    await fake?.stop()
    await mesh.cleanup()
  })

  it('never dials a card\'s own listenAddrs, and neither serves nor announces evidence that only parses (TdxLocal)', async () => {
    const auditor = await mesh.node()
    // A listener the cards point at: an auditor that dialled card addresses would connect here.
    let trapped = 0
    trap = createServer((socket) => { trapped++; sockets.push(socket) })
    await new Promise<void>((resolve) => trap?.listen(0, '127.0.0.1', resolve))
    const trapAddr = `/ip4/127.0.0.1/tcp/${(trap.address() as { port: number }).port}`

    // A provider whose quote is genuine in form but chains to another (test) root: it proves TdxLocal.
    const key = await generateKeyPair('Ed25519')
    fake = await createMeshLibp2p({ privateKey: key, network: mesh.network, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false })
    const served = new EvidenceProtocol(fake, { network: mesh.network })
    await served.start()
    const id = identityFromSeed(key.raw.subarray(0, 32))
    const other = await SimulatedQuoteProvider.create({ seed: 'another root, TEST-ONLY' })
    const digest = measurementManifestDigest(parseTdxQuote(await other.quote(new Uint8Array(64))).body)
    const quote = served.put(await other.quote(cardEvidenceReportData(id.did, digest)))
    const collateral = served.put(new TextEncoder().encode(JSON.stringify(await other.collateral())))
    await auditor.libp2p.dial(fake.getMultiaddrs())

    const nowSecs = Math.floor(Date.now() / 1000)
    const times = { committedAtUnixSecs: nowSecs, expiresAtUnixSecs: nowSecs + 3600, attestationLevel: 'TdxRemote' as const, attestationDigest: digest }
    const cards = [
      makeCard(id, { ...times, evidence: { quote, collateral }, listenAddrs: [trapAddr] }),
      // Throwaway providers nobody can reach, pointing at the trap.
      ...[1, 2, 3].map((i) => makeCard(testIdentity(7000 + i), { ...times, evidence: { quote, collateral }, listenAddrs: [trapAddr, `${trapAddr}/p2p/${fake?.peerId.toString() ?? ''}`] }))
    ]
    for (const card of cards) auditor.collection.apply(card, nowSecs)
    const levels = auditor.services.verifiedLevels.levels
    await waitFor('every card checked', () => cards.every((c) => levels.get(c.value.providerId) !== undefined), 60_000)
    assert.equal(levels.get(id.did)?.level, 'TdxLocal', levels.get(id.did)?.reason)
    assert.equal(trapped, 0, 'no auditor connection reached the address the cards named')
    await assert.rejects(auditor.services.attestation.evidence.retrieve(quote), (err: unknown) => err instanceof EvidenceError && err.code === 'EVIDENCE_MISSING', 'the unverified quote is not kept to be served')
  })
})
