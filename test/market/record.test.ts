import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import {
  decodeRecord, signRecord, checkClockWindow, encodeCanonical, parseAtUri, timeFromTid, RecordError,
  ProviderCardType, RetirementType, COLLECTION_RECORD_TYPES, MAX_RECORD_BYTES, RECORD_SIGNATURE_DOMAIN,
  concatBytes, cidForBytes, type RecordErrorCode
} from '../../src/market/index.js'
import { cardFields, makeCard, makeRetirement, testIdentity, T0 } from '../helpers/cards.js'

function refusedWith (code: RecordErrorCode) {
  return (err: unknown) => err instanceof RecordError && err.code === code
}

/** Re-signs an arbitrary map as `identity`, to reach checks past the signature. */
function signMap (map: Record<string, unknown>, seedIndex = 1): Uint8Array {
  const { sig: _sig, ...body } = map
  const sig = testIdentity(seedIndex).sign(concatBytes(RECORD_SIGNATURE_DOMAIN, encodeCanonical(body)))
  return encodeCanonical({ ...body, sig })
}

describe('signed records', () => {
  const alice = testIdentity(1)
  const card = makeCard(alice)

  it('round-trips a card: same value, CID over the signed bytes, at:// address with a TID rkey', () => {
    const again = decodeRecord(card.bytes, COLLECTION_RECORD_TYPES)
    assert.deepEqual(again.value, card.value)
    assert.equal(again.cid.toString(), cidForBytes(card.bytes).toString())
    assert.equal(again.cid.version, 1)
    assert.equal(again.cid.code, 0x71)
    assert.equal(again.cid.multihash.code, 0x12)
    const uri = parseAtUri(again.uri)
    assert.equal(uri.did, alice.did)
    assert.equal(uri.nsid, 'org.computemesh.provider.card')
    assert.equal(timeFromTid(uri.rkey).microseconds, BigInt(T0) * 1_000_000n)
    assert.equal(again.value.feePerPartialWei, 1_000_000_000n)
  })

  it('carries wei amounts beyond 64 bits exactly', () => {
    const big = makeCard(alice, { feePerPartialWei: (1n << 200n) + 7n })
    assert.equal(decodeRecord(big.bytes, [ProviderCardType]).value.feePerPartialWei, (1n << 200n) + 7n)
  })

  it('refuses to sign for another author', () => {
    assert.throws(() => signRecord(ProviderCardType, cardFields(alice), testIdentity(2)), refusedWith('RECORD_BAD_SIGNATURE'))
  })

  it('refuses a card signed by someone other than its providerId', () => {
    const map = dagCbor.decode(card.bytes) as Record<string, unknown>
    assert.throws(() => decodeRecord(signMap(map, 2), COLLECTION_RECORD_TYPES), refusedWith('RECORD_BAD_SIGNATURE'))
  })

  it('refuses a signature made without the domain prefix', () => {
    const { sig: _s, ...body } = dagCbor.decode(card.bytes) as Record<string, unknown>
    const bare = alice.sign(encodeCanonical(body))
    assert.throws(() => decodeRecord(encodeCanonical({ ...body, sig: bare }), COLLECTION_RECORD_TYPES), refusedWith('RECORD_BAD_SIGNATURE'))
  })

  it('refuses a valid signature moved onto another record type', () => {
    const retirement = makeRetirement(alice, T0)
    const map = dagCbor.decode(retirement.bytes) as Record<string, unknown>
    // Same fields, claimed as a card: schema refuses before any signature could be reused.
    assert.throws(() => decodeRecord(encodeCanonical({ ...map, $type: ProviderCardType.nsid }), COLLECTION_RECORD_TYPES), RecordError)
  })

  it('refuses unknown $type and unknown versions', () => {
    const map = dagCbor.decode(card.bytes) as Record<string, unknown>
    assert.throws(() => decodeRecord(signMap({ ...map, $type: 'org.computemesh.provider.cardx' }), COLLECTION_RECORD_TYPES), refusedWith('RECORD_UNKNOWN_TYPE'))
    assert.throws(() => decodeRecord(card.bytes, [RetirementType]), refusedWith('RECORD_UNKNOWN_TYPE'))
    assert.throws(() => decodeRecord(signMap({ ...map, v: 2 }), COLLECTION_RECORD_TYPES), refusedWith('RECORD_UNSUPPORTED_VERSION'))
  })

  it('refuses trailing bytes, non-canonical encodings and non-maps', () => {
    assert.throws(() => decodeRecord(concatBytes(card.bytes, Uint8Array.of(0)), COLLECTION_RECORD_TYPES), refusedWith('RECORD_NON_CANONICAL'))
    // {"b": 1, "a": 2}: keys out of DAG-CBOR order, which the decoder itself tolerates.
    const unsorted = Uint8Array.from([0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02])
    assert.throws(() => decodeRecord(unsorted, COLLECTION_RECORD_TYPES), refusedWith('RECORD_NON_CANONICAL'))
    const nonMinimalInt = Uint8Array.from([0xa1, 0x61, 0x76, 0x18, 0x01])
    assert.throws(() => decodeRecord(nonMinimalInt, COLLECTION_RECORD_TYPES), refusedWith('RECORD_MALFORMED'))
    assert.throws(() => decodeRecord(encodeCanonical([1, 2]), COLLECTION_RECORD_TYPES), refusedWith('RECORD_MALFORMED'))
    assert.throws(() => decodeRecord(new Uint8Array(0), COLLECTION_RECORD_TYPES), refusedWith('RECORD_MALFORMED'))
  })

  it('refuses oversize input before parsing it, and per type', () => {
    assert.throws(() => decodeRecord(new Uint8Array(MAX_RECORD_BYTES + 1), COLLECTION_RECORD_TYPES), refusedWith('RECORD_TOO_LARGE'))
    const map = dagCbor.decode(card.bytes) as Record<string, unknown>
    const huge = signMap({ ...map, backends: Array.from({ length: 16 }, (_, i) => ({ name: `b${i}`, kind: 'local', regions: Array.from({ length: 40 }, (_, j) => `r${j}${"z".repeat(40)}`), maxCpu: 1, maxMemoryMiB: 1, maxDiskGiB: 1, tdx: false })) })
    assert.ok(huge.length > ProviderCardType.maxBytes && huge.length < MAX_RECORD_BYTES)
    assert.throws(() => decodeRecord(huge, COLLECTION_RECORD_TYPES), refusedWith('RECORD_TOO_LARGE'))
  })

  it('refuses schema violations: unknown fields, floats, bad levels, non-canonical wei', () => {
    const map = dagCbor.decode(card.bytes) as Record<string, unknown>
    for (const bad of [
      { ...map, extra: 1 },
      { ...map, capacityPerSecond: 1.5 },
      { ...map, attestationLevel: 'TdxSuper' },
      { ...map, feePerPartialWei: '007' },
      { ...map, feePerPartialWei: 7 },
      { ...map, providerId: 'did:web:example.com' },
      { ...map, attestationDigest: new Uint8Array(31) },
      { ...map, backends: [] }
    ]) {
      assert.throws(() => decodeRecord(signMap(bad), COLLECTION_RECORD_TYPES), refusedWith('RECORD_SCHEMA'))
    }
  })

  it('refuses semantic violations: rate digest, expiry order, dangling rate backend, self-succession', () => {
    const map = dagCbor.decode(card.bytes) as Record<string, unknown>
    for (const bad of [
      { ...map, rateTableDigest: new Uint8Array(32) },
      { ...map, expiresAtUnixSecs: T0 },
      { ...map, expiresAtUnixSecs: T0 + 7 * 86400 + 1 },
      { ...map, successor: alice.did },
      { ...map, schemesSupported: ['vm.ssh', 'vm.ssh'] }
    ]) {
      assert.throws(() => decodeRecord(signMap(bad), COLLECTION_RECORD_TYPES), refusedWith('RECORD_SEMANTIC'))
    }
    assert.throws(() => makeCard(alice, { rates: [{ backend: 'nope', cpuHourWei: 1n, memoryGiBHourWei: 1n, diskGiBHourWei: 1n }] }), refusedWith('RECORD_SEMANTIC'))
  })

  it('checks the clock window with a passed-in time', () => {
    const window = { maxFutureSecs: 30, maxAgeSecs: 3600 }
    checkClockWindow(card, T0, window)
    checkClockWindow(card, T0 - 30, window)
    assert.throws(() => checkClockWindow(card, T0 - 31, window), refusedWith('RECORD_FROM_FUTURE'))
    assert.throws(() => checkClockWindow(card, T0 + 3601, window), refusedWith('RECORD_STALE'))
  })
})
