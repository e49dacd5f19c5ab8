import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { decodeRecord, encodeCanonical, signRecord, VouchType, DenounceType, TRUST_RECORD_TYPES, VOUCH_NSID, DENOUNCE_NSID, isVouch, isDenounce } from '../../src/market/index.js'
import { T0 } from '../helpers/cards.js'
import { alice, bob, denounce, eve, refusedWith, signMap, vouch, wireMap } from './contract-fixtures.js'

describe('vouch / denounce', () => {
  it('round-trip, authored by the truster', () => {
    const v = signRecord(VouchType, { truster: alice.did, subject: bob.did, createdAtUnixSecs: T0, note: 'ran their builds for a year' }, alice)
    assert.deepEqual(decodeRecord(v.bytes, TRUST_RECORD_TYPES).value, v.value)
    const d = denounce(alice, eve)
    const again = decodeRecord(d.bytes, TRUST_RECORD_TYPES)
    assert.equal(again.type.nsid, DENOUNCE_NSID)
    assert.ok(isDenounce(again) && !isVouch(again))
    assert.ok(isVouch(vouch(alice, bob)))
    assert.equal(VOUCH_NSID, 'org.computemesh.trust.vouch')
    assert.throws(() => signRecord(VouchType, { truster: alice.did, subject: bob.did, createdAtUnixSecs: T0 }, bob), refusedWith('RECORD_BAD_SIGNATURE'))
  })

  it('refuses vouching or denouncing oneself (RECORD_SEMANTIC)', () => {
    assert.throws(() => vouch(alice, alice), refusedWith('RECORD_SEMANTIC'))
    assert.throws(() => denounce(alice, alice), refusedWith('RECORD_SEMANTIC'))
  })

  it('a vouch cannot be replayed as a denouncement, nor the reverse (the signature covers $type)', () => {
    const v = wireMap(vouch(alice, bob).bytes)
    assert.throws(() => decodeRecord(encodeCanonical({ ...v, $type: DENOUNCE_NSID }), [DenounceType]), refusedWith('RECORD_BAD_SIGNATURE'))
    const d = wireMap(denounce(alice, bob).bytes)
    assert.throws(() => decodeRecord(encodeCanonical({ ...d, $type: VOUCH_NSID }), [VouchType]), refusedWith('RECORD_BAD_SIGNATURE'))
  })

  it('refuses bad fields', () => {
    const map = wireMap(vouch(alice, bob).bytes)
    for (const variant of [{ ...map, subject: 'did:web:x' }, { ...map, note: 'x'.repeat(281) }, { ...map, weight: 1 }]) {
      assert.throws(() => decodeRecord(signMap(variant, alice), [VouchType]), refusedWith('RECORD_SCHEMA'))
    }
  })
})
