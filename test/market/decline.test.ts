import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { decodeRecord, signRecord, DeclineType, DECLINE_CODES, DECLINE_NSID, MAX_DECLINE_DETAIL_CHARS } from '../../src/market/index.js'
import { bob, carol, declineFields, makeRfp, refusedWith, signMap, wireMap } from './contract-fixtures.js'

describe('Decline', () => {
  const rfp = makeRfp()

  it('has the stable code list, in check order', () => {
    assert.deepEqual([...DECLINE_CODES], ['RFP_CLOSED', 'SCHEME_UNSUPPORTED', 'FLOOR_NOT_MET', 'TDX_UNAVAILABLE', 'MEASUREMENTS_MISMATCH', 'REGION_UNSERVED', 'NO_CAPACITY', 'PRICE_BELOW_RATE', 'POLICY_REFUSED'])
    assert.equal(DECLINE_NSID, 'org.computemesh.contract.decline')
  })

  it('round-trips every code', () => {
    for (const code of DECLINE_CODES) {
      const d = signRecord(DeclineType, declineFields(rfp, { code, detail: 'x'.repeat(MAX_DECLINE_DETAIL_CHARS) }), bob)
      assert.deepEqual(decodeRecord(d.bytes, [DeclineType]).value, d.value)
      assert.deepEqual(wireMap(d.bytes).rfp, { uri: rfp.uri, cid: rfp.cid.toString() })
    }
  })

  it('refuses unknown codes, long details and a reference to anything but a CCRFP', () => {
    const d = signRecord(DeclineType, declineFields(rfp), bob)
    const map = wireMap(d.bytes)
    for (const variant of [
      { ...map, code: 'BUSY' },
      { ...map, code: 'no_capacity' },
      { ...map, detail: 'x'.repeat(MAX_DECLINE_DETAIL_CHARS + 1) },
      { ...map, rfp: { uri: d.uri, cid: d.cid.toString() } },
      { ...map, extra: true }
    ]) assert.throws(() => decodeRecord(signMap(variant, bob), [DeclineType]), refusedWith('RECORD_SCHEMA'))
    assert.throws(() => decodeRecord(signMap(map, carol), [DeclineType]), refusedWith('RECORD_BAD_SIGNATURE'))
  })
})
