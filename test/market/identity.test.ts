import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair, privateKeyFromRaw } from '@libp2p/crypto/keys'
import { base58btc } from 'multiformats/bases/base58'
import { sha256 } from '@noble/hashes/sha2.js'
import {
  identityFromSeed, didFromPublicKey, publicKeyFromDid, peerIdFromPublicKey, peerIdFromDid, isDid,
  IdentityError, verify, utf8, fromHex
} from '../../src/market/index.js'

describe('identity', () => {
  it('matches the did:key spec test vector for Ed25519', () => {
    // Published pair (Ed25519VerificationKey2018 publicKeyBase58 and its did:key), as in DID test suites.
    const did = 'did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th'
    const publicKey = base58btc.baseDecode('8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K')
    assert.deepEqual(publicKeyFromDid(did), publicKey)
    assert.equal(didFromPublicKey(publicKey), did)
  })

  it('derives the same peer id as libp2p for the same key', async () => {
    const key = await generateKeyPair('Ed25519')
    const seed = key.raw.subarray(0, 32)
    const identity = identityFromSeed(seed)
    assert.deepEqual(identity.publicKey, key.publicKey.raw)
    // libp2p's peer id for Ed25519 is the identity multihash of the protobuf public key.
    assert.equal(identity.peerId, base58btc.baseEncode(key.publicKey.toMultihash().bytes))
    assert.match(identity.peerId, /^12D3KooW/)
    assert.equal(peerIdFromDid(identity.did), identity.peerId)
    const again = privateKeyFromRaw(key.raw)
    assert.deepEqual(again.publicKey.raw, identity.publicKey)
  })

  it('signs what verifies, and nothing else verifies', () => {
    const id = identityFromSeed(sha256(utf8('a')))
    const msg = utf8('hello')
    const sig = id.sign(msg)
    assert.equal(verify(id.publicKey, msg, sig), true)
    assert.equal(verify(id.publicKey, utf8('hellp'), sig), false)
    const other = identityFromSeed(sha256(utf8('b')))
    assert.equal(verify(other.publicKey, msg, sig), false)
    assert.equal(verify(new Uint8Array(31), msg, sig), false)
    assert.equal(verify(id.publicKey, msg, sig.subarray(1)), false)
  })

  it('keeps the seed out of logs and JSON', () => {
    const seed = fromHex('11'.repeat(32))
    const id = identityFromSeed(seed)
    const shown = JSON.stringify(id) + String((id as any)[Symbol.for('nodejs.util.inspect.custom')]())
    assert.ok(!shown.includes('1111'))
    assert.ok(shown.includes(id.did))
  })

  it('refuses malformed DIDs and keys with typed errors', () => {
    for (const bad of ['did:web:example.com', 'did:key:zzzz', 'did:key:z6Mk', 'did:key:' + 'z'.repeat(70), 42 as any]) {
      assert.throws(() => publicKeyFromDid(bad), (e: unknown) => e instanceof IdentityError && e.code === 'IDENTITY_BAD_DID')
      assert.equal(isDid(bad), false)
    }
    // A valid multibase string that holds a secp256k1 key (0xe7) is not accepted.
    const secp = 'did:key:' + base58btc.encode(Uint8Array.from([0xe7, 0x01, ...new Uint8Array(33)]))
    assert.throws(() => publicKeyFromDid(secp), (e: unknown) => e instanceof IdentityError && e.code === 'IDENTITY_BAD_DID')
    assert.throws(() => identityFromSeed(new Uint8Array(31)), (e: unknown) => e instanceof IdentityError && e.code === 'IDENTITY_BAD_KEY')
    assert.throws(() => peerIdFromPublicKey(new Uint8Array(33)), (e: unknown) => e instanceof IdentityError)
  })
})

describe('ed25519 through node:crypto agrees with @noble/curves', () => {
  it('same public keys and byte-identical signatures (RFC 8032 is deterministic)', async () => {
    const { ed25519 } = await import('@noble/curves/ed25519.js')
    for (let i = 0; i < 20; i++) {
      const seed = sha256(utf8(`cross ${i}`))
      const id = identityFromSeed(seed)
      assert.deepEqual(id.publicKey, ed25519.getPublicKey(seed))
      const msg = utf8(`message ${i}`)
      assert.deepEqual(id.sign(msg), ed25519.sign(msg, seed))
      assert.equal(ed25519.verify(id.sign(msg), msg, id.publicKey), true)
    }
  })
})
