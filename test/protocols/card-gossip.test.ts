/**
 * A hostile peer publishes bad cards straight onto the cards topic (its own gossipsub runs no
 * validator); the honest node must refuse each with the right verdict, keep none, and lower the
 * hostile peer's gossipsub score for the provably bad ones.
 */
import '../../src/node/polyfills.js'
import { describe, it, afterEach, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { TestMesh, waitFor } from '../helpers/mesh.js'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/node/libp2p.js'
import { topicName } from '../../src/protocols/names.js'
import { identityFromSeed, encodeCanonical, concatBytes, RECORD_SIGNATURE_DOMAIN, type Identity } from '../../src/market/index.js'
import { makeCard, testIdentity } from '../helpers/cards.js'
import type { CmeshNode } from '../../src/node/node.js'

type ScoredPubsub = { getScore: (peer: string) => number, getSubscribers: (topic: string) => unknown[] }

describe('cards topic validation against a hostile peer', () => {
  let mesh: TestMesh
  let victim: CmeshNode
  let attacker: MeshLibp2p
  let attackerId: Identity
  let topic: string
  const now = () => Math.floor(Date.now() / 1000)

  // A fresh pair per test: after the first test the victim has (rightly) graylisted the attacker.
  beforeEach(async () => {
    mesh = new TestMesh()
    victim = await mesh.node()
    const key = await generateKeyPair('Ed25519')
    attackerId = identityFromSeed(key.raw.subarray(0, 32))
    attacker = await createMeshLibp2p({ privateKey: key, network: mesh.network, listen: ['/ip4/127.0.0.1/tcp/0'], heartbeatMs: 100, dht: false })
    topic = topicName(mesh.network, 'cards')
    attacker.services.pubsub.subscribe(topic)
    await attacker.dial(victim.libp2p.getMultiaddrs())
    await waitFor('attacker sees the victim subscribed', () => (attacker.services.pubsub as unknown as ScoredPubsub).getSubscribers(topic).length > 0)
  })

  afterEach(async () => {
    await attacker.stop()
    await mesh.cleanup()
  })

  const publish = async (bytes: Uint8Array) => attacker.services.pubsub.publish(topic, bytes)
  const reasons = () => victim.services.gossip.cards.stats.reasons
  const score = () => (victim.libp2p.services.pubsub as unknown as ScoredPubsub).getScore(attacker.peerId.toString())

  /** Re-signs the card's map as `signer`, whoever the providerId says. */
  function resign (bytes: Uint8Array, signer: Identity, changes: Record<string, unknown> = {}): Uint8Array {
    const { sig: _s, ...body } = { ...(dagCbor.decode(bytes) as Record<string, unknown>), ...changes }
    return encodeCanonical({ ...body, sig: signer.sign(concatBytes(RECORD_SIGNATURE_DOMAIN, encodeCanonical(body))) })
  }

  it('rejects garbage, a mis-signed card, an oversize message and someone else\'s card; the score drops', async () => {
    const before = score()
    await publish(new Uint8Array([0xa1, 0x61, 0x61, 0xff, 0x00]))
    await waitFor('malformed refused', () => (reasons().RECORD_MALFORMED ?? 0) >= 1)

    // The attacker's own providerId, signed with another key.
    const mine = makeCard(attackerId, { committedAtUnixSecs: now(), expiresAtUnixSecs: now() + 3600 })
    await publish(resign(mine.bytes, testIdentity(7)))
    await waitFor('bad signature refused', () => (reasons().RECORD_BAD_SIGNATURE ?? 0) >= 1)

    await publish(new Uint8Array(20 * 1024).fill(0xa0))
    await waitFor('oversize refused', () => (reasons().OVERSIZE ?? 0) >= 1)

    // A genuine card of another provider: valid signature, wrong publisher.
    const someoneElses = makeCard(testIdentity(8), { committedAtUnixSecs: now(), expiresAtUnixSecs: now() + 3600 })
    await publish(someoneElses.bytes)
    await waitFor('foreign card refused', () => (reasons().AUTHOR_NOT_PUBLISHER ?? 0) >= 1)

    assert.equal(victim.services.gossip.cards.stats.reject, 4)
    assert.equal(victim.collection.get(attackerId.did, now()), undefined)
    assert.equal(victim.collection.get(testIdentity(8).did, now()), undefined)
    // Gossipsub caches scores for one heartbeat (100 ms here).
    await waitFor('score below zero', () => score() < 0 && score() < before)
  })

  it('ignores replays of old cards (stale by clock, or older than the one held) without admitting them', async () => {
    const t = now()
    const current = makeCard(attackerId, { committedAtUnixSecs: t, expiresAtUnixSecs: t + 3600 })
    const older = makeCard(attackerId, { committedAtUnixSecs: t - 60, expiresAtUnixSecs: t + 3600 })
    const ancient = makeCard(attackerId, { committedAtUnixSecs: t - 8 * 86400, expiresAtUnixSecs: t - 8 * 86400 + 3600 })
    await publish(current.bytes)
    await waitFor('current card admitted', () => victim.collection.get(attackerId.did, now())?.cid.equals(current.cid) === true)
    await publish(older.bytes)
    await waitFor('older card ignored', () => (reasons().STALE ?? 0) >= 1)
    await publish(ancient.bytes)
    await waitFor('ancient card ignored', () => (reasons().RECORD_STALE ?? 0) >= 1)
    assert.ok(victim.collection.get(attackerId.did, now())?.cid.equals(current.cid))
  })
})
