import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  decodeRecord, CcbaType, CCBA_NSID, CCBAP_NSID, MAX_SEALED_USER_DATA_BYTES, MAX_RECORD_BYTES, formatAtUri, tidFromTime, cidForBytes, utf8
} from '../../src/market/index.js'
import { alice, eve, makeCcb, makeCcba, makeRfp, refusedWith, signMap, wireMap } from './contract-fixtures.js'

describe('CCBA (compute-contract lexicon)', () => {
  const rfp = makeRfp()
  const ccb = makeCcb(rfp)
  const payment = { uri: formatAtUri({ did: alice.did, nsid: CCBAP_NSID, rkey: tidFromTime(1n) }), cid: cidForBytes(utf8('ccbap')) }

  it('round-trips with and without a payment reference', () => {
    for (const ccba of [makeCcba(rfp, ccb), makeCcba(rfp, ccb, { payment })]) {
      const again = decodeRecord(ccba.bytes, [CcbaType])
      assert.deepEqual(again.value, ccba.value)
      assert.equal(again.author, alice.did)
      assert.equal(again.type.nsid, CCBA_NSID)
    }
    const map = wireMap(makeCcba(rfp, ccb, { payment }).bytes)
    assert.deepEqual(Object.keys(map).sort(), ['$type', 'bid', 'cmesh', 'createdAtUnixSecs', 'embed', 'payment', 'requester', 'sig', 'v'])
    assert.deepEqual(map.embed, { uri: rfp.uri, cid: rfp.cid.toString() })
    assert.deepEqual(map.bid, { uri: ccb.uri, cid: ccb.cid.toString() })
    assert.deepEqual(map.payment, { uri: payment.uri, cid: payment.cid.toString() })
  })

  it('holds sealed user_data up to the cap inside the record cap', () => {
    const ccba = makeCcba(rfp, ccb, { cmesh: { receiptKey: new Uint8Array(32), userData: { enc: new Uint8Array(32), ct: new Uint8Array(MAX_SEALED_USER_DATA_BYTES) } } })
    assert.ok(ccba.bytes.length <= MAX_RECORD_BYTES)
    assert.equal(decodeRecord(ccba.bytes, [CcbaType]).value.cmesh.userData.ct.length, MAX_SEALED_USER_DATA_BYTES)
  })

  it('refuses refs to the wrong collections, bad keys and bad sealed boxes', () => {
    const map = wireMap(makeCcba(rfp, ccb).bytes)
    for (const variant of [
      { ...map, embed: map.bid },
      { ...map, bid: map.embed },
      { ...map, payment: map.bid },
      { ...map, cmesh: { ...map.cmesh, receiptKey: new Uint8Array(33) } },
      { ...map, cmesh: { ...map.cmesh, userData: { ...map.cmesh.userData, enc: new Uint8Array(31) } } },
      { ...map, cmesh: { ...map.cmesh, userData: { ...map.cmesh.userData, ct: new Uint8Array(15) } } },
      { ...map, cmesh: { ...map.cmesh, userData: { ...map.cmesh.userData, ct: new Uint8Array(MAX_SEALED_USER_DATA_BYTES + 1) } } },
      { ...map, cmesh: { ...map.cmesh, userData: '#cloud-config' } },
      { ...map, user_data: '#cloud-config' }
    ]) assert.throws(() => decodeRecord(signMap(variant, alice), [CcbaType]), refusedWith('RECORD_SCHEMA'))
    assert.throws(() => decodeRecord(signMap(map, eve), [CcbaType]), refusedWith('RECORD_BAD_SIGNATURE'))
  })
})
