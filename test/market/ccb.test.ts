import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { base58btc } from 'multiformats/bases/base58'
import {
  decodeRecord, signRecord, CcbType, CCB_NSID, MAX_CCB_COST, MAX_CCB_TTL_SECS, RecordError, strongRefTo, cidForBytes, rawCidForBytes, utf8
} from '../../src/market/index.js'
import { makeCard, T0 } from '../helpers/cards.js'
import { bob, carol, ccbFields, makeCcb, makeRfp, refusedWith, signMap, wireMap } from './contract-fixtures.js'

describe('CCB (compute-contract lexicon)', () => {
  const rfp = makeRfp()
  const ccb = makeCcb(rfp, { wif: { issuer_uri: 'https://issuer.example', subject: '' } })

  it('round-trips through signRecord/decodeRecord', () => {
    const again = decodeRecord(ccb.bytes, [CcbType])
    assert.deepEqual(again.value, ccb.value)
    assert.equal(again.author, bob.did)
    assert.equal(again.type.nsid, CCB_NSID)
    assert.equal(CCB_NSID, 'com.publicdomainrelay.temp.ccb')
    assert.ok(again.value.embed.cid.equals(rfp.cid))
    assert.equal(again.value.embed.uri, rfp.uri)
  })

  it('keeps the lexicon shape: embed as a bare strongRef with a string cid, bid terms, wif; cmesh is the extension', () => {
    const map = wireMap(ccb.bytes)
    assert.deepEqual(Object.keys(map).sort(), ['$type', 'bid', 'cmesh', 'createdAtUnixSecs', 'embed', 'provider', 'sig', 'v', 'wif'])
    assert.deepEqual(map.embed, { uri: rfp.uri, cid: rfp.cid.toString() })
    assert.deepEqual(map.bid, { cost: 5000, currency: 'wei', frequency: 'one-time', prepay: false, x402: { base_url: '' } })
    assert.deepEqual(map.wif, { issuer_uri: 'https://issuer.example', subject: '' })
    assert.equal(typeof map.bid.cost, 'number', 'cost is a CBOR integer, as the lexicon says: a number')
  })

  it('carries costs up to 2^64 − 1 exactly as CBOR integers', () => {
    const big = makeCcb(rfp, { bid: { ...ccb.value.bid, cost: MAX_CCB_COST } })
    assert.equal(decodeRecord(big.bytes, [CcbType]).value.bid.cost, MAX_CCB_COST)
    assert.equal(wireMap(big.bytes).bid.cost, MAX_CCB_COST)
    assert.equal(decodeRecord(makeCcb(rfp, { bid: { ...ccb.value.bid, cost: 0n } }).bytes, [CcbType]).value.bid.cost, 0n)
    assert.throws(() => makeCcb(rfp, { bid: { ...ccb.value.bid, cost: MAX_CCB_COST + 1n } }), refusedWith('RECORD_SCHEMA'))
    assert.throws(() => makeCcb(rfp, { bid: { ...ccb.value.bid, cost: -1n } }), refusedWith('RECORD_SCHEMA'))
  })

  it('refuses other currencies and frequencies, non-integer costs and malformed parts (RECORD_SCHEMA)', () => {
    const map = wireMap(ccb.bytes)
    const card = makeCard(bob)
    const variants: Array<Record<string, any>> = [
      { ...map, bid: { ...map.bid, currency: 'USDC' } },
      { ...map, bid: { ...map.bid, currency: 'WEI' } },
      { ...map, bid: { ...map.bid, frequency: 'monthly' } },
      { ...map, bid: { ...map.bid, frequency: 'hourly' } },
      { ...map, bid: { ...map.bid, cost: '5000' } },
      { ...map, bid: { ...map.bid, cost: 1.5 } },
      { ...map, bid: { ...map.bid, cost: -1 } },
      { ...map, bid: { ...map.bid, prepay: 'no' } },
      { ...map, bid: { ...map.bid, x402: {} } },
      { ...map, wif: { issuer_uri: 1 } },
      { ...map, wif: { audience: 'x' } },
      { ...map, embed: { uri: card.uri, cid: card.cid.toString() } },
      { ...map, embed: { uri: rfp.uri, cid: rfp.cid } },
      { ...map, embed: { uri: rfp.uri, cid: rfp.cid.toString(base58btc) } },
      { ...map, embed: { uri: rfp.uri, cid: rfp.cid.toString().toUpperCase() } },
      { ...map, embed: { uri: rfp.uri, cid: rawCidForBytes(rfp.bytes).toString() } },
      { ...map, embed: { uri: rfp.uri, cid: 'not a cid' } },
      { ...map, embed: { uri: 'https://example.com/x', cid: rfp.cid.toString() } },
      { ...map, embed: { uri: rfp.uri, cid: rfp.cid.toString(), $type: 'com.atproto.repo.strongRef' } },
      { ...map, cmesh: { ...map.cmesh, sealKey: new Uint8Array(31) } },
      { ...map, cmesh: { ...map.cmesh, level: 'Tdx' } },
      { ...map, cmesh: { ...map.cmesh, cpus: 0 } },
      { ...map, cmesh: { ...map.cmesh, region: '' } },
      { ...map, cmesh: { ...map.cmesh, extra: 1 } },
      { ...map, provider: 'did:plc:abc' }
    ]
    for (const variant of variants) {
      assert.throws(() => decodeRecord(signMap(variant, bob), [CcbType]), refusedWith('RECORD_SCHEMA'), JSON.stringify(variant.bid ?? variant.embed))
    }
    // Any canonical dag-cbor CID string is shape-valid: the cross-checks catch a wrong target.
    const other = { ...map, embed: { uri: rfp.uri, cid: cidForBytes(utf8('x')).toString() } }
    assert.doesNotThrow(() => decodeRecord(signMap(other, bob), [CcbType]))
  })

  it('refuses a bid that expires before it is made or lives over an hour (RECORD_SEMANTIC)', () => {
    assert.throws(() => makeCcb(rfp, { cmesh: { expiresAtUnixSecs: T0 + 5 } as any }), refusedWith('RECORD_SEMANTIC'))
    assert.throws(() => makeCcb(rfp, { cmesh: { expiresAtUnixSecs: T0 + 5 + MAX_CCB_TTL_SECS + 1 } as any }), refusedWith('RECORD_SEMANTIC'))
  })

  it('is signed by its provider only', () => {
    assert.throws(() => signRecord(CcbType, ccbFields(rfp), carol), (e: unknown) => e instanceof RecordError && e.code === 'RECORD_BAD_SIGNATURE')
    assert.throws(() => decodeRecord(signMap(wireMap(ccb.bytes), carol), [CcbType]), refusedWith('RECORD_BAD_SIGNATURE'))
    assert.deepEqual(strongRefTo(ccb), { uri: ccb.uri, cid: ccb.cid })
  })
})
